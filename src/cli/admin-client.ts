import { ClawkeepError, type ErrorCode } from "../core/errors.ts";
import { isServiceError } from "../service/errors.ts";
import { errorOf, SocketClient } from "../service/socket-client.ts";

/** Talks to the operator API on its unix socket (through the service kit's SocketClient). */
export class AdminClient {
  readonly #client: SocketClient;

  constructor(readonly socketPath: string) {
    this.#client = new SocketClient({ service: "clawkeep", socketPath });
  }

  /** Resolves with the answer's JSON (null when empty); rejects with ClawkeepError in the operator's words. */
  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let reply: Awaited<ReturnType<SocketClient["request"]>>;
    try {
      reply = await this.#client.request({ method, path, ...(body === undefined ? {} : { json: body }) });
    } catch (err) {
      if (!isServiceError(err)) throw err;
      const cause = (err.cause as Error | undefined) ?? err;
      const why =
        err.reason === "not_running"
          ? `clawkeep is not running (no admin socket at ${this.socketPath}); start it with 'npm start'`
          : err.reason === "permission_denied"
            ? `permission denied on ${this.socketPath}: the admin API is for root (the operator) only`
            : cause.message;
      throw new ClawkeepError("runtime_unavailable", why, { cause });
    }
    const text = reply.body.toString("utf8");
    const parsed = text ? (JSON.parse(text) as unknown) : null;
    if (reply.status >= 400) {
      const e = errorOf(reply);
      throw new ClawkeepError(
        (e?.code as ErrorCode | undefined) ?? "internal",
        typeof e?.message === "string" ? e.message : `HTTP ${reply.status}`,
      );
    }
    return parsed as T;
  }
}
