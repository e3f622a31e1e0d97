import assert from "node:assert/strict";
import { test } from "node:test";
import { MAX_EVENTS, UsageLedger } from "./ledger.ts";
import { crossings, nextUtcDay, nextUtcMonth, SlidingWindow, spentBudget } from "./limits.ts";
import { tenantEntry } from "./testing.ts";

const T0 = Date.parse("2026-12-31T23:59:00Z");
const limits = { tokensPerDay: 100, tokensPerMonth: 1000, requestsPerMinute: 2 };
const alice = tenantEntry("alice", "k", ["10.0.0.1"], [], { limits });
/** A tenant's counters, or the `used` pushed with it: the day's and the month's tokens. */
const used = (day: string, dayTokens: number, month: string, monthTokens: number) => ({
  day,
  dayTokens,
  month,
  monthTokens,
});

test("periods roll over at UTC midnight and the first of the month", () => {
  assert.equal(new Date(nextUtcDay(T0)).toISOString(), "2027-01-01T00:00:00.000Z");
  assert.equal(
    new Date(nextUtcMonth(Date.parse("2026-02-10T12:00:00Z"))).toISOString(),
    "2026-03-01T00:00:00.000Z",
  );
  const c = used("2026-12-31", 100, "2026-12", 100);
  assert.equal(spentBudget(limits, c, T0)?.limit, "tokens_per_day");
  assert.equal(spentBudget(limits, { ...c, dayTokens: 99 }, T0), null, "control: one token left");
  assert.equal(spentBudget({ ...limits, tokensPerDay: null }, c, T0), null, "null: no limit");
  assert.equal(
    spentBudget(limits, { ...c, monthTokens: 1000 }, T0)?.limit,
    "tokens_per_month",
    "the month wins",
  );
});

test("crossings: 80 % and 100 % once each, only when crossed", () => {
  assert.deepEqual(crossings(0, 79, 100), []);
  assert.deepEqual(crossings(79, 80, 100), ["llm_budget_warning"]);
  assert.deepEqual(crossings(0, 150, 100), ["llm_budget_warning", "llm_budget_exhausted"]);
  assert.deepEqual(crossings(85, 90, 100), [], "already warned");
  assert.deepEqual(crossings(100, 120, 100), [], "already exhausted");
  assert.deepEqual(crossings(0, 5000, null), []);
});

test("the sliding window: N per minute, the reset when the oldest frees; unlimited keeps nothing", () => {
  let now = T0;
  const w = new SlidingWindow(() => now);
  assert.equal(w.take("a", 2), null);
  now += 10_000;
  assert.equal(w.take("a", 2), null);
  const v = w.take("a", 2);
  assert.equal(v?.limit, "requests_per_minute");
  assert.equal(v?.resetsAt, T0 + 60_000);
  assert.equal(w.take("b", 2), null, "another key has its own window");
  now = T0 + 60_001;
  assert.equal(w.take("a", 2), null, "the oldest slot freed");
  assert.notEqual(w.take("a", 2), null, "control: the second one still holds its slot");
  for (let i = 0; i < 100; i++) assert.equal(w.take("c", null), null);
});

test("the ledger: counts per tenant, model and day; a new day starts at zero; budget events", () => {
  let now = T0;
  const l = new UsageLedger(() => now);
  l.load([alice]);
  l.record(alice, "m", { inputTokens: 50, outputTokens: 35 });
  assert.equal(l.counters(alice.tenantId).dayTokens, 85);
  now += 120_000; // 2027-01-01
  assert.deepEqual(l.counters(alice.tenantId), used("2027-01-01", 0, "2027-01", 0));
  l.record(alice, "m", { inputTokens: 1, outputTokens: 1 });
  const b = l.drain();
  assert.deepEqual(
    b.usage.map((u) => [u.day, u.inputTokens, u.outputTokens, u.requests]),
    [
      ["2026-12-31", 50, 35, 1],
      ["2027-01-01", 1, 1, 1],
    ],
  );
  assert.deepEqual(
    b.events.map((e) => e.type),
    ["llm_budget_warning"],
  );
  assert.match(
    b.events[0]?.message ?? "",
    /80 % of its daily LLM budget for 2026-12-31 \(85 of 100 tokens\)/,
  );
});

test("drain and ack: an unacknowledged batch is handed out again, merged; an acknowledged one never", () => {
  const l = new UsageLedger(() => T0);
  l.load([alice]);
  l.record(alice, "m", { inputTokens: 1, outputTokens: 2 });
  const first = l.drain();
  l.record(alice, "m", { inputTokens: 10, outputTokens: 20 });
  const second = l.drain();
  assert.notEqual(second.id, first.id);
  assert.deepEqual(
    second.usage.map((u) => [u.inputTokens, u.outputTokens, u.requests]),
    [[11, 22, 2]],
    "the lost answer's usage is in the next batch",
  );
  assert.equal(l.ack(first.id), false, "a stale id forgets nothing");
  assert.equal(l.ack(second.id), true);
  assert.deepEqual(l.drain().usage, [], "acknowledged: gone");
  assert.equal(l.pending, 0);
});

test("load: a pushed `used` plus what is held and not acknowledged; stale periods count as 0", () => {
  const l = new UsageLedger(() => T0);
  l.load([alice]);
  l.record(alice, "m", { inputTokens: 5, outputTokens: 5 });
  l.load([{ ...alice, used: used("2026-12-31", 40, "2026-12", 400) }]);
  assert.deepEqual(l.counters(alice.tenantId), used("2026-12-31", 50, "2026-12", 410));
  l.ack(l.drain().id);
  l.load([{ ...alice, used: used("2026-12-30", 40, "2026-11", 400) }]);
  assert.deepEqual(l.counters(alice.tenantId), used("2026-12-31", 0, "2026-12", 0));
});

test("events are bounded between drains; the rest are counted", () => {
  const l = new UsageLedger(() => T0);
  for (let i = 0; i < MAX_EVENTS + 5; i++) l.event(alice, "llm_wrong_source", "x");
  const b = l.drain();
  assert.equal(b.events.length, MAX_EVENTS);
  assert.equal(b.droppedEvents, 5);
});
