/**
 * Density benchmark (issue 5), in one run on one machine: K Starter tenants in one pool vs K
 * Premium containers, each a real OpenClaw gateway, started one at a time and alternately (both
 * tiers see the same load), measured side by side:
 *  1. memory per tenant, each gateway sampled at the same age (SETTLE_MS after /readyz), and all
 *     of them together at the end: PSS of every process of the tenant (smaps_rollup; a page shared
 *     by n processes counts 1/n), RSS, and anonymous memory (shared with no one); a pool's own
 *     processes (tini, sleep) are shared out over its tenants;
 *  2. tenants per GiB for each tier and the ratio Starter / Premium, measured and by plan budget;
 *  3. what MALLOC_ARENA_MAX=2 buys inside the pool: one Starter gateway restarted without it and
 *     then with it, each sampled at the same age while the others idle.
 * KSM is not measured (platform-facts: it saves 5-9 % for ~20 % of a vCPU), nor is anything else
 * that shares pages: every gateway already maps the same runtime files from one page cache.
 *
 *   npx tsx bench/density.ts [K=3] [budget seconds=300]
 */
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { loadSettings } from "../src/config/settings.ts";
import { planFor } from "../src/core/plans.ts";
import { Secret } from "../src/core/secret.ts";
import type { Tier } from "../src/core/tenant.ts";
import { execFile } from "../src/lib/exec.ts";
import { startEchoProvider } from "../src/llm/echo-provider.ts";
import { waitReady } from "../src/openclaw/probe.ts";
import { ensureRuntime } from "../src/openclaw/runtime.ts";
import { ContainerDriver } from "../src/runtime/container/driver.ts";
import {
  DEFAULT_NETWORK,
  type NetworkConfig,
  removeBridge,
  removeRuleset,
} from "../src/runtime/linux/net/network.ts";
import { detectOciRuntime } from "../src/runtime/linux/oci/runtime.ts";
import { PoolDriver } from "../src/runtime/pool/driver.ts";
import { NetworkMembers } from "../src/runtime/pool/network.ts";
import { PlainPoolStorage } from "../src/runtime/pool/storage.ts";
import type { InstanceSpec, RuntimeDriver } from "../src/runtime/types.ts";
import { PlainVolumes } from "../src/runtime/volumes/plain.ts";
import { testSpec } from "../src/testing/specs.ts";
import { removeCgroupTrees, sandboxHome } from "../test/fixtures/host.ts";

const K = Number(process.argv[2] ?? 3);
const budgetMs = Number(process.argv[3] ?? 300) * 1000;
const SETTLE_MS = 15_000;
const t0 = Date.now();
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const POOL_CG = "clawkeep-density";
const CTR_CG = "clawkeep-density-c";
const POOL_SLOT = 75;
const POOL_TENANT_SLOT = 76;
const CTR_SLOT = 70;
if (!Number.isInteger(K) || K < 1 || K > 4) throw new Error("K must be 1..4 (slots 70-73 and 76-79)");

// Two bridges and two rulesets: each driver owns its own table here.
const poolNet: NetworkConfig = {
  ...DEFAULT_NETWORK,
  bridge: "ckdpbr0",
  table: "clawkeep_density_p",
  prefix16: "10.219",
};
const ctrNet: NetworkConfig = {
  ...DEFAULT_NETWORK,
  bridge: "ckdcbr0",
  table: "clawkeep_density_c",
  prefix16: "10.220",
};

const runtime = await ensureRuntime(loadSettings());
const provider = await startEchoProvider();
const home = await sandboxHome("clawkeep-bench-density-");
const members = new NetworkMembers(poolNet);
const poolOpts = {
  poolsDir: join(home, "pools"),
  secretsDir: join(home, "psecrets"),
  runtime,
  network: members,
  storage: new PlainPoolStorage(join(home, "pooldata")),
  idMapBase: 8_000_000,
  cgroupParent: POOL_CG,
  poolSlots: { first: POOL_SLOT, count: 1 },
  poolMemoryBytes: K * planFor("starter").memoryBytes,
  maxTenantsPerPool: K,
  stopGraceMs: 5000,
};
const pool = new PoolDriver(poolOpts);
const poolNoArena = new PoolDriver({ ...poolOpts, envOverrides: { MALLOC_ARENA_MAX: undefined } });
const containers = new ContainerDriver({
  containersDir: join(home, "containers"),
  secretsDir: join(home, "csecrets"),
  runtime,
  oci: await detectOciRuntime(),
  network: ctrNet,
  volumes: new PlainVolumes(join(home, "cvolumes")),
  idMapBase: 8_500_000,
  cgroupParent: CTR_CG,
  stopGraceMs: 5000,
});

const spec = (name: string, slot: number, tier: Tier): InstanceSpec =>
  testSpec(name, tier, slot, { baseUrl: provider.url, model: provider.model });
const secrets = { gatewayToken: new Secret("t".repeat(40)), llmApiKey: new Secret("k") };
const starters = Array.from({ length: K }, (_, i) => spec(`ds${i}`, POOL_TENANT_SLOT + i, "starter"));
const premiums = Array.from({ length: K }, (_, i) => spec(`dp${i}`, CTR_SLOT + i, "premium"));

async function startReady(d: RuntimeDriver, s: InstanceSpec): Promise<number> {
  const t = performance.now();
  await d.create(s);
  const st = await d.start(s, secrets);
  await waitReady(st.url!, {
    timeoutMs: 300_000,
    intervalMs: 200,
    alive: async () => (await d.status(s.name)).state === "running",
  });
  return performance.now() - t;
}

/** Pids listed in a memory cgroup (not its children). */
async function cgroupPids(dir: string): Promise<number[]> {
  const text = await readFile(join(dir, "cgroup.procs"), "utf8").catch(() => "");
  return text.split("\n").filter(Boolean).map(Number);
}

interface Mem {
  /** Proportional set size: private pages plus a fair share of pages shared with other processes. */
  pss: number;
  rss: number;
  /** Anonymous memory (heap, stacks): what no other process shares; not changed by who else runs. */
  anon: number;
}

async function memoryOf(pids: number[]): Promise<Mem> {
  const m: Mem = { pss: 0, rss: 0, anon: 0 };
  for (const pid of pids) {
    const text = await readFile(`/proc/${pid}/smaps_rollup`, "utf8").catch(() => "");
    const kb = (field: string) =>
      Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? 0) * 1024;
    m.pss += kb("Pss");
    m.rss += kb("Rss");
    m.anon += kb("Anonymous");
  }
  return m;
}

const POOL_DIR = `/sys/fs/cgroup/memory/${POOL_CG}/pool-0`;
/** One Starter tenant: its own cgroup's processes plus 1/K of the pool's own (tini, sleep). */
async function measureStarter(name: string): Promise<Mem> {
  const m = await memoryOf(await (await pool.cgroupOf(name))!.pids());
  const own = await memoryOf(await cgroupPids(POOL_DIR));
  return { pss: m.pss + own.pss / K, rss: m.rss + own.rss / K, anon: m.anon + own.anon / K };
}
const measurePremium = async (name: string) =>
  memoryOf(await cgroupPids(`/sys/fs/cgroup/memory/${CTR_CG}/${name}`));

/** Starts a tenant and measures it SETTLE_MS after it is ready, while the run goes on. */
async function startAndSample(
  d: RuntimeDriver,
  s: InstanceSpec,
  measure: (name: string) => Promise<Mem>,
): Promise<{ ms: number; sample: Promise<Mem> }> {
  const ms = await startReady(d, s);
  const sample = new Promise<Mem>((resolve, reject) =>
    setTimeout(() => measure(s.name).then(resolve, reject), SETTLE_MS),
  );
  return { ms, sample };
}

const mean = (xs: Mem[]): Mem => ({
  pss: xs.reduce((a, x) => a + x.pss, 0) / xs.length,
  rss: xs.reduce((a, x) => a + x.rss, 0) / xs.length,
  anon: xs.reduce((a, x) => a + x.anon, 0) / xs.length,
});
const mib = (b: number) => `${(b / MiB).toFixed(0)} MiB`;
const perGiB = (b: number) => GiB / b;
const row = (label: string, m: Mem) =>
  `${label} PSS/tenant ${mib(m.pss)}  RSS ${mib(m.rss)}  anon ${mib(m.anon)}  -> ${perGiB(m.pss).toFixed(2)} tenants/GiB`;

try {
  // Alternate the tiers (each sees the same load and the same number of running neighbours, to
  // one), and sample every gateway at the same age: SETTLE_MS after it answered /readyz.
  const startMs: number[] = [];
  const st: Array<Promise<Mem>> = [];
  const pr: Array<Promise<Mem>> = [];
  for (let i = 0; i < K; i++) {
    const a = await startAndSample(pool, starters[i]!, measureStarter);
    const b = await startAndSample(containers, premiums[i]!, measurePremium);
    startMs.push(a.ms, b.ms);
    st.push(a.sample);
    pr.push(b.sample);
    process.stderr.write(
      `started ${starters[i]!.name} (pool) in ${(a.ms / 1000).toFixed(1)} s, ${premiums[i]!.name} (container) in ${(b.ms / 1000).toFixed(1)} s\n`,
    );
  }
  const s = mean(await Promise.all(st));
  const p = mean(await Promise.all(pr));
  // And all of them together once the last one has settled.
  const sAll = mean(await Promise.all(starters.map((x) => measureStarter(x.name))));
  const pAll = mean(await Promise.all(premiums.map((x) => measurePremium(x.name))));

  console.log(
    `${K} tenants per tier, real OpenClaw gateways, each sampled ${SETTLE_MS / 1000} s after /readyz`,
  );
  console.log(row("Starter (one pool)      ", s));
  console.log(row("Premium (one container) ", p));
  console.log(`ratio Starter / Premium, tenants per GiB (PSS)   ${(p.pss / s.pss).toFixed(3)}`);
  console.log(`ratio Starter / Premium, tenants per GiB (anon)  ${(p.anon / s.anon).toFixed(3)}`);
  console.log(`all ${2 * K} running together at the end:`);
  console.log(row("Starter (one pool)      ", sAll));
  console.log(row("Premium (one container) ", pAll));
  console.log(`ratio Starter / Premium, tenants per GiB (PSS)   ${(pAll.pss / sAll.pss).toFixed(3)}`);
  const sb = planFor("starter").memoryBytes;
  const pb = planFor("premium").memoryBytes;
  console.log(
    `by plan budget (what limits reserve): Starter ${(sb / GiB).toFixed(1)} GiB -> ${perGiB(sb).toFixed(2)}/GiB, Premium ${(pb / GiB).toFixed(1)} GiB -> ${perGiB(pb).toFixed(2)}/GiB, ratio ${(pb / sb).toFixed(3)}`,
  );

  // MALLOC_ARENA_MAX=2 (which renderGatewayEnv sets for every tier): one Starter gateway
  // restarted without it, then with it again, each sampled at the same age, the rest idle.
  const perStart = startMs.reduce((x, y) => x + y, 0) / startMs.length;
  const left = budgetMs - (Date.now() - t0);
  if (left < 2 * (perStart + SETTLE_MS) + 10_000) {
    console.log(
      `MALLOC_ARENA_MAX=2: not measured (two more starts take ~${((2 * (perStart + SETTLE_MS)) / 1000).toFixed(0)} s; ${(left / 1000).toFixed(0)} s of the ${budgetMs / 1000} s budget left)`,
    );
  } else {
    const x = starters[0]!;
    await pool.stop(x.name);
    const without = await (await startAndSample(poolNoArena, x, measureStarter)).sample;
    await pool.stop(x.name);
    const withIt = await (await startAndSample(pool, x, measureStarter)).sample;
    console.log(
      `MALLOC_ARENA_MAX=2 in the pool (one gateway, same age): anon ${mib(withIt.anon)} with, ${mib(without.anon)} without -> saves ${(100 * (1 - withIt.anon / without.anon)).toFixed(1)} %; PSS ${mib(withIt.pss)} vs ${mib(without.pss)} -> ${(100 * (1 - withIt.pss / without.pss)).toFixed(1)} %`,
    );
  }
  console.log(`total ${((Date.now() - t0) / 1000).toFixed(0)} s`);
} finally {
  for (const s of starters) await pool.delete(s.name).catch((e) => console.error(`cleanup ${s.name}:`, e));
  for (const s of premiums)
    await containers.delete(s.name).catch((e) => console.error(`cleanup ${s.name}:`, e));
  await pool.shutdown();
  await containers.shutdown();
  for (const c of [poolNet, ctrNet]) {
    await removeRuleset(c).catch(() => {});
    await removeBridge(c).catch(() => {});
  }
  await removeCgroupTrees([POOL_CG, CTR_CG]);
  await execFile(["umount", join(home, "csecrets")]).catch(() => {});
  await provider.close();
  await rm(home, { recursive: true, force: true });
}
