import type { Db } from "./db.ts";

/**
 * Egress allowlist additions: host patterns (already validated and normalized by the egress
 * policy's parser) every tenant may reach, and those one tenant may reach, on top of the
 * proxy's defaults. A tenant's go with it when it is deleted.
 */
export class EgressAllowStore {
  constructor(readonly db: Db) {}

  operator(): string[] {
    return (
      this.db.prepare("SELECT pattern FROM operator_egress_allow ORDER BY pattern").all() as Array<{
        pattern: string;
      }>
    ).map((r) => r.pattern);
  }

  /** Replaces every operator addition in one transaction. */
  setOperator(patterns: readonly string[], now: number): void {
    this.db.transaction(() => {
      this.db.prepare("DELETE FROM operator_egress_allow").run();
      const ins = this.db.prepare("INSERT INTO operator_egress_allow (pattern, added_at) VALUES (?, ?)");
      for (const p of new Set(patterns)) ins.run(p, now);
    })();
  }

  tenant(tenantId: string): string[] {
    return (
      this.db
        .prepare("SELECT pattern FROM tenant_egress_allow WHERE tenant_id = ? ORDER BY pattern")
        .all(tenantId) as Array<{ pattern: string }>
    ).map((r) => r.pattern);
  }

  /** Replaces one tenant's additions in one transaction. */
  setTenant(tenantId: string, patterns: readonly string[], now: number): void {
    this.db.transaction(() => {
      this.db.prepare("DELETE FROM tenant_egress_allow WHERE tenant_id = ?").run(tenantId);
      const ins = this.db.prepare(
        "INSERT INTO tenant_egress_allow (tenant_id, pattern, added_at) VALUES (?, ?, ?)",
      );
      for (const p of new Set(patterns)) ins.run(tenantId, p, now);
    })();
  }
}
