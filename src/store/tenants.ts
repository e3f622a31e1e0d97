import type { ActualState, DesiredState, Subscription, Tenant, Tier } from "../core/tenant.ts";
import { SqliteStore } from "./db.ts";

interface TenantRow {
  id: string;
  name: string;
  tier: Tier;
  slot: number;
  created_at: number;
  trial_ends_at: number;
  subscription: Subscription;
  desired: DesiredState;
  actual: ActualState;
  reason: string | null;
  updated_at: number;
}

function fromRow(r: TenantRow): Tenant {
  return {
    id: r.id,
    name: r.name,
    tier: r.tier,
    slot: r.slot,
    createdAt: r.created_at,
    trialEndsAt: r.trial_ends_at,
    subscription: r.subscription,
    desired: r.desired,
    actual: r.actual,
    reason: r.reason,
    updatedAt: r.updated_at,
  };
}

export interface TenantEvent {
  id: number;
  at: number;
  type: string;
  message: string;
}

export interface ApiTokenRecord {
  id: string;
  tenantId: string;
  label: string;
  createdAt: number;
  lastUsedAt: number | null;
}

/** Tenants, their sealed secrets, API token hashes and events. Synchronous: SQLite is embedded. */
export class TenantStore extends SqliteStore {
  insert(t: Tenant): void {
    this.db
      .prepare(
        `INSERT INTO tenants (id, name, tier, slot, created_at, trial_ends_at, subscription, desired, actual, reason, updated_at)
         VALUES (@id, @name, @tier, @slot, @createdAt, @trialEndsAt, @subscription, @desired, @actual, @reason, @updatedAt)`,
      )
      .run(t);
  }

  get(name: string): Tenant | undefined {
    const row = this.db.prepare("SELECT * FROM tenants WHERE name = ?").get(name) as TenantRow | undefined;
    return row && fromRow(row);
  }

  getById(id: string): Tenant | undefined {
    const row = this.db.prepare("SELECT * FROM tenants WHERE id = ?").get(id) as TenantRow | undefined;
    return row && fromRow(row);
  }

  list(): Tenant[] {
    return (this.db.prepare("SELECT * FROM tenants ORDER BY name").all() as TenantRow[]).map(fromRow);
  }

  /** The lowest slot no tenant holds, below max; undefined when all are taken. */
  freeSlot(max: number): number | undefined {
    const used = new Set(
      (this.db.prepare("SELECT slot FROM tenants").all() as { slot: number }[]).map((r) => r.slot),
    );
    for (let s = 0; s < max; s++) if (!used.has(s)) return s;
    return undefined;
  }

  setActual(id: string, actual: ActualState, reason: string | null, now: number): void {
    this.db
      .prepare("UPDATE tenants SET actual = ?, reason = ?, updated_at = ? WHERE id = ?")
      .run(actual, reason, now, id);
  }

  setDesired(id: string, desired: DesiredState, now: number): void {
    this.db.prepare("UPDATE tenants SET desired = ?, updated_at = ? WHERE id = ?").run(desired, now, id);
  }

  setSubscription(id: string, subscription: Subscription, now: number): void {
    this.db
      .prepare("UPDATE tenants SET subscription = ?, updated_at = ? WHERE id = ?")
      .run(subscription, now, id);
  }

  /** Removes the tenant and, by cascade, its secrets, tokens, events and LLM usage. */
  remove(id: string): void {
    this.db.prepare("DELETE FROM tenants WHERE id = ?").run(id);
  }

  putSecret(tenantId: string, purpose: string, sealed: Buffer, now: number): void {
    this.db
      .prepare(
        `INSERT INTO tenant_secrets (tenant_id, purpose, sealed, created_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (tenant_id, purpose) DO UPDATE SET sealed = excluded.sealed, created_at = excluded.created_at`,
      )
      .run(tenantId, purpose, sealed, now);
  }

  getSecret(tenantId: string, purpose: string): Buffer | undefined {
    const row = this.db
      .prepare("SELECT sealed FROM tenant_secrets WHERE tenant_id = ? AND purpose = ?")
      .get(tenantId, purpose) as { sealed: Buffer } | undefined;
    return row?.sealed;
  }

  /** Removes a sealed secret; returns whether there was one. */
  deleteSecret(tenantId: string, purpose: string): boolean {
    return (
      this.db.prepare("DELETE FROM tenant_secrets WHERE tenant_id = ? AND purpose = ?").run(tenantId, purpose)
        .changes > 0
    );
  }

  addApiToken(rec: ApiTokenRecord, hash: string): void {
    this.db
      .prepare(
        "INSERT INTO api_tokens (id, tenant_id, hash, label, created_at, last_used_at) VALUES (?, ?, ?, ?, ?, NULL)",
      )
      .run(rec.id, rec.tenantId, hash, rec.label, rec.createdAt);
  }

  findApiToken(hash: string): ApiTokenRecord | undefined {
    const row = this.db
      .prepare("SELECT id, tenant_id, label, created_at, last_used_at FROM api_tokens WHERE hash = ?")
      .get(hash) as
      | { id: string; tenant_id: string; label: string; created_at: number; last_used_at: number | null }
      | undefined;
    return (
      row && {
        id: row.id,
        tenantId: row.tenant_id,
        label: row.label,
        createdAt: row.created_at,
        lastUsedAt: row.last_used_at,
      }
    );
  }

  touchApiToken(id: string, now: number): void {
    this.db.prepare("UPDATE api_tokens SET last_used_at = ? WHERE id = ?").run(now, id);
  }

  listApiTokens(tenantId: string): ApiTokenRecord[] {
    return (
      this.db
        .prepare(
          "SELECT id, tenant_id, label, created_at, last_used_at FROM api_tokens WHERE tenant_id = ? ORDER BY created_at",
        )
        .all(tenantId) as {
        id: string;
        tenant_id: string;
        label: string;
        created_at: number;
        last_used_at: number | null;
      }[]
    ).map((r) => ({
      id: r.id,
      tenantId: r.tenant_id,
      label: r.label,
      createdAt: r.created_at,
      lastUsedAt: r.last_used_at,
    }));
  }

  deleteApiToken(tenantId: string, id: string): boolean {
    return (
      this.db.prepare("DELETE FROM api_tokens WHERE tenant_id = ? AND id = ?").run(tenantId, id).changes > 0
    );
  }

  addEvent(tenantId: string, type: string, message: string, now: number): void {
    this.db
      .prepare("INSERT INTO events (tenant_id, at, type, message) VALUES (?, ?, ?, ?)")
      .run(tenantId, now, type, message);
  }

  events(tenantId: string, limit = 100): TenantEvent[] {
    return (
      this.db
        .prepare("SELECT id, at, type, message FROM events WHERE tenant_id = ? ORDER BY id DESC LIMIT ?")
        .all(tenantId, limit) as TenantEvent[]
    ).reverse();
  }
}
