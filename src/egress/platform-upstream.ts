import type { PlatformUpstream } from "./types.ts";

/** The name tenants reach the platform's LLM relay by, through the egress proxy. */
export const PLATFORM_LLM_HOST = "llm.clawkeep.internal";

/**
 * The LLM relay as a platform upstream of the egress proxy: tenants ask for
 * `PLATFORM_LLM_HOST:<port>`, the proxy connects to the relay on the host's loopback at that same
 * port (nothing else on the host), and starts every connection with a PROXY protocol line naming
 * the tenant's source address, which the relay checks against the tenant's key. Pure.
 */
export function relayUpstream(port: number): PlatformUpstream {
  return { host: PLATFORM_LLM_HOST, port, address: "127.0.0.1", targetPort: port, proxyProtocol: true };
}
