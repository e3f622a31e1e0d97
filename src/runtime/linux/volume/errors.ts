import { ClawkeepError, ConflictError, ValidationError } from "../../../core/errors.ts";

/** A volume operation failed; `code` says whether retrying may help. */
export class VolumeError extends ClawkeepError {}

/** A path given to the volume layer is malformed or outside its root. */
export class VolumePathError extends ValidationError {
  constructor(message: string, path: unknown) {
    super("invalid_request", message, { details: { path: typeof path === "string" ? path : String(path) } });
  }
}

/** Something else occupies the place (a foreign mount, a non-image file, a second mount of the image). */
export class VolumeConflictError extends ConflictError {
  constructor(message: string, cause?: unknown) {
    super("conflict", message, cause === undefined ? {} : { cause });
  }
}

/** Files on the volume are still open, so it cannot be unmounted yet. */
export class VolumeBusyError extends VolumeConflictError {}

/** The operation needs the volume mounted and it is not. */
export class VolumeNotMountedError extends VolumeError {
  constructor(mountpoint: string) {
    super("conflict", `no volume is mounted at ${mountpoint}: mount it with mountVolume first`);
  }
}
