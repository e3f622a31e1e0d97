import assert from "node:assert/strict";
import { test } from "node:test";
import { containerCpuQuotas, cpuQuota, startCpuQuota } from "./driver.ts";

test("a tenant's CPU quota never takes every core of the host", () => {
  assert.equal(cpuQuota(2, 2), 1);
  assert.equal(cpuQuota(2, 8), 2);
  assert.equal(cpuQuota(4, 1), 0.5);
});

test("while it starts a tenant may use its plan's CPUs up to every core; demoted, the same", () => {
  assert.equal(startCpuQuota(2, 2), 2);
  assert.equal(startCpuQuota(4, 2), 2);
  assert.deepEqual(containerCpuQuotas(2, 2), { steady: 1, demoted: 2 });
});
