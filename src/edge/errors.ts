import { ClawkeepError } from "../core/errors.ts";

/** The edge could not do what was asked (nginx missing, failed to start, stop or reload). */
export class EdgeError extends ClawkeepError {
  constructor(message: string, opts: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super("runtime_failed", message, opts);
  }
}

/**
 * A rendered config was refused (by `nginx -t` or by the reload itself). The previous config is
 * still the one on disk and the one serving; `details.nginx` holds what nginx said.
 */
export class EdgeConfigError extends EdgeError {}
