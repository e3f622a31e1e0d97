import { AuthError, ClawkeepError } from "../core/errors.ts";
import { planFor } from "../core/plans.ts";
import { DEFAULT_ALLOW, parseHostPattern } from "../egress/policy.ts";
import type { EgressAllowStore } from "../store/egress.ts";
import type { TenantStore } from "../store/tenants.ts";
import type { Principal, TenantService } from "./tenants.ts";

/** How many additions one list may hold. */
export const MAX_ALLOW_ENTRIES = 100;

/** What a tenant may reach through the egress proxy, and where each part comes from. */
export interface AllowlistView {
  tenant: string;
  /** Enterprise: no egress at all, whatever the lists say. */
  airGapped: boolean;
  /** Built in: the major LLM providers' and chat channels' API hosts. */
  defaults: string[];
  /** The operator's additions for every tenant (settings and API). */
  operator: string[];
  /** The tenant's own additions. */
  own: string[];
}

/**
 * The egress allowlists beyond the proxy's defaults: the operator's additions for every tenant
 * and each tenant's own. Entries are validated by the proxy's own parser (exact host names,
 * `*.domain.tld`, IP literals); names still resolve only to public addresses (the proxy refuses
 * private, loopback and metadata answers whatever the list says). Every change is pushed to the
 * running proxy at once through `onChange`.
 */
export class EgressAllowService {
  constructor(
    private readonly deps: {
      store: EgressAllowStore;
      tenantStore: TenantStore;
      tenants: TenantService;
      /** Additions fixed by the operator's settings (CLAWKEEP_EGRESS_ALLOW). */
      settingsAllow: readonly string[];
      onChange?: () => Promise<void> | void;
      clock?: () => number;
    },
  ) {}

  #now(): number {
    return (this.deps.clock ?? Date.now)();
  }

  static parse(hosts: readonly string[]): string[] {
    if (hosts.length > MAX_ALLOW_ENTRIES)
      throw new ClawkeepError(
        "invalid_request",
        `at most ${MAX_ALLOW_ENTRIES} allowlist entries, got ${hosts.length}`,
      );
    return [...new Set(hosts.map((h) => parseHostPattern(h)))].sort();
  }

  /** Every tenant's additions: the settings' and the operator's through the API. */
  operatorPatterns(): string[] {
    return [...new Set([...this.deps.settingsAllow, ...this.deps.store.operator()])].sort();
  }

  /** One tenant's own additions, by name (for the proxy's policy). */
  tenantPatterns(name: string): string[] {
    const t = this.deps.tenantStore.get(name);
    return t ? this.deps.store.tenant(t.id) : [];
  }

  view(principal: Principal, name: string): AllowlistView {
    const t = this.deps.tenants.get(principal, name);
    return {
      tenant: t.name,
      airGapped: !planFor(t.tier).egress,
      defaults: [...DEFAULT_ALLOW],
      operator: this.operatorPatterns(),
      own: this.deps.store.tenant(t.id),
    };
  }

  /** Replaces the tenant's own additions (the tenant or the operator may). */
  async setTenant(principal: Principal, name: string, hosts: readonly string[]): Promise<AllowlistView> {
    const t = this.deps.tenants.get(principal, name);
    const patterns = EgressAllowService.parse(hosts);
    if (!planFor(t.tier).egress && patterns.length > 0)
      throw new ClawkeepError(
        "invalid_request",
        `${t.name} is an ${t.tier} tenant: air-gapped, it has no egress to allow anything through`,
      );
    this.deps.store.setTenant(t.id, patterns, this.#now());
    this.deps.tenantStore.addEvent(
      t.id,
      "egress_allow",
      `egress allowlist set by ${principal.kind}: ${patterns.join(", ") || "(none)"}`,
      this.#now(),
    );
    await this.deps.onChange?.();
    return this.view(principal, name);
  }

  operatorView(principal: Principal): { defaults: string[]; settings: string[]; operator: string[] } {
    if (principal.kind !== "operator") throw new AuthError("forbidden", "only the operator can see this");
    return {
      defaults: [...DEFAULT_ALLOW],
      settings: [...this.deps.settingsAllow],
      operator: this.deps.store.operator(),
    };
  }

  /** Replaces the operator's API additions for every tenant (the settings' stay). */
  async setOperator(
    principal: Principal,
    hosts: readonly string[],
  ): Promise<{ defaults: string[]; settings: string[]; operator: string[] }> {
    if (principal.kind !== "operator") throw new AuthError("forbidden", "only the operator can change this");
    this.deps.store.setOperator(EgressAllowService.parse(hosts), this.#now());
    await this.deps.onChange?.();
    return this.operatorView(principal);
  }
}
