import { lookup } from "node:dns/promises";
import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from "node:http";
import { isIP, connect as netConnect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Logger } from "../lib/log.ts";
import { EgressError } from "./errors.ts";
import { isIpLiteral } from "./ip.ts";
import { ConnectionJournal, type ConnectionLogEntry, type TenantCounters } from "./journal.ts";
import {
  type CompiledPolicy,
  checkResolved,
  checkTarget,
  compilePolicy,
  type Denial,
  type EgressPolicy,
  hostMatches,
  normalizeHost,
  normalizeSource,
  parsePermitRanges,
  tenantForSource,
} from "./policy.ts";
import type { EgressProxy, EgressProxyOptions, PlatformUpstream, ProxyCounters, Resolver } from "./types.ts";

export type { EgressProxy, EgressProxyOptions, PlatformUpstream, ProxyCounters, Resolver } from "./types.ts";

/** The system resolver (getaddrinfo through node:dns), every address in the order it gives them. */
export const systemResolve: Resolver = async (host) => {
  const answers = await lookup(host, { all: true, verbatim: true });
  return answers.map((a) => a.address);
};

/** Headers that belong to one hop and are never forwarded (RFC 9110 7.6.1, plus proxy ones). */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

function forwardHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const named = new Set(
    String(headers.connection ?? "")
      .split(",")
      .map((h) => h.trim().toLowerCase())
      .filter(Boolean),
  );
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined || HOP_BY_HOP.has(k) || named.has(k)) continue;
    out[k] = v;
  }
  return out;
}

/** Splits a CONNECT authority ("host:port" or "[v6]:port"). */
function splitAuthority(authority: string): { host: string; port: number } | null {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(authority) ?? /^([^:[\]]+):(\d{1,5})$/.exec(authority);
  if (!m?.[1] || !m[2]) return null;
  return { host: m[1], port: Number(m[2]) };
}

/** A connection log entry while its connection is open: what is known at its start. */
type Draft = Pick<
  ConnectionLogEntry,
  "time" | "tenant" | "source" | "method" | "host" | "port" | "address"
> & {
  started: number;
};

/** One allowed connection while it is being set up or carries data. */
interface ActiveConn {
  tenant: string;
  source: string;
  host: string;
  port: number;
  controller: AbortController;
  sockets: Set<Duplex>;
  /** Why the proxy cut it (idle-timeout, policy-revoked, proxy-closing), when it did. */
  cutReason: string | null;
  done: Promise<void>;
  finish(): void;
}

/**
 * The PROXY protocol v1 header for a connection to a platform upstream on behalf of the tenant at
 * `source`. Its ports are the proxy's own (the upstream needs the tenant's address only). A v4
 * tenant towards a v6 upstream is written as a v4-mapped v6 address; a v6 tenant towards a v4
 * upstream cannot be said in v1 and is sent as `UNKNOWN`, which such an upstream must refuse.
 */
export function proxyProtocolLine(
  source: string,
  upstream: Pick<Socket, "localPort" | "remoteAddress" | "remotePort">,
): string {
  const dst = upstream.remoteAddress ?? "";
  const ports = `${upstream.localPort ?? 0} ${upstream.remotePort ?? 0}`;
  const [srcV, dstV] = [isIP(source), isIP(dst)];
  if (srcV === 4 && dstV === 4) return `PROXY TCP4 ${source} ${dst} ${ports}\r\n`;
  if (dstV === 6 && (srcV === 6 || srcV === 4))
    return `PROXY TCP6 ${srcV === 4 ? `::ffff:${source}` : source} ${dst} ${ports}\r\n`;
  return "PROXY UNKNOWN\r\n";
}

type Admission =
  | { ok: true; socket: Socket; conn: ActiveConn }
  | { ok: false; status: number; reason: string };

class EgressProxyServer implements EgressProxy {
  readonly host: string;
  readonly port: number;
  readonly url: string;
  readonly logFile: string;
  #policy: CompiledPolicy;
  readonly #server: Server;
  readonly #journal: ConnectionJournal;
  readonly #resolve: Resolver;
  readonly #permit: ReturnType<typeof parsePermitRanges>;
  readonly #upstreams: Map<string, PlatformUpstream>;
  readonly #maxConcurrent: number;
  readonly #idleMs: number;
  readonly #connectMs: number;
  readonly #dnsMs: number;
  readonly #active = new Map<string, Set<ActiveConn>>();
  readonly #log: Logger | undefined;
  #closing: Promise<void> | null = null;

  constructor(args: {
    server: Server;
    host: string;
    port: number;
    policy: CompiledPolicy;
    journal: ConnectionJournal;
    opts: EgressProxyOptions;
  }) {
    const { opts } = args;
    this.#server = args.server;
    this.host = args.host;
    this.port = args.port;
    this.url = `http://${args.host.includes(":") ? `[${args.host}]` : args.host}:${args.port}`;
    this.#policy = args.policy;
    this.#journal = args.journal;
    this.logFile = args.journal.path;
    this.#resolve = opts.resolve ?? systemResolve;
    this.#permit = parsePermitRanges(opts.testOnlyPermitRanges ?? []);
    this.#upstreams = new Map(
      (opts.platformUpstreams ?? []).map((u) => [`${u.host.toLowerCase()}:${u.port}`, u]),
    );
    this.#maxConcurrent = opts.maxConcurrentPerTenant ?? 64;
    this.#idleMs = opts.idleTimeoutMs ?? 300_000;
    this.#connectMs = opts.connectTimeoutMs ?? 10_000;
    this.#dnsMs = opts.dnsTimeoutMs ?? 5_000;
    this.#log = opts.logger;
    for (const name of this.#policy.tenants.keys()) this.#journal.touch(name);
    this.#server.on("request", (req, res) => {
      this.#onRequest(req, res).catch((err: unknown) => this.#internalError(err, res));
    });
    this.#server.on("connect", (req, socket: Duplex, head: Buffer) => {
      this.#onConnect(req, socket, head).catch((err: unknown) => this.#internalError(err, socket));
    });
    this.#server.on("upgrade", (req, socket) => this.#onUpgrade(req, socket));
    this.#server.on("clientError", (_err, socket) => {
      if (socket.writable)
        socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      socket.destroy();
    });
  }

  get logFailure(): string | null {
    return this.#journal.failure?.message ?? null;
  }

  /** A bug must cost one connection, never the proxy. */
  #internalError(err: unknown, target: ServerResponse | Duplex): void {
    this.#log?.error({ err }, "egress proxy: internal error on one connection");
    if ("headersSent" in target && !target.headersSent) {
      target.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
      target.end("internal error\n");
    } else {
      target.destroy();
    }
  }

  // --- policy, counters, log -------------------------------------------------------------

  setPolicy(policy: EgressPolicy): { tenants: number; closed: number } {
    const next = compilePolicy(policy);
    this.#policy = next;
    for (const name of next.tenants.keys()) this.#journal.touch(name);
    let closed = 0;
    for (const set of this.#active.values()) {
      for (const c of set) {
        const t = next.bySource.get(c.source);
        const stillAllowed =
          t !== undefined &&
          t.name === c.tenant &&
          !t.airGapped &&
          next.ports.has(c.port) &&
          t.allow.some((p) => hostMatches(p, c.host));
        if (!stillAllowed) {
          this.#cut(c, "policy-revoked");
          closed++;
        }
      }
    }
    this.#log?.info({ tenants: next.tenants.size, closed }, "egress policy replaced");
    return { tenants: next.tenants.size, closed };
  }

  policy(): CompiledPolicy["source"] {
    return this.#policy.source;
  }

  #known(tenant: string): void {
    if (!this.#policy.tenants.has(tenant) && !this.#journal.knows(tenant)) {
      throw new EgressError("not_found", `the egress proxy knows no tenant '${tenant}'`, {
        details: { tenant },
      });
    }
  }

  counters(tenant: string): TenantCounters {
    this.#known(tenant);
    return this.#journal.counters(tenant, this.#active.get(tenant)?.size ?? 0);
  }

  allCounters(): ProxyCounters {
    return {
      tenants: this.#journal
        .tenantNames()
        .map((t) => this.#journal.counters(t, this.#active.get(t)?.size ?? 0)),
      unknownSourceDenied: this.#journal.unknownSourceDenied,
    };
  }

  recentLog(tenant: string, limit = 100): ConnectionLogEntry[] {
    this.#known(tenant);
    return this.#journal.recent(tenant, limit);
  }

  recentUnknownSources(limit = 100): ConnectionLogEntry[] {
    return this.#journal.recentUnknown(limit);
  }

  // --- admission: identify, check, resolve, check again, connect ---------------------------

  #draft(req: IncomingMessage, method: string): Draft {
    return {
      time: new Date().toISOString(),
      started: performance.now(),
      tenant: null,
      source: normalizeSource(req.socket.remoteAddress),
      method,
      host: null,
      port: null,
      address: null,
    };
  }

  #write(
    d: Draft,
    outcome: Pick<ConnectionLogEntry, "verdict" | "reason"> &
      Partial<Pick<ConnectionLogEntry, "detail" | "status" | "error" | "bytesUp" | "bytesDown">>,
  ): void {
    const entry: ConnectionLogEntry = {
      time: d.time,
      tenant: d.tenant,
      source: d.source,
      method: d.method,
      host: d.host,
      port: d.port,
      address: d.address,
      bytesUp: outcome.bytesUp ?? 0,
      bytesDown: outcome.bytesDown ?? 0,
      verdict: outcome.verdict,
      reason: outcome.reason,
      ...(outcome.detail === undefined ? {} : { detail: outcome.detail }),
      ...(outcome.status === undefined ? {} : { status: outcome.status }),
      ...(outcome.error === undefined ? {} : { error: outcome.error }),
      durationMs: Math.round(performance.now() - d.started),
    };
    this.#journal.write(entry);
  }

  #deny(d: Draft, denial: Denial): { ok: false; status: number; reason: string } {
    this.#write(d, { verdict: "deny", reason: denial.reason, detail: denial.detail, status: denial.status });
    return { ok: false, status: denial.status, reason: `${denial.reason}: ${denial.detail}` };
  }

  #track(tenant: string, source: string, host: string, port: number): ActiveConn {
    let set = this.#active.get(tenant);
    if (!set) {
      set = new Set();
      this.#active.set(tenant, set);
    }
    let finish = (): void => {};
    const done = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const conn: ActiveConn = {
      tenant,
      source,
      host,
      port,
      controller: new AbortController(),
      sockets: new Set(),
      cutReason: null,
      done,
      finish: () => {
        set.delete(conn);
        finish();
      },
    };
    set.add(conn);
    return conn;
  }

  #cut(c: ActiveConn, reason: string): void {
    if (c.cutReason === null) c.cutReason = reason;
    c.controller.abort();
    for (const s of c.sockets) s.destroy();
  }

  async #resolveWithTimeout(host: string): Promise<string[]> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.#resolve(host),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${this.#dnsMs} ms`)), this.#dnsMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Connects to the first address that answers. Only addresses that passed the check get here. */
  async #connectFirst(addresses: readonly string[], port: number, signal: AbortSignal): Promise<Socket> {
    let lastErr: unknown = new Error("no address");
    for (const address of addresses) {
      if (signal.aborted) break;
      try {
        return await new Promise<Socket>((resolve, reject) => {
          const s = netConnect({ host: address, port, noDelay: true });
          const fail = (err: Error) => {
            clearTimeout(timer);
            signal.removeEventListener("abort", onAbort);
            s.destroy();
            reject(err);
          };
          const onAbort = () => fail(new Error("aborted"));
          const timer = setTimeout(
            () => fail(new Error(`no connection within ${this.#connectMs} ms`)),
            this.#connectMs,
          );
          signal.addEventListener("abort", onAbort, { once: true });
          s.once("error", fail);
          s.once("connect", () => {
            clearTimeout(timer);
            signal.removeEventListener("abort", onAbort);
            s.removeListener("error", fail);
            resolve(s);
          });
        });
      } catch (err) {
        lastErr = err;
      }
    }
    throw lastErr;
  }

  /**
   * Every check in order, then the connection: tenant by source address, air gap, target
   * syntax, port, allowlist, concurrency, DNS (once), every answer against the forbidden
   * ranges, then a connection to exactly an address that was checked. Never resolves twice.
   */
  async #admit(d: Draft, rawHost: string, port: number): Promise<Admission> {
    const policy = this.#policy;
    const tenant = tenantForSource(policy, d.source);
    if ("reason" in tenant) return this.#deny(d, tenant);
    d.tenant = tenant.name;
    if (this.#journal.failure) {
      // Every connection is logged, or none is made.
      return this.#deny(d, {
        reason: "log-unavailable",
        status: 503,
        detail: `the egress log cannot be written (${this.#journal.failure.message})`,
      });
    }
    const host = normalizeHost(rawHost);
    d.port = port;
    if (!host) {
      d.host = rawHost.slice(0, 255);
      return this.#deny(d, {
        reason: "bad-request",
        status: 400,
        detail: "the target is not a valid host name",
      });
    }
    d.host = host;
    const upstream = this.#upstreams.get(`${host}:${port}`);
    const refused = upstream
      ? tenant.airGapped
        ? checkTarget(tenant, policy, host, port)
        : null
      : checkTarget(tenant, policy, host, port);
    if (refused) return this.#deny(d, refused);
    const limit = tenant.maxConcurrent ?? this.#maxConcurrent;
    if ((this.#active.get(tenant.name)?.size ?? 0) >= limit) {
      return this.#deny(d, {
        reason: "concurrency-limit",
        status: 429,
        detail: `tenant ${tenant.name} already has ${limit} open connections`,
      });
    }
    const conn = this.#track(tenant.name, d.source, host, port);
    let addresses: string[];
    try {
      addresses = upstream
        ? [upstream.address]
        : isIpLiteral(host)
          ? [host]
          : await this.#resolveWithTimeout(host);
    } catch (err) {
      conn.finish();
      return this.#deny(d, {
        reason: "dns-failed",
        status: 502,
        detail: `cannot resolve ${host}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      });
    }
    // A platform upstream's fixed address is the operator's, not an answer to check.
    const checked: ReturnType<typeof checkResolved> = upstream
      ? { ok: true, addresses }
      : checkResolved(host, addresses, this.#permit);
    if (!checked.ok) {
      conn.finish();
      d.address = checked.address;
      return this.#deny(d, checked.denial);
    }
    if (conn.cutReason) {
      conn.finish();
      this.#write(d, { verdict: "allow", reason: "allowlisted", error: conn.cutReason, status: 503 });
      return { ok: false, status: 503, reason: conn.cutReason };
    }
    try {
      const socket = await this.#connectFirst(
        checked.addresses,
        upstream?.targetPort ?? port,
        conn.controller.signal,
      );
      d.address = socket.remoteAddress ?? null;
      if (upstream?.proxyProtocol) socket.write(proxyProtocolLine(d.source, socket));
      conn.sockets.add(socket);
      socket.setTimeout(this.#idleMs, () => this.#cut(conn, "idle-timeout"));
      return { ok: true, socket, conn };
    } catch (err) {
      conn.finish();
      d.address = checked.addresses[0] ?? null;
      const error =
        conn.cutReason ?? `connect-failed: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
      this.#write(d, { verdict: "allow", reason: "allowlisted", error, status: 502 });
      return { ok: false, status: 502, reason: error };
    }
  }

  // --- CONNECT tunnels -------------------------------------------------------------------

  async #onConnect(req: IncomingMessage, client: Duplex, head: Buffer): Promise<void> {
    client.on("error", () => client.destroy());
    const d = this.#draft(req, "CONNECT");
    const target = splitAuthority(req.url ?? "");
    const admission = target
      ? await this.#admit(d, target.host, target.port)
      : this.#badRequest(d, "CONNECT needs host:port");
    if (!admission.ok) {
      const body = `${admission.reason}\n`;
      client.end(
        `HTTP/1.1 ${admission.status} ${statusText(admission.status)}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
          `X-Clawkeep-Egress: deny\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      setTimeout(() => client.destroy(), 2_000).unref();
      return;
    }
    const { socket: upstream, conn } = admission;
    if (client.destroyed) {
      // The client left while the proxy was resolving and connecting.
      upstream.destroy();
      this.#write(d, { verdict: "allow", reason: "allowlisted", error: "client-gone" });
      conn.finish();
      return;
    }
    conn.sockets.add(client);
    let closed = 0;
    const onClose = () => {
      if (++closed < 2) return;
      this.#write(d, {
        verdict: "allow",
        reason: "allowlisted",
        status: 200,
        bytesUp: upstream.bytesWritten,
        bytesDown: upstream.bytesRead,
        ...(conn.cutReason ? { error: conn.cutReason } : {}),
      });
      conn.finish();
    };
    upstream.on("error", () => upstream.destroy());
    upstream.once("close", () => {
      onClose();
      // Let the last bytes reach the client, then make sure it goes.
      client.end();
      setTimeout(() => client.destroy(), 5_000).unref();
    });
    client.once("close", () => {
      onClose();
      upstream.destroy();
    });
    client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
    if (head.length > 0) upstream.write(head);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  #badRequest(d: Draft, detail: string): { ok: false; status: number; reason: string } {
    const tenant = tenantForSource(this.#policy, d.source);
    if ("reason" in tenant) return this.#deny(d, tenant);
    d.tenant = tenant.name;
    return this.#deny(d, { reason: "bad-request", status: 400, detail });
  }

  // --- plain HTTP forwarding -------------------------------------------------------------

  async #onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const d = this.#draft(req, req.method ?? "GET");
    const denyWith = (status: number, reason: string) => {
      res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "x-clawkeep-egress": "deny" });
      res.end(`${reason}\n`);
    };
    let url: URL | null = null;
    try {
      url = new URL(req.url ?? "");
    } catch {
      url = null;
    }
    if (url?.protocol !== "http:") {
      const a = this.#badRequest(
        d,
        url?.protocol === "https:"
          ? "https:// targets go through CONNECT"
          : "this is a forward proxy: send absolute http:// URLs or CONNECT",
      );
      denyWith(a.status, a.reason);
      return;
    }
    const admission = await this.#admit(d, url.hostname, url.port ? Number(url.port) : 80);
    if (!admission.ok) {
      denyWith(admission.status, admission.reason);
      return;
    }
    const { socket: upstream, conn } = admission;
    let upstreamStatus: number | undefined;
    let failure: string | null = null;
    upstream.once("close", () => {
      this.#write(d, {
        verdict: "allow",
        reason: "allowlisted",
        bytesUp: upstream.bytesWritten,
        bytesDown: upstream.bytesRead,
        ...(upstreamStatus === undefined ? {} : { status: upstreamStatus }),
        ...(conn.cutReason || failure ? { error: conn.cutReason ?? failure ?? "" } : {}),
      });
      conn.finish();
    });
    const headers = forwardHeaders(req.headers);
    headers.host = url.host;
    headers.connection = "close";
    const upReq = httpRequest({
      createConnection: () => upstream,
      method: req.method,
      path: `${url.pathname}${url.search}`,
      headers,
      setHost: false,
    });
    upReq.on("response", (upRes) => {
      upstreamStatus = upRes.statusCode ?? 502;
      upRes.on("error", () => res.destroy());
      try {
        res.writeHead(upstreamStatus, forwardHeaders(upRes.headers));
      } catch (err) {
        failure ??= `bad-upstream-response: ${(err as Error).message}`;
        upstream.destroy();
        if (!res.headersSent) denyWith(502, failure);
        return;
      }
      upRes.pipe(res);
    });
    upReq.on("error", (err) => {
      failure ??= `upstream-failed: ${(err as NodeJS.ErrnoException).code ?? err.message}`;
      if (!res.headersSent) denyWith(502, failure);
      else res.destroy();
      upstream.destroy();
    });
    const onClientClose = () => {
      if (res.writableFinished) {
        // The response is complete: the upstream connection is not reused.
        upstream.end();
        return;
      }
      failure ??= "client-gone";
      upstream.destroy();
    };
    if (res.closed || req.socket.destroyed) onClientClose();
    else res.on("close", onClientClose);
    req.pipe(upReq);
  }

  #onUpgrade(req: IncomingMessage, socket: Duplex): void {
    socket.on("error", () => socket.destroy());
    const d = this.#draft(req, req.method ?? "GET");
    const a = this.#badRequest(d, "upgrades over plain HTTP are not proxied: use CONNECT (wss://)");
    socket.end(
      `HTTP/1.1 ${a.status} ${statusText(a.status)}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
    );
  }

  // --- shutdown --------------------------------------------------------------------------

  close(): Promise<void> {
    this.#closing ??= (async () => {
      const serverClosed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
      const pending: Promise<void>[] = [];
      for (const set of this.#active.values()) {
        for (const c of set) {
          pending.push(c.done);
          this.#cut(c, "proxy-closing");
        }
      }
      this.#server.closeAllConnections();
      await Promise.race([Promise.all(pending), new Promise((r) => setTimeout(r, 2_000).unref())]);
      await serverClosed;
      await this.#journal.close();
    })();
    return this.#closing;
  }
}

function statusText(status: number): string {
  return (
    {
      400: "Bad Request",
      403: "Forbidden",
      429: "Too Many Requests",
      502: "Bad Gateway",
      503: "Service Unavailable",
    }[status] ?? "Error"
  );
}

/**
 * Starts the egress proxy in this process: an HTTP forward proxy (CONNECT and absolute-form
 * plain HTTP) on `listen`. Its admin API is served apart (admin.ts; main.ts wires the two).
 * Throws EgressError (invalid_request) for an invalid policy or permit range before it listens.
 */
export async function startEgressProxy(opts: EgressProxyOptions): Promise<EgressProxy> {
  opts.signal?.throwIfAborted();
  const policy = compilePolicy(opts.policy);
  parsePermitRanges(opts.testOnlyPermitRanges ?? []);
  const listen = opts.listen ?? { host: "127.0.0.1", port: 0 };
  if (!isIpLiteral(listen.host)) {
    throw new EgressError(
      "invalid_request",
      `listen host ${JSON.stringify(listen.host)} must be an IP address`,
    );
  }
  const journal = await ConnectionJournal.open(opts.logFile, opts.recentLogSize ?? 1000);
  const server = createServer({ requestTimeout: 0, headersTimeout: 30_000, keepAliveTimeout: 5_000 });
  try {
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(opts.signal?.reason ?? new Error("aborted"));
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      server.once("error", (err) =>
        reject(
          new EgressError(
            "runtime_failed",
            `egress proxy cannot listen on ${listen.host}:${listen.port}: ${err.message}`,
            {
              cause: err,
            },
          ),
        ),
      );
      server.listen(listen.port, listen.host, () => {
        opts.signal?.removeEventListener("abort", onAbort);
        resolve();
      });
    });
  } catch (err) {
    server.close();
    await journal.close();
    throw err;
  }
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : listen.port;
  const proxy = new EgressProxyServer({ server, host: listen.host, port, policy, journal, opts });
  if (opts.testOnlyPermitRanges?.length) {
    opts.logger?.warn(
      { ranges: opts.testOnlyPermitRanges },
      "egress proxy lets forbidden address ranges through (testOnlyPermitRanges): never do this in production",
    );
  }
  return proxy;
}
