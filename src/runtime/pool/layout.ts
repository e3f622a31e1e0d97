import { ClawkeepError } from "../../core/errors.ts";
import { parseTenantName } from "../../core/tenant.ts";
import type { InstancePaths } from "../../openclaw/config.ts";
import { checkPoolId } from "./storage.ts";

/** Names and numbers of a pool and its tenants, derived from their indexes (pure). See README.md. */

/** A pool driver's failure (a ClawkeepError; `code` says whether retrying may help). */
export class PoolError extends ClawkeepError {}

/** Container uid of the tenant with index i inside its pool. */
export const TENANT_UID_BASE = 10_000;
/** Tenant i's port range inside the pool's namespace: [19000 + 200 i, 19000 + 200 i + 199]. */
export const TENANT_PORT_BASE = 19_000;
export const TENANT_PORT_SPAN = 200;
/** Outgoing connections inside a pool take source ports above every tenant's range. */
export const EPHEMERAL_PORTS = "60000 65000";
export const MAX_TENANTS_PER_POOL = 200;
/** Where the pool's volume is mounted inside the pool. */
export const POOL_DIR = "/pool";
export const NOBODY = 65534;
/**
 * Every pool's hostname. OpenClaw records its state lease with the holder's hostname, pid and
 * start time, and reclaims a dead holder's lease only on the same hostname: one name for all
 * pools lets a tenant moved to another pool (or a dead pool's tenants) start at once instead of
 * waiting for the old lease to expire. The pid plus start time still tell holders apart.
 */
export const POOL_HOSTNAME = "clawkeep-starter";

export function poolId(index: number): string {
  return `pool-${index}`;
}
/** The pool's OCI container id. */
export function containerId(pool: string): string {
  return `ck${checkPoolId(pool)}`;
}
/** Container uid of the tenant with index `index` in its pool. */
export function tenantUid(index: number): number {
  return TENANT_UID_BASE + index;
}
/** First port of the tenant's range; its gateway listens on it. */
export function tenantPort(index: number): number {
  return TENANT_PORT_BASE + TENANT_PORT_SPAN * index;
}
/** The tenant's paths as its gateway sees them inside the pool. */
export function tenantPaths(name: string): InstancePaths {
  const dir = `${POOL_DIR}/tenants/${parseTenantName(name)}`;
  return {
    stateDir: `${dir}/state`,
    home: `${dir}/home`,
    tmpDir: `${dir}/tmp`,
    workspaceDir: `${dir}/workspace`,
    configPath: `${dir}/state/openclaw.json`,
    logFile: `${dir}/state/logs/openclaw.log`,
  };
}
