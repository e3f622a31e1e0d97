import { isAbsolute } from "node:path";
import { z } from "zod";
import { RelayError } from "./errors.ts";
import { canonicalIp, parseOrThrow } from "./schema.ts";
import type { RelayOptions } from "./server.ts";

/**
 * The relay process's configuration file (JSON), read once at start by main.ts. It holds no key
 * and no tenant: the state (upstreams with their keys, tenants) arrives over the admin socket.
 */
const Ms = z
  .number()
  .int()
  .min(1)
  .max(24 * 60 * 60 * 1000);

export const RelayConfigSchema = z.strictObject({
  listen: z.strictObject({
    host: z.string().refine((h) => canonicalIp(h) !== null, { message: "must be an IP address" }),
    port: z.number().int().min(0).max(65535),
  }),
  /** Absolute path of the admin API's unix socket. */
  adminSocket: z
    .string()
    .min(1)
    .refine((p) => isAbsolute(p) && !p.includes("\0"), { message: "must be an absolute path" }),
  logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).optional(),
  maxBodyBytes: z
    .number()
    .int()
    .min(1024)
    .max(256 * 1024 * 1024)
    .optional(),
  firstLineTimeoutMs: Ms.optional(),
  upstreamConnectTimeoutMs: Ms.optional(),
  upstreamHeadersTimeoutMs: Ms.optional(),
  upstreamBodyTimeoutMs: Ms.optional(),
  idleTimeoutMs: Ms.optional(),
  /** FOR TESTS ONLY: the admin API gets PUT /v1/clock (budgets' next day without waiting for it). */
  testOnlySettableClock: z.boolean().optional(),
});

export type RelayConfig = z.input<typeof RelayConfigSchema>;

/** Validates a configuration; throws RelayError (invalid_state) naming the first problem. */
export function validateRelayConfig(input: unknown): RelayConfig {
  return parseOrThrow(RelayConfigSchema, input, "relay config");
}

/** Renders a configuration file's text. Pure; validates first. */
export function renderRelayConfig(config: RelayConfig): string {
  return `${JSON.stringify(validateRelayConfig(config), null, 2)}\n`;
}

export function parseRelayConfig(text: string): RelayConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new RelayError("invalid_state", "the relay config file is not valid JSON", { cause: err });
  }
  return validateRelayConfig(raw);
}

/** The data plane's options a configuration describes. */
export function relayOptionsFromConfig(config: RelayConfig): RelayOptions {
  const { listen, adminSocket: _a, logLevel: _l, testOnlySettableClock: _t, ...rest } = config;
  const opts: RelayOptions = { listen };
  for (const [k, v] of Object.entries(rest)) if (v !== undefined) Object.assign(opts, { [k]: v });
  return opts;
}
