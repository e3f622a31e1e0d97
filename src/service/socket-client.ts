import { Agent, type IncomingHttpHeaders, request } from "node:http";
import { ServiceError } from "./errors.ts";

/**
 * One way to call a local service over its unix socket (socket-server.ts): HTTP/1.1 with a JSON
 * or raw body. Connection failures are mapped here, once, to ServiceError reasons:
 *
 *   ENOENT, ECONNREFUSED   not_running        "<service> is not running at <socket>"
 *   EACCES, EPERM          permission_denied  "permission denied on <socket>: run as root"
 *   no answer in time      timeout            "<service> at <socket> did not answer within N ms"
 *   cut mid-answer         connection_lost
 *   anything else          unreachable        "cannot reach <service> at <socket>: ..."
 *
 * An aborted call rejects with the signal's AbortError unchanged. Each service's client maps the
 * reason onto its own error and words (see `mapError`). Answer bodies arrive whole as a Buffer;
 * every intermediate chunk is zeroed (bodies may hold key material).
 */

export interface SocketClientOptions {
  /** What the service is called in messages: "the key service", "clawkeep". */
  service: string;
  socketPath: string;
  /** No answer within this long is a `timeout` (default: none). */
  timeoutMs?: number;
  /**
   * Keep connections alive between calls. A call that fails on a kept-alive connection the
   * service closed (it restarted) is retried once on a new one.
   */
  keepAlive?: boolean;
}

export interface SocketRequest {
  method: string;
  path: string;
  /** A raw body, sent as is with `contentType` (default application/octet-stream). */
  body?: Buffer;
  /** A JSON body (ignored when `body` is set). */
  json?: unknown;
  contentType?: string;
  signal?: AbortSignal | undefined;
  /** Overrides the client's time-out for this call. */
  timeoutMs?: number;
}

export interface SocketReply {
  status: number;
  /** The content-type header, "" when none. */
  type: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** The `error` object of a `{"error": {...}}` answer body, or undefined when it has none. */
export function errorOf(reply: SocketReply): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(reply.body.toString("utf8")) as unknown;
    const e = typeof v === "object" && v !== null ? (v as { error?: unknown }).error : undefined;
    return typeof e === "object" && e !== null ? (e as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The ServiceError for a failed connection to `socketPath` (see the table above). */
export function connectionError(
  service: string,
  socketPath: string,
  err: NodeJS.ErrnoException,
): ServiceError {
  if (err.code === "ENOENT" || err.code === "ECONNREFUSED")
    return new ServiceError("not_running", `${service} is not running at ${socketPath}`, { cause: err });
  if (err.code === "EACCES" || err.code === "EPERM")
    return new ServiceError("permission_denied", `permission denied on ${socketPath}: run as root`, {
      cause: err,
    });
  return new ServiceError("unreachable", `cannot reach ${service} at ${socketPath}: ${err.message}`, {
    cause: err,
  });
}

export class SocketClient {
  readonly service: string;
  readonly socketPath: string;
  readonly timeoutMs: number | undefined;
  readonly #agent: Agent | undefined;

  constructor(opts: SocketClientOptions) {
    this.service = opts.service;
    this.socketPath = opts.socketPath;
    this.timeoutMs = opts.timeoutMs;
    this.#agent = opts.keepAlive ? new Agent({ keepAlive: true, maxSockets: 16 }) : undefined;
  }

  /** One call; resolves with any HTTP status (an error status is the caller's to map). */
  request(r: SocketRequest): Promise<SocketReply> {
    return this.#send(r, this.#agent !== undefined);
  }

  /**
   * A JSON call: resolves with the parsed body of a 2xx answer (null for an empty one); rejects
   * with `onStatus(reply)` for any other status (default: a ServiceError naming the status).
   */
  async json<T>(
    method: string,
    path: string,
    body?: unknown,
    opts: { signal?: AbortSignal | undefined; onStatus?: (reply: SocketReply) => Error } = {},
  ): Promise<T> {
    const reply = await this.request({
      method,
      path,
      ...(body === undefined ? {} : { json: body }),
      signal: opts.signal,
    });
    if (reply.status < 200 || reply.status >= 300) {
      throw (
        opts.onStatus?.(reply) ??
        new ServiceError("unreachable", `${this.service} answered HTTP ${reply.status}`)
      );
    }
    const text = reply.body.toString("utf8");
    return (text ? JSON.parse(text) : null) as T;
  }

  /** Closes kept-alive connections. The service keeps running. */
  close(): void {
    this.#agent?.destroy();
  }

  #send(r: SocketRequest, retry: boolean): Promise<SocketReply> {
    const timeoutMs = r.timeoutMs ?? this.timeoutMs;
    const body = r.body ?? (r.json === undefined ? undefined : Buffer.from(JSON.stringify(r.json)));
    const type = r.body ? (r.contentType ?? "application/octet-stream") : "application/json";
    return new Promise((resolve, reject) => {
      r.signal?.throwIfAborted();
      const req = request({
        socketPath: this.socketPath,
        ...(this.#agent ? { agent: this.#agent } : {}),
        method: r.method,
        path: r.path,
        ...(r.signal ? { signal: r.signal } : {}),
        ...(timeoutMs === undefined ? {} : { timeout: timeoutMs }),
        headers: body ? { "content-type": type, "content-length": body.length } : { "content-length": 0 },
      });
      req.on("response", (res) => {
        const chunks: Buffer[] = [];
        const wipe = () => {
          for (const c of chunks) c.fill(0);
        };
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const all = Buffer.concat(chunks);
          wipe();
          if (!res.complete) {
            all.fill(0);
            reject(
              new ServiceError(
                "connection_lost",
                `the connection to ${this.service} at ${this.socketPath} closed in the middle of an answer`,
              ),
            );
            return;
          }
          resolve({
            status: res.statusCode ?? 500,
            type: String(res.headers["content-type"] ?? ""),
            headers: res.headers,
            body: all,
          });
        });
        res.on("error", (err) => {
          wipe();
          reject(
            new ServiceError(
              "connection_lost",
              `the connection to ${this.service} at ${this.socketPath} failed: ${err.message}`,
              { cause: err },
            ),
          );
        });
      });
      req.on("timeout", () =>
        req.destroy(
          new ServiceError(
            "timeout",
            `${this.service} at ${this.socketPath} did not answer within ${timeoutMs} ms`,
          ),
        ),
      );
      req.on("error", (err: NodeJS.ErrnoException) => {
        if (retry && req.reusedSocket && (err.code === "ECONNRESET" || err.code === "EPIPE")) {
          this.#send(r, false).then(resolve, reject);
          return;
        }
        if (err instanceof ServiceError || err.name === "AbortError") return reject(err);
        reject(connectionError(this.service, this.socketPath, err));
      });
      req.end(body);
    });
  }
}
