import { ClawkeepError, type ErrorCode } from "../core/errors.ts";

/** A table of reasons, each mapped to the project error code an error with that reason carries. */
export type ReasonTable<R extends string> = Readonly<Record<R, ErrorCode>>;

/**
 * An area's table of reasons, as written (its keys are the area's reason type: `keyof typeof`
 * the table). Each service's errors.ts defines its own through this; ReasonedError,
 * reasonedError() and isReasonOf() read it.
 */
export function reasonTable<R extends string>(codes: Record<R, ErrorCode>): ReasonTable<R> {
  return codes;
}

/**
 * Why a local service could not be served, reached or supervised. Every ServiceError carries one
 * in `reason` (and `details.reason`); each service's own client and supervisor map it onto its own
 * error (the key service's `kmsError` reasons, the CLI's messages), so this kit's words are only
 * the default.
 */
export const SERVICE_FAILURES = reasonTable({
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
});

export type ServiceFailure = keyof typeof SERVICE_FAILURES;

/** What a reasoned error carries besides its reason and message. */
export interface ReasonedErrorOptions {
  cause?: unknown;
  details?: Record<string, unknown>;
}

/**
 * An error whose `reason` (also in `details.reason`, which crosses a socket) is one key of a
 * table mapping each reason to a project error code: the base of ServiceError and of the local
 * services' own errors (ModelServerError, RelayError).
 */
export class ReasonedError<R extends string> extends ClawkeepError {
  readonly reason: R;

  constructor(codes: ReasonTable<R>, reason: R, message: string, opts: ReasonedErrorOptions = {}) {
    super(codes[reason], message, {
      ...(opts.cause === undefined ? {} : { cause: opts.cause }),
      details: { ...opts.details, reason },
    });
    this.reason = reason;
  }
}

/**
 * The error class of one table of reasons: `new (reason, message, {cause?, details?})`, its code
 * the table's for that reason. A service's error extends it (`class RelayError extends
 * reasonedError(RELAY_FAILURES) {}`) and adds only what differs.
 */
export function reasonedError<R extends string>(codes: ReasonTable<R>) {
  return class extends ReasonedError<R> {
    constructor(reason: R, message: string, opts: ReasonedErrorOptions = {}) {
      super(codes, reason, message, opts);
    }
  };
}

/**
 * Whether `value` is one of the table's reasons: for a reason read back from another process (an
 * error body's `code`, a fatal line), which may name one this side does not know.
 */
export function isReasonOf<R extends string>(codes: ReasonTable<R>, value: unknown): value is R {
  return typeof value === "string" && Object.hasOwn(codes, value);
}

export class ServiceError extends reasonedError(SERVICE_FAILURES) {}

export function isServiceError(err: unknown, reason?: ServiceFailure): err is ServiceError {
  return err instanceof ServiceError && (reason === undefined || err.reason === reason);
}
