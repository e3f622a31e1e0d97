import { createHash } from "node:crypto";
import { once } from "node:events";
import { createServer, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { Agent, request as undiciRequest } from "undici";
import type { Logger } from "../lib/log.ts";
import { isServiceError } from "../service/errors.ts";
import { readBody } from "../service/socket-server.ts";
import { DATA_PLANE_ERRORS, errorBody, RelayError } from "./errors.ts";
import { UsageLedger } from "./ledger.ts";
import { type Clock, type LimitVerdict, SlidingWindow, spentBudget } from "./limits.ts";
import { type ProxyHeader, readProxyHeader } from "./proxy-protocol.ts";
import { canonicalIp, validateRelayState } from "./schema.ts";
import type { RelayHealth, RelayState, RelayTenant, RelayUpstream, UsageBatch } from "./types.ts";
import { jsonUsageReader, sseUsageReader } from "./usage.ts";

/*
 * The relay's data plane: an HTTP server on the host's loopback that tenants' gateways use as
 * their LLM provider. For each request, in this order (the first refusal wins):
 *
 *   route and method           404 not_found, 405 method_not_allowed
 *   a state was pushed         503 relay_starting (retryable)
 *   virtual key (sha256)       401 invalid_api_key
 *   source address             403 wrong_source, and an llm_wrong_source event
 *   body                       413 body_too_large, 400 invalid_request (not JSON, no model)
 *   model in the tenant's list 403 model_not_allowed (naming the model)
 *   route matches the upstream 400 unsupported_api
 *   token budgets              429 budget_exhausted (which limit, when it resets, Retry-After)
 *   requests per minute        429 rate_limited (likewise)
 *   forward                    502 upstream_unavailable, 504 upstream_timeout, 502 upstream_auth_failed
 *
 * The source is the address of the connection's PROXY v1 line when it has one (the egress proxy
 * writes it), else the socket's peer. The upstream key replaces the virtual key; only an
 * allowlist of request headers goes upstream. Answers pass through as they arrive (SSE chunk by
 * chunk); usage is read on the way from the provider's own fields and counted only for a 2xx.
 */

export interface RelayOptions {
  /** Where the data plane listens. Default 127.0.0.1, port 0 (any free port). */
  listen?: { host: string; port: number };
  /** Default Date.now. Budgets and the rate window follow it. */
  clock?: Clock;
  log?: Logger;
  /** Larger request bodies get 413. Default 8 MiB. */
  maxBodyBytes?: number;
  /** How long a connection may take to send its first line (PROXY or HTTP). Default 5000. */
  firstLineTimeoutMs?: number;
  /** Default 10000. */
  upstreamConnectTimeoutMs?: number;
  /** How long the provider may take to send its answer's headers. Default 300000. */
  upstreamHeadersTimeoutMs?: number;
  /** The longest pause within the provider's answer. Default 300000. */
  upstreamBodyTimeoutMs?: number;
  /** A client connection silent both ways for this long is cut (a client that stops reading). Default 300000. */
  idleTimeoutMs?: number;
}

export interface Relay {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /**
   * Replaces the whole state atomically. Throws RelayError (invalid_state) and keeps the old state
   * when `input` does not validate. Requests in flight finish with what they started with.
   */
  setState(input: unknown): { tenants: number; upstreams: number };
  health(): RelayHealth;
  /** Hands out the usage and events not yet acknowledged (see UsageLedger.drain). */
  drain(): UsageBatch;
  /** Forgets the batch `id`; false when it is not the latest one handed out. */
  ack(id: string): boolean;
  /** The relay's clock now (ms since the epoch). */
  now(): number;
  /**
   * FOR TESTS ONLY (the admin API offers it only with the config's testOnlySettableClock): the
   * relay's clock reads `nowMs` now and runs on from there.
   */
  setClock(nowMs: number): void;
  /** Stops listening, cuts every connection (aborting the upstream calls). Idempotent. */
  close(): Promise<void>;
}

/** What the relay knows of one tenant, indexed for the checks. */
interface CompiledTenant {
  t: RelayTenant;
  addresses: ReadonlySet<string>;
  models: ReadonlyMap<string, string>;
}

interface CompiledState {
  byHash: ReadonlyMap<string, CompiledTenant>;
  upstreams: ReadonlyMap<string, RelayUpstream>;
  tenants: number;
}

type Api = "openai" | "anthropic";
const ROUTES: Readonly<Record<string, { method: "GET" | "POST"; api: Api | null }>> = {
  "/v1/models": { method: "GET", api: null },
  "/v1/chat/completions": { method: "POST", api: "openai" },
  "/v1/responses": { method: "POST", api: "openai" },
  "/v1/embeddings": { method: "POST", api: "openai" },
  "/v1/messages": { method: "POST", api: "anthropic" },
};

/** Request headers that go upstream (with `x-stainless-*`, the SDKs' own); everything else stays. */
const FORWARDED_REQUEST_HEADERS = new Set([
  "accept",
  "user-agent",
  "anthropic-version",
  "anthropic-beta",
  "openai-beta",
  "idempotency-key",
]);
/** Answer headers that come back; the rest (the operator's organization, its rate limits, cookies) stay. */
const FORWARDED_RESPONSE_HEADERS = new Set([
  "content-type",
  "content-length",
  "cache-control",
  "retry-after",
  "x-request-id",
  "request-id",
  "openai-processing-ms",
  "openai-version",
]);

/** An upstream's error body is read up to this much; the rest is dropped. */
const ERROR_BODY_LIMIT = 1024 * 1024;

export const sha256Hex = (key: string): string => createHash("sha256").update(key).digest("hex");

function compile(state: RelayState): CompiledState {
  const byHash = new Map<string, CompiledTenant>();
  for (const t of state.tenants) {
    byHash.set(t.keyHash, {
      t,
      addresses: new Set(t.addresses),
      models: new Map(t.models.map((m) => [m.id, m.upstream])),
    });
  }
  return { byHash, upstreams: new Map(state.upstreams.map((u) => [u.id, u])), tenants: state.tenants.length };
}

/** The virtual key of a request: `Authorization: Bearer <key>`, else `x-api-key`. */
function keyOf(req: IncomingMessage): string | null {
  const auth = req.headers.authorization;
  if (typeof auth === "string") {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (m?.[1]) return m[1];
  }
  const x = req.headers["x-api-key"];
  return typeof x === "string" && x.trim() ? x.trim() : null;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

const LIMIT_WORDS: Record<LimitVerdict["limit"], string> = {
  tokens_per_day: "daily token budget",
  tokens_per_month: "monthly token budget",
  requests_per_minute: "limit of requests per minute",
};

function limitError(tenant: string, v: LimitVerdict, now: number): { err: RelayError; retryAfter: number } {
  const resetsAt = new Date(v.resetsAt).toISOString();
  const retryAfter = Math.max(1, Math.ceil((v.resetsAt - now) / 1000));
  const rate = v.limit === "requests_per_minute";
  const message = rate
    ? `${tenant} sent more than ${v.max} requests in the last minute (its ${LIMIT_WORDS[v.limit]}); retry in ${retryAfter} s (at ${resetsAt})`
    : `${tenant}'s ${LIMIT_WORDS[v.limit]} of ${v.max} tokens is spent (${v.used} used); it resets at ${resetsAt}`;
  return {
    err: new RelayError(rate ? "rate_limited" : "budget_exhausted", message, {
      details: { limit: v.limit, max: v.max, used: v.used, resets_at: resetsAt },
    }),
    retryAfter,
  };
}

function sendRelayError(res: ServerResponse, err: RelayError, headers: OutgoingHttpHeaders = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = Buffer.from(JSON.stringify(errorBody(err)));
  res.writeHead(DATA_PLANE_ERRORS[err.reason].status, {
    ...headers,
    "content-type": "application/json",
    "content-length": body.length,
  });
  res.end(body);
}

/** The upstream failure as the client sees it (never with the upstream's key or path). */
function upstreamError(err: unknown, upstream: RelayUpstream): RelayError {
  const origin = new URL(upstream.baseUrl).origin;
  const code = (err as { code?: unknown }).code;
  if (code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT")
    return new RelayError("upstream_timeout", `the provider at ${origin} did not answer in time`, {
      cause: err,
    });
  return new RelayError(
    "upstream_unavailable",
    `the provider at ${origin} cannot be reached${typeof code === "string" ? ` (${code})` : ""}`,
    { cause: err },
  );
}

/** Reads at most `limit` bytes of `body`; past them it stops reading (the rest is never fetched). */
async function readCapped(body: AsyncIterable<Buffer> & { destroy(): void }, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of body) {
    chunks.push(c.subarray(0, limit - size));
    size += c.length;
    if (size >= limit) {
      body.destroy();
      break;
    }
  }
  return Buffer.concat(chunks);
}

function responseHeaders(headers: Record<string, string | string[] | undefined>): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v !== undefined && FORWARDED_RESPONSE_HEADERS.has(k.toLowerCase())) out[k] = v;
  }
  return out;
}

/** Starts the data plane and returns once it listens. */
export async function startRelay(opts: RelayOptions = {}): Promise<Relay> {
  const realClock = opts.clock ?? Date.now;
  let offsetMs = 0;
  const clock: Clock = () => realClock() + offsetMs;
  const log = opts.log;
  const maxBody = opts.maxBodyBytes ?? 8 * 1024 * 1024;
  const firstLineMs = opts.firstLineTimeoutMs ?? 5_000;
  const ledger = new UsageLedger(clock);
  const window = new SlidingWindow(clock);
  const agent = new Agent({
    connect: { timeout: opts.upstreamConnectTimeoutMs ?? 10_000 },
    headersTimeout: opts.upstreamHeadersTimeoutMs ?? 300_000,
    bodyTimeout: opts.upstreamBodyTimeoutMs ?? 300_000,
    keepAliveTimeout: 30_000,
  });
  let state: CompiledState | null = null;
  let inFlight = 0;
  const sources = new WeakMap<Socket, ProxyHeader>();
  const pending = new Set<Socket>();

  const sourceOf = (socket: Socket): string => {
    const h = sources.get(socket);
    if (h) return h.kind === "proxied" ? h.source : "unknown";
    return canonicalIp(socket.remoteAddress ?? "") ?? "unknown";
  };

  const forward = async (
    req: IncomingMessage,
    res: ServerResponse,
    c: CompiledTenant,
    upstream: RelayUpstream,
    model: string,
    body: Buffer,
    path: string,
    search: string,
  ): Promise<void> => {
    const headers: Record<string, string> = { "content-type": "application/json" };
    for (const [k, v] of Object.entries(req.headers)) {
      if (typeof v === "string" && (FORWARDED_REQUEST_HEADERS.has(k) || k.startsWith("x-stainless-")))
        headers[k] = v;
    }
    if (upstream.api === "anthropic") {
      headers["x-api-key"] = upstream.apiKey;
      headers["anthropic-version"] ??= "2023-06-01";
    } else headers.authorization = `Bearer ${upstream.apiKey}`;
    const target = `${upstream.baseUrl.replace(/\/+$/, "")}${path.slice("/v1".length)}${search}`;
    const abort = new AbortController();
    let done = false;
    res.on("close", () => {
      if (!done) abort.abort();
    });
    const started = performance.now();
    let up: Awaited<ReturnType<typeof undiciRequest>>;
    try {
      up = await undiciRequest(target, {
        method: "POST",
        headers,
        body,
        signal: abort.signal,
        dispatcher: agent,
      });
    } catch (err) {
      done = true;
      if (abort.signal.aborted) return;
      const e = upstreamError(err, upstream);
      log?.warn({ tenant: c.t.name, upstream: upstream.id, err: e.message }, "relay: upstream call failed");
      return sendRelayError(res, e);
    }
    const status = up.statusCode;
    if (status < 200 || status >= 300) {
      // Refused by the provider: passed on (its key redacted), nothing counted.
      let raw: Buffer;
      try {
        raw = await readCapped(up.body, ERROR_BODY_LIMIT);
      } catch (err) {
        done = true;
        if (abort.signal.aborted) return;
        return sendRelayError(res, upstreamError(err, upstream));
      }
      done = true;
      log?.info({ tenant: c.t.name, upstream: upstream.id, status }, "relay: upstream refused a request");
      if (status === 401)
        return sendRelayError(
          res,
          new RelayError(
            "upstream_auth_failed",
            c.t.own
              ? "the provider refused your own API key (check the key set for this tenant)"
              : "the platform's provider refused the operator's credential; the operator has been told",
          ),
        );
      const text = raw.toString("utf8");
      const out = text.includes(upstream.apiKey)
        ? Buffer.from(text.split(upstream.apiKey).join("[redacted]"))
        : raw;
      res.writeHead(status, { ...responseHeaders(up.headers), "content-length": out.length });
      res.end(out);
      return;
    }
    const isSse = /text\/event-stream/i.test(String(up.headers["content-type"] ?? ""));
    const reader = isSse ? sseUsageReader() : jsonUsageReader();
    res.writeHead(status, responseHeaders(up.headers));
    // A stream's headers go at once (the client learns the status before the first token).
    if (isSse) res.flushHeaders();
    let cut = false;
    try {
      for await (const chunk of up.body as AsyncIterable<Buffer>) {
        reader.feed(chunk);
        if (!res.write(chunk)) {
          await Promise.race([once(res, "drain"), once(res, "close")]);
          if (res.destroyed) break;
        }
      }
    } catch (err) {
      cut = !abort.signal.aborted;
      if (cut)
        log?.warn(
          { tenant: c.t.name, upstream: upstream.id, err: (err as Error).message },
          "relay: upstream answer cut",
        );
    } finally {
      done = true;
      if (!abort.signal.aborted) up.body.destroy();
    }
    if (cut || res.destroyed) res.destroy();
    else res.end();
    const usage = reader.result() ?? { inputTokens: 0, outputTokens: 0 };
    ledger.record(c.t, model, usage);
    log?.debug(
      { tenant: c.t.name, model, status, ...usage, ms: Math.round(performance.now() - started) },
      "relay: request forwarded",
    );
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://relay.invalid");
    const path = url.pathname;
    const route = ROUTES[path];
    if (!route)
      throw new RelayError(
        "not_found",
        `no route ${path}: the relay serves ${Object.keys(ROUTES).join(", ")}`,
      );
    if (req.method !== route.method)
      throw new RelayError(
        "method_not_allowed",
        `${req.method} is not allowed on ${path} (use ${route.method})`,
      );
    const s = state;
    if (!s) throw new RelayError("relay_starting", "the LLM relay is starting; retry in a second");
    const key = keyOf(req);
    const c = key ? s.byHash.get(sha256Hex(key)) : undefined;
    if (!c)
      throw new RelayError(
        "invalid_api_key",
        key
          ? "the API key is not valid (unknown, rotated or revoked)"
          : "no API key: send Authorization: Bearer <key>",
      );
    const source = sourceOf(req.socket);
    if (!c.addresses.has(source)) {
      ledger.event(
        c.t,
        "llm_wrong_source",
        `${c.t.name}'s LLM key was used from ${source}, which is not the tenant's address (${[...c.addresses].join(", ") || "none"})`,
      );
      log?.warn({ tenant: c.t.name, source }, "relay: a tenant's key from another source address");
      throw new RelayError("wrong_source", `this API key may not be used from ${source}`);
    }
    if (route.api === null) {
      const data = c.t.models.map((m) => ({
        id: m.id,
        object: "model",
        type: "model",
        created: 0,
        created_at: "1970-01-01T00:00:00Z",
        display_name: m.id,
        owned_by: "clawkeep",
      }));
      const body = Buffer.from(
        JSON.stringify({
          object: "list",
          data,
          has_more: false,
          first_id: data[0]?.id ?? null,
          last_id: data.at(-1)?.id ?? null,
        }),
      );
      res.writeHead(200, { "content-type": "application/json", "content-length": body.length });
      res.end(body);
      return;
    }
    const declared = Number(req.headers["content-length"] ?? 0);
    const tooLarge = () =>
      new RelayError("body_too_large", `the request body is larger than ${maxBody} bytes`);
    if (declared > maxBody) throw tooLarge();
    let raw: Buffer;
    try {
      raw = await readBody(req, maxBody, tooLarge, { drain: true });
    } catch (err) {
      if (err instanceof RelayError) throw err;
      if (isServiceError(err)) throw tooLarge();
      throw new RelayError("invalid_request", "the request body could not be read", { cause: err });
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.toString("utf8"));
    } catch {
      throw new RelayError("invalid_request", "the request body is not valid JSON");
    }
    if (!isObject(parsed)) throw new RelayError("invalid_request", "the request body must be a JSON object");
    const model = parsed.model;
    if (typeof model !== "string" || !model || model.length > 256)
      throw new RelayError("invalid_request", "the request body must name a model (a non-empty string)", {
        details: { param: "model" },
      });
    const upstreamId = c.models.get(model);
    if (upstreamId === undefined)
      throw new RelayError(
        "model_not_allowed",
        `model '${model}' is not in ${c.t.name}'s plan (allowed: ${[...c.models.keys()].join(", ") || "none"})`,
        { details: { model } },
      );
    const upstream = c.t.own ?? s.upstreams.get(upstreamId);
    if (!upstream)
      throw new RelayError("internal", `model '${model}' names an upstream the relay does not have`);
    if (upstream.api !== route.api)
      throw new RelayError(
        "unsupported_api",
        upstream.api === "anthropic"
          ? `model '${model}' is served by an Anthropic provider: use POST /v1/messages`
          : `model '${model}' is served by an OpenAI-compatible provider: use /v1/chat/completions, /v1/responses or /v1/embeddings`,
      );
    const now = clock();
    const verdict =
      spentBudget(c.t.limits, ledger.counters(c.t.tenantId), now) ??
      window.take(c.t.tenantId, c.t.limits.requestsPerMinute);
    if (verdict) {
      const { err, retryAfter } = limitError(c.t.name, verdict, now);
      return sendRelayError(res, err, { "retry-after": String(retryAfter) });
    }
    let body = raw;
    if (path === "/v1/chat/completions" && parsed.stream === true) {
      // Ask for the usage chunk at the end of the stream (passed on to the client as it is).
      const so = isObject(parsed.stream_options) ? parsed.stream_options : {};
      body = Buffer.from(JSON.stringify({ ...parsed, stream_options: { ...so, include_usage: true } }));
    }
    inFlight++;
    try {
      await forward(req, res, c, upstream, model, body, path, url.search);
    } finally {
      inFlight--;
    }
  };

  const server = createServer(
    {
      requestTimeout: 60_000,
      headersTimeout: 10_000,
      keepAliveTimeout: 5_000,
      noDelay: true,
    },
    (req, res) => {
      handle(req, res).catch((err: unknown) => {
        const e =
          err instanceof RelayError
            ? err
            : new RelayError("internal", "internal error in the relay", { cause: err });
        if (e.reason === "internal") log?.error({ err }, "relay: request failed");
        const closeAfter = e.reason === "body_too_large" ? { connection: "close" } : {};
        try {
          sendRelayError(res, e, closeAfter);
        } catch {
          res.destroy();
        }
      });
    },
  );
  server.timeout = opts.idleTimeoutMs ?? 300_000;
  server.maxConnections = 10_000;
  // Every connection first goes through the PROXY line check; the HTTP parser gets it afterwards.
  const httpListeners = server.listeners("connection") as Array<(socket: Socket) => void>;
  server.removeAllListeners("connection");
  server.on("connection", (socket: Socket) => {
    pending.add(socket);
    socket.on("error", () => {});
    readProxyHeader(socket, firstLineMs).then(
      (header) => {
        pending.delete(socket);
        if (socket.destroyed) return;
        if (header) sources.set(socket, header);
        for (const l of httpListeners) l.call(server, socket);
        socket.resume();
      },
      (err: Error) => {
        pending.delete(socket);
        log?.info({ peer: socket.remoteAddress, err: err.message }, "relay: connection closed before HTTP");
        socket.destroy();
      },
    );
  });

  const host = opts.listen?.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.listen?.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;

  let closing: Promise<void> | undefined;
  return {
    url,
    host,
    port,
    setState(input) {
      const valid = validateRelayState(input);
      state = compile(valid);
      ledger.load(valid.tenants);
      window.retain(new Set(valid.tenants.map((t) => t.tenantId)));
      return { tenants: valid.tenants.length, upstreams: valid.upstreams.length };
    },
    health: () => ({
      ok: true,
      url,
      stateLoaded: state !== null,
      tenants: state?.tenants ?? 0,
      upstreams: state?.upstreams.size ?? 0,
      inFlight,
    }),
    drain: () => ledger.drain(),
    ack: (id) => ledger.ack(id),
    now: clock,
    setClock(nowMs) {
      offsetMs = nowMs - realClock();
    },
    close() {
      closing ??= (async () => {
        const done = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const s of pending) s.destroy();
        server.closeAllConnections();
        await done;
        await agent.close().catch(() => agent.destroy());
      })();
      return closing;
    },
  };
}
