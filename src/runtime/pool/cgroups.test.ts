import assert from "node:assert/strict";
import { test } from "node:test";
import { renderTenantLimits, TenantCgroup } from "./cgroups.ts";

test("a tenant's limits render to the v1 files", () => {
  const w = renderTenantLimits({ memoryBytes: 1536 * 1024 * 1024, cpus: 1.5, pids: 256 });
  assert.deepEqual(w.memory, [
    ["memory.limit_in_bytes", "1610612736"],
    ["memory.memsw.limit_in_bytes", "1610612736"],
  ]);
  assert.deepEqual(w.pids, [["pids.max", "256"]]);
  assert.deepEqual(w.cpu, [
    ["cpu.cfs_period_us", "100000"],
    ["cpu.cfs_quota_us", "150000"],
  ]);
  assert.throws(() => renderTenantLimits({ memoryBytes: 1024, cpus: 1, pids: 256 }), /below 16 MiB/);
  assert.throws(() => renderTenantLimits({ memoryBytes: 2 ** 30, cpus: 0, pids: 256 }), /cpu quota/);
});

test("cgroup paths are built from checked parts only", async () => {
  const cg = new TenantCgroup({ parent: "clawkeep-pools", pool: "pool-3", leaf: "t-alice", root: "/x" });
  assert.equal(cg.dir("memory"), "/x/memory/clawkeep-pools/pool-3/t-alice");
  assert.equal(cg.poolDir("pids"), "/x/pids/clawkeep-pools/pool-3");
  assert.deepEqual(await cg.runcArgs(), [
    "--cgroup",
    "memory:t-alice",
    "--cgroup",
    "pids:t-alice",
    "--cgroup",
    "cpu:t-alice",
  ]);
  for (const bad of ["../x", "a/b", "", "T-A"]) {
    assert.throws(() => new TenantCgroup({ parent: "p", pool: "pool-1", leaf: bad }), /bad cgroup name/);
  }
  assert.throws(
    () => new TenantCgroup({ parent: "..", pool: "pool-1", leaf: "t-a" }),
    /bad cgroup path part/,
  );
});
