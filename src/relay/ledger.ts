import { randomUUID } from "node:crypto";
import { type Clock, crossings, type PeriodCounters, rolled, utcDay, utcMonth } from "./limits.ts";
import type { RelayEvent, RelayEventType, RelayTenant, UsageBatch, UsageDelta } from "./types.ts";

/** Events kept between two drains; later ones are counted in `droppedEvents`, not kept. */
export const MAX_EVENTS = 1_000;

/** The tokens one request used, as the provider reported them. */
export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
}

type Who = Pick<RelayTenant, "tenantId" | "name">;

/**
 * What the relay has counted: each tenant's tokens in the current day and month (what budgets
 * are checked against: the pushed `used` plus what was counted and not yet handed out), the
 * deltas not yet handed out, the batch handed out and not yet acknowledged, and the events. No
 * I/O; the clock is injected.
 */
export class UsageLedger {
  readonly #counters = new Map<string, PeriodCounters>();
  #fresh = new Map<string, UsageDelta>();
  #events: RelayEvent[] = [];
  #dropped = 0;
  #outstanding: UsageBatch | null = null;

  constructor(private readonly clock: Clock) {}

  /**
   * Takes the counters of a pushed state: each tenant's `used`, plus the deltas of its current
   * day and month that the relay holds (fresh or handed out without acknowledgement). Tenants
   * missing from `tenants` are forgotten (their undrained deltas stay until drained).
   */
  load(tenants: readonly RelayTenant[]): void {
    const now = this.clock();
    const day = utcDay(now);
    const month = utcMonth(now);
    const held = new Map<string, { day: number; month: number }>();
    for (const d of [...(this.#outstanding?.usage ?? []), ...this.#fresh.values()]) {
      const h = held.get(d.tenantId) ?? { day: 0, month: 0 };
      const tokens = d.inputTokens + d.outputTokens;
      if (d.day === day) h.day += tokens;
      if (d.day.startsWith(month)) h.month += tokens;
      held.set(d.tenantId, h);
    }
    this.#counters.clear();
    for (const t of tenants) {
      const base = rolled(t.used, now);
      const h = held.get(t.tenantId);
      this.#counters.set(t.tenantId, {
        ...base,
        dayTokens: base.dayTokens + (h?.day ?? 0),
        monthTokens: base.monthTokens + (h?.month ?? 0),
      });
    }
  }

  /** The tenant's counters as of now (zero for one the ledger does not know). */
  counters(tenantId: string): PeriodCounters {
    const now = this.clock();
    const c = this.#counters.get(tenantId) ?? { day: "", dayTokens: 0, month: "", monthTokens: 0 };
    const r = rolled(c, now);
    this.#counters.set(tenantId, r);
    return r;
  }

  /**
   * Counts one request the provider answered 2xx (with the usage it reported, if any), and adds
   * budget events for the 80 % and 100 % crossings it caused.
   */
  record(t: Who & Pick<RelayTenant, "limits">, model: string, usage: TokenUsage): void {
    const before = this.counters(t.tenantId);
    const tokens = usage.inputTokens + usage.outputTokens;
    const after = {
      ...before,
      dayTokens: before.dayTokens + tokens,
      monthTokens: before.monthTokens + tokens,
    };
    this.#counters.set(t.tenantId, after);
    const key = `${t.tenantId}\n${model}\n${before.day}`;
    const d = this.#fresh.get(key) ?? {
      tenantId: t.tenantId,
      tenant: t.name,
      model,
      day: before.day,
      inputTokens: 0,
      outputTokens: 0,
      requests: 0,
    };
    d.inputTokens += usage.inputTokens;
    d.outputTokens += usage.outputTokens;
    d.requests += 1;
    this.#fresh.set(key, d);
    const periods = [
      ["daily", before.dayTokens, after.dayTokens, t.limits.tokensPerDay, before.day],
      ["monthly", before.monthTokens, after.monthTokens, t.limits.tokensPerMonth, before.month],
    ] as const;
    for (const [label, from, to, max, period] of periods) {
      for (const type of crossings(from, to, max)) {
        const what = type === "llm_budget_warning" ? "80 % of" : "all of";
        this.event(
          t,
          type,
          `${t.name} has used ${what} its ${label} LLM budget for ${period} (${to} of ${max} tokens)`,
        );
      }
    }
  }

  /** Adds an event for the next drain (beyond MAX_EVENTS it is only counted). */
  event(t: Who, type: RelayEventType, message: string): void {
    if (this.#events.length >= MAX_EVENTS) {
      this.#dropped++;
      return;
    }
    this.#events.push({
      tenant: t.name,
      tenantId: t.tenantId,
      type,
      message,
      at: new Date(this.clock()).toISOString(),
    });
  }

  /**
   * Hands out everything not yet acknowledged: an earlier batch that was never acknowledged is
   * merged into this one (its answer may not have arrived), under a new id.
   */
  drain(): UsageBatch {
    const merged = new Map<string, UsageDelta>();
    for (const d of [...(this.#outstanding?.usage ?? []), ...this.#fresh.values()]) {
      const key = `${d.tenantId}\n${d.model}\n${d.day}`;
      const m = merged.get(key);
      if (m) {
        m.inputTokens += d.inputTokens;
        m.outputTokens += d.outputTokens;
        m.requests += d.requests;
      } else merged.set(key, { ...d });
    }
    const batch: UsageBatch = {
      id: randomUUID(),
      usage: [...merged.values()],
      events: [...(this.#outstanding?.events ?? []), ...this.#events],
      droppedEvents: (this.#outstanding?.droppedEvents ?? 0) + this.#dropped,
    };
    this.#outstanding = batch;
    this.#fresh = new Map();
    this.#events = [];
    this.#dropped = 0;
    return structuredClone(batch);
  }

  /** Forgets the batch `id` once the control plane has stored it. False for any other id (nothing forgotten). */
  ack(id: string): boolean {
    if (this.#outstanding?.id !== id) return false;
    this.#outstanding = null;
    return true;
  }

  /** Deltas not yet acknowledged (fresh and handed out). */
  get pending(): number {
    return this.#fresh.size + (this.#outstanding?.usage.length ?? 0);
  }
}
