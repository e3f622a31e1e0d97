import { join } from "node:path";
import { ValidationError } from "../core/errors.ts";
import { DEFAULT_EDGE_DOMAIN, DEFAULT_EDGE_USER, type EdgeOptions } from "./edge.ts";
import { assertSafePath, parseDomain, parseListen } from "./render.ts";

export interface EdgeSettings {
  /** CLAWKEEP_EDGE=0 turns the edge off (the API and gateways stay on loopback only). */
  enabled: boolean;
  options: Pick<EdgeOptions, "stateDir" | "domain" | "listen" | "tls" | "waf" | "user">;
}

function flag(env: NodeJS.ProcessEnv, key: string, fallback: boolean): boolean {
  const raw = env[key];
  if (raw === undefined || raw === "") return fallback;
  if (/^(1|true|on|yes)$/i.test(raw)) return true;
  if (/^(0|false|off|no)$/i.test(raw)) return false;
  throw new ValidationError("invalid_request", `${key} must be 1 or 0, got ${JSON.stringify(raw)}`);
}

/**
 * Edge settings from the environment (called at start-up, never at import time):
 * CLAWKEEP_EDGE (1), CLAWKEEP_EDGE_LISTEN (127.0.0.1:8443), CLAWKEEP_EDGE_DOMAIN
 * (clawkeep.localhost), CLAWKEEP_EDGE_CERT + CLAWKEEP_EDGE_KEY (the operator's certificate; a local
 * CA otherwise), CLAWKEEP_EDGE_WAF (1), CLAWKEEP_EDGE_USER (clawkeep-edge). State in <home>/edge.
 */
export function loadEdgeSettings(home: string, env: NodeJS.ProcessEnv = process.env): EdgeSettings {
  const cert = env.CLAWKEEP_EDGE_CERT || undefined;
  const key = env.CLAWKEEP_EDGE_KEY || undefined;
  if ((cert === undefined) !== (key === undefined)) {
    throw new ValidationError(
      "invalid_request",
      "set both CLAWKEEP_EDGE_CERT and CLAWKEEP_EDGE_KEY, or neither",
    );
  }
  const options: EdgeSettings["options"] = {
    stateDir: assertSafePath(join(home, "edge"), "CLAWKEEP_HOME"),
    domain: parseDomain(env.CLAWKEEP_EDGE_DOMAIN || DEFAULT_EDGE_DOMAIN),
    listen: parseListen(env.CLAWKEEP_EDGE_LISTEN || "127.0.0.1:8443"),
    waf: flag(env, "CLAWKEEP_EDGE_WAF", true),
    user: env.CLAWKEEP_EDGE_USER || DEFAULT_EDGE_USER,
  };
  if (cert && key) {
    options.tls = {
      certFile: assertSafePath(cert, "CLAWKEEP_EDGE_CERT"),
      keyFile: assertSafePath(key, "CLAWKEEP_EDGE_KEY"),
    };
  }
  return { enabled: flag(env, "CLAWKEEP_EDGE", true), options };
}
