import assert from "node:assert/strict";
import { test } from "node:test";
import { ValidationError } from "./errors.ts";
import {
  effectiveDesired,
  newTenant,
  parseNewTenantName,
  parseTenantName,
  parseTier,
  TRIAL_DAYS,
  trialStatus,
} from "./tenant.ts";

const DAY = 86_400_000;

test("valid tenant names are DNS labels of 1 to 40 characters", () => {
  for (const ok of ["a", "alice", "a1", "a-b", "0", "x".repeat(40), "team-42-prod"])
    assert.equal(parseTenantName(ok), ok);
});

test("invalid tenant names are refused with invalid_name", () => {
  for (const bad of [
    "",
    "../x",
    "A",
    "Alice",
    "x".repeat(41),
    "a;rm",
    "-a",
    "a-",
    "a_b",
    "a.b",
    "a b",
    "é",
    "a\n",
    null,
    7,
  ]) {
    assert.throws(
      () => parseTenantName(bad),
      (e: unknown) => e instanceof ValidationError && e.code === "invalid_name",
      `should refuse ${JSON.stringify(bad)}`,
    );
  }
});

test("a 41-character name says how long it is", () => {
  assert.throws(() => parseTenantName("x".repeat(41)), /41 characters long; at most 40/);
});

test("tiers: the three known ones parse, others are unknown_tier", () => {
  for (const t of ["starter", "premium", "enterprise"]) assert.equal(parseTier(t), t);
  for (const bad of ["gold", "Starter", "", undefined]) {
    assert.throws(
      () => parseTier(bad),
      (e: unknown) => e instanceof ValidationError && e.code === "unknown_tier",
    );
  }
});

test("a new tenant starts on a 7-day trial, wanting to run", () => {
  const now = Date.UTC(2026, 10, 28);
  const t = newTenant({ id: "t1", name: "alice", tier: "starter", slot: 0, now });
  assert.equal(TRIAL_DAYS, 7);
  assert.equal(t.trialEndsAt - t.createdAt, 7 * DAY);
  assert.equal(t.subscription, "trial");
  assert.equal(t.desired, "running");
  assert.equal(t.actual, "pending");
});

test("trial clock counts days left and expires at the end, not before", () => {
  const now = 1_000 * DAY;
  const t = newTenant({ id: "t1", name: "a", tier: "premium", slot: 0, now });
  assert.deepEqual(trialStatus(t, now), {
    subscription: "trial",
    endsAt: now + 7 * DAY,
    expired: false,
    daysLeft: 7,
  });
  assert.equal(trialStatus(t, now + 6.5 * DAY).daysLeft, 1);
  assert.equal(trialStatus(t, now + 7 * DAY - 1).expired, false);
  assert.equal(trialStatus(t, now + 7 * DAY).expired, true);
  assert.equal(trialStatus(t, now + 7 * DAY).daysLeft, 0);
});

test("an expired trial suspends the instance; a subscription or deletion overrides it", () => {
  const now = 0;
  const t = newTenant({ id: "t1", name: "a", tier: "starter", slot: 0, now });
  assert.equal(effectiveDesired(t, now).state, "running");
  const later = now + 8 * DAY;
  const s = effectiveDesired(t, later);
  assert.equal(s.state, "suspended");
  assert.match(s.reason!, /trial ended; data is kept/);
  assert.equal(effectiveDesired({ ...t, subscription: "active" }, later).state, "running");
  assert.equal(effectiveDesired({ ...t, desired: "deleted" }, later).state, "deleted");
  assert.equal(effectiveDesired({ ...t, desired: "suspended" }, now).state, "suspended");
});

test("the platform's own host names cannot be taken by a new tenant", () => {
  for (const r of ["api", "console"]) {
    assert.equal(parseTenantName(r), r, "still a valid name to look up");
    assert.throws(() => parseNewTenantName(r), /reserved/);
  }
  assert.equal(parseNewTenantName("apiary"), "apiary");
});
