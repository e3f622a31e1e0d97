import assert from "node:assert/strict";
import { test } from "node:test";
import { LLM_PLANS, llmLimitsFor, llmPlanOf } from "./plans.ts";
import { TIERS } from "./tenant.ts";

test("a trial tenant has the trial's LLM budget, a subscribed one its tier's; Enterprise has no relay access either way", () => {
  assert.deepEqual(llmPlanOf({ tier: "starter", subscription: "trial" }), {
    name: "trial",
    plan: LLM_PLANS.trial,
  });
  assert.deepEqual(llmPlanOf({ tier: "premium", subscription: "trial" }).name, "trial");
  assert.deepEqual(llmPlanOf({ tier: "premium", subscription: "active" }), {
    name: "premium",
    plan: LLM_PLANS.premium,
  });
  for (const subscription of ["trial", "active"] as const)
    assert.equal(llmPlanOf({ tier: "enterprise", subscription }).plan.models, "none");
});

test("the trial's budget is the smallest, and budgets grow with the tier", () => {
  const day = (n: keyof typeof LLM_PLANS) => LLM_PLANS[n].limits.tokensPerDay ?? Number.POSITIVE_INFINITY;
  assert.ok(day("trial") < day("starter") && day("starter") < day("premium"));
  for (const t of TIERS) {
    const l = LLM_PLANS[t].limits;
    if (LLM_PLANS[t].models === "none") continue;
    assert.ok(l.tokensPerDay !== null && l.tokensPerMonth !== null && l.tokensPerDay <= l.tokensPerMonth, t);
  }
});

test("an own provider key lifts the token budgets and keeps the request rate (control: without one the plan's limits apply)", () => {
  assert.deepEqual(llmLimitsFor(LLM_PLANS.starter, false), LLM_PLANS.starter.limits);
  assert.deepEqual(llmLimitsFor(LLM_PLANS.starter, true), {
    tokensPerDay: null,
    tokensPerMonth: null,
    requestsPerMinute: LLM_PLANS.starter.limits.requestsPerMinute,
  });
});
