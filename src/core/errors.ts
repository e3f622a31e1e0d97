/**
 * The error hierarchy of clawkeep. Every error a user can see carries a stable `code` from
 * ERROR_CODES; control/errors.ts is the one place that maps codes to HTTP status.
 */
export const ERROR_CODES = {
  invalid_request: { retryable: false },
  invalid_name: { retryable: false },
  unknown_tier: { retryable: false },
  unknown_field: { retryable: false },
  malformed_json: { retryable: false },
  payload_too_large: { retryable: false },
  name_taken: { retryable: false },
  not_found: { retryable: false },
  unauthorized: { retryable: false },
  forbidden: { retryable: false },
  conflict: { retryable: true },
  capacity_exhausted: { retryable: true },
  runtime_unavailable: { retryable: true },
  runtime_failed: { retryable: true },
  kms_failed: { retryable: false },
  internal: { retryable: true },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class ClawkeepError extends Error {
  readonly code: ErrorCode;
  /** Extra, non-secret facts for the caller (which field, which limit). */
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = opts.details;
  }

  get retryable(): boolean {
    return ERROR_CODES[this.code].retryable;
  }
}

export class ValidationError extends ClawkeepError {}
export class NotFoundError extends ClawkeepError {
  constructor(what: string, name: string) {
    super("not_found", `${what} '${name}' does not exist`, { details: { [what]: name } });
  }
}
export class ConflictError extends ClawkeepError {}
export class AuthError extends ClawkeepError {}
