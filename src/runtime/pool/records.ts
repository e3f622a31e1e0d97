import { chmod, mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Plan } from "../../core/plans.ts";
import { parseTenantName } from "../../core/tenant.ts";
import { PoolError, tenantUid } from "./layout.ts";
import { checkPoolId } from "./storage.ts";

/** A pool as its record says: where it sits and what it holds. */
export interface PoolRecord {
  id: string;
  index: number;
  slot: number;
  idMapBase: number;
  capacity: number;
  memoryBytes: number;
  cpus: number;
  pids: number;
}

/** A Starter tenant as its record says: its pool and index, and its gateway while it runs. */
export interface TenantRecord {
  name: string;
  tenantId: string;
  slot: number;
  pool: string;
  index: number;
  airGapped: boolean;
  plan: Pick<Plan, "memoryBytes" | "cpus" | "pids">;
  pid: number | null;
  startTicks: number | null;
  startedAt: number | null;
}

/** Host uid of the tenant with index `index` in `pool`. */
export function hostUid(pool: PoolRecord, index: number): number {
  return pool.idMapBase + tenantUid(index);
}

/**
 * The pool driver's bookkeeping: root-owned JSON under `poolsDir` (`pools/<id>/record.json`,
 * `tenants/<name>.json`), each written to a temporary file and renamed into place, so a new
 * driver object adopts every pool and tenant from them. Names and pool ids are checked before
 * they reach a path.
 */
export class PoolRecords {
  constructor(readonly poolsDir: string) {}

  /** Makes the directories: poolsDir and pools/ searchable only (0711), tenants/ 0700. */
  async prepare(): Promise<void> {
    // Search permission only: a pool's mapped root must reach its rootfs through here.
    await mkdir(this.poolsDir, { recursive: true, mode: 0o711 });
    await chmod(this.poolsDir, 0o711);
    await mkdir(join(this.poolsDir, "pools"), { recursive: true, mode: 0o711 });
    await mkdir(join(this.poolsDir, "tenants"), { recursive: true, mode: 0o700 });
  }

  /** The pool's own directory (its record, rootfs and log). */
  poolDir(pool: string): string {
    return join(this.poolsDir, "pools", checkPoolId(pool));
  }
  tenantPath(name: string): string {
    return join(this.poolsDir, "tenants", `${parseTenantName(name)}.json`);
  }

  tenant(name: string): Promise<TenantRecord | undefined> {
    return this.#readJson<TenantRecord>(this.tenantPath(name));
  }
  pool(pool: string): Promise<PoolRecord | undefined> {
    return this.#readJson<PoolRecord>(join(this.poolDir(pool), "record.json"));
  }
  writeTenant(rec: TenantRecord): Promise<void> {
    return this.#writeJson(this.tenantPath(rec.name), rec);
  }
  /** Writes the pool's record, making its directory (0711) first. */
  async writePool(rec: PoolRecord): Promise<void> {
    await mkdir(this.poolDir(rec.id), { recursive: true, mode: 0o711 });
    await this.#writeJson(join(this.poolDir(rec.id), "record.json"), rec);
  }
  async removeTenant(name: string): Promise<void> {
    await rm(this.tenantPath(name), { force: true });
  }
  /** Removes the pool's directory: record, rootfs, log. */
  async removePool(pool: string): Promise<void> {
    await rm(this.poolDir(pool), { recursive: true, force: true });
  }

  /** Every tenant record, by name; files that are not a tenant's are passed over. */
  async tenants(): Promise<TenantRecord[]> {
    const out: TenantRecord[] = [];
    for (const f of await readdir(join(this.poolsDir, "tenants")).catch(() => [] as string[])) {
      if (!f.endsWith(".json")) continue;
      try {
        const r = await this.tenant(parseTenantName(f.slice(0, -5)));
        if (r) out.push(r);
      } catch {
        // not ours
      }
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }
  /** Every pool record, by index. */
  async pools(): Promise<PoolRecord[]> {
    const out: PoolRecord[] = [];
    for (const d of await readdir(join(this.poolsDir, "pools")).catch(() => [] as string[])) {
      if (!/^pool-\d{1,5}$/.test(d)) continue;
      const r = await this.pool(d);
      if (r) out.push(r);
    }
    return out.sort((a, b) => a.index - b.index);
  }

  async #readJson<T>(path: string): Promise<T | undefined> {
    try {
      return JSON.parse(await readFile(path, "utf8")) as T;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new PoolError("runtime_failed", `record ${path} is unreadable`, { cause: err });
    }
  }
  async #writeJson(path: string, value: unknown): Promise<void> {
    await writeFile(`${path}.tmp`, `${JSON.stringify(value)}\n`, { mode: 0o600 });
    await rename(`${path}.tmp`, path);
  }
}
