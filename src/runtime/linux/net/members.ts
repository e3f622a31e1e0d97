import type { EgressRegistry } from "./egress.types.ts";
import { applyRuleset, type NetworkConfig, renderRuleset, type TenantNet } from "./network.ts";

/**
 * Who is on the tenants' bridge, by owner ("containers", "pools"), rendered into one ruleset and
 * one egress policy. Two drivers share one bridge and one nftables table (a drop in any table
 * is final, so the rules cannot be split by table); each owner replaces only its own members.
 */
export class NetworkMembers {
  readonly #c: NetworkConfig;
  readonly #egress: EgressRegistry | undefined;
  readonly #members = new Map<string, readonly TenantNet[]>();
  readonly #egressEntries = new Map<string, Parameters<EgressRegistry["setTenants"]>[0]>();
  readonly #owners: ReadonlySet<string>;
  #queue: Promise<void> = Promise.resolve();

  /**
   * `owners`: every owner that will share the bridge. Until each has said who it has (at start-up,
   * one resync after the other), nothing is applied: a ruleset that knew only the first owner's
   * members would cut the others' running tenants off for a moment.
   */
  constructor(c: NetworkConfig, egress?: EgressRegistry, owners: readonly string[] = []) {
    this.#c = c;
    this.#egress = egress;
    this.#owners = new Set(owners);
  }

  get config(): NetworkConfig {
    return this.#c;
  }

  get proxyUrl(): string | null {
    return this.#egress?.proxyUrl ?? null;
  }

  /** Replaces one owner's members and egress entries, then applies the whole ruleset and policy. */
  set(
    owner: string,
    members: readonly TenantNet[],
    egress: Parameters<EgressRegistry["setTenants"]>[0],
  ): Promise<void> {
    const run = this.#queue.then(async () => {
      this.#members.set(owner, members);
      this.#egressEntries.set(owner, egress);
      if ([...this.#owners].some((o) => !this.#members.has(o))) return;
      await applyRuleset(renderRuleset(this.#c, [...this.#members.values()].flat()));
      await this.#egress?.setTenants([...this.#egressEntries.values()].flat());
    });
    this.#queue = run.catch(() => {});
    return run;
  }
}
