import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import {
  CpuGuard,
  type CpuInterval,
  judge,
  DEFAULT_CPU_GUARD_POLICY as P,
  parseCpuStat,
  scanTenantCgroups,
  setQuota,
  summarize,
} from "./cpu-guard.ts";

const spin = (n: number): CpuInterval[] => Array.from({ length: n }, () => ({ periods: 10, throttled: 9 }));
const LIFTED = { steady: 1, lifted: true };
const calm = (n: number): CpuInterval[] => Array.from({ length: n }, () => ({ periods: 0, throttled: 0 }));

test("a tenant throttled in most of its periods for the whole window is demoted; short or partial spins are not", () => {
  assert.equal(judge(spin(P.spinSamples), false, P), "demote");
  assert.equal(judge(spin(P.spinSamples - 1), false, P), "keep", "not for long enough yet");
  assert.equal(
    judge([...spin(P.spinSamples - 1), { periods: 0, throttled: 0 }], false, P),
    "keep",
    "it paused",
  );
  const light = Array.from({ length: P.spinSamples }, () => ({ periods: 10, throttled: 2 }));
  assert.equal(judge(light, false, P), "keep", "busy but within its quota most of the time");
  assert.equal(judge(spin(P.spinSamples), true, P), "keep", "already demoted and still spinning");
});

test("a demoted tenant comes back after a calm window, not before", () => {
  assert.equal(judge(calm(P.calmSamples), true, P), "restore");
  assert.equal(judge(calm(P.calmSamples - 1), true, P), "keep");
  const working = Array.from({ length: P.calmSamples }, () => ({ periods: 10, throttled: 0 }));
  assert.equal(judge(working, true, P), "restore", "running below its quota is calm");
  assert.equal(judge([...calm(P.calmSamples - 1), { periods: 10, throttled: 10 }], true, P), "keep");
  assert.equal(judge(calm(P.calmSamples), false, P), "keep");
});

test("cpu.stat is read the same on cgroup v1 and v2; v2's also gives the CPU time", () => {
  assert.deepEqual(parseCpuStat("nr_periods 12\nnr_throttled 3\nthrottled_time 99\n"), {
    periods: 12,
    throttled: 3,
  });
  assert.deepEqual(
    parseCpuStat(
      "usage_usec 5\nuser_usec 3\nsystem_usec 2\nnr_periods 7\nnr_throttled 1\nthrottled_usec 4\n",
    ),
    { periods: 7, throttled: 1, usageUs: 5 },
  );
  assert.equal(parseCpuStat(""), undefined);
  assert.equal(parseCpuStat("nr_periods x\nnr_throttled 1"), undefined);
});

/** A fake cpu controller tree: the guard only reads cpu.stat and writes cpu.idle. */
async function fakeTree() {
  const root = await mkdtemp(join(tmpdir(), "ck-cpuguard-"));
  const dirs = {
    a: join(root, "clawkeep", "a"),
    b: join(root, "clawkeep", "b"),
    s: join(root, "clawkeep-pools", "pool-0", "t-s"),
  };
  for (const d of Object.values(dirs)) {
    await mkdir(d, { recursive: true });
    await writeFile(join(d, "cpu.idle"), "0");
  }
  // Not a tenant: the pool's own files and a non-tenant child.
  await mkdir(join(root, "clawkeep-pools", "pool-0", "other"), { recursive: true });
  const counters = new Map<string, { periods: number; throttled: number }>();
  const advance = async (d: string, periods: number, throttled: number) => {
    const c = counters.get(d) ?? { periods: 0, throttled: 0 };
    c.periods += periods;
    c.throttled += throttled;
    counters.set(d, c);
    await writeFile(
      join(d, "cpu.stat"),
      `nr_periods ${c.periods}\nnr_throttled ${c.throttled}\nthrottled_time 0\n`,
    );
  };
  for (const d of Object.values(dirs)) await advance(d, 0, 0);
  return { root, dirs, advance };
}

test("the guard finds container and pool tenants, demotes only the one that spins, and restores it once calm", async () => {
  const { root, dirs, advance } = await fakeTree();
  try {
    const targets = () =>
      scanTenantCgroups({ cpuRoot: root, containersParent: "clawkeep", poolsParent: "clawkeep-pools" });
    assert.deepEqual((await targets()).map((t) => t.tenant).sort(), ["a", "b", "s"]);
    const changes: string[] = [];
    const guard = new CpuGuard({
      targets,
      policy: { spinSamples: 3, calmSamples: 3 },
      onChange: (t, d) => changes.push(`${t}:${d ? "idle" : "normal"}`),
    });
    const idle = async (d: string) => (await readFile(join(d, "cpu.idle"), "utf8")).trim();
    await guard.tick(); // baseline
    for (let i = 0; i < 3; i++) {
      await advance(dirs.a, 10, 9); // spins at its quota
      await advance(dirs.b, 10, 1); // busy, within its quota (control)
      await advance(dirs.s, 3, 0); // light
      await guard.tick();
    }
    assert.deepEqual(changes, ["a:idle"]);
    assert.equal(await idle(dirs.a), "1");
    assert.equal(await idle(dirs.b), "0", "a busy neighbour within its quota is left alone");
    assert.equal(await idle(dirs.s), "0");
    assert.deepEqual(guard.demoted(), ["a"]);
    // Still spinning: stays demoted.
    for (let i = 0; i < 3; i++) {
      await advance(dirs.a, 10, 10);
      await guard.tick();
    }
    assert.equal(await idle(dirs.a), "1");
    // Calm: restored after the calm window, not before.
    await guard.tick();
    await guard.tick();
    assert.equal(await idle(dirs.a), "1", "not before the calm window is full");
    await guard.tick();
    assert.equal(await idle(dirs.a), "0");
    assert.deepEqual(changes, ["a:idle", "a:normal"]);
    // A new guard (a restarted control plane) picks up a demotion from the file...
    await writeFile(join(dirs.s, "cpu.idle"), "1");
    const again = new CpuGuard({ targets, policy: { spinSamples: 3, calmSamples: 3 } });
    await again.tick();
    assert.deepEqual(again.demoted(), ["s"]);
    // ...and forgets a tenant whose cgroup is gone (it stopped).
    await rm(dirs.s, { recursive: true });
    await again.tick();
    assert.deepEqual(again.demoted(), []);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test("a short burst, throttled in most periods but under its quota on average, is not a spin; a spin at its quota is", () => {
  const steady = { steady: 1, lifted: false };
  // An idle gateway's own burst: 2 s of 5 at 0.9 cores, with more threads than its quota.
  const burst: CpuInterval[] = [
    { periods: 10, throttled: 9, cores: 0.9 },
    { periods: 10, throttled: 9, cores: 0.9 },
    { periods: 10, throttled: 6, cores: 0.5 },
    { periods: 10, throttled: 3, cores: 0.2 },
    { periods: 10, throttled: 0, cores: 0.02 },
  ];
  assert.equal(judge(burst, false, P), "demote", "control: by throttling alone it is spinning");
  assert.equal(judge(burst, false, P, steady), "keep");
  const atQuota = Array.from({ length: P.spinSamples }, () => ({ periods: 10, throttled: 9, cores: 0.97 }));
  assert.equal(judge(atQuota, false, P, steady), "demote");
  assert.equal(
    judge(atQuota, false, P, { steady: 2, lifted: false }),
    "keep",
    "a 2-core tenant at 1 core is not at its quota",
  );
  assert.equal(
    judge(spin(P.spinSamples), false, P, steady),
    "demote",
    "without its CPU time, throttling decides",
  );
  assert.deepEqual(summarize(burst), {
    intervals: 5,
    ranThroughout: true,
    throttledShare: 0.54,
    cores: 0.504,
  });
});

test("a demoted tenant whose quota was lifted is calm by its CPU time, not by throttling", () => {
  const using = (cores: number, n = P.calmSamples): CpuInterval[] =>
    Array.from({ length: n }, () => ({ periods: 10, throttled: 0, cores }));
  // Unthrottled at its lifted quota and still spinning: not calm (the throttle rule would say so).
  assert.equal(judge(using(2), true, P), "restore", "control: by throttling it looks calm");
  assert.equal(judge(using(2), true, P, LIFTED), "keep");
  assert.equal(judge(using(P.calmUse * 1.2), true, P, LIFTED), "keep");
  assert.equal(judge(using(P.calmUse * 0.5), true, P, LIFTED), "restore");
  assert.equal(
    judge(using(0, P.calmSamples - 1), true, P, LIFTED),
    "keep",
    "not before the calm window is full",
  );
  assert.equal(
    judge([...using(0, P.calmSamples - 1), { periods: 10, throttled: 0 }], true, P, LIFTED),
    "keep",
    "without its CPU time it stays demoted",
  );
});

test("setQuota writes cpu.cfs_quota_us in the cgroup's period (v1) or cpu.max (v2)", async () => {
  const root = await mkdtemp(join(tmpdir(), "ck-cpuquota-"));
  try {
    const v1 = join(root, "v1");
    const v2 = join(root, "v2");
    await mkdir(v1);
    await mkdir(v2);
    await writeFile(join(v1, "cpu.cfs_period_us"), "50000\n");
    await writeFile(join(v1, "cpu.cfs_quota_us"), "50000\n");
    await writeFile(join(v2, "cpu.max"), "100000 100000\n");
    await setQuota(v1, 1.5);
    await setQuota(v2, 0.5);
    assert.equal(await readFile(join(v1, "cpu.cfs_quota_us"), "utf8"), "75000");
    assert.equal(await readFile(join(v2, "cpu.max"), "utf8"), "50000 100000");
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test("a demoted container runs at its demoted quota in the idle class, stays demoted while it spins, and gets its steady quota back once calm", async () => {
  // cgroup v1 layout: cpu and cpuacct controllers side by side.
  const root = await mkdtemp(join(tmpdir(), "ck-cpuguard-v1-"));
  try {
    const dir = (ctl: string, ...p: string[]) => join(root, ctl, ...p);
    const a = dir("cpu", "clawkeep", "a");
    const s = dir("cpu", "clawkeep-pools", "pool-0", "t-s");
    // A container whose CPU time cannot be read (no cpuacct directory).
    const u = dir("cpu", "clawkeep", "u");
    for (const d of [a, s, u]) {
      await mkdir(d, { recursive: true });
      if (d !== u) await mkdir(d.replace(`${root}/cpu/`, `${root}/cpuacct/`), { recursive: true });
      await writeFile(join(d, "cpu.idle"), "0");
      await writeFile(join(d, "cpu.cfs_period_us"), "100000");
      await writeFile(join(d, "cpu.cfs_quota_us"), "100000");
    }
    const stat = { periods: 0, throttled: 0, usageNs: 0 };
    const sStat = { periods: 0, throttled: 0 };
    let clock = 0;
    /** One second: `throttled` of 10 periods, and `cpuSeconds` of CPU time. */
    const advance = async (throttled: number, cpuSeconds: number) => {
      stat.periods += 10;
      stat.throttled += throttled;
      stat.usageNs += cpuSeconds * 1e9;
      await writeFile(join(a, "cpu.stat"), `nr_periods ${stat.periods}\nnr_throttled ${stat.throttled}\n`);
      await writeFile(dir("cpuacct", "clawkeep", "a", "cpuacct.usage"), String(Math.round(stat.usageNs)));
      sStat.periods += 10;
      sStat.throttled += 10;
      for (const d of [s, u])
        await writeFile(
          join(d, "cpu.stat"),
          `nr_periods ${sStat.periods}\nnr_throttled ${sStat.throttled}\n`,
        );
    };
    const targets = () =>
      scanTenantCgroups({
        cpuRoot: join(root, "cpu"),
        containersParent: "clawkeep",
        poolsParent: "clawkeep-pools",
      });
    const found = await targets();
    assert.deepEqual(
      found.find((t) => t.tenant === "a"),
      { tenant: "a", kind: "container", dir: a, cpuacctDir: dir("cpuacct", "clawkeep", "a") },
    );
    const changes: string[] = [];
    const guard = new CpuGuard({
      targets,
      policy: { spinSamples: 3, calmSamples: 3 },
      onChange: (t, d) => changes.push(`${t}:${d ? "idle" : "normal"}`),
      // Containers only, as the platform wires it: the pool tenant keeps its quota.
      quotas: (t) => (t.kind === "container" ? { steady: 1, demoted: 2 } : undefined),
      now: () => clock,
    });
    const read = async (d: string, f: string) => (await readFile(join(d, f), "utf8")).trim();
    const tick = async (throttled: number, cores: number) => {
      clock += 1000;
      await advance(throttled, cores);
      await guard.tick();
    };
    await tick(0, 0); // baseline
    for (let i = 0; i < 3; i++) await tick(9, 1); // spins at its steady quota
    assert.deepEqual(changes, ["a:idle", "u:idle", "s:idle"]);
    assert.equal(await read(a, "cpu.idle"), "1");
    assert.equal(await read(a, "cpu.cfs_quota_us"), "200000", "lifted to its demoted quota");
    assert.equal(await read(s, "cpu.cfs_quota_us"), "100000", "a pool tenant's quota is left alone");
    // Without its CPU time its calm could not be told once unthrottled: class only, no lift.
    assert.equal(await read(u, "cpu.cfs_quota_us"), "100000", "no lift without CPU time");
    // Unthrottled now, still spinning on both cores: stays demoted.
    for (let i = 0; i < 5; i++) await tick(0, 2);
    assert.equal(await read(a, "cpu.idle"), "1");
    assert.deepEqual(changes, ["a:idle", "u:idle", "s:idle"]);
    // Calm: back to its steady quota and the normal class.
    for (let i = 0; i < 3; i++) await tick(0, 0.01);
    assert.deepEqual(changes, ["a:idle", "u:idle", "s:idle", "a:normal"]);
    assert.equal(await read(a, "cpu.idle"), "0");
    assert.equal(await read(a, "cpu.cfs_quota_us"), "100000");
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
