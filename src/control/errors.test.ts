import assert from "node:assert/strict";
import { test } from "node:test";
import { HTTPException } from "hono/http-exception";
import { ClawkeepError, ERROR_CODES, type ErrorCode } from "../core/errors.ts";
import { HTTP_STATUS, toErrorResponse, validationError } from "./errors.ts";

test("every error code has an HTTP status, 4xx for caller faults and 5xx otherwise", () => {
  for (const code of Object.keys(ERROR_CODES) as ErrorCode[]) {
    const { status, body } = toErrorResponse(new ClawkeepError(code, "m"));
    assert.equal(status, HTTP_STATUS[code]);
    assert.equal(body.error.code, code);
    assert.equal(body.error.retryable, ERROR_CODES[code].retryable);
  }
  assert.equal(HTTP_STATUS.name_taken, 409);
  assert.equal(HTTP_STATUS.not_found, 404);
  assert.equal(HTTP_STATUS.unauthorized, 401);
  assert.equal(HTTP_STATUS.invalid_name, 400);
});

test("unknown errors become a 500 internal error without leaking their message", () => {
  const { status, body } = toErrorResponse(new Error("db password is hunter2"));
  assert.equal(status, 500);
  assert.equal(body.error.code, "internal");
  assert.ok(!body.error.message.includes("hunter2"));
});

test("malformed JSON maps to malformed_json", () => {
  const { body } = toErrorResponse(new HTTPException(400, { message: "Malformed JSON in request body" }));
  assert.equal(body.error.code, "malformed_json");
});

test("schema issues map to field-specific codes", () => {
  assert.equal(
    validationError([{ code: "invalid_format", path: ["name"], message: "x" }]).code,
    "invalid_name",
  );
  assert.equal(
    validationError([{ code: "invalid_value", path: ["tier"], message: "x" }]).code,
    "unknown_tier",
  );
  const u = validationError([{ code: "unrecognized_keys", path: [], message: "x", keys: ["admin"] }]);
  assert.equal(u.code, "unknown_field");
  assert.match(u.message, /admin/);
  assert.equal(
    validationError([{ code: "too_small", path: ["label"], message: "x" }]).code,
    "invalid_request",
  );
});
