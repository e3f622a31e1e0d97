/**
 * The edge contract: the one public door to every tenant gateway, the public API and the console.
 * `Edge` (edge.ts) implements it with its own nginx + ModSecurity + OWASP CRS; `FakeEdge`
 * (fake.ts) records calls for control-plane tests.
 *
 * Rules every implementation keeps:
 * - Only validated routes are served: a tenant is a DNS label (parseTenantName), an upstream is
 *   `http://<host>:<port>` over TCP. Unix sockets are never routed, so the admin socket can
 *   never be reached through the edge.
 * - A config change is atomic: render, validate, swap, reload, verify; a change that fails at any
 *   step leaves the previous config serving and throws.
 * - start() adopts an edge that already runs from the same state directory (never a second copy);
 *   stop() is idempotent: stopping a stopped edge is not an error.
 * - Every long call takes an AbortSignal.
 */
export interface EdgeRoute {
  /** Tenant name; the edge serves it at https://<tenant>.<domain>/. */
  tenant: string;
  /** Where the tenant's gateway listens, e.g. http://127.0.0.1:20000 (TCP only). */
  upstream: string;
}

export interface EdgeLimits {
  /** Requests per second per client address (leaky bucket), and the burst admitted at once. */
  clientRatePerSecond: number;
  clientBurst: number;
  /** Requests per second per tenant host name over all clients, and its burst. */
  tenantRatePerSecond: number;
  tenantBurst: number;
  /** Requests in progress at once per client address and per tenant host name (WebSockets count while open). */
  clientConnections: number;
  tenantConnections: number;
  /** Largest request body accepted (nginx and ModSecurity); larger ones get 413. */
  maxBodyBytes: number;
  /** Slow-client timeouts: reading the request header, between two body reads, between two response writes. */
  headerTimeoutSeconds: number;
  bodyTimeoutSeconds: number;
  sendTimeoutSeconds: number;
  /** How long an idle client keep-alive connection stays open. */
  keepaliveTimeoutSeconds: number;
  /** How long an upstream may stay silent (WebSockets and SSE streams are long-lived). */
  upstreamIdleTimeoutSeconds: number;
}

export const DEFAULT_EDGE_LIMITS: EdgeLimits = {
  clientRatePerSecond: 50,
  clientBurst: 100,
  tenantRatePerSecond: 200,
  tenantBurst: 400,
  clientConnections: 64,
  tenantConnections: 512,
  maxBodyBytes: 8 * 1024 * 1024,
  headerTimeoutSeconds: 10,
  bodyTimeoutSeconds: 15,
  sendTimeoutSeconds: 30,
  keepaliveTimeoutSeconds: 30,
  upstreamIdleTimeoutSeconds: 3600,
};

/** Host labels the platform keeps for itself; no tenant may use them. */
export const RESERVED_LABELS = ["api", "console"] as const;

/** What the edge is doing, for operators and health checks. */
export interface EdgeStatus {
  running: boolean;
  /** The nginx master process. */
  pid: number | null;
  /** Worker processes and the uid each runs as (the dedicated edge user, never root). */
  workers: Array<{ pid: number; uid: number }>;
  /** Id of the config the edge serves now (changes on every successful apply). */
  generation: string | null;
  tenants: string[];
  domain: string;
  listen: { host: string; port: number };
  waf: boolean;
  /** The CA that signed the edge certificate, when the edge made its own (clients trust this file). */
  caFile: string | null;
}

/** One request the edge refused for a tenant: a WAF block or a rate/connection limit. */
export interface BlockedEvent {
  /** ISO 8601. */
  time: string;
  /** Tenant name (or the reserved label "api"/"console"). */
  tenant: string;
  kind: "waf" | "rate" | "connections";
  /** HTTP status sent (403 for WAF blocks, 429 for limits, 400/413 for bad bodies). */
  status: number;
  client: string;
  method: string | null;
  /** Request URI as received (path and query), when known. */
  uri: string | null;
  /** For WAF blocks: the rules that matched (the attack rules first, the blocking rule last). */
  rules: Array<{ id: string; message: string; data: string }>;
}

/** The operations the control plane needs from an edge. */
export interface EdgeController {
  start(signal?: AbortSignal): Promise<void>;
  /** Replaces the full set of tenant routes atomically; throws (and keeps the old set) when it cannot. */
  setRoutes(routes: readonly EdgeRoute[], signal?: AbortSignal): Promise<void>;
  stop(signal?: AbortSignal): Promise<void>;
  status(): Promise<EdgeStatus>;
  blockedEvents(tenant: string, opts?: { limit?: number }): Promise<BlockedEvent[]>;
  /** The public URL of a tenant's gateway, e.g. https://alice.clawkeep.localhost:8443/. */
  tenantUrl(tenant: string): string;
}
