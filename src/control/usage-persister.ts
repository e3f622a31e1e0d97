import type { Logger } from "../lib/log.ts";
import type { RelayEvent, UsageBatch, UsageDelta } from "../relay/types.ts";
import type { LlmStore, UsageAddition } from "../store/llm.ts";
import type { TenantStore } from "../store/tenants.ts";

/** Where usage comes from: the relay's drain, and the acknowledgement of a batch once it is stored. */
export interface UsageSource {
  drain(): Promise<UsageBatch>;
  /** Resolves once the relay has forgotten the batch (what it answers is not used). */
  ack(batchId: string): Promise<unknown>;
}

/** The relay's events the control plane records as tenant events; others are logged and dropped. */
const RECORDED_EVENTS: ReadonlySet<string> = new Set<RelayEvent["type"]>([
  "llm_wrong_source",
  "llm_budget_warning",
  "llm_budget_exhausted",
]);

const DAY_RE = /^\d{4}-\d{2}-\d{2}$/;
const count = (n: unknown) => typeof n === "number" && Number.isSafeInteger(n) && n >= 0;

/** A delta the store can take: a known day, a model name, whole non-negative counts. */
function validDelta(d: UsageDelta): boolean {
  return (
    typeof d.tenantId === "string" &&
    typeof d.model === "string" &&
    d.model.length > 0 &&
    d.model.length <= 200 &&
    typeof d.day === "string" &&
    DAY_RE.test(d.day) &&
    count(d.inputTokens) &&
    count(d.outputTokens) &&
    count(d.requests)
  );
}

/** What one flush stored. */
export interface FlushResult {
  usage: number;
  events: number;
  /** Deltas and events left out: malformed, or of a tenant that no longer exists. */
  skipped: number;
}

/**
 * Moves the relay's usage into the database: every `intervalMs` (default 5 s) it drains the relay,
 * adds the batch's deltas to llm_usage and records its events (`llm_wrong_source`,
 * `llm_budget_warning`, `llm_budget_exhausted`) as tenant events, all in one transaction, then
 * acknowledges the batch (an unacknowledged batch is handed out again by the relay, so a failed
 * write loses nothing). Deltas and events of tenants deleted meanwhile are dropped: their usage
 * went with them. One flush at a time; a failed drain is logged and retried at the next tick.
 * A batch stored whose acknowledgement is lost is counted twice (the relay merges it into the
 * next one): the price of never losing one.
 */
export class UsagePersister {
  readonly #o: {
    source: UsageSource;
    store: TenantStore;
    llm: LlmStore;
    intervalMs: number;
    log: Logger;
    clock: () => number;
  };
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<FlushResult> | undefined;
  #stopped = true;

  constructor(o: {
    source: UsageSource;
    store: TenantStore;
    llm: LlmStore;
    intervalMs?: number;
    log: Logger;
    clock?: () => number;
  }) {
    this.#o = { ...o, intervalMs: o.intervalMs ?? 5000, clock: o.clock ?? Date.now };
  }

  /** Flushes every interval until stop(). Idempotent. */
  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#schedule();
  }

  /** Stops the timer and flushes once more (the last interval's usage is kept). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.flush().catch((err: unknown) =>
      this.#o.log.warn(
        { err },
        "last LLM usage drain failed: what the relay counted since the previous drain is lost when it stops with the control plane",
      ),
    );
  }

  /** Drains the relay now and stores what it gave; waits for a flush already under way instead. */
  flush(): Promise<FlushResult> {
    if (this.#running) return this.#running;
    this.#running = this.#flush().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.flush()
        .catch((err: unknown) =>
          this.#o.log.warn({ err }, "LLM usage drain failed; retrying at the next interval"),
        )
        .finally(() => this.#schedule());
    }, this.#o.intervalMs);
    this.#timer.unref();
  }

  async #flush(): Promise<FlushResult> {
    const { source, store, llm, log } = this.#o;
    const batch = await source.drain();
    const result: FlushResult = { usage: 0, events: 0, skipped: 0 };
    const additions: UsageAddition[] = [];
    for (const d of batch.usage) {
      if (!validDelta(d) || !store.getById(d.tenantId)) {
        result.skipped++;
        continue;
      }
      additions.push({
        tenantId: d.tenantId,
        day: d.day,
        model: d.model,
        inputTokens: d.inputTokens,
        outputTokens: d.outputTokens,
        requests: d.requests,
      });
    }
    const now = this.#o.clock();
    store.tx(() => {
      llm.addUsage(additions);
      for (const e of batch.events) {
        if (!RECORDED_EVENTS.has(e.type) || typeof e.message !== "string" || !store.getById(e.tenantId)) {
          result.skipped++;
          continue;
        }
        const at = Date.parse(e.at);
        store.addEvent(e.tenantId, e.type, e.message.slice(0, 1000), Number.isFinite(at) ? at : now);
        result.events++;
      }
    });
    result.usage = additions.length;
    if (batch.droppedEvents > 0)
      log.warn({ dropped: batch.droppedEvents }, "the relay dropped LLM events that piled up between drains");
    if (result.skipped > 0)
      log.info({ skipped: result.skipped }, "LLM usage of deleted tenants or malformed left out");
    await source.ack(batch.id);
    return result;
  }
}
