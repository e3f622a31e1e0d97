import { planFor } from "../core/plans.ts";
import type { Tier } from "../core/tenant.ts";
import type { LlmProvider } from "../openclaw/config.ts";
import type { InstanceSpec } from "../runtime/types.ts";

/**
 * A driver's instance spec for tests and benchmarks: tenant id `tnt_<name>`, the tier's plan, and
 * `llm` (base URL and model). Production builds specs from tenants (control/instance-spec.ts).
 */
export function testSpec(name: string, tier: Tier, slot: number, llm: LlmProvider): InstanceSpec {
  return {
    tenantId: `tnt_${name}`,
    name,
    tier,
    slot,
    plan: planFor(tier),
    llm: { baseUrl: llm.baseUrl, model: llm.model },
  };
}
