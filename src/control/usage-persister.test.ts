import assert from "node:assert/strict";
import { test } from "node:test";
import { newTenant } from "../core/tenant.ts";
import { createLogger } from "../lib/log.ts";
import type { RelayEvent, UsageBatch, UsageDelta } from "../relay/types.ts";
import { openDatabase } from "../store/db.ts";
import { LlmStore } from "../store/llm.ts";
import { TenantStore } from "../store/tenants.ts";
import { eventually } from "../testing/harness.ts";
import { UsagePersister, type UsageSource } from "./usage-persister.ts";

const NOW = Date.UTC(2030, 2, 1, 9);

/** A relay's drain that hands out queued batches and records acknowledgements (or fails on demand). */
class FakeSource implements UsageSource {
  readonly queue: UsageBatch[] = [];
  readonly acked: string[] = [];
  drains = 0;
  failDrain: Error | null = null;
  #n = 0;

  push(usage: UsageDelta[], events: RelayEvent[] = [], droppedEvents = 0): void {
    this.queue.push({ id: `b${++this.#n}`, usage, events, droppedEvents });
  }

  async drain(): Promise<UsageBatch> {
    this.drains++;
    if (this.failDrain) throw this.failDrain;
    return this.queue.shift() ?? { id: `empty${++this.#n}`, usage: [], events: [], droppedEvents: 0 };
  }

  async ack(id: string): Promise<void> {
    this.acked.push(id);
  }
}

function world() {
  const store = new TenantStore(openDatabase(":memory:"));
  const llm = new LlmStore(store.db);
  for (const [i, name] of ["alice", "bob"].entries())
    store.insert(newTenant({ id: `tnt_${name}`, name, tier: "starter", slot: i, now: NOW }));
  const source = new FakeSource();
  const persister = new UsagePersister({ source, store, llm, log: createLogger("silent"), intervalMs: 20 });
  return { store, llm, source, persister };
}

const delta = (tenant: string, o: Partial<UsageDelta> = {}): UsageDelta => ({
  tenantId: `tnt_${tenant}`,
  tenant,
  model: "m",
  day: "2030-03-01",
  inputTokens: 10,
  outputTokens: 5,
  requests: 1,
  ...o,
});

test("a flush adds the batch's deltas to their rows and records its events as tenant events, then acknowledges it", async () => {
  const w = world();
  w.source.push([delta("alice"), delta("alice", { model: "m2" }), delta("bob")]);
  w.source.push(
    [delta("alice", { inputTokens: 1, outputTokens: 1 })],
    [
      {
        tenant: "alice",
        tenantId: "tnt_alice",
        type: "llm_budget_warning",
        message: "80 % of today's budget used",
        at: new Date(NOW + 5).toISOString(),
      },
      {
        tenant: "bob",
        tenantId: "tnt_bob",
        type: "llm_wrong_source",
        message: "key from 198.19.1.9",
        at: "x",
      },
    ],
  );
  assert.deepEqual(await w.persister.flush(), { usage: 3, events: 0, skipped: 0 });
  assert.deepEqual(await w.persister.flush(), { usage: 1, events: 2, skipped: 0 });
  assert.deepEqual(w.source.acked, ["b1", "b2"]);
  assert.deepEqual(w.llm.usage("tnt_alice", "2030-03-01", "2030-03-01"), [
    { day: "2030-03-01", model: "m", inputTokens: 11, outputTokens: 6, requests: 2 },
    { day: "2030-03-01", model: "m2", inputTokens: 10, outputTokens: 5, requests: 1 },
  ]);
  assert.deepEqual(w.llm.totals("tnt_bob", "2030-03-01", "2030-03-01"), {
    inputTokens: 10,
    outputTokens: 5,
    requests: 1,
  });
  const warning = w.store.events("tnt_alice").find((e) => e.type === "llm_budget_warning");
  assert.equal(warning?.at, NOW + 5, "at the relay's time");
  assert.ok(w.store.events("tnt_bob").some((e) => e.type === "llm_wrong_source"));
});

test("deltas and events of deleted tenants, malformed deltas and unknown event types are left out; the rest lands (control: the same delta for a live tenant lands)", async () => {
  const w = world();
  w.store.remove("tnt_bob");
  w.source.push(
    [
      delta("bob"),
      delta("alice", { inputTokens: -1 }),
      delta("alice", { day: "yesterday" }),
      delta("alice", { requests: 1.5 }),
      delta("alice"),
    ],
    [
      { tenant: "bob", tenantId: "tnt_bob", type: "llm_budget_exhausted", message: "over", at: "" },
      {
        tenant: "alice",
        tenantId: "tnt_alice",
        type: "gateway_hacked" as RelayEvent["type"],
        message: "no",
        at: "",
      },
    ],
  );
  assert.deepEqual(await w.persister.flush(), { usage: 1, events: 0, skipped: 6 });
  assert.equal(w.llm.rowCount("tnt_alice"), 1);
  assert.equal(w.llm.rowCount("tnt_bob"), 0);
  assert.ok(!w.store.events("tnt_alice").some((e) => e.type === "gateway_hacked"));
  assert.deepEqual(w.source.acked, ["b1"]);
});

test("a failed write is not acknowledged, so the relay hands the batch out again; a failed drain is retried at the next tick", async () => {
  const w = world();
  w.source.push([delta("alice")]);
  const add = w.llm.addUsage.bind(w.llm);
  w.llm.addUsage = () => {
    throw new Error("disk full");
  };
  await assert.rejects(w.persister.flush(), /disk full/);
  assert.deepEqual(w.source.acked, [], "not acknowledged");
  w.llm.addUsage = add;

  w.source.failDrain = new Error("relay restarting");
  w.persister.start();
  await eventually(() => w.source.drains >= 3, 2000, "drains retried");
  w.source.failDrain = null;
  w.source.push([delta("alice", { inputTokens: 7 })]);
  await eventually(() => w.llm.rowCount("tnt_alice") === 1, 2000, "usage stored after the relay is back");
  await w.persister.stop();
  assert.equal(w.llm.totals("tnt_alice", "2030-03-01", "2030-03-01").inputTokens, 7);
});

test("stop() flushes once more and stops the timer (control: while started it drains on its own)", async () => {
  const w = world();
  w.persister.start();
  w.persister.start(); // idempotent
  await eventually(() => w.source.drains >= 2, 2000, "timed drains");
  w.source.push([delta("bob")]);
  await w.persister.stop();
  assert.equal(w.llm.rowCount("tnt_bob"), 1, "the last batch was stored at stop");
  const n = w.source.drains;
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(w.source.drains, n, "no drain after stop");
});
