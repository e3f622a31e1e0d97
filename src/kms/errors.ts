import { ClawkeepError } from "../core/errors.ts";

export class KmsError extends ClawkeepError {
  constructor(message: string, cause?: unknown) {
    super("kms_failed", message, cause === undefined ? {} : { cause });
  }
}
