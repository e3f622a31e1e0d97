import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { ClawkeepError, ERROR_CODES, type ErrorCode } from "../core/errors.ts";

/** The one error body every API answer uses. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; retryable: boolean; details?: Record<string, unknown> };
}

/** The one place that maps error codes to HTTP status. */
export const HTTP_STATUS: Record<ErrorCode, ContentfulStatusCode> = {
  invalid_request: 400,
  invalid_name: 400,
  unknown_tier: 400,
  unknown_field: 400,
  malformed_json: 400,
  payload_too_large: 413,
  name_taken: 409,
  not_found: 404,
  unauthorized: 401,
  forbidden: 403,
  conflict: 409,
  capacity_exhausted: 503,
  runtime_unavailable: 503,
  runtime_failed: 502,
  kms_failed: 500,
  internal: 500,
};

export function errorBody(code: ErrorCode, message: string, details?: Record<string, unknown>): ErrorBody {
  return {
    error: { code, message, retryable: ERROR_CODES[code].retryable, ...(details ? { details } : {}) },
  };
}

export function toErrorResponse(err: unknown): { status: ContentfulStatusCode; body: ErrorBody } {
  if (err instanceof ClawkeepError) {
    return { status: HTTP_STATUS[err.code], body: errorBody(err.code, err.message, err.details) };
  }
  if (err instanceof HTTPException) {
    if (err.status === 400 && /json/i.test(err.message)) {
      return { status: 400, body: errorBody("malformed_json", "the request body is not valid JSON") };
    }
    const code: ErrorCode =
      err.status === 401 ? "unauthorized" : err.status === 404 ? "not_found" : "invalid_request";
    return { status: err.status as ContentfulStatusCode, body: errorBody(code, err.message) };
  }
  return { status: 500, body: errorBody("internal", "internal error") };
}

/** Zod issues from a request schema, mapped to one stable code: the first issue decides. */
export function validationError(
  issues: ReadonlyArray<{ code: string; path: ReadonlyArray<PropertyKey>; message: string; keys?: string[] }>,
): ClawkeepError {
  const first = issues[0];
  if (!first) return new ClawkeepError("invalid_request", "invalid request");
  if (first.code === "unrecognized_keys") {
    return new ClawkeepError("unknown_field", `unknown field(s): ${(first.keys ?? []).join(", ")}`, {
      details: { fields: first.keys ?? [] },
    });
  }
  const field = first.path.map(String).join(".");
  const code: ErrorCode =
    field === "name" ? "invalid_name" : field === "tier" ? "unknown_tier" : "invalid_request";
  return new ClawkeepError(code, field ? `${field}: ${first.message}` : first.message, {
    details: { field },
  });
}

export function sendError(c: Context, err: unknown) {
  const { status, body } = toErrorResponse(err);
  return c.json(body, status);
}
