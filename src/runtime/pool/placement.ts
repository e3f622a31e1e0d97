import { ClawkeepError } from "../../core/errors.ts";

/**
 * Where a new Starter tenant goes. Pure: the driver reads its records, asks, then writes.
 * - into the fullest pool that still has room (fills pools before opening new ones, so empty
 *   pools get removed and the host keeps few half-empty ones);
 * - otherwise into a new pool with the lowest free pool number;
 * - inside a pool, the lowest free tenant index (which gives the tenant's uid and port range).
 */
export interface PoolOccupancy {
  /** Pool number (pool-<n>). */
  index: number;
  capacity: number;
  /** Tenant indices in use. */
  used: readonly number[];
}

export type Placement = { pool: number; index: number; newPool: boolean };

export class PoolCapacityError extends ClawkeepError {
  constructor(message: string) {
    super("capacity_exhausted", message);
  }
}

export function freeIndex(capacity: number, used: readonly number[]): number | undefined {
  const taken = new Set(used);
  for (let i = 0; i < capacity; i++) if (!taken.has(i)) return i;
  return undefined;
}

export function choosePlacement(
  pools: readonly PoolOccupancy[],
  opts: { maxPools: number; capacityOfNew: number; exclude?: number },
): Placement {
  const withRoom = pools
    .filter((p) => p.index !== opts.exclude && p.used.length < p.capacity)
    .sort((a, b) => b.used.length - a.used.length || a.index - b.index);
  for (const p of withRoom) {
    const i = freeIndex(p.capacity, p.used);
    if (i !== undefined) return { pool: p.index, index: i, newPool: false };
  }
  if (opts.capacityOfNew < 1) {
    throw new PoolCapacityError("a pool's memory budget does not hold even one tenant of this plan");
  }
  const taken = new Set(pools.map((p) => p.index));
  for (let n = 0; n < opts.maxPools; n++) {
    if (!taken.has(n)) return { pool: n, index: 0, newPool: true };
  }
  throw new PoolCapacityError(
    `every Starter pool is full (${pools.length} pools, the most this host is configured for): raise the pool count or the pool memory`,
  );
}

/** How many tenants of a plan one pool holds: its memory budget over the plan's per-tenant bound. */
export function poolCapacity(poolMemoryBytes: number, tenantMemoryBytes: number, maxTenants: number): number {
  if (!(tenantMemoryBytes > 0))
    throw new ClawkeepError("invalid_request", "a plan's memory must be positive");
  return Math.max(0, Math.min(maxTenants, Math.floor(poolMemoryBytes / tenantMemoryBytes)));
}
