import { join } from "node:path";
import { ValidationError } from "../core/errors.ts";
import { type EdgeSettings, loadEdgeSettings } from "../edge/settings.ts";

/** Known-good pins; the runtime directory is keyed by both. */
export const DEFAULT_OPENCLAW_VERSION = "2026.9.6";
export const DEFAULT_NODE_VERSION = "24.22.3";

export interface Settings {
  /** Root of everything clawkeep keeps on this host. */
  home: string;
  dbPath: string;
  kmsDir: string;
  tenantsDir: string;
  /** Root-owned bookkeeping: run records, admin socket. */
  runDir: string;
  /** Root-owned logs of the gateways' stdout and stderr. */
  logsDir: string;
  adminSocket: string;
  /** Versioned OpenClaw runtimes live below this directory, shared by every data home. */
  runtimeDir: string;
  openclawVersion: string;
  nodeVersion: string;
  api: { host: string; port: number };
  /** First gateway port; slot n gets portBase + n * portStride. */
  portBase: number;
  portStride: number;
  /** First tenant uid; slot n runs as uidBase + n. */
  uidBase: number;
  maxSlots: number;
  startConcurrency: number;
  startAttempts: number;
  readyTimeoutMs: number;
  reconcileIntervalMs: number;
  /** Host name put into gateway URLs. */
  gatewayHost: string;
  llm: { baseUrl: string; apiKey: string; model: string } | null;
  /** The LLM relay: every Starter and Premium gateway's only provider. */
  relay: {
    /** Its fixed port on the host's loopback (tenants: llm.clawkeep.internal:<port>). */
    port: number;
    /** Base URLs a tenant's own provider (bring your own key) may have; normalized, no trailing slash. */
    byokAllow: string[];
  };
  logLevel: string;
  /**
   * "auto": Starter tenants in shared pool containers (each its own gateway process on the
   * pool's encrypted volume), Premium/Enterprise in containers with their own volume, network
   * namespace and cgroup; every tier's egress through the egress proxy.
   * "off": every tier as plain host processes (development machines without runc/fscrypt).
   */
  sandbox: "auto" | "off";
  /** The TLS + WAF edge (nginx); CLAWKEEP_EDGE=0 turns it off. */
  edge: EdgeSettings;
  /** First two octets of the /16 the tenants' network namespaces live in. */
  tenantNetPrefix: string;
  /** Host uid that container uid 0 of slot 0 maps to; each slot takes 65536 ids. */
  idMapBase: number;
  /** Size of each Starter pool's (sparse) encrypted volume image. */
  starterPoolBytes: number;
  /** Memory of one Starter pool; it holds floor(this / the Starter plan's memory) tenants. */
  starterPoolMemoryBytes: number;
  /** How many Starter pools may exist at once. */
  starterPoolsMax: number;
  /** Whether a tenant spinning at its CPU quota is demoted to the idle class (runtime/cpu-guard.ts). */
  cpuGuard: boolean;
  /** A GGUF model registered at start-up, the Enterprise plan's default unless the operator chose one. */
  enterpriseModel: { path: string; id: string; sha256?: string } | null;
  egress: {
    port: number;
    /** Host names every tenant may reach besides the built-in LLM and chat hosts. */
    allow: string[];
    /** Pinned answers for host names (JSON object host -> [addresses]). */
    staticHosts: Record<string, string[]>;
    /** FOR TESTS ONLY: CIDR ranges let through the anti-SSRF check. */
    testOnlyPermitRanges: string[];
  };
}

function int(env: NodeJS.ProcessEnv, key: string, fallback: number, min: number, max: number): number {
  const raw = env[key];
  if (raw === undefined || raw === "") return fallback;
  if (!/^\d+$/.test(raw))
    throw new ValidationError("invalid_request", `${key} must be a whole number, got ${JSON.stringify(raw)}`);
  const n = Number(raw);
  if (n < min || n > max)
    throw new ValidationError("invalid_request", `${key} must be between ${min} and ${max}, got ${n}`);
  return n;
}

function absPath(env: NodeJS.ProcessEnv, key: string, fallback: string): string {
  const raw = env[key];
  if (raw === undefined || raw === "") return fallback;
  if (!raw.startsWith("/") || raw.includes("\0")) {
    throw new ValidationError(
      "invalid_request",
      `${key} must be an absolute path, got ${JSON.stringify(raw)}`,
    );
  }
  return raw.replace(/\/+$/, "") || "/";
}

/** Reads settings from the environment. Called at start-up, never at import time. */
export function loadSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  const home = absPath(env, "CLAWKEEP_HOME", "/var/lib/clawkeep");
  const runDir = join(home, "run");
  const listen = env.CLAWKEEP_API_LISTEN ?? "127.0.0.1:8080";
  const m = /^(.+):(\d{1,5})$/.exec(listen);
  if (!m || Number(m[2]) > 65535) {
    throw new ValidationError(
      "invalid_request",
      `CLAWKEEP_API_LISTEN must be host:port, got ${JSON.stringify(listen)}`,
    );
  }
  const portBase = int(env, "CLAWKEEP_PORT_BASE", 20000, 1024, 65000);
  const portStride = int(env, "CLAWKEEP_PORT_STRIDE", 200, 1, 1000);
  const llmBase = env.CLAWKEEP_LLM_BASE_URL;
  if (llmBase !== undefined && llmBase !== "" && !/^https?:\/\/[^\s]+$/.test(llmBase)) {
    throw new ValidationError(
      "invalid_request",
      `CLAWKEEP_LLM_BASE_URL must be an http(s) URL, got ${JSON.stringify(llmBase)}`,
    );
  }
  return {
    home,
    dbPath: join(home, "control", "clawkeep.db"),
    kmsDir: join(home, "kms"),
    tenantsDir: join(home, "tenants"),
    runDir,
    logsDir: join(home, "logs"),
    adminSocket: absPath(env, "CLAWKEEP_ADMIN_SOCKET", join(runDir, "admin.sock")),
    runtimeDir: absPath(env, "CLAWKEEP_RUNTIME_DIR", "/var/lib/clawkeep/runtime"),
    openclawVersion: env.CLAWKEEP_OPENCLAW_VERSION || DEFAULT_OPENCLAW_VERSION,
    nodeVersion: env.CLAWKEEP_NODE_VERSION || DEFAULT_NODE_VERSION,
    api: { host: m[1]!, port: Number(m[2]) },
    portBase,
    portStride,
    uidBase: int(env, "CLAWKEEP_UID_BASE", 200000, 1001, 2 ** 31 - 100000),
    maxSlots: Math.min(
      int(env, "CLAWKEEP_MAX_TENANTS", 200, 1, 10000),
      Math.floor((65535 - portBase) / portStride),
    ),
    startConcurrency: int(env, "CLAWKEEP_START_CONCURRENCY", 1, 1, 64),
    startAttempts: int(env, "CLAWKEEP_START_ATTEMPTS", 3, 1, 10),
    readyTimeoutMs: int(env, "CLAWKEEP_READY_TIMEOUT_MS", 180_000, 1000, 3_600_000),
    reconcileIntervalMs: int(env, "CLAWKEEP_RECONCILE_INTERVAL_MS", 2000, 100, 600_000),
    gatewayHost: env.CLAWKEEP_GATEWAY_HOST || "127.0.0.1",
    llm: llmBase
      ? {
          baseUrl: llmBase,
          apiKey: env.CLAWKEEP_LLM_API_KEY ?? "",
          model: env.CLAWKEEP_LLM_MODEL || "default",
        }
      : null,
    relay: {
      port: int(env, "CLAWKEEP_RELAY_PORT", 4180, 1, 65535),
      byokAllow: byokAllow(env),
    },
    logLevel: env.CLAWKEEP_LOG_LEVEL || "info",
    sandbox: sandbox(env),
    edge: loadEdgeSettings(home, env),
    tenantNetPrefix: prefix16(env),
    idMapBase: int(env, "CLAWKEEP_IDMAP_BASE", 1_000_000, 100_000, 2 ** 31),
    enterpriseModel: env.CLAWKEEP_ENTERPRISE_MODEL
      ? {
          path: absPath(env, "CLAWKEEP_ENTERPRISE_MODEL", ""),
          id: env.CLAWKEEP_ENTERPRISE_MODEL_ID || "local",
          ...(env.CLAWKEEP_ENTERPRISE_MODEL_SHA256 ? { sha256: env.CLAWKEEP_ENTERPRISE_MODEL_SHA256 } : {}),
        }
      : null,
    starterPoolBytes: int(env, "CLAWKEEP_STARTER_POOL_MIB", 16384, 64, 16 * 1024 * 1024) * 1024 * 1024,
    starterPoolMemoryBytes:
      int(env, "CLAWKEEP_STARTER_POOL_MEMORY_MIB", 12288, 256, 1024 * 1024) * 1024 * 1024,
    starterPoolsMax: int(env, "CLAWKEEP_STARTER_POOLS_MAX", 50, 1, 1000),
    cpuGuard: onOff(env, "CLAWKEEP_CPU_GUARD", true),
    egress: {
      port: int(env, "CLAWKEEP_EGRESS_PORT", 3128, 1, 65535),
      allow: list(env.CLAWKEEP_EGRESS_ALLOW),
      staticHosts: jsonMap(env, "CLAWKEEP_EGRESS_STATIC_HOSTS"),
      testOnlyPermitRanges: list(env.CLAWKEEP_EGRESS_TEST_ONLY_PERMIT),
    },
  };
}

/**
 * The major providers' public API base URLs: where a tenant's own key may be used by default
 * (CLAWKEEP_LLM_BYOK_ALLOW replaces the list; `none` allows none). Anthropic's speaks the
 * Messages API, the others the OpenAI one.
 */
export const DEFAULT_BYOK_BASE_URLS: readonly string[] = [
  "https://api.openai.com/v1",
  "https://api.anthropic.com/v1",
  "https://api.mistral.ai/v1",
  "https://api.groq.com/openai/v1",
  "https://api.together.xyz/v1",
  "https://api.deepseek.com/v1",
  "https://api.x.ai/v1",
  "https://api.fireworks.ai/inference/v1",
  "https://openrouter.ai/api/v1",
];

/**
 * A provider base URL in the one form allowlists compare: http(s), no credentials, query or
 * fragment, lower-case scheme and host, no trailing slash. Returns null for anything else.
 */
export function normalizeBaseUrl(raw: string): string | null {
  let u: URL;
  try {
    u = new URL(raw.trim());
  } catch {
    return null;
  }
  if ((u.protocol !== "https:" && u.protocol !== "http:") || u.username || u.password) return null;
  if (u.search || u.hash || raw.includes("?") || raw.includes("#")) return null;
  return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, "")}`;
}

function byokAllow(env: NodeJS.ProcessEnv): string[] {
  const raw = env.CLAWKEEP_LLM_BYOK_ALLOW;
  if (raw === undefined || raw.trim() === "") return [...DEFAULT_BYOK_BASE_URLS];
  if (raw.trim() === "none") return [];
  return [
    ...new Set(
      list(raw).map((entry) => {
        const url = normalizeBaseUrl(entry);
        if (!url)
          throw new ValidationError(
            "invalid_request",
            `CLAWKEEP_LLM_BYOK_ALLOW: ${JSON.stringify(entry)} is not an http(s) base URL without credentials, query or fragment`,
          );
        return url;
      }),
    ),
  ];
}

function onOff(env: NodeJS.ProcessEnv, key: string, dflt: boolean): boolean {
  const v = env[key];
  if (v === undefined || v === "") return dflt;
  if (v === "on") return true;
  if (v === "off") return false;
  throw new ValidationError("invalid_request", `${key} must be on or off, got ${JSON.stringify(v)}`);
}

function sandbox(env: NodeJS.ProcessEnv): "auto" | "off" {
  const v = env.CLAWKEEP_SANDBOX || "auto";
  if (v !== "auto" && v !== "off") {
    throw new ValidationError(
      "invalid_request",
      `CLAWKEEP_SANDBOX must be auto or off, got ${JSON.stringify(v)}`,
    );
  }
  return v;
}

function prefix16(env: NodeJS.ProcessEnv): string {
  const v = env.CLAWKEEP_TENANT_NET_PREFIX || "198.19";
  const m = /^(\d{1,3})\.(\d{1,3})$/.exec(v);
  if (!m || Number(m[1]) > 255 || Number(m[2]) > 255) {
    throw new ValidationError(
      "invalid_request",
      `CLAWKEEP_TENANT_NET_PREFIX must be two octets like 198.19, got ${JSON.stringify(v)}`,
    );
  }
  return v;
}

function list(raw: string | undefined): string[] {
  return (raw ?? "")
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean);
}

function jsonMap(env: NodeJS.ProcessEnv, key: string): Record<string, string[]> {
  const raw = env[key];
  if (!raw) return {};
  try {
    const v = JSON.parse(raw) as unknown;
    if (
      typeof v === "object" &&
      v !== null &&
      !Array.isArray(v) &&
      Object.values(v).every((a) => Array.isArray(a) && a.every((x) => typeof x === "string"))
    ) {
      return v as Record<string, string[]>;
    }
  } catch {
    // fall through
  }
  throw new ValidationError("invalid_request", `${key} must be a JSON object of host -> [addresses]`);
}
