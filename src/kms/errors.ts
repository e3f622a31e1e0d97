import { ClawkeepError } from "../core/errors.ts";

/**
 * Why a key-service call failed, stable across the socket. Every KmsError carries one in
 * `details.reason` (and `reason`), so callers and tests tell a wrong root key from a corrupted entry
 * without parsing messages.
 */
export const KMS_FAILURES = [
  "invalid_input",
  "root_key_missing",
  "root_key_wrong",
  "root_key_invalid",
  "store_corrupt",
  "truncated",
  "unknown_format",
  "wrong_key_version",
  "not_authentic",
  "unknown_tenant",
  "tenant_destroyed",
  "tier_conflict",
  "shared_kek",
  "already_running",
  "forbidden",
  "unavailable",
  "internal",
] as const;
export type KmsFailure = (typeof KMS_FAILURES)[number];

export function isKmsFailure(value: unknown): value is KmsFailure {
  return typeof value === "string" && (KMS_FAILURES as readonly string[]).includes(value);
}

/** A key-service failure. Messages name what failed (file, tenant, key id) and never hold key material. */
export class KmsError extends ClawkeepError {
  readonly reason: KmsFailure;

  constructor(message: string, cause?: unknown, reason: KmsFailure = "internal") {
    super(
      "kms_failed",
      message,
      cause === undefined ? { details: { reason } } : { cause, details: { reason } },
    );
    this.reason = reason;
  }
}

/** Shorthand for a KmsError with a reason and no cause. */
export function kmsError(reason: KmsFailure, message: string, cause?: unknown): KmsError {
  return new KmsError(message, cause, reason);
}
