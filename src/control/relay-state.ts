import { llmLimitsFor, llmPlanOf } from "../core/plans.ts";
import { effectiveDesired, type Tenant } from "../core/tenant.ts";
import type { KeyService } from "../kms/types.ts";
import type { RelayState, RelayTenant, RelayUpstream } from "../relay/types.ts";
import type { LlmStore } from "../store/llm.ts";
import type { TenantStore } from "../store/tenants.ts";
import { OWN_KEY_PURPOSE, sealedHash, unsealSecret, VIRTUAL_KEY_PURPOSE } from "./llm-keys.ts";

/** The UTC day of an epoch-ms instant, `YYYY-MM-DD` (how usage rows and the relay name days). */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** The UTC month of an epoch-ms instant, `YYYY-MM`. */
export function utcMonth(ms: number): string {
  return new Date(ms).toISOString().slice(0, 7);
}

/** The first and last day names of a `YYYY-MM` month, for range queries over day strings. */
export function monthRange(month: string): { from: string; to: string } {
  return { from: `${month}-01`, to: `${month}-31` };
}

/** Which API a provider speaks, from its base URL: Anthropic's host speaks Messages, the rest OpenAI's. */
export function upstreamApiFor(baseUrl: string): RelayUpstream["api"] {
  try {
    return new URL(baseUrl).hostname === "api.anthropic.com" ? "anthropic" : "openai";
  } catch {
    return "openai";
  }
}

/**
 * The sha256 of each tenant's virtual key, kept next to the sealed value it came from, so that a
 * state push unseals only keys that changed (a rotation seals a new value). Holds no key.
 */
export class KeyHashCache {
  readonly #byTenant = new Map<string, { sealed: Buffer; hash: string }>();

  async hash(kms: KeyService, tenantId: string, sealed: Buffer): Promise<string> {
    const hit = this.#byTenant.get(tenantId);
    if (hit?.sealed.equals(sealed)) return hit.hash;
    const hash = await sealedHash(kms, tenantId, VIRTUAL_KEY_PURPOSE, sealed);
    this.#byTenant.set(tenantId, { sealed: Buffer.from(sealed), hash });
    return hash;
  }

  /** Forgets every tenant not in `ids` (deleted ones). */
  retain(ids: ReadonlySet<string>): void {
    for (const id of this.#byTenant.keys()) if (!ids.has(id)) this.#byTenant.delete(id);
  }

  get size(): number {
    return this.#byTenant.size;
  }
}

export interface RelayStateInput {
  store: TenantStore;
  llm: LlmStore;
  kms: KeyService;
  /**
   * The source addresses a tenant's requests reach the relay from: its pool's or container's
   * address on the tenants' bridge (the drivers' network members know them), 127.0.0.1 for host
   * processes; none while it has no place yet.
   */
  addresses: (t: Tenant) => readonly string[] | Promise<readonly string[]>;
  /** The operator's upstreams (or the demo provider), with their keys. */
  upstreams: readonly RelayUpstream[];
  now: number;
  /** Saves unsealing unchanged virtual keys on every push. */
  hashes?: KeyHashCache;
}

/** The id of a tenant's own upstream in its RelayTenant. */
export const ownUpstreamId = (name: string) => `own:${name}`;

/**
 * The relay's whole state from the store: every tenant that should be running, is on a plan with
 * relay access (never Enterprise: air-gapped) and has a virtual key, with the sha256 of that key
 * (unsealed through the key service, hashed, the buffer zeroed), its source addresses, its plan's
 * models (each served by the first operator upstream that lists it; with its own provider, every
 * one by that provider, plus the model it named) and limits, its tokens so far this UTC day and
 * month, and its own provider's key unsealed; and the operator's upstreams as given. Reads only
 * its inputs; a key service failure rejects (the relay keeps the state it has), except for a
 * tenant deleted meanwhile, which is left out.
 */
export async function relayStateFor(i: RelayStateInput): Promise<RelayState> {
  const day = utcDay(i.now);
  const month = utcMonth(i.now);
  const platformModels: RelayTenant["models"] = [];
  for (const up of i.upstreams)
    for (const id of up.models)
      if (!platformModels.some((m) => m.id === id)) platformModels.push({ id, upstream: up.id });

  const tenants: RelayTenant[] = [];
  const live = new Set<string>();
  for (const t of i.store.list()) {
    if (effectiveDesired(t, i.now).state !== "running") continue;
    const { plan } = llmPlanOf(t);
    if (plan.models === "none") continue;
    const sealed = i.store.getSecret(t.id, VIRTUAL_KEY_PURPOSE);
    if (!sealed) continue; // made at its next start
    live.add(t.id);
    try {
      const keyHash = i.hashes
        ? await i.hashes.hash(i.kms, t.id, sealed)
        : await sealedHash(i.kms, t.id, VIRTUAL_KEY_PURPOSE, sealed);
      const own = await ownUpstream(i, t);
      const models = own
        ? [...new Set([...platformModels.map((m) => m.id), ...own.models])].map((id) => ({
            id,
            upstream: own.id,
          }))
        : platformModels.map((m) => ({ ...m }));
      const monthSpan = monthRange(month);
      tenants.push({
        name: t.name,
        tenantId: t.id,
        keyHash,
        addresses: [...(await i.addresses(t))],
        models,
        limits: llmLimitsFor(plan, own !== undefined),
        used: {
          day,
          dayTokens: tokens(i.llm.totals(t.id, day, day)),
          month,
          monthTokens: tokens(i.llm.totals(t.id, monthSpan.from, monthSpan.to)),
        },
        ...(own ? { own } : {}),
      });
    } catch (err) {
      if (!i.store.getById(t.id)) continue; // deleted meanwhile: its keys are gone with it
      throw err;
    }
  }
  i.hashes?.retain(live);
  return { tenants, upstreams: i.upstreams.map((u) => ({ ...u, models: [...u.models] })) };
}

const tokens = (t: { inputTokens: number; outputTokens: number }) => t.inputTokens + t.outputTokens;

async function ownUpstream(i: RelayStateInput, t: Tenant): Promise<RelayUpstream | undefined> {
  const rec = i.llm.ownProvider(t.id);
  const sealed = i.store.getSecret(t.id, OWN_KEY_PURPOSE);
  if (!rec || !sealed) return undefined;
  const key = await unsealSecret(i.kms, t.id, OWN_KEY_PURPOSE, sealed);
  return {
    id: ownUpstreamId(t.name),
    baseUrl: rec.baseUrl,
    apiKey: key.reveal(),
    api: upstreamApiFor(rec.baseUrl),
    models: rec.model ? [rec.model] : [],
  };
}

/**
 * What the relay service asks for on every (re)start and refresh: relayStateFor over the given
 * store and key service at the clock's now, with one key-hash cache across pushes.
 */
export function relayStateSource(
  deps: Omit<RelayStateInput, "now" | "hashes"> & { clock?: () => number },
): () => Promise<RelayState> {
  const hashes = new KeyHashCache();
  const clock = deps.clock ?? Date.now;
  return () => relayStateFor({ ...deps, now: clock(), hashes });
}
