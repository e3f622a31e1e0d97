import { ClawkeepError } from "../core/errors.ts";
import type { PoolDriver } from "../runtime/pool/driver.ts";
import type { TenantStore } from "../store/tenants.ts";
import type { InstanceSpecs } from "./instance-spec.ts";
import type { Reconciler } from "./reconciler.ts";
import type { Principal, TenantService } from "./tenants.ts";

export interface PoolView {
  id: string;
  /** runc's view: running, stopped, absent... */
  state: string;
  /** The pool's own address on the tenants' bridge. */
  address: string;
  capacity: number;
  tenants: string[];
}

/**
 * The operator's view of the Starter pools, and moving a Starter tenant between them. Only the
 * operator: a tenant has no business knowing who its neighbours are.
 */
export class PoolService {
  constructor(
    private readonly deps: {
      pools: () => PoolDriver | null;
      tenants: TenantService;
      reconciler: Reconciler;
      specs: InstanceSpecs;
      store: TenantStore;
      clock?: () => number;
    },
  ) {}

  #driver(principal: Principal): PoolDriver {
    if (principal.kind !== "operator")
      throw new ClawkeepError("forbidden", "only the operator can see pools");
    const d = this.deps.pools();
    if (!d)
      throw new ClawkeepError(
        "runtime_unavailable",
        "no Starter pools on this platform (sandbox off: Starter tenants are plain host processes)",
      );
    return d;
  }

  async list(principal: Principal): Promise<PoolView[]> {
    return this.#driver(principal).pools();
  }

  /**
   * Moves a Starter tenant to pool `to` (or wherever placement puts it), data included; its URL
   * and address stay. The reconciler starts it again in its new pool (through the start queue).
   */
  async move(principal: Principal, name: string, to?: string): Promise<{ tenant: string; pool: string }> {
    if (principal.kind !== "operator")
      throw new ClawkeepError("forbidden", "only the operator can move tenants");
    const t = this.deps.tenants.get(principal, name);
    const driver = this.#driver(principal);
    if (t.tier !== "starter")
      throw new ClawkeepError(
        "invalid_request",
        `${t.name} is a ${t.tier} tenant: only Starter tenants live in pools`,
      );
    const spec = this.deps.specs(t);
    const { store } = this.deps;
    const now = this.deps.clock ?? Date.now;
    const from = String((await driver.status(t.name)).details.pool ?? "?");
    const st = await this.deps.reconciler.exclusive(t.id, async (signal) => {
      const wasUp = t.actual === "running" || t.actual === "starting" || t.actual === "restarting";
      if (wasUp) store.setActual(t.id, "restarting", `moving from ${from}`, now());
      const moved = await driver.move(spec, { ...(to === undefined ? {} : { to }), signal });
      const pool = String(moved.details.pool);
      store.addEvent(t.id, "moved", `moved from ${from} to ${pool} by the operator, data included`, now());
      // The reconciler starts it in its new pool (through the start queue) right after.
      if (wasUp) store.setActual(t.id, "restarting", `moved to ${pool}; starting there`, now());
      return moved;
    });
    return { tenant: t.name, pool: String(st.details.pool) };
  }
}
