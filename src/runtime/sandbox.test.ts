import assert from "node:assert/strict";
import { test } from "node:test";
import { planFor } from "../core/plans.ts";
import { cpuGuardQuotas } from "./sandbox.ts";

test("the CPU guard's quotas: a container is lifted to its plan's CPUs up to the host's, a pool tenant keeps its plan's, an unknown tenant has none", () => {
  const plans: Record<string, ReturnType<typeof planFor>> = { p: planFor("premium"), s: planFor("starter") };
  assert.equal(plans.p?.cpus, 2, "the figures below are for a 2-CPU Premium plan");
  assert.equal(plans.s?.cpus, 1, "and a 1-CPU Starter plan");
  // On a 2-core host a Premium container runs at 1 core (never every core) and is lifted to 2.
  const small = cpuGuardQuotas((t) => plans[t], 2);
  assert.deepEqual(small({ tenant: "p", kind: "container", dir: "/x" }), { steady: 1, demoted: 2 });
  // Control: on an 8-core host its plan's 2 CPUs leave cores for the rest, so nothing is lifted.
  const big = cpuGuardQuotas((t) => plans[t], 8);
  assert.deepEqual(big({ tenant: "p", kind: "container", dir: "/x" }), { steady: 2, demoted: 2 });
  // A pool tenant is never lifted, whatever the host.
  assert.deepEqual(small({ tenant: "s", kind: "pool", dir: "/x" }), { steady: 1, demoted: 1 });
  assert.deepEqual(big({ tenant: "s", kind: "pool", dir: "/x" }), { steady: 1, demoted: 1 });
  assert.equal(small({ tenant: "gone", kind: "container", dir: "/x" }), undefined);
});
