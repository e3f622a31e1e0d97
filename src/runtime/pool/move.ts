import { lchown } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import { execFile } from "../../lib/exec.ts";
import type { InstanceSpec } from "../types.ts";
import type { TenantCgroup } from "./cgroups.ts";
import { PoolError } from "./layout.ts";
import type { PoolContainers } from "./pools.ts";
import { hostUid, type PoolRecord, type PoolRecords, type TenantRecord } from "./records.ts";
import { checkPoolId, type PoolStorage } from "./storage.ts";

/** What a move needs of the driver. */
export interface MoveParts {
  records: PoolRecords;
  pools: PoolContainers;
  storage: PoolStorage;
  /** Whether the tenant's gateway runs. */
  alive: (rec: TenantRecord, pool: PoolRecord) => Promise<boolean>;
  /** Stops the tenant's gateway (the driver's stop, inside its lock). */
  stop: (name: string, signal?: AbortSignal) => Promise<void>;
  /** Writes the tenant's directories and config in `pool`; returns its directory (unlocked). */
  writeTenantFiles: (
    spec: InstanceSpec,
    pool: PoolRecord,
    rec: TenantRecord,
    signal?: AbortSignal,
  ) => Promise<string>;
  cgroup: (rec: TenantRecord) => TenantCgroup;
  log?: Logger;
}

/**
 * Moves a tenant to another pool (`to`, or wherever placement puts it), data included: the
 * gateway stops, its directory is copied to the new pool's volume under its new uid, its config
 * gets its new port, the old directory goes (and the old pool, when it is left empty). Returns
 * whether its gateway was running (null: it is in `to` already, nothing done). Its address and
 * URL do not change. The caller holds the driver's lock.
 */
export async function moveTenant(
  parts: MoveParts,
  spec: InstanceSpec,
  name: string,
  opts: { to?: string; signal?: AbortSignal },
): Promise<boolean | null> {
  const { records, pools, storage } = parts;
  const signal = opts.signal;
  const rec = await records.tenant(name);
  if (!rec) throw new PoolError("runtime_failed", `instance ${name} has not been created`);
  if (opts.to !== undefined && rec.pool === checkPoolId(opts.to)) return null;
  const from = await records.pool(rec.pool);
  if (!from) throw new PoolError("runtime_failed", `pool ${rec.pool} of ${name} has no record`);
  const running = await parts.alive(rec, from);
  await parts.stop(name, signal);
  let target: { pool: PoolRecord; index: number };
  if (opts.to !== undefined) {
    const to = await pools.poolOf(opts.to, spec.plan);
    const used = (await records.tenants()).filter((t) => t.pool === to.id).map((t) => t.index);
    const index = Array.from({ length: to.capacity }, (_, i) => i).find((i) => !used.includes(i));
    if (index === undefined) throw new PoolError("capacity_exhausted", `pool ${to.id} is full`);
    target = { pool: to, index };
  } else {
    target = await pools.place(spec.plan, rec.pool);
  }
  const moved: TenantRecord = {
    ...rec,
    pool: target.pool.id,
    index: target.index,
    pid: null,
    startTicks: null,
    startedAt: null,
  };
  const src = await storage.openTenant(from.id, spec, hostUid(from, rec.index), signal);
  await storage.openPool(target.pool.id, signal);
  const dst = await parts.writeTenantFiles(spec, target.pool, moved, signal);
  const newUid = hostUid(target.pool, target.index);
  // Copy (symlinks as links, modes and times kept), then hand everything to the new uid;
  // what was root's (the gateway log, the config) stays root's.
  await execFile(["cp", "-a", "--no-preserve=ownership", `${src}/.`, `${dst}/`], signal ? { signal } : {});
  await execFile(["chown", "-R", "-P", `${newUid}:${newUid}`, dst], signal ? { signal } : {});
  for (const f of ["gateway.log", "gateway.log.1"]) await lchown(join(dst, f), 0, 0).catch(() => {});
  await parts.writeTenantFiles(spec, target.pool, moved, signal);
  await records.writeTenant(moved);
  await storage.closeTenant(target.pool.id, name, signal);
  await storage.destroyTenant(from.id, name, signal);
  await parts.cgroup(rec).remove();
  await pools.ensure(target.pool, signal);
  await pools.applyNet(target.pool, signal);
  if ((await records.tenants()).some((t) => t.pool === from.id)) await pools.resyncAfterChange(from, signal);
  else await pools.remove(from, signal);
  parts.log?.info({ tenant: name, from: from.id, to: target.pool.id }, "starter tenant moved");
  return running;
}
