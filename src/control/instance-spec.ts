import { planFor } from "../core/plans.ts";
import type { Tenant } from "../core/tenant.ts";
import type { LlmProvider } from "../openclaw/config.ts";
import type { InstanceSpec } from "../runtime/types.ts";

/** What the platform adds to a tenant to make its instance spec. */
export interface InstanceSpecOptions {
  /** The LLM provider every gateway is configured with (its key travels apart, as a secret). */
  llm: LlmProvider;
  /** The origin browsers reach a tenant at through the edge, e.g. https://alice.example.com. */
  publicOrigin?: (name: string) => string | undefined;
}

/** The instance spec of a tenant, as every caller of the runtime driver builds it. */
export type InstanceSpecs = (t: Tenant) => InstanceSpec;

/**
 * The runtime driver's view of a tenant: its id, name, tier, slot and the tier's plan, the
 * platform's LLM provider (base URL and model only: never the key), and its public origin when
 * it has one. Pure.
 */
export function instanceSpecFor(t: Tenant, o: InstanceSpecOptions): InstanceSpec {
  const origin = o.publicOrigin?.(t.name);
  return {
    tenantId: t.id,
    name: t.name,
    tier: t.tier,
    slot: t.slot,
    plan: planFor(t.tier),
    llm: { baseUrl: o.llm.baseUrl, model: o.llm.model },
    ...(origin ? { publicOrigin: origin } : {}),
  };
}

/** instanceSpecFor bound to the platform's options: the one factory the reconciler, the tenant service and the platform share. */
export function instanceSpecs(o: InstanceSpecOptions): InstanceSpecs {
  return (t) => instanceSpecFor(t, o);
}
