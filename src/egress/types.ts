import type { Logger } from "../lib/log.ts";
import type { ConnectionLogEntry, TenantCounters } from "./journal.ts";
import type { CompiledPolicy, EgressPolicy } from "./policy.ts";

/*
 * The egress proxy's contract: what proxy.ts implements and admin.ts serves. Apart from both so
 * that neither imports the other.
 */

/** Resolves a host name to IP addresses. Injectable: tests have no DNS. */
export type Resolver = (host: string) => Promise<string[]>;

export interface EgressProxyOptions {
  /** Where tenants reach the proxy. Default 127.0.0.1, port 0 (any free port). */
  listen?: { host: string; port: number };
  /** Who is who and what each tenant may reach; replaced at runtime with setPolicy(). */
  policy: EgressPolicy;
  /** The append-only JSON-lines connection log (created 0600 when missing). */
  logFile: string;
  /** Default: the system resolver. */
  resolve?: Resolver;
  /** Per-tenant limit of concurrent connections (a tenant policy may override it). Default 64. */
  maxConcurrentPerTenant?: number;
  /** A connection with no traffic either way for this long is cut. Default 300000 (LLM streams pause). */
  idleTimeoutMs?: number;
  /** Default 10000. */
  connectTimeoutMs?: number;
  /** Default 5000. */
  dnsTimeoutMs?: number;
  /** Log entries kept in memory per tenant for recentLog(). Default 1000. */
  recentLogSize?: number;
  /**
   * FOR TESTS ONLY. CIDR ranges the address check lets through although the default policy
   * forbids them (the tests' fake internet lives in 198.18.0.0/15, which is refused by default).
   * Never set in production: it reopens exactly the SSRF paths the proxy exists to close.
   */
  testOnlyPermitRanges?: string[];
  /**
   * Services the platform itself provides to tenants (the demo LLM provider, an operator's
   * LLM gateway on the host's loopback): the exact host name and port a tenant asks for, and the
   * exact address and port the proxy connects to instead. Every tenant but an air-gapped one may
   * reach them, whatever its allowlist; nothing else on that address is reachable through them.
   */
  platformUpstreams?: PlatformUpstream[];
  logger?: Logger;
  /** Aborts start-up. */
  signal?: AbortSignal;
}

export interface PlatformUpstream {
  /** The name tenants use, e.g. "llm.clawkeep.internal". */
  host: string;
  port: number;
  /** Where the proxy connects (an IP literal; loopback is fine: the proxy runs on the host). */
  address: string;
  targetPort: number;
  /**
   * Write a PROXY protocol v1 line (`PROXY TCP4 <tenant's source> <address> <src port>
   * <targetPort>\r\n`) as the first bytes of every connection to this upstream, so a platform
   * service behind it (the LLM relay) learns which tenant is calling. The tenant's own bytes come
   * after it, so a tenant cannot forge one.
   */
  proxyProtocol?: boolean;
}

export interface ProxyCounters {
  tenants: TenantCounters[];
  /** Requests refused because their source address belonged to no tenant. */
  unknownSourceDenied: number;
}

export interface EgressProxy {
  readonly host: string;
  readonly port: number;
  /** http://host:port, the value for HTTP_PROXY / HTTPS_PROXY / proxy.proxyUrl. */
  readonly url: string;
  readonly logFile: string;
  /** Why the log file cannot be written, when it cannot; new connections are refused meanwhile. */
  readonly logFailure: string | null;
  /**
   * Replaces the whole policy atomically. Throws EgressError (invalid_request) and keeps the old
   * policy when the new one is invalid. Open connections the new policy would refuse are cut
   * (logged with error "policy-revoked"); `closed` counts them.
   */
  setPolicy(policy: EgressPolicy): { tenants: number; closed: number };
  /** The policy in force, defaults filled in. */
  policy(): CompiledPolicy["source"];
  /** A tenant's counters. Throws EgressError (not_found) for a tenant the proxy has never known. */
  counters(tenant: string): TenantCounters;
  allCounters(): ProxyCounters;
  /** A tenant's most recent log entries, oldest first. Throws like counters(). */
  recentLog(tenant: string, limit?: number): ConnectionLogEntry[];
  /** Entries of requests from unknown source addresses, oldest first. */
  recentUnknownSources(limit?: number): ConnectionLogEntry[];
  /** Stops listening, cuts every open connection (logged), flushes the log. Idempotent. */
  close(): Promise<void>;
}
