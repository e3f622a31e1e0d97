import type { Tenant, Tier } from "./tenant.ts";

/** Resource limits a tier's plan grants one tenant instance. Drivers apply what they can enforce. */
export interface Plan {
  tier: Tier;
  memoryBytes: number;
  /** CPU quota in whole or fractional cores. */
  cpus: number;
  pids: number;
  /** Size limit of the tenant's volume (dedicated) or its share of a pool volume (starter). */
  volumeBytes: number;
  /** Whether the instance may reach the internet through the egress proxy. */
  egress: boolean;
  /** Whether the instance is served by a model inside its own sandbox. */
  localModel: boolean;
}

/** What a plan grants, without the tier it belongs to (as the API shows it on a tenant). */
export type PlanLimits = Omit<Plan, "tier">;

/** The limits of `plan`, every field but `tier`, in the plan's order. */
export function planLimits(plan: Plan): PlanLimits {
  const { tier: _tier, ...limits } = plan;
  return limits;
}

const GiB = 1024 ** 3;

export const PLANS: Record<Tier, Plan> = {
  starter: {
    tier: "starter",
    memoryBytes: 1.5 * GiB,
    cpus: 1,
    pids: 256,
    volumeBytes: 1 * GiB,
    egress: true,
    localModel: false,
  },
  premium: {
    tier: "premium",
    memoryBytes: 2 * GiB,
    cpus: 2,
    pids: 512,
    volumeBytes: 4 * GiB,
    egress: true,
    localModel: false,
  },
  enterprise: {
    tier: "enterprise",
    memoryBytes: 4 * GiB,
    cpus: 2,
    pids: 512,
    volumeBytes: 8 * GiB,
    egress: false,
    localModel: true,
  },
};

export function planFor(tier: Tier): Plan {
  return PLANS[tier];
}

/** What a tenant may spend through the LLM relay; null: no limit of that kind. */
export interface LlmLimits {
  /** Input plus output tokens in one UTC day. */
  tokensPerDay: number | null;
  /** Input plus output tokens in one UTC calendar month. */
  tokensPerMonth: number | null;
  requestsPerMinute: number | null;
}

/**
 * The LLM side of a plan. `models`: "platform", the platform's models (every model of the
 * operator's upstreams; gateways are configured with the default one); "none", no model through
 * the relay at all (Enterprise: air-gapped, served by the local model inside its own sandbox).
 */
export interface LlmPlan {
  models: "platform" | "none";
  limits: LlmLimits;
}

/** Which row of LLM_PLANS a tenant is on: its tier's once subscribed, the trial's before. */
export type LlmPlanName = Tier | "trial";

/**
 * Every plan's LLM models and limits, in one table. A tenant on trial has the trial's small
 * budget whatever its tier (except an air-gapped tier, which has no relay access either way);
 * a subscribed tenant has its tier's.
 */
export const LLM_PLANS: Record<LlmPlanName, LlmPlan> = {
  trial: {
    models: "platform",
    limits: { tokensPerDay: 50_000, tokensPerMonth: 250_000, requestsPerMinute: 10 },
  },
  starter: {
    models: "platform",
    limits: { tokensPerDay: 500_000, tokensPerMonth: 5_000_000, requestsPerMinute: 30 },
  },
  premium: {
    models: "platform",
    limits: { tokensPerDay: 2_000_000, tokensPerMonth: 30_000_000, requestsPerMinute: 120 },
  },
  enterprise: {
    models: "none",
    limits: { tokensPerDay: null, tokensPerMonth: null, requestsPerMinute: null },
  },
};

/** The LLM plan a tenant is on now (see LLM_PLANS). Pure. */
export function llmPlanOf(t: Pick<Tenant, "tier" | "subscription">): {
  name: LlmPlanName;
  plan: LlmPlan;
} {
  const own = LLM_PLANS[t.tier];
  if (own.models === "none" || t.subscription === "active") return { name: t.tier, plan: own };
  return { name: "trial", plan: LLM_PLANS.trial };
}

/**
 * The limits the relay applies to a tenant: its LLM plan's, except that with its own provider key
 * (bring your own key) the token budgets are lifted, the tenant's provider bills it, and only the
 * request rate stays (it protects the relay). Pure.
 */
export function llmLimitsFor(plan: LlmPlan, ownKey: boolean): LlmLimits {
  return ownKey
    ? { tokensPerDay: null, tokensPerMonth: null, requestsPerMinute: plan.limits.requestsPerMinute }
    : { ...plan.limits };
}
