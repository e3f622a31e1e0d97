import type { Tier } from "./tenant.ts";

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
