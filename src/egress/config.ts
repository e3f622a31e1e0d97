import { z } from "zod";
import { AbsolutePath, jsonConfigFile, Millis, parseOrFail } from "../service/config-file.ts";
import { EgressError } from "./errors.ts";
import { isIpLiteral } from "./ip.ts";
import { compilePolicy, type EgressPolicy, parsePermitRanges } from "./policy.ts";
import type { EgressProxyOptions } from "./proxy.ts";
import { systemResolve } from "./proxy.ts";

/**
 * The egress proxy process's configuration file (JSON), read once at start by main.ts. The
 * policy in it is the initial one; the control plane replaces it at runtime through the admin
 * socket (PUT /v1/policy), never by rewriting this file.
 */
export const EgressConfigSchema = z.strictObject({
  listen: z.strictObject({
    host: z.string().refine(isIpLiteral, { message: "must be an IP address" }),
    port: z.number().int().min(0).max(65535),
  }),
  adminSocket: AbsolutePath,
  logFile: AbsolutePath,
  policy: z.unknown(),
  maxConcurrentPerTenant: z.number().int().min(1).max(100_000).optional(),
  idleTimeoutMs: Millis.optional(),
  connectTimeoutMs: Millis.optional(),
  dnsTimeoutMs: Millis.optional(),
  recentLogSize: z.number().int().min(1).max(1_000_000).optional(),
  /**
   * Fixed answers for host names, checked before DNS (an operator pinning a provider's address,
   * or the tests' fake internet, which no DNS knows). The answers still pass the address check.
   */
  staticHosts: z
    .record(z.string(), z.array(z.string().refine(isIpLiteral, { message: "must be an IP address" })).min(1))
    .optional(),
  /** Services of the platform itself (see EgressProxyOptions.platformUpstreams). */
  platformUpstreams: z
    .array(
      z.strictObject({
        host: z
          .string()
          .regex(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$/),
        port: z.number().int().min(1).max(65535),
        address: z.string().refine(isIpLiteral, { message: "must be an IP address" }),
        targetPort: z.number().int().min(1).max(65535),
        proxyProtocol: z.boolean().optional(),
      }),
    )
    .optional(),
  /** FOR TESTS ONLY: CIDR ranges let through the anti-SSRF check. */
  testOnlyPermitRanges: z.array(z.string()).optional(),
});

export type EgressConfig = Omit<z.input<typeof EgressConfigSchema>, "policy"> & { policy: EgressPolicy };

/** Validates a configuration (policy and permit ranges included); throws EgressError (invalid_request). */
export function validateEgressConfig(input: unknown): EgressConfig {
  const config = parseOrFail(
    EgressConfigSchema,
    input,
    "egress config",
    (m) => new EgressError("invalid_request", m),
  );
  compilePolicy(config.policy);
  parsePermitRanges(config.testOnlyPermitRanges ?? []);
  return config as EgressConfig;
}

/**
 * A configuration file's text and back: renderEgressConfig is pure and validates first;
 * parseEgressConfig throws EgressError (malformed_json when the text is not JSON,
 * invalid_request when it does not validate).
 */
export const { render: renderEgressConfig, parse: parseEgressConfig } = jsonConfigFile(
  validateEgressConfig,
  (cause) => new EgressError("malformed_json", "the egress config file is not valid JSON", { cause }),
);

/** The proxy options a configuration describes (static hosts first, then the system's resolver). */
export function proxyOptionsFromConfig(config: EgressConfig): EgressProxyOptions {
  const pinned = new Map(Object.entries(config.staticHosts ?? {}).map(([h, a]) => [h.toLowerCase(), a]));
  return {
    ...(pinned.size
      ? { resolve: async (host: string) => pinned.get(host.toLowerCase()) ?? systemResolve(host) }
      : {}),
    listen: config.listen,
    logFile: config.logFile,
    policy: config.policy,
    ...(config.maxConcurrentPerTenant === undefined
      ? {}
      : { maxConcurrentPerTenant: config.maxConcurrentPerTenant }),
    ...(config.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: config.idleTimeoutMs }),
    ...(config.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: config.connectTimeoutMs }),
    ...(config.dnsTimeoutMs === undefined ? {} : { dnsTimeoutMs: config.dnsTimeoutMs }),
    ...(config.recentLogSize === undefined ? {} : { recentLogSize: config.recentLogSize }),
    ...(config.testOnlyPermitRanges === undefined
      ? {}
      : { testOnlyPermitRanges: config.testOnlyPermitRanges }),
    ...(config.platformUpstreams === undefined ? {} : { platformUpstreams: config.platformUpstreams }),
  };
}
