import type { IncomingMessage, ServerResponse } from "node:http";
import { ClawkeepError, ERROR_CODES, type ErrorCode } from "../core/errors.ts";
import { isServiceError } from "../service/errors.ts";
import { errorOf, SocketClient } from "../service/socket-client.ts";
import { readJsonBody, sendError as sendErrorBody, sendJson, serveSocket } from "../service/socket-server.ts";
import { EgressError } from "./errors.ts";
import type { ConnectionLogEntry, TenantCounters } from "./journal.ts";
import type { CompiledPolicy, EgressPolicy } from "./policy.ts";
import type { EgressProxy, ProxyCounters } from "./types.ts";

/**
 * The egress proxy's admin API: JSON over HTTP on a unix socket of mode 0600 (the socket's
 * permissions are the authentication; it is never on TCP). The control plane uses it to replace
 * the policy at runtime and to read counters and logs. Served and called through the service kit
 * (src/service/); the proxy comes in as an argument (main.ts wires the two).
 *
 *   GET  /v1/health                       {ok, url, tenants, logFailure?}; ok is false while the log fails
 *   GET  /v1/policy                       the policy in force, defaults filled in
 *   PUT  /v1/policy                       replace the whole policy -> {tenants, closed}
 *   GET  /v1/counters                     every tenant's counters + unknownSourceDenied
 *   GET  /v1/tenants/:name/counters       one tenant's counters
 *   GET  /v1/tenants/:name/log?limit=N    one tenant's recent entries (default 100, max 10000)
 *   GET  /v1/unknown-sources/log?limit=N  requests whose source address was no tenant's
 *
 * Errors: {"error": {"code", "message", "retryable"}} with 400 / 404 / 405 / 413 / 500.
 */
export interface AdminServer {
  readonly socketPath: string;
  close(): Promise<void>;
}

const BODY_LIMIT = 4 * 1024 * 1024;

const send = sendJson;

function sendError(res: ServerResponse, status: number, code: ErrorCode, message: string): void {
  sendErrorBody(res, status, { code, message, retryable: ERROR_CODES[code].retryable });
}

function readJson(req: IncomingMessage): Promise<unknown> {
  return readJsonBody(req, BODY_LIMIT, {
    tooLarge: () => new EgressError("invalid_request", `request body is larger than ${BODY_LIMIT} bytes`),
    notJson: () => new EgressError("malformed_json", "the request body is not valid JSON"),
  });
}

function limitParam(url: URL): number {
  const raw = url.searchParams.get("limit");
  if (raw === null) return 100;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 10_000) {
    throw new EgressError("invalid_request", "limit must be an integer from 1 to 10000");
  }
  return n;
}

async function route(proxy: EgressProxy, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? "/", "http://egress.invalid");
  const method = req.method ?? "GET";
  const p = url.pathname;
  const tenantRoute = /^\/v1\/tenants\/([^/]+)\/(counters|log)$/.exec(p);
  if (p === "/v1/health" && method === "GET") {
    const failure = proxy.logFailure;
    send(res, 200, {
      ok: failure === null,
      url: proxy.url,
      tenants: proxy.policy().tenants.length,
      ...(failure === null ? {} : { logFailure: failure }),
    });
  } else if (p === "/v1/policy" && method === "GET") {
    send(res, 200, proxy.policy());
  } else if (p === "/v1/policy" && method === "PUT") {
    send(res, 200, proxy.setPolicy((await readJson(req)) as EgressPolicy));
  } else if (p === "/v1/counters" && method === "GET") {
    send(res, 200, proxy.allCounters());
  } else if (tenantRoute && method === "GET") {
    const name = decodeURIComponent(tenantRoute[1] ?? "");
    if (tenantRoute[2] === "counters") send(res, 200, proxy.counters(name));
    else send(res, 200, { entries: proxy.recentLog(name, limitParam(url)) });
  } else if (p === "/v1/unknown-sources/log" && method === "GET") {
    send(res, 200, { entries: proxy.recentUnknownSources(limitParam(url)) });
  } else if (
    ["/v1/health", "/v1/policy", "/v1/counters", "/v1/unknown-sources/log"].includes(p) ||
    tenantRoute
  ) {
    sendError(res, 405, "invalid_request", `${method} is not allowed on ${p}`);
  } else {
    sendError(res, 404, "not_found", `no route ${method} ${p}`);
  }
}

/**
 * Serves the admin API of `proxy` on `socketPath`, created with mode 0600 in a directory made
 * 0700. A stale socket at that path is replaced; a live one (another proxy) or any other kind of
 * file is an error.
 */
export async function serveAdmin(proxy: EgressProxy, socketPath: string): Promise<AdminServer> {
  let server: Awaited<ReturnType<typeof serveSocket>>;
  try {
    server = await serveSocket({
      service: "the egress admin API",
      socket: socketPath,
      handler: (req, res) => route(proxy, req, res),
      drainMs: 0,
      onError: (err, _req, res) => {
        if (err instanceof ClawkeepError) {
          const status = err.code === "not_found" ? 404 : err.code === "internal" ? 500 : 400;
          return sendError(res, status, err.code, err.message);
        }
        sendError(res, 500, "internal", "internal error");
      },
    });
  } catch (err) {
    if (!isServiceError(err)) throw err;
    throw new EgressError(
      err.reason === "bad_socket_path" ? "invalid_request" : "runtime_failed",
      err.message,
      {
        cause: err,
      },
    );
  }
  return { socketPath, close: () => server.close() };
}

/** A client of the admin API, for the control plane. Every call takes an AbortSignal. */
export class EgressAdminClient {
  readonly #client: SocketClient;

  constructor(readonly socketPath: string) {
    this.#client = new SocketClient({ service: "the egress proxy", socketPath });
  }

  async #call<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    let reply: Awaited<ReturnType<SocketClient["request"]>>;
    try {
      reply = await this.#client.request({
        method,
        path,
        ...(body === undefined ? {} : { json: body }),
        signal,
      });
    } catch (err) {
      if (!isServiceError(err)) throw err;
      const cause = (err.cause as Error | undefined) ?? err;
      throw new EgressError(
        "runtime_unavailable",
        `egress admin socket ${this.socketPath}: ${cause.message}`,
        {
          cause,
        },
      );
    }
    const { status } = reply;
    let parsed: unknown;
    try {
      parsed = JSON.parse(reply.body.toString("utf8"));
    } catch {
      throw new EgressError("internal", `egress admin answered ${status} with a body that is not JSON`);
    }
    if (status >= 200 && status < 300) return parsed as T;
    const e = errorOf(reply);
    const code = typeof e?.code === "string" && e.code in ERROR_CODES ? (e.code as ErrorCode) : "internal";
    throw new EgressError(
      code,
      typeof e?.message === "string" ? e.message : `egress admin answered ${status}`,
    );
  }

  health(signal?: AbortSignal): Promise<{ ok: boolean; url: string; tenants: number; logFailure?: string }> {
    return this.#call("GET", "/v1/health", undefined, signal);
  }

  getPolicy(signal?: AbortSignal): Promise<CompiledPolicy["source"]> {
    return this.#call("GET", "/v1/policy", undefined, signal);
  }

  /** Replaces the whole policy; throws EgressError (invalid_request) and keeps the old one when invalid. */
  setPolicy(policy: EgressPolicy, signal?: AbortSignal): Promise<{ tenants: number; closed: number }> {
    return this.#call("PUT", "/v1/policy", policy, signal);
  }

  allCounters(signal?: AbortSignal): Promise<ProxyCounters> {
    return this.#call("GET", "/v1/counters", undefined, signal);
  }

  counters(tenant: string, signal?: AbortSignal): Promise<TenantCounters> {
    return this.#call("GET", `/v1/tenants/${encodeURIComponent(tenant)}/counters`, undefined, signal);
  }

  async recentLog(tenant: string, limit = 100, signal?: AbortSignal): Promise<ConnectionLogEntry[]> {
    const r = await this.#call<{ entries: ConnectionLogEntry[] }>(
      "GET",
      `/v1/tenants/${encodeURIComponent(tenant)}/log?limit=${limit}`,
      undefined,
      signal,
    );
    return r.entries;
  }

  async recentUnknownSources(limit = 100, signal?: AbortSignal): Promise<ConnectionLogEntry[]> {
    const r = await this.#call<{ entries: ConnectionLogEntry[] }>(
      "GET",
      `/v1/unknown-sources/log?limit=${limit}`,
      undefined,
      signal,
    );
    return r.entries;
  }
}
