import { normalizeBaseUrl } from "../config/settings.ts";
import { AuthError, ClawkeepError } from "../core/errors.ts";
import { type LlmLimits, type LlmPlanName, llmLimitsFor, llmPlanOf } from "../core/plans.ts";
import { effectiveDesired, type Tenant } from "../core/tenant.ts";
import type { KeyService } from "../kms/types.ts";
import type { RuntimeDriver } from "../runtime/types.ts";
import type { LlmStore, UsageRow, UsageTotals } from "../store/llm.ts";
import type { TenantStore } from "../store/tenants.ts";
import { newVirtualKey, OWN_KEY_PURPOSE, sealFor, VIRTUAL_KEY_PURPOSE } from "./llm-keys.ts";
import type { Reconciler } from "./reconciler.ts";
import { monthRange, utcDay, utcMonth } from "./relay-state.ts";
import type { Principal, TenantService } from "./tenants.ts";

const DAY_MS = 24 * 60 * 60 * 1000;

/** A tenant's LLM access as the API shows it (never a key). */
export interface LlmView {
  tenant: string;
  /** The LLM plan in force: the trial's until the tenant subscribes, then its tier's. */
  plan: LlmPlanName;
  /** "none": air-gapped (Enterprise), no relay access. */
  models: "platform" | "none";
  limits: LlmLimits;
  /** Whose provider serves the tenant's chats. */
  provider: "platform" | "own";
  own: { baseUrl: string; model: string | null; updatedAt: string } | null;
  /** Base URLs the operator allows for a tenant's own key. */
  allowedBaseUrls: string[];
}

export interface UsageTotalsView extends UsageTotals {
  /** Input plus output tokens. */
  tokens: number;
}

/** A tenant's usage: per UTC day and model, and its totals against its limits. */
export interface UsageView {
  tenant: string;
  plan: LlmPlanName;
  limits: LlmLimits;
  today: UsageTotalsView & { day: string };
  thisMonth: UsageTotalsView & { month: string };
  /** The last `days` days' rows, oldest first. */
  days: UsageRow[];
}

/** Every tenant's totals today and this month (operator). */
export interface UsageSummary {
  day: string;
  month: string;
  tenants: Array<
    Omit<UsageView, "days" | "today" | "thisMonth"> & {
      tier: Tenant["tier"];
      today: UsageTotalsView;
      thisMonth: UsageTotalsView;
    }
  >;
}

/** What a tenant gives to use its own provider. */
export interface OwnKeyInput {
  baseUrl: string;
  apiKey: string;
  model?: string | undefined;
}

const withTokens = (t: UsageTotals): UsageTotalsView => ({ ...t, tokens: t.inputTokens + t.outputTokens });

/**
 * A tenant's LLM access through the relay: its virtual key's rotation, its own provider (bring
 * your own key) and its usage. The tenant or the operator may call each, the tenant only on
 * itself; usage of every tenant is the operator's. Every change that the relay must know of is
 * written in one transaction, then `onChange` tells it.
 */
export class LlmService {
  constructor(
    private readonly deps: {
      store: TenantStore;
      llm: LlmStore;
      kms: KeyService;
      tenants: TenantService;
      reconciler: Reconciler;
      driver: RuntimeDriver;
      /** Normalized base URLs a tenant's own provider may have (settings). */
      byokAllow: readonly string[];
      /** Tells the relay to take the state again (a key rotated, an own provider set or removed). */
      onChange?: () => Promise<void> | void;
      clock?: () => number;
    },
  ) {}

  #now(): number {
    return (this.deps.clock ?? Date.now)();
  }

  /** Refuses a tenant whose plan has no relay access, naming why. */
  #relayed(t: Tenant, what: string): void {
    if (llmPlanOf(t).plan.models === "none")
      throw new ClawkeepError(
        "invalid_request",
        `${t.name} is an ${t.tier} tenant: air-gapped, its gateway uses the model inside its own sandbox and never reaches the LLM relay, so it has no ${what}`,
        { details: { tier: t.tier } },
      );
  }

  view(principal: Principal, name: string): LlmView {
    const t = this.deps.tenants.get(principal, name);
    const { name: planName, plan } = llmPlanOf(t);
    const own = this.deps.llm.ownProvider(t.id);
    return {
      tenant: t.name,
      plan: planName,
      models: plan.models,
      limits: llmLimitsFor(plan, own !== undefined),
      provider: own ? "own" : "platform",
      own: own
        ? { baseUrl: own.baseUrl, model: own.model, updatedAt: new Date(own.updatedAt).toISOString() }
        : null,
      allowedBaseUrls: [...this.deps.byokAllow],
    };
  }

  /**
   * Sets the tenant's own provider: the base URL must be one the operator allows; the key is
   * sealed under the tenant's own key (purpose llm-own-key) and reaches only the relay.
   */
  async setOwnKey(principal: Principal, name: string, input: OwnKeyInput): Promise<LlmView> {
    const t = this.deps.tenants.get(principal, name);
    this.#relayed(t, "provider of its own");
    const baseUrl = normalizeBaseUrl(input.baseUrl);
    if (!baseUrl || !this.deps.byokAllow.includes(baseUrl))
      throw new ClawkeepError(
        "invalid_request",
        `baseUrl ${JSON.stringify(input.baseUrl)} is not a provider the operator allows for an own key; allowed: ${this.deps.byokAllow.join(", ") || "none"}`,
        { details: { field: "baseUrl", allowed: [...this.deps.byokAllow] } },
      );
    const sealed = await sealFor(this.deps.kms, t.id, OWN_KEY_PURPOSE, input.apiKey);
    const now = this.#now();
    const { store } = this.deps;
    store.tx(() => {
      if (!store.getById(t.id)) throw new ClawkeepError("not_found", `tenant '${t.name}' does not exist`);
      store.putSecret(t.id, OWN_KEY_PURPOSE, sealed, now);
      this.deps.llm.setOwnProvider(t.id, { baseUrl, model: input.model ?? null, updatedAt: now });
      store.addEvent(
        t.id,
        "llm_own_key_set",
        `own LLM provider set by ${principal.kind}: ${baseUrl}${input.model ? ` (model ${input.model})` : ""}`,
        now,
      );
    });
    await this.deps.onChange?.();
    return this.view(principal, name);
  }

  /** Removes the tenant's own provider: it is back on the platform's. Removing none is not an error. */
  async clearOwnKey(principal: Principal, name: string): Promise<LlmView> {
    const t = this.deps.tenants.get(principal, name);
    const { store } = this.deps;
    const now = this.#now();
    const removed = store.tx(() => {
      const had = this.deps.llm.clearOwnProvider(t.id);
      const key = store.deleteSecret(t.id, OWN_KEY_PURPOSE);
      if (had || key)
        store.addEvent(t.id, "llm_own_key_removed", `own LLM provider removed by ${principal.kind}`, now);
      return had || key;
    });
    if (removed) await this.deps.onChange?.();
    return this.view(principal, name);
  }

  /**
   * Replaces the tenant's virtual key: the new one is sealed and stored, the relay told (the old
   * key stops working there), and a running gateway restarted to pick the new one up.
   */
  async rotateKey(principal: Principal, name: string): Promise<{ tenant: string; restarted: boolean }> {
    const t = this.deps.tenants.get(principal, name);
    this.#relayed(t, "relay key to rotate");
    const { store, driver } = this.deps;
    const sealed = await sealFor(this.deps.kms, t.id, VIRTUAL_KEY_PURPOSE, newVirtualKey());
    const now = this.#now();
    store.tx(() => {
      if (!store.getById(t.id)) throw new ClawkeepError("not_found", `tenant '${t.name}' does not exist`);
      store.putSecret(t.id, VIRTUAL_KEY_PURPOSE, sealed, now);
      store.addEvent(t.id, "llm_key_rotated", `LLM relay key rotated by ${principal.kind}`, now);
    });
    await this.deps.onChange?.();
    if (effectiveDesired(t, now).state !== "running") return { tenant: t.name, restarted: false };
    // One operation on the tenant at a time: a start under way (which may have read the old key)
    // ends first; then a running gateway stops and the reconciler starts it with the new key.
    const restarted = await this.deps.reconciler.exclusive(t.id, async (signal) => {
      if ((await driver.status(t.name, signal)).state !== "running") return false;
      await driver.stop(t.name, signal);
      store.setActual(t.id, "pending", "restarting to pick up its new LLM relay key", this.#now());
      return true;
    });
    return { tenant: t.name, restarted };
  }

  /** The tenant's usage: the last `days` UTC days per model, today's and this month's totals. */
  usage(principal: Principal, name: string, days = 31): UsageView {
    const t = this.deps.tenants.get(principal, name);
    const now = this.#now();
    const day = utcDay(now);
    const { name: planName, ...rest } = this.#totals(t, now);
    return {
      tenant: t.name,
      plan: planName,
      limits: rest.limits,
      today: { day, ...rest.today },
      thisMonth: { month: utcMonth(now), ...rest.thisMonth },
      days: this.deps.llm.usage(t.id, utcDay(now - (days - 1) * DAY_MS), day),
    };
  }

  /** Every tenant's totals today and this month, with its limits (operator only). */
  usageAll(principal: Principal): UsageSummary {
    if (principal.kind !== "operator")
      throw new AuthError("forbidden", "only the operator can see every tenant's usage");
    const now = this.#now();
    return {
      day: utcDay(now),
      month: utcMonth(now),
      tenants: this.deps.store
        .list()
        .filter((t) => t.desired !== "deleted")
        .map((t) => {
          const { name: planName, ...rest } = this.#totals(t, now);
          return { tenant: t.name, tier: t.tier, plan: planName, ...rest };
        }),
    };
  }

  #totals(t: Tenant, now: number) {
    const { name, plan } = llmPlanOf(t);
    const day = utcDay(now);
    const month = monthRange(utcMonth(now));
    return {
      name,
      limits: llmLimitsFor(plan, this.deps.llm.ownProvider(t.id) !== undefined),
      today: withTokens(this.deps.llm.totals(t.id, day, day)),
      thisMonth: withTokens(this.deps.llm.totals(t.id, month.from, month.to)),
    };
  }
}
