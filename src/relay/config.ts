import { z } from "zod";
import { AbsolutePath, jsonConfigFile, Millis } from "../service/config-file.ts";
import { RelayError } from "./errors.ts";
import { canonicalIp, parseOrThrow } from "./schema.ts";
import type { RelayOptions } from "./server.ts";

/**
 * The relay process's configuration file (JSON), read once at start by main.ts. It holds no key
 * and no tenant: the state (upstreams with their keys, tenants) arrives over the admin socket.
 */
export const RelayConfigSchema = z.strictObject({
  listen: z.strictObject({
    host: z.string().refine((h) => canonicalIp(h) !== null, { message: "must be an IP address" }),
    port: z.number().int().min(0).max(65535),
  }),
  /** Absolute path of the admin API's unix socket. */
  adminSocket: AbsolutePath,
  logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).optional(),
  maxBodyBytes: z
    .number()
    .int()
    .min(1024)
    .max(256 * 1024 * 1024)
    .optional(),
  firstLineTimeoutMs: Millis.optional(),
  upstreamConnectTimeoutMs: Millis.optional(),
  upstreamHeadersTimeoutMs: Millis.optional(),
  upstreamBodyTimeoutMs: Millis.optional(),
  idleTimeoutMs: Millis.optional(),
  /** FOR TESTS ONLY: the admin API gets PUT /v1/clock (budgets' next day without waiting for it). */
  testOnlySettableClock: z.boolean().optional(),
});

export type RelayConfig = z.input<typeof RelayConfigSchema>;

/** Validates a configuration; throws RelayError (invalid_state) naming the first problem. */
export function validateRelayConfig(input: unknown): RelayConfig {
  return parseOrThrow(RelayConfigSchema, input, "relay config");
}

/**
 * A configuration file's text and back: renderRelayConfig is pure and validates first;
 * parseRelayConfig throws RelayError (invalid_state) when the text is not JSON or does not
 * validate.
 */
export const { render: renderRelayConfig, parse: parseRelayConfig } = jsonConfigFile(
  validateRelayConfig,
  (cause) => new RelayError("invalid_state", "the relay config file is not valid JSON", { cause }),
);

/** The data plane's options a configuration describes. */
export function relayOptionsFromConfig(config: RelayConfig): RelayOptions {
  const { listen, adminSocket: _a, logLevel: _l, testOnlySettableClock: _t, ...rest } = config;
  const opts: RelayOptions = { listen };
  for (const [k, v] of Object.entries(rest)) if (v !== undefined) Object.assign(opts, { [k]: v });
  return opts;
}
