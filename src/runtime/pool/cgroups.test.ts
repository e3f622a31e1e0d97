import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
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

test("a tenant gets a cpuacct cgroup where cpuacct is its own hierarchy, not where it shares cpu's", async () => {
  const root = await mkdtemp(join(tmpdir(), "ck-cgroots-"));
  try {
    const apart = join(root, "apart");
    for (const c of ["memory", "pids", "cpu", "cpuacct"]) await mkdir(join(apart, c), { recursive: true });
    const cg = new TenantCgroup({ parent: "p", pool: "pool-1", leaf: "t-a", root: apart });
    assert.deepEqual(await cg.controllers(), ["memory", "pids", "cpu", "cpuacct"]);
    assert.deepEqual((await cg.runcArgs()).slice(-2), ["--cgroup", "cpuacct:t-a"]);
    // Mounted together (cpu and cpuacct both links to "cpu,cpuacct"): one cgroup counts both.
    const joint = join(root, "joint");
    for (const c of ["memory", "pids", "cpu,cpuacct"]) await mkdir(join(joint, c), { recursive: true });
    await symlink("cpu,cpuacct", join(joint, "cpu"));
    await symlink("cpu,cpuacct", join(joint, "cpuacct"));
    const j = new TenantCgroup({ parent: "p", pool: "pool-1", leaf: "t-a", root: joint });
    assert.deepEqual(await j.controllers(), ["memory", "pids", "cpu"]);
    assert.deepEqual((await j.runcArgs()).slice(-2), ["--cgroup", "cpu,cpuacct:t-a"]);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
