import type { LlmProvider } from "../openclaw/config.ts";
import type { PlatformUpstream } from "./proxy.ts";

/** The name tenants reach a provider on the host's loopback by, through the egress proxy. */
export const PLATFORM_LLM_HOST = "llm.clawkeep.internal";

/**
 * Tenants live in their own network namespaces, where the host's loopback is not theirs: a
 * provider the operator runs on the host's loopback (or the built-in demo provider) is offered to
 * them as a platform upstream of the egress proxy under PLATFORM_LLM_HOST, that exact port only.
 * Any other provider is returned as it is (reached through the proxy's allowlist). Pure.
 */
export function tenantFacingLlm<T extends LlmProvider>(llm: T): { llm: T; upstream?: PlatformUpstream } {
  let url: URL;
  try {
    url = new URL(llm.baseUrl);
  } catch {
    return { llm };
  }
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const loopback = host === "localhost" || /^127\./.test(host) || host === "::1";
  if (!loopback || url.protocol !== "http:") return { llm };
  const port = Number(url.port || 80);
  const upstream: PlatformUpstream = {
    host: PLATFORM_LLM_HOST,
    port,
    address: host === "localhost" ? "127.0.0.1" : host,
    targetPort: port,
  };
  url.hostname = PLATFORM_LLM_HOST;
  return { llm: { ...llm, baseUrl: url.toString().replace(/\/$/, "") }, upstream };
}
