import type { IncomingMessage, ServerResponse } from "node:http";
import { isReasonOf, isServiceError } from "../service/errors.ts";
import { errorOf, SocketClient } from "../service/socket-client.ts";
import { readJsonBody, sendError, sendJson, serveSocket } from "../service/socket-server.ts";
import { DATA_PLANE_ERRORS, RELAY_FAILURES, RelayError } from "./errors.ts";
import type { Relay } from "./server.ts";
import type { RelayHealth, RelayState, UsageBatch } from "./types.ts";

/**
 * The relay's admin API: JSON over HTTP on the service kit's unix socket (mode 0600 in a 0700
 * directory; never on TCP). Operator keys only ever travel here.
 *
 *   GET  /v1/health        RelayHealth
 *   PUT  /v1/state         replace the whole RelayState -> {tenants, upstreams}; an invalid one is
 *                          refused (400 invalid_state) and the old one stays
 *   POST /v1/usage/drain   UsageBatch: everything counted and not yet acknowledged
 *   POST /v1/usage/ack     {id} -> {acked}: forget that batch (only the latest one handed out)
 *   PUT  /v1/clock         {now: ISO time} (only with testOnlySettableClock; 404 otherwise)
 *
 * Errors: {"error": {"code", "message", "retryable"}}, code a relay reason (errors.ts).
 */

export interface RelayAdminServer {
  readonly socketPath: string;
  close(): Promise<void>;
}

/** State bodies carry up to a million tenants' entries; more is refused. */
const BODY_LIMIT = 512 * 1024 * 1024;

function readJson(req: IncomingMessage, limit = BODY_LIMIT): Promise<unknown> {
  return readJsonBody(req, limit, {
    tooLarge: () => new RelayError("invalid_state", `request body is larger than ${limit} bytes`),
    notJson: () => new RelayError("invalid_state", "the request body is not valid JSON"),
  });
}

async function route(
  relay: Relay,
  settableClock: boolean,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const p = new URL(req.url ?? "/", "http://relay.invalid").pathname;
  const method = req.method ?? "GET";
  const routes: Record<string, Record<string, () => Promise<unknown> | unknown>> = {
    "/v1/health": { GET: () => relay.health() },
    "/v1/state": { PUT: async () => relay.setState(await readJson(req)) },
    "/v1/usage/drain": { POST: () => relay.drain() },
    "/v1/usage/ack": {
      POST: async () => {
        const body = await readJson(req, 4096);
        const id = (body as { id?: unknown } | null)?.id;
        if (typeof id !== "string") throw new RelayError("invalid_state", 'ack needs {"id": "<batch id>"}');
        return { acked: relay.ack(id) };
      },
    },
    ...(settableClock
      ? {
          "/v1/clock": {
            PUT: async () => {
              const now = Date.parse(String(((await readJson(req, 4096)) as { now?: unknown } | null)?.now));
              if (!Number.isFinite(now))
                throw new RelayError("invalid_state", 'clock needs {"now": "<ISO time>"}');
              relay.setClock(now);
              return { now: new Date(relay.now()).toISOString() };
            },
          },
        }
      : {}),
  };
  const r = routes[p];
  if (!r) throw new RelayError("not_found", `no route ${method} ${p}`);
  const fn = r[method];
  if (!fn) throw new RelayError("method_not_allowed", `${method} is not allowed on ${p}`);
  sendJson(res, 200, await fn());
}

/**
 * Serves the admin API of `relay` on `socketPath` (a stale socket replaced; a live one or another
 * kind of file refused). Throws RelayError (invalid_state for a bad path, start_failed otherwise).
 */
export async function serveRelayAdmin(
  relay: Relay,
  socketPath: string,
  opts: { testOnlySettableClock?: boolean } = {},
): Promise<RelayAdminServer> {
  try {
    const server = await serveSocket({
      service: "the LLM relay's admin API",
      socket: socketPath,
      handler: (req, res) => route(relay, opts.testOnlySettableClock === true, req, res),
      drainMs: 0,
      onError: (err, _req, res) => {
        const e = err instanceof RelayError ? err : new RelayError("internal", "internal error");
        sendError(res, DATA_PLANE_ERRORS[e.reason].status, {
          code: e.reason,
          message: e.message,
          retryable: e.retryable,
        });
      },
    });
    return { socketPath, close: () => server.close() };
  } catch (err) {
    if (!isServiceError(err)) throw err;
    throw new RelayError(err.reason === "bad_socket_path" ? "invalid_state" : "start_failed", err.message, {
      cause: err,
    });
  }
}

/** A client of the admin API (the control plane's). Every call takes an AbortSignal. */
export class RelayAdminClient {
  readonly #client: SocketClient;

  constructor(
    readonly socketPath: string,
    opts: { timeoutMs?: number } = {},
  ) {
    this.#client = new SocketClient({
      service: "the LLM relay",
      socketPath,
      timeoutMs: opts.timeoutMs ?? 30_000,
    });
  }

  async #call<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    try {
      return await this.#client.json<T>(method, path, body, {
        signal,
        onStatus: (reply) => {
          const e = errorOf(reply);
          const reason = isReasonOf(RELAY_FAILURES, e?.code) ? e.code : "internal";
          return new RelayError(
            reason,
            typeof e?.message === "string" ? e.message : `the LLM relay answered HTTP ${reply.status}`,
          );
        },
      });
    } catch (err) {
      if (!isServiceError(err)) throw err;
      throw new RelayError("unavailable", err.message, { cause: err });
    }
  }

  health(signal?: AbortSignal): Promise<RelayHealth> {
    return this.#call("GET", "/v1/health", undefined, signal);
  }

  /** Replaces the relay's whole state; RelayError invalid_state (the old state stays) when it does not validate. */
  putState(state: RelayState, signal?: AbortSignal): Promise<{ tenants: number; upstreams: number }> {
    return this.#call("PUT", "/v1/state", state, signal);
  }

  /** Everything counted and not yet acknowledged (see UsageBatch). */
  drain(signal?: AbortSignal): Promise<UsageBatch> {
    return this.#call("POST", "/v1/usage/drain", undefined, signal);
  }

  /** Forgets batch `id` in the relay; false when it was not the latest handed out (nothing forgotten). */
  async ack(id: string, signal?: AbortSignal): Promise<boolean> {
    return (await this.#call<{ acked: boolean }>("POST", "/v1/usage/ack", { id }, signal)).acked;
  }

  /** FOR TESTS ONLY: sets the relay's clock (only a relay configured with testOnlySettableClock has the route). */
  async setClock(now: Date, signal?: AbortSignal): Promise<void> {
    await this.#call("PUT", "/v1/clock", { now: now.toISOString() }, signal);
  }

  /** Closes kept-alive connections. */
  close(): void {
    this.#client.close();
  }
}
