import type { Tier } from "../core/tenant.ts";
import { SqliteStore } from "./db.ts";

/** What the last check of a registered model's file found. */
export type ModelFileStatus = "ready" | "missing" | "corrupt";

/** A GGUF model the operator registered: a file pinned by size and SHA-256. */
export interface ModelRecord {
  /** Served as the model id in /v1/models; what plans and tenants refer to. */
  id: string;
  /** Absolute path of the GGUF file on the host. */
  path: string;
  size: number;
  /** Lower-case hex. */
  sha256: string;
  /** Epoch ms. */
  registeredAt: number;
  /** Epoch ms of the last check of the file against its pins. */
  verifiedAt: number;
  status: ModelFileStatus;
  /** Why the last check failed; null when it passed. */
  reason: string | null;
}

interface ModelRow {
  id: string;
  path: string;
  size: number;
  sha256: string;
  registered_at: number;
  verified_at: number;
  status: ModelFileStatus;
  reason: string | null;
}

function fromRow(r: ModelRow): ModelRecord {
  return {
    id: r.id,
    path: r.path,
    size: r.size,
    sha256: r.sha256,
    registeredAt: r.registered_at,
    verifiedAt: r.verified_at,
    status: r.status,
    reason: r.reason,
  };
}

/** A table that records a choice of model: a plan's default (by tier) or a tenant's own (by id). */
interface Choice {
  table: "plan_models" | "tenant_models";
  key: "tier" | "tenant_id";
}

const CHOICES = {
  plan: { table: "plan_models", key: "tier" },
  tenant: { table: "tenant_models", key: "tenant_id" },
} as const satisfies Record<string, Choice>;

/**
 * Registered models, the default model of each plan and each tenant's own choice (migration 2).
 * Synchronous: SQLite is embedded. Referential rules live in the schema: a plan or tenant can only
 * point at a registered model, and a model that one points at cannot be deleted.
 */
export class ModelStore extends SqliteStore {
  insert(m: ModelRecord): void {
    this.db
      .prepare(
        `INSERT INTO models (id, path, size, sha256, registered_at, verified_at, status, reason)
         VALUES (@id, @path, @size, @sha256, @registeredAt, @verifiedAt, @status, @reason)`,
      )
      .run(m);
  }

  /** Replaces the file, pins and check result of an existing model; its assignments stay. */
  replace(m: ModelRecord): void {
    this.db
      .prepare(
        `UPDATE models SET path = @path, size = @size, sha256 = @sha256, registered_at = @registeredAt,
         verified_at = @verifiedAt, status = @status, reason = @reason WHERE id = @id`,
      )
      .run(m);
  }

  get(id: string): ModelRecord | undefined {
    const row = this.db.prepare("SELECT * FROM models WHERE id = ?").get(id) as ModelRow | undefined;
    return row && fromRow(row);
  }

  list(): ModelRecord[] {
    return (this.db.prepare("SELECT * FROM models ORDER BY id").all() as ModelRow[]).map(fromRow);
  }

  /** Records the outcome of a check of the model's file. */
  setStatus(id: string, status: ModelFileStatus, reason: string | null, now: number): void {
    this.db
      .prepare("UPDATE models SET status = ?, reason = ?, verified_at = ? WHERE id = ?")
      .run(status, reason, now, id);
  }

  /** Removes a model; returns whether it was there. Throws (foreign key) while a plan or tenant uses it. */
  remove(id: string): boolean {
    return this.db.prepare("DELETE FROM models WHERE id = ?").run(id).changes > 0;
  }

  /** The default model of a plan, by tier. */
  planModel(tier: Tier): string | undefined {
    return this.#choice(CHOICES.plan, tier);
  }

  /** Sets (or with null, clears) a plan's default model. */
  setPlanModel(tier: Tier, modelId: string | null): void {
    this.#choose(CHOICES.plan, tier, modelId);
  }

  /** A tenant's own choice of model, by tenant id. */
  tenantModel(tenantId: string): string | undefined {
    return this.#choice(CHOICES.tenant, tenantId);
  }

  /** Sets (or with null, clears) a tenant's own model; it goes with the tenant (cascade). */
  setTenantModel(tenantId: string, modelId: string | null): void {
    this.#choose(CHOICES.tenant, tenantId, modelId);
  }

  #choice(c: Choice, key: string): string | undefined {
    const row = this.db.prepare(`SELECT model_id FROM ${c.table} WHERE ${c.key} = ?`).get(key) as
      | { model_id: string }
      | undefined;
    return row?.model_id;
  }

  #choose(c: Choice, key: string, modelId: string | null): void {
    if (modelId === null) this.db.prepare(`DELETE FROM ${c.table} WHERE ${c.key} = ?`).run(key);
    else
      this.db
        .prepare(
          `INSERT INTO ${c.table} (${c.key}, model_id) VALUES (?, ?) ON CONFLICT (${c.key}) DO UPDATE SET model_id = excluded.model_id`,
        )
        .run(key, modelId);
  }

  /** Who uses a model: the plans it is the default of and the names of the tenants that chose it. */
  usersOf(id: string): { plans: Tier[]; tenants: string[] } {
    const plans = (
      this.db.prepare("SELECT tier FROM plan_models WHERE model_id = ? ORDER BY tier").all(id) as {
        tier: Tier;
      }[]
    ).map((r) => r.tier);
    const tenants = (
      this.db
        .prepare(
          "SELECT t.name FROM tenant_models m JOIN tenants t ON t.id = m.tenant_id WHERE m.model_id = ? ORDER BY t.name",
        )
        .all(id) as { name: string }[]
    ).map((r) => r.name);
    return { plans, tenants };
  }
}
