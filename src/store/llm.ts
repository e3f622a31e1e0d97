import { SqliteStore } from "./db.ts";

/** Tokens and requests of one tenant, one UTC day, one model (a row of llm_usage). */
export interface UsageRow {
  /** YYYY-MM-DD, UTC. */
  day: string;
  model: string;
  inputTokens: number;
  outputTokens: number;
  requests: number;
}

/** What the relay counted for one tenant, day and model since its last drain: added to the row. */
export interface UsageAddition extends UsageRow {
  tenantId: string;
}

/** Sums over a span of days (all models). */
export interface UsageTotals {
  inputTokens: number;
  outputTokens: number;
  requests: number;
}

/** A tenant's own LLM provider (bring your own key); its key is sealed in tenant_secrets. */
export interface OwnProviderRecord {
  /** One of the operator's allowed base URLs, normalized (no trailing slash). */
  baseUrl: string;
  /** The model the tenant asked for at its provider; null: the one its gateway asks for. */
  model: string | null;
  /** Epoch ms of the last change. */
  updatedAt: number;
}

interface UsageDbRow {
  day: string;
  model: string;
  input_tokens: number;
  output_tokens: number;
  requests: number;
}

const TOTALS_SQL = `SELECT coalesce(sum(input_tokens), 0) AS input_tokens, coalesce(sum(output_tokens), 0) AS output_tokens,
  coalesce(sum(requests), 0) AS requests FROM llm_usage WHERE tenant_id = ? AND day >= ? AND day <= ?`;

/**
 * The LLM relay's records (migration 4): usage per tenant, UTC day and model, and each tenant's
 * own provider. Both go with the tenant (cascade). Days are `YYYY-MM-DD` strings, so a month is
 * the range `YYYY-MM-01` to `YYYY-MM-31`.
 */
export class LlmStore extends SqliteStore {
  /** Adds every addition to its row (made when missing), all in one transaction. */
  addUsage(additions: readonly UsageAddition[]): void {
    const up = this.db.prepare(
      `INSERT INTO llm_usage (tenant_id, day, model, input_tokens, output_tokens, requests)
       VALUES (@tenantId, @day, @model, @inputTokens, @outputTokens, @requests)
       ON CONFLICT (tenant_id, day, model) DO UPDATE SET
         input_tokens = input_tokens + excluded.input_tokens,
         output_tokens = output_tokens + excluded.output_tokens,
         requests = requests + excluded.requests`,
    );
    this.tx(() => {
      for (const a of additions) up.run(a);
    });
  }

  /** A tenant's rows from `fromDay` to `toDay` (inclusive), oldest first, then by model. */
  usage(tenantId: string, fromDay: string, toDay: string): UsageRow[] {
    return (
      this.db
        .prepare(
          "SELECT day, model, input_tokens, output_tokens, requests FROM llm_usage WHERE tenant_id = ? AND day >= ? AND day <= ? ORDER BY day, model",
        )
        .all(tenantId, fromDay, toDay) as UsageDbRow[]
    ).map((r) => ({
      day: r.day,
      model: r.model,
      inputTokens: r.input_tokens,
      outputTokens: r.output_tokens,
      requests: r.requests,
    }));
  }

  /** A tenant's sums from `fromDay` to `toDay` (inclusive), every model; zeros without rows. */
  totals(tenantId: string, fromDay: string, toDay: string): UsageTotals {
    const r = this.db.prepare(TOTALS_SQL).get(tenantId, fromDay, toDay) as Omit<UsageDbRow, "day" | "model">;
    return { inputTokens: r.input_tokens, outputTokens: r.output_tokens, requests: r.requests };
  }

  /** How many rows a tenant has (every day and model). */
  rowCount(tenantId: string): number {
    return (
      this.db.prepare("SELECT count(*) AS n FROM llm_usage WHERE tenant_id = ?").get(tenantId) as {
        n: number;
      }
    ).n;
  }

  ownProvider(tenantId: string): OwnProviderRecord | undefined {
    const r = this.db
      .prepare("SELECT base_url, model, updated_at FROM llm_own_providers WHERE tenant_id = ?")
      .get(tenantId) as { base_url: string; model: string | null; updated_at: number } | undefined;
    return r && { baseUrl: r.base_url, model: r.model, updatedAt: r.updated_at };
  }

  setOwnProvider(tenantId: string, p: OwnProviderRecord): void {
    this.db
      .prepare(
        `INSERT INTO llm_own_providers (tenant_id, base_url, model, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (tenant_id) DO UPDATE SET base_url = excluded.base_url, model = excluded.model,
         updated_at = excluded.updated_at`,
      )
      .run(tenantId, p.baseUrl, p.model, p.updatedAt);
  }

  /** Removes a tenant's own provider; returns whether it had one. */
  clearOwnProvider(tenantId: string): boolean {
    return this.db.prepare("DELETE FROM llm_own_providers WHERE tenant_id = ?").run(tenantId).changes > 0;
  }
}
