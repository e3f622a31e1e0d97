import { z } from "zod";
import { formatIp, parseIp, unmapIp } from "../egress/ip.ts";
import { parseOrFail } from "../service/config-file.ts";
import { RelayError } from "./errors.ts";
import type { RelayState } from "./types.ts";

/**
 * The relay state's schema: strict objects (unknown keys refused), every reference checked (a
 * tenant's model names an upstream that exists, no key hash or tenant id twice). Addresses are
 * kept in one canonical form (IPv4-mapped IPv6 as IPv4) so that the source check compares like
 * with like.
 */

/** An IP literal in canonical form, or null when `text` is none. */
export function canonicalIp(text: string): string | null {
  const ip = parseIp(text);
  return ip ? formatIp(unmapIp(ip)) : null;
}

const Id = z.string().min(1).max(256);
const Count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const Limit = Count.nullable();
/** No control characters: the key goes into a header. */
const ApiKey = z
  .string()
  .min(1)
  .max(8192)
  .regex(/^[\x21-\x7e]+$/, { message: "must be printable ASCII without spaces" });
const BaseUrl = z
  .string()
  .max(2048)
  .refine(
    (s) => {
      try {
        const u = new URL(s);
        return (
          (u.protocol === "http:" || u.protocol === "https:") &&
          !u.username &&
          !u.password &&
          !u.search &&
          !u.hash
        );
      } catch {
        return false;
      }
    },
    { message: "must be an http(s) URL without credentials, query or fragment" },
  );

export const RelayUpstreamSchema = z.strictObject({
  id: Id,
  baseUrl: BaseUrl,
  apiKey: ApiKey,
  api: z.enum(["openai", "anthropic"]),
  models: z.array(Id).max(10_000),
});

export const RelayTenantSchema = z.strictObject({
  name: Id,
  tenantId: Id,
  keyHash: z.string().regex(/^[0-9a-f]{64}$/, { message: "must be a sha256 hex digest (lower case)" }),
  addresses: z
    .array(z.string().refine((a) => canonicalIp(a) !== null, { message: "must be an IP address" }))
    .max(64),
  models: z.array(z.strictObject({ id: Id, upstream: Id })).max(10_000),
  limits: z.strictObject({ tokensPerDay: Limit, tokensPerMonth: Limit, requestsPerMinute: Limit }),
  used: z.strictObject({
    day: z.string().regex(/^\d{4}-\d{2}-\d{2}$/),
    dayTokens: Count,
    month: z.string().regex(/^\d{4}-\d{2}$/),
    monthTokens: Count,
  }),
  own: RelayUpstreamSchema.optional(),
});

export const RelayStateSchema = z
  .strictObject({
    tenants: z.array(RelayTenantSchema).max(1_000_000),
    upstreams: z.array(RelayUpstreamSchema).max(10_000),
  })
  .superRefine((s, ctx) => {
    const ids = new Set<string>();
    for (const [i, u] of s.upstreams.entries()) {
      if (ids.has(u.id)) ctx.addIssue({ code: "custom", path: ["upstreams", i, "id"], message: "duplicate" });
      ids.add(u.id);
    }
    const hashes = new Set<string>();
    const tenantIds = new Set<string>();
    for (const [i, t] of s.tenants.entries()) {
      if (hashes.has(t.keyHash))
        ctx.addIssue({ code: "custom", path: ["tenants", i, "keyHash"], message: "another tenant has it" });
      if (tenantIds.has(t.tenantId))
        ctx.addIssue({ code: "custom", path: ["tenants", i, "tenantId"], message: "duplicate" });
      hashes.add(t.keyHash);
      tenantIds.add(t.tenantId);
      for (const [j, m] of t.models.entries()) {
        if (!t.own && !ids.has(m.upstream))
          ctx.addIssue({
            code: "custom",
            path: ["tenants", i, "models", j, "upstream"],
            message: `no upstream '${m.upstream}'`,
          });
      }
    }
  });

/**
 * `input` parsed by `schema`, or RelayError (invalid_state) "invalid <what>: <path>: <problem>",
 * naming the first problem's path and never a value.
 */
export function parseOrThrow<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  return parseOrFail(schema, input, what, (message) => new RelayError("invalid_state", message));
}

/**
 * Validates a pushed state and returns it with canonical addresses. Throws RelayError
 * (invalid_state) naming the first problem's path; the message never quotes a value (keys).
 */
export function validateRelayState(input: unknown): RelayState {
  const state = parseOrThrow(RelayStateSchema, input, "relay state") as RelayState;
  return {
    upstreams: state.upstreams,
    tenants: state.tenants.map((t) => ({
      ...t,
      addresses: t.addresses.map((a) => canonicalIp(a) ?? a),
    })),
  };
}
