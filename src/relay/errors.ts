import { reasonedError, reasonTable } from "../service/errors.ts";

/**
 * Why the relay refused or failed a call. Every RelayError carries one in `reason` (and
 * `details.reason`); the data plane answers it as `error.code` in OpenAI's error shape (see
 * DATA_PLANE_ERRORS), the admin API as `{"error": {code, message, retryable}}`.
 */
export const RELAY_FAILURES = reasonTable({
  /** The data plane has no state yet (the relay just started): retry in a second. */
  relay_starting: "runtime_unavailable",
  /** No key, or a key no tenant has (unknown, rotated away, revoked). */
  invalid_api_key: "unauthorized",
  /** A tenant's key from a source address that is not that tenant's. */
  wrong_source: "forbidden",
  /** A model outside the tenant's plan. */
  model_not_allowed: "forbidden",
  /** A malformed request: not JSON, not an object, no model, a bad field. */
  invalid_request: "invalid_request",
  /** The route's API is not the one the model's upstream speaks (Anthropic /v1/messages to an OpenAI upstream). */
  unsupported_api: "invalid_request",
  /** A request body over the relay's cap. */
  body_too_large: "invalid_request",
  not_found: "not_found",
  method_not_allowed: "invalid_request",
  /** A token budget (day or month) is spent. */
  budget_exhausted: "capacity_exhausted",
  /** Too many requests in the last minute. */
  rate_limited: "capacity_exhausted",
  /** The provider cannot be reached, or it cut the connection. */
  upstream_unavailable: "runtime_unavailable",
  /** The provider did not answer in time. */
  upstream_timeout: "runtime_unavailable",
  /** The provider refused the upstream credential (the operator's or the tenant's own key). */
  upstream_auth_failed: "runtime_failed",
  /** A state, config or admin request that does not validate. */
  invalid_state: "invalid_request",
  /** The relay process could not be started or reached. */
  unavailable: "runtime_unavailable",
  start_failed: "runtime_failed",
  internal: "internal",
});

export type RelayFailure = keyof typeof RELAY_FAILURES;

/** A refusal or failure of the relay (data plane, admin API, config, process). */
export class RelayError extends reasonedError(RELAY_FAILURES) {
  /** Retryable by the client: a later identical request may succeed. */
  override get retryable(): boolean {
    return DATA_PLANE_ERRORS[this.reason].retryable;
  }
}

/** OpenAI's error `type` vocabulary (Anthropic's uses the same names). */
type ErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "permission_error"
  | "not_found_error"
  | "rate_limit_error"
  | "api_error";

/** The one place a relay reason becomes an HTTP status, an error type and `retryable`. */
export const DATA_PLANE_ERRORS: Readonly<
  Record<RelayFailure, { status: number; type: ErrorType; retryable: boolean }>
> = {
  relay_starting: { status: 503, type: "api_error", retryable: true },
  invalid_api_key: { status: 401, type: "authentication_error", retryable: false },
  wrong_source: { status: 403, type: "permission_error", retryable: false },
  model_not_allowed: { status: 403, type: "permission_error", retryable: false },
  invalid_request: { status: 400, type: "invalid_request_error", retryable: false },
  unsupported_api: { status: 400, type: "invalid_request_error", retryable: false },
  body_too_large: { status: 413, type: "invalid_request_error", retryable: false },
  not_found: { status: 404, type: "not_found_error", retryable: false },
  method_not_allowed: { status: 405, type: "invalid_request_error", retryable: false },
  budget_exhausted: { status: 429, type: "rate_limit_error", retryable: false },
  rate_limited: { status: 429, type: "rate_limit_error", retryable: true },
  upstream_unavailable: { status: 502, type: "api_error", retryable: true },
  upstream_timeout: { status: 504, type: "api_error", retryable: true },
  upstream_auth_failed: { status: 502, type: "api_error", retryable: false },
  invalid_state: { status: 400, type: "invalid_request_error", retryable: false },
  unavailable: { status: 503, type: "api_error", retryable: true },
  start_failed: { status: 500, type: "api_error", retryable: true },
  internal: { status: 500, type: "api_error", retryable: true },
};

/**
 * The body of a data-plane error: OpenAI's shape (`error.message`, `type`, `param`, `code`) with
 * `retryable` and the error's details (which limit, when it resets), plus Anthropic's top-level
 * `"type": "error"`, so both SDKs show the message.
 */
export function errorBody(err: RelayError): { type: "error"; error: Record<string, unknown> } {
  const { reason: _reason, ...details } = err.details ?? {};
  const m = DATA_PLANE_ERRORS[err.reason];
  return {
    type: "error",
    error: {
      message: err.message,
      type: m.type,
      param: null,
      code: err.reason,
      retryable: m.retryable,
      ...details,
    },
  };
}
