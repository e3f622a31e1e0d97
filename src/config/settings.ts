import { join } from "node:path";
import { ValidationError } from "../core/errors.ts";

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
  logLevel: string;
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
    logLevel: env.CLAWKEEP_LOG_LEVEL || "info",
  };
}
