import { ClawkeepError, type ErrorCode } from "../core/errors.ts";

/** A failure of the egress proxy: bad configuration or policy, an unknown tenant, a process that would not start. */
export class EgressError extends ClawkeepError {
  constructor(
    code: ErrorCode,
    message: string,
    opts: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(code, message, opts);
  }
}
