import { ValidationError } from "./errors.ts";

/** A tenant name is a DNS label: it becomes a host name (`<name>.<domain>`) and a directory name. */
export const TENANT_NAME_RE = /^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$/;
export const TENANT_NAME_MAX = 40;
/** Names the platform's own host names use (`api.<domain>`, ...): no tenant may take them. */
export const RESERVED_NAMES = ["api", "console", "www", "admin", "edge", "kms", "egress"] as const;

/** Like parseTenantName, and refuses the platform's reserved names: for new tenants. */
export function parseNewTenantName(input: unknown): string {
  const name = parseTenantName(input);
  if ((RESERVED_NAMES as readonly string[]).includes(name)) {
    throw new ValidationError("invalid_name", `tenant name '${name}' is reserved for the platform`, {
      details: { field: "name" },
    });
  }
  return name;
}

export const TIERS = ["starter", "premium", "enterprise"] as const;
export type Tier = (typeof TIERS)[number];

export const TRIAL_DAYS = 7;
const DAY_MS = 24 * 60 * 60 * 1000;

/** What the operator or tenant wants. `deleted` is kept until the instance is gone. */
export type DesiredState = "running" | "suspended" | "deleted";
/** What the reconciler last observed or did. */
export type ActualState =
  | "pending"
  | "starting"
  | "running"
  | "restarting"
  | "stopping"
  | "stopped"
  | "suspended"
  | "failed"
  | "deleting";

export type Subscription = "trial" | "active";

export interface Tenant {
  id: string;
  name: string;
  tier: Tier;
  /** Small integer unique among live tenants; drivers derive ports and uids from it. */
  slot: number;
  createdAt: number;
  trialEndsAt: number;
  subscription: Subscription;
  desired: DesiredState;
  actual: ActualState;
  /** Why the tenant is in its actual state, for failed and suspended states. */
  reason: string | null;
  updatedAt: number;
}

/** Returns the name when it is a valid tenant name; throws a ValidationError naming the rule otherwise. */
export function parseTenantName(input: unknown): string {
  if (typeof input !== "string" || input.length === 0) {
    throw new ValidationError("invalid_name", "tenant name is required", { details: { field: "name" } });
  }
  if (input.length > TENANT_NAME_MAX) {
    throw new ValidationError(
      "invalid_name",
      `tenant name is ${input.length} characters long; at most ${TENANT_NAME_MAX} are allowed`,
      { details: { field: "name" } },
    );
  }
  if (!TENANT_NAME_RE.test(input)) {
    throw new ValidationError(
      "invalid_name",
      `tenant name ${JSON.stringify(input)} is not a DNS label: use lower-case letters, digits and inner hyphens`,
      { details: { field: "name" } },
    );
  }
  return input;
}

export function isTier(value: unknown): value is Tier {
  return typeof value === "string" && (TIERS as readonly string[]).includes(value);
}

export function parseTier(input: unknown): Tier {
  if (!isTier(input)) {
    throw new ValidationError(
      "unknown_tier",
      `unknown tier ${JSON.stringify(input)}; use one of ${TIERS.join(", ")}`,
      {
        details: { field: "tier" },
      },
    );
  }
  return input;
}

export function trialEnd(createdAt: number): number {
  return createdAt + TRIAL_DAYS * DAY_MS;
}

export interface TrialStatus {
  subscription: Subscription;
  endsAt: number;
  expired: boolean;
  /** Whole days left, rounded up; 0 once expired. */
  daysLeft: number;
}

export function trialStatus(t: Pick<Tenant, "subscription" | "trialEndsAt">, now: number): TrialStatus {
  const expired = t.subscription === "trial" && now >= t.trialEndsAt;
  return {
    subscription: t.subscription,
    endsAt: t.trialEndsAt,
    expired,
    daysLeft: expired || t.subscription !== "trial" ? 0 : Math.ceil((t.trialEndsAt - now) / DAY_MS),
  };
}

/**
 * The state the reconciler must drive the instance to. An expired trial suspends the instance
 * (its data is kept) whatever the stored desire, until the tenant subscribes.
 */
export function effectiveDesired(
  t: Pick<Tenant, "desired" | "subscription" | "trialEndsAt">,
  now: number,
): { state: DesiredState; reason: string | null } {
  if (t.desired === "deleted") return { state: "deleted", reason: null };
  if (trialStatus(t, now).expired) {
    return {
      state: "suspended",
      reason: "trial ended; data is kept until the tenant subscribes or is deleted",
    };
  }
  return { state: t.desired, reason: t.desired === "suspended" ? "suspended by the operator" : null };
}

/** Builds a new tenant record in its first state. Pure: the caller supplies id, slot and clock. */
export function newTenant(input: {
  id: string;
  name: string;
  tier: Tier;
  slot: number;
  now: number;
}): Tenant {
  return {
    id: input.id,
    name: parseTenantName(input.name),
    tier: parseTier(input.tier),
    slot: input.slot,
    createdAt: input.now,
    trialEndsAt: trialEnd(input.now),
    subscription: "trial",
    desired: "running",
    actual: "pending",
    reason: null,
    updatedAt: input.now,
  };
}
