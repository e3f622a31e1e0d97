import { ClawkeepError, type ErrorCode } from "../core/errors.ts";

/**
 * Why a local service could not be served, reached or supervised. Every ServiceError carries one
 * in `reason` (and `details.reason`); each service's own client and supervisor map it onto its own
 * error (the key service's `kmsError` reasons, the CLI's messages), so this kit's words are only
 * the default.
 */
export const SERVICE_FAILURES = {
  /** Nothing listens on the socket (ENOENT, ECONNREFUSED). */
  not_running: "runtime_unavailable",
  /** The socket's permissions keep this process out (EACCES, EPERM). */
  permission_denied: "forbidden",
  /** The service did not answer within the time-out. */
  timeout: "runtime_unavailable",
  /** The connection failed or closed in the middle of an answer. */
  connection_lost: "runtime_unavailable",
  /** Any other error connecting to the socket. */
  unreachable: "runtime_unavailable",
  /** Another process already answers on the socket a server was asked to listen on. */
  already_running: "conflict",
  /** The socket path is taken by something that is not a socket, or the path is unusable. */
  bad_socket_path: "invalid_request",
  /** listen(2) failed. */
  listen_failed: "runtime_failed",
  /** A request body was larger than the server accepts. */
  body_too_large: "invalid_request",
  /** A supervised process could not be spawned, exited, or did not become ready in time. */
  start_failed: "runtime_failed",
  /** A supervised process was stopped while it was starting. */
  stopped: "runtime_unavailable",
} as const satisfies Record<string, ErrorCode>;

export type ServiceFailure = keyof typeof SERVICE_FAILURES;

/**
 * An error whose `reason` (also in `details.reason`, which crosses a socket) is one key of a
 * table mapping each reason to a project error code: the base of ServiceError and of the local
 * services' own errors (ModelServerError).
 */
export class ReasonedError<R extends string> extends ClawkeepError {
  readonly reason: R;

  constructor(
    codes: Readonly<Record<R, ErrorCode>>,
    reason: R,
    message: string,
    opts: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(codes[reason], message, {
      ...(opts.cause === undefined ? {} : { cause: opts.cause }),
      details: { ...opts.details, reason },
    });
    this.reason = reason;
  }
}

export class ServiceError extends ReasonedError<ServiceFailure> {
  constructor(reason: ServiceFailure, message: string, opts: { cause?: unknown } = {}) {
    super(SERVICE_FAILURES, reason, message, opts);
  }
}

export function isServiceError(err: unknown, reason?: ServiceFailure): err is ServiceError {
  return err instanceof ServiceError && (reason === undefined || err.reason === reason);
}
