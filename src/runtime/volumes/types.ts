import type { InstanceSpec } from "../types.ts";

/**
 * Where a sandboxed tenant keeps its data. The container driver asks for a host directory to
 * bind into the container; an implementation may back it with an encrypted loop volume.
 */
export interface TenantVolumes {
  /**
   * Makes (first time) and opens the tenant's volume; returns the host directory that holds the
   * tenant's data, unlocked. Idempotent. The directory is owned by `ownerUid`.
   */
  open(spec: InstanceSpec, ownerUid: number, signal?: AbortSignal): Promise<string>;
  /** Locks and closes the volume; the data stays. Idempotent. */
  close(name: string, signal?: AbortSignal): Promise<void>;
  /** Closes and removes the volume and all its data. Idempotent. */
  destroy(name: string, signal?: AbortSignal): Promise<void>;
}
