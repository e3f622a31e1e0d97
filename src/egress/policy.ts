import { z } from "zod";
import { parseTenantName } from "../core/tenant.ts";
import { EgressError } from "./errors.ts";
import { type Cidr, classifyAddress, formatIp, parseCidr, parseIp, unmapIp } from "./ip.ts";

/**
 * The egress policy: which source address is which tenant, what each tenant may reach, and the
 * decision for one connection. Pure: no I/O. The proxy (proxy.ts) applies these decisions.
 */

/** API hosts of the major LLM providers. */
export const DEFAULT_LLM_HOSTS = [
  "api.openai.com",
  "api.anthropic.com",
  "generativelanguage.googleapis.com",
  "api.mistral.ai",
  "api.groq.com",
  "openrouter.ai",
  "api.x.ai",
  "api.deepseek.com",
  "api.together.xyz",
] as const;

/** API hosts of the chat channels OpenClaw connects to. */
export const DEFAULT_CHANNEL_HOSTS = [
  "api.telegram.org",
  "discord.com",
  "gateway.discord.gg",
  "slack.com",
  "*.slack.com",
  "graph.facebook.com",
  "web.whatsapp.com",
  "*.whatsapp.net",
  "api.line.me",
  "matrix.org",
] as const;

export const DEFAULT_ALLOW: readonly string[] = [...DEFAULT_LLM_HOSTS, ...DEFAULT_CHANNEL_HOSTS];
export const DEFAULT_PORTS: readonly number[] = [80, 443];

const LABEL_RE = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/**
 * The canonical form of a target host: lower case, no trailing dot, IP literals in canonical
 * form (IPv4-mapped IPv6 as IPv4). Null when it is neither a valid DNS name nor an IP literal.
 */
export function normalizeHost(input: string): string | null {
  let h = input.trim().toLowerCase();
  if (h.startsWith("[") && h.endsWith("]")) h = h.slice(1, -1);
  const ip = parseIp(h);
  if (ip) return h.includes("%") ? null : formatIp(unmapIp(ip));
  if (h.endsWith(".")) h = h.slice(0, -1);
  if (h.length === 0 || h.length > 253) return null;
  const labels = h.split(".");
  if (!labels.every((l) => LABEL_RE.test(l))) return null;
  // A name made only of digits and dots is a malformed address, never a host name.
  if (/^[0-9.]+$/.test(h)) return null;
  return h;
}

/**
 * Validates an allowlist entry: an exact host name, `*.suffix` (any name under suffix, not the
 * suffix itself; the suffix needs at least two labels, so `*.com` is refused), or an IP literal.
 */
export function parseHostPattern(input: string): string {
  const raw = input.trim().toLowerCase();
  if (raw.startsWith("*.")) {
    const suffix = normalizeHost(raw.slice(2));
    if (!suffix || parseIp(suffix) || !suffix.includes(".")) {
      throw new EgressError(
        "invalid_request",
        `allowlist entry ${JSON.stringify(input)}: use *.<domain>.<tld>`,
      );
    }
    return `*.${suffix}`;
  }
  const host = normalizeHost(raw);
  if (!host) {
    throw new EgressError(
      "invalid_request",
      `allowlist entry ${JSON.stringify(input)} is neither a host name, a *.suffix wildcard nor an IP address`,
    );
  }
  return host;
}

/** Whether a normalized host matches one allowlist pattern. */
export function hostMatches(pattern: string, host: string): boolean {
  if (pattern.startsWith("*.")) return host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1;
  return pattern === host;
}

/** A string schema whose value is `parse(s)`; what `parse` throws becomes the issue's message. */
const parsedBy = <T>(parse: (s: string) => T) =>
  z.string().transform((s, ctx) => {
    try {
      return parse(s);
    } catch (err) {
      ctx.addIssue({ code: "custom", message: (err as Error).message });
      return z.NEVER;
    }
  });

const HostPattern = parsedBy(parseHostPattern);

const SourceAddress = z.string().transform((s, ctx) => {
  const ip = parseIp(s);
  if (!ip || s.includes("%") || s.includes("/")) {
    ctx.addIssue({ code: "custom", message: `${JSON.stringify(s)} is not an IP address` });
    return z.NEVER;
  }
  return formatIp(unmapIp(ip));
});

const TenantName = parsedBy(parseTenantName);

const Port = z.number().int().min(1).max(65535);

export const TenantPolicySchema = z.strictObject({
  /** The tenant's name (a DNS label). */
  name: TenantName,
  /** Source addresses that identify this tenant's connections (its netns addresses). */
  addresses: z.array(SourceAddress),
  /** Enterprise: refused everything. */
  airGapped: z.boolean().default(false),
  /** Hosts this tenant may reach on top of the defaults and the operator's additions. */
  allow: z.array(HostPattern).default([]),
  /** Overrides the proxy's per-tenant limit of concurrent connections. */
  maxConcurrent: z.number().int().min(1).max(100_000).optional(),
});

export const EgressPolicySchema = z.strictObject({
  tenants: z.array(TenantPolicySchema),
  /** Hosts every tenant may reach on top of the defaults. */
  operatorAllow: z.array(HostPattern).default([]),
  /** Include DEFAULT_ALLOW (LLM providers and chat channels). */
  includeDefaults: z.boolean().default(true),
  /** Destination ports any tenant may reach. */
  ports: z
    .array(Port)
    .min(1)
    .default([...DEFAULT_PORTS]),
});

/** A policy as the control plane writes it (defaults may be left out). */
export type EgressPolicy = z.input<typeof EgressPolicySchema>;
export type TenantPolicy = z.input<typeof TenantPolicySchema>;

export interface CompiledTenant {
  name: string;
  airGapped: boolean;
  /** Defaults + operator additions + the tenant's own additions, normalized. */
  allow: readonly string[];
  maxConcurrent: number | null;
  addresses: readonly string[];
}

export interface CompiledPolicy {
  /** The validated policy, defaults filled in (what GET /v1/policy returns). */
  source: z.output<typeof EgressPolicySchema>;
  bySource: ReadonlyMap<string, CompiledTenant>;
  tenants: ReadonlyMap<string, CompiledTenant>;
  ports: ReadonlySet<number>;
}

function describeIssues(
  issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string }>,
): string {
  return issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.map(String).join(".") : "(root)"}: ${i.message}`)
    .join("; ");
}

/**
 * Validates and compiles a policy. Throws EgressError (invalid_request) naming the first
 * problems: unknown fields, bad names or addresses, a tenant listed twice, or a source address
 * claimed by two tenants.
 */
export function compilePolicy(input: unknown): CompiledPolicy {
  const parsed = EgressPolicySchema.safeParse(input);
  if (!parsed.success) {
    throw new EgressError("invalid_request", `invalid egress policy: ${describeIssues(parsed.error.issues)}`);
  }
  const p = parsed.data;
  const base = [...(p.includeDefaults ? DEFAULT_ALLOW : []), ...p.operatorAllow];
  const tenants = new Map<string, CompiledTenant>();
  const bySource = new Map<string, CompiledTenant>();
  for (const t of p.tenants) {
    if (tenants.has(t.name)) throw new EgressError("invalid_request", `tenant ${t.name} is listed twice`);
    const compiled: CompiledTenant = {
      name: t.name,
      airGapped: t.airGapped,
      allow: t.airGapped ? [] : [...new Set([...base, ...t.allow])],
      maxConcurrent: t.maxConcurrent ?? null,
      addresses: t.addresses,
    };
    tenants.set(t.name, compiled);
    for (const a of t.addresses) {
      const other = bySource.get(a);
      if (other) {
        throw new EgressError(
          "invalid_request",
          `source address ${a} is claimed by tenants ${other.name} and ${t.name}`,
        );
      }
      bySource.set(a, compiled);
    }
  }
  return { source: p, bySource, tenants, ports: new Set(p.ports) };
}

/** Parses the ranges an operator lets through the address check; meant for tests only. */
export function parsePermitRanges(ranges: readonly string[]): Cidr[] {
  return ranges.map((r) => {
    const c = parseCidr(r);
    if (!c)
      throw new EgressError(
        "invalid_request",
        `permit range ${JSON.stringify(r)} is not a CIDR (a.b.c.d/n or x::/n)`,
      );
    return c;
  });
}

export type DenyReason =
  | "unknown-source"
  | "air-gapped"
  | "bad-request"
  | "port-not-allowed"
  | "not-allowlisted"
  | "dns-failed"
  | "forbidden-address"
  | "concurrency-limit"
  | "log-unavailable";

export interface Denial {
  reason: DenyReason;
  /** HTTP status the client gets. */
  status: number;
  /** A sentence for the log and the client. Never secret: names hosts, ports, addresses only. */
  detail: string;
}

/** The canonical form of a client's source address (IPv4-mapped becomes IPv4). */
export function normalizeSource(remoteAddress: string | undefined): string {
  const ip = remoteAddress ? parseIp(remoteAddress) : null;
  return ip ? formatIp(unmapIp(ip)) : String(remoteAddress ?? "");
}

export function tenantForSource(policy: CompiledPolicy, source: string): CompiledTenant | Denial {
  const t = policy.bySource.get(normalizeSource(source));
  if (!t)
    return { reason: "unknown-source", status: 403, detail: `source address ${source} belongs to no tenant` };
  return t;
}

/** The checks that need no DNS: air gap, target syntax, port, allowlist. Null when they pass. */
export function checkTarget(
  tenant: CompiledTenant,
  policy: CompiledPolicy,
  host: string,
  port: number,
): Denial | null {
  if (tenant.airGapped) {
    return {
      reason: "air-gapped",
      status: 403,
      detail: `tenant ${tenant.name} is air-gapped: no egress at all`,
    };
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    return { reason: "bad-request", status: 400, detail: `port ${port} is not a TCP port` };
  }
  if (!policy.ports.has(port)) {
    return {
      reason: "port-not-allowed",
      status: 403,
      detail: `port ${port} is not allowed (allowed: ${[...policy.ports].join(", ")})`,
    };
  }
  if (!tenant.allow.some((p) => hostMatches(p, host))) {
    return {
      reason: "not-allowlisted",
      status: 403,
      detail: `${host} is not on tenant ${tenant.name}'s allowlist`,
    };
  }
  return null;
}

/**
 * Checks every address a name resolved to. One forbidden answer refuses the whole name: a
 * public name has no business resolving to a private address, and mixed answers are how DNS
 * rebinding is attempted. Returns the canonical addresses to connect to, in order.
 */
export function checkResolved(
  host: string,
  addresses: readonly string[],
  permit: readonly Cidr[],
): { ok: true; addresses: string[] } | { ok: false; denial: Denial; address: string | null } {
  if (addresses.length === 0) {
    return {
      ok: false,
      address: null,
      denial: { reason: "dns-failed", status: 502, detail: `${host} has no address` },
    };
  }
  const out: string[] = [];
  for (const a of addresses) {
    const v = classifyAddress(a, permit);
    if (!v.ok) {
      return {
        ok: false,
        address: v.address,
        denial: {
          reason: "forbidden-address",
          status: 403,
          detail:
            host === v.address
              ? `${host} is a ${v.reason} address`
              : `${host} resolves to ${v.address}, a ${v.reason} address`,
        },
      };
    }
    if (!out.includes(v.address)) out.push(v.address);
  }
  return { ok: true, addresses: out };
}
