import type { RelayLimits } from "./types.ts";

/*
 * Budgets and the request rate, by the relay's clock (injectable: tests move it; days and months
 * roll over at UTC midnight). Pure: no I/O, no timers.
 */

/** Milliseconds since the epoch, like Date.now. */
export type Clock = () => number;

/** YYYY-MM-DD of `ms` in UTC. */
export const utcDay = (ms: number): string => new Date(ms).toISOString().slice(0, 10);
/** YYYY-MM of `ms` in UTC. */
export const utcMonth = (ms: number): string => new Date(ms).toISOString().slice(0, 7);

/** The next UTC midnight after `ms`. */
export function nextUtcDay(ms: number): number {
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1);
}

/** The first instant of the next UTC month after `ms`. */
export function nextUtcMonth(ms: number): number {
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

/** A tenant's tokens in the current day and month. */
export interface PeriodCounters {
  day: string;
  dayTokens: number;
  month: string;
  monthTokens: number;
}

/** `c` as of `now`: a day or month that has passed counts as 0. Returns a new object. */
export function rolled(c: PeriodCounters, now: number): PeriodCounters {
  const day = utcDay(now);
  const month = utcMonth(now);
  return {
    day,
    dayTokens: c.day === day ? c.dayTokens : 0,
    month,
    monthTokens: c.month === month ? c.monthTokens : 0,
  };
}

export type LimitName = "tokens_per_day" | "tokens_per_month" | "requests_per_minute";

/** Why a request is refused: which limit, its figures, and when it resets. */
export interface LimitVerdict {
  limit: LimitName;
  max: number;
  used: number;
  /** When the request would be let through again (ms since the epoch). */
  resetsAt: number;
}

/**
 * The spent token budget, if one is: the month first (it lasts longer, so it is what the user
 * needs to know), then the day. A request is let through while anything is left; it may end
 * over the budget (the provider reports its size afterwards) and the next one is refused.
 */
export function spentBudget(limits: RelayLimits, c: PeriodCounters, now: number): LimitVerdict | null {
  const budgets = [
    ["tokens_per_month", limits.tokensPerMonth, c.monthTokens, nextUtcMonth],
    ["tokens_per_day", limits.tokensPerDay, c.dayTokens, nextUtcDay],
  ] as const;
  for (const [limit, max, used, next] of budgets) {
    if (max !== null && used >= max) return { limit, max, used, resetsAt: next(now) };
  }
  return null;
}

/** Crossings of 80 % and 100 % of a budget between `before` and `after` tokens. */
export function crossings(
  before: number,
  after: number,
  max: number | null,
): Array<"llm_budget_warning" | "llm_budget_exhausted"> {
  if (max === null || after <= before) return [];
  const out: Array<"llm_budget_warning" | "llm_budget_exhausted"> = [];
  const warnAt = max * 0.8;
  if (before < warnAt && after >= warnAt) out.push("llm_budget_warning");
  if (before < max && after >= max) out.push("llm_budget_exhausted");
  return out;
}

/**
 * Requests per sliding minute per key: the start times of the last `limit` requests are kept, so
 * memory per key is bounded by its limit and nothing expires on a timer.
 */
export class SlidingWindow {
  readonly #starts = new Map<string, number[]>();

  constructor(
    private readonly clock: Clock,
    private readonly windowMs = 60_000,
  ) {}

  /**
   * Takes one slot for `key` under `limit` per window (null: unlimited; nothing kept). Returns
   * null when taken, or the verdict with the time the oldest slot frees.
   */
  take(key: string, limit: number | null): LimitVerdict | null {
    if (limit === null) return null;
    const now = this.clock();
    const from = now - this.windowMs;
    const starts = (this.#starts.get(key) ?? []).filter((t) => t > from);
    if (starts.length >= limit) {
      this.#starts.set(key, starts);
      const oldest = starts[starts.length - limit] ?? now;
      return {
        limit: "requests_per_minute",
        max: limit,
        used: starts.length,
        resetsAt: oldest + this.windowMs,
      };
    }
    starts.push(now);
    this.#starts.set(key, starts.slice(-Math.max(limit, 1)));
    return null;
  }

  /** Forgets every key not in `keep` (tenants gone from the state). */
  retain(keep: ReadonlySet<string>): void {
    for (const k of this.#starts.keys()) if (!keep.has(k)) this.#starts.delete(k);
  }
}
