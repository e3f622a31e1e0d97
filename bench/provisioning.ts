/**
 * Provisioning benchmark (issue 2): a bare `openclaw gateway run` start (fresh state, to /readyz)
 * and a tenant create-to-running through clawkeep (POST /v1/tenants until the tenant is
 * `running`), alternated in one run so both see the same machine load. Each clawkeep create is
 * as shipped (the gateway starts with the start CPU quota and is settled to its plan's once ready;
 * `steady` adds one held at its plan's steady quota from the start). Prints each step of
 * every start, where the CPU went while it ran (gateway user/kernel, control plane, the rest of the
 * host), cgroup throttling, what the gateway tried through the egress proxy, the medians and ratios.
 * Target: clawkeep adds under 5 % to OpenClaw's own start.
 *
 * A resident tenant is created first and kept, so the timed creates go into an already running
 * Starter pool (the steady state); the resident's own create (which starts the pool) is printed
 * apart. CLAWKEEP_SANDBOX=off runs every tier as plain host processes; CLAWKEEP_EDGE=0 turns the
 * edge off. The platform runs with its own CLAWKEEP_HOME, uid range and tenant network prefix
 * 10.222 (no test uses that /16: a bench killed mid-run once left its bridge on the container
 * test's range, whose replies it then swallowed), but on the platform's own bridge (ckbr0) and
 * nftables table (clawkeep), which settings cannot change: never run it together with the
 * end-to-end tests.
 *
 * Each round also starts a bare gateway with the OpenClaw settings a tenant gets (the managed
 * egress proxy), so what OpenClaw itself spends on them and what the platform adds are told apart.
 *
 *   npx tsx bench/provisioning.ts [rounds=3] [tier=starter] [steady]
 */
import { spawn } from "node:child_process";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { loadSettings } from "../src/config/settings.ts";
import { startPlatform } from "../src/control/platform.ts";
import type { Tier } from "../src/core/tenant.ts";
import { createLogger } from "../src/lib/log.ts";
import { pidsOfUid } from "../src/lib/procfs.ts";
import { startEchoProvider } from "../src/llm/echo-provider.ts";
import { gatewayArgs, renderGatewayEnv, renderOpenClawConfigFile } from "../src/openclaw/config.ts";
import { probe } from "../src/openclaw/probe.ts";
import { ensureRuntime } from "../src/openclaw/runtime.ts";
import type { InstanceSpec, InstanceStatus } from "../src/runtime/types.ts";
import { blockEgress } from "./no-egress.ts";
import {
  bareGatewayDirs,
  type CpuSplit,
  cpuSnapshot,
  cpuThrottling,
  formatSplit,
  median,
  splitCpu,
  Timeline,
} from "./profile.ts";

const rounds = Number(process.argv[2] ?? 3);
const tier = (process.argv[3] ?? "starter") as Tier;
/** `steady` as the third argument adds a create held at the plan's steady CPU quota from the start. */
const withSteady = process.argv[4] === "steady";
const BARE_UID = 202900;
const BARE_PORT = 33900;
const UID_BASE = 202000;
/** Time for the previous start's teardown (gateway stop, edge reload) to end before the next one. */
const SETTLE_MS = 3000;

async function killUid(uid: number) {
  for (const pid of await pidsOfUid(uid)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
  while ((await pidsOfUid(uid)).length) await sleep(100);
  await rm(`/tmp/openclaw-state-locks-${uid}`, { recursive: true, force: true });
}

const provider = await startEchoProvider();
const settingsEnv = {
  ...process.env,
  CLAWKEEP_LLM_BASE_URL: provider.url,
  CLAWKEEP_LLM_MODEL: provider.model,
  // The same key as the bare start's.
  CLAWKEEP_LLM_API_KEY: "k",
};
const runtime = await ensureRuntime(loadSettings(settingsEnv));
const root = await mkdtemp("/tmp/clawkeep-bench-");
await chmod(root, 0o711);

/** What one timed start recorded. */
interface Run {
  ms: number;
  tl: Timeline;
  cpu: CpuSplit;
  throttle: string;
  statusCalls: number;
  probes: number;
}

const fmtThrottle = async (pid: number | null | undefined): Promise<string> => {
  const t = pid ? await cpuThrottling(pid) : undefined;
  return t
    ? `cgroup ${t.cgroup}: throttled ${t.throttled}/${t.periods} periods, ${(t.throttledMs / 1000).toFixed(1)} s`
    : "no cpu cgroup";
};

// Every /readyz probe of this process (the reconciler's and the bare loop's): counted, and the
// first 200 of the start being timed is marked.
let current: { name: string; tl: Timeline; statusCalls: number; probes: number } | undefined;
const realFetch = globalThis.fetch;
globalThis.fetch = async (input, init) => {
  const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
  const isProbe = url.endsWith("/readyz");
  const cur = current;
  if (isProbe && cur) {
    cur.probes++;
    cur.tl.mark("first-probe");
  }
  const res = await realFetch(input, init);
  if (isProbe && cur && res.status === 200) cur.tl.mark("readyz-200");
  return res;
};

/**
 * A loopback proxy that refuses everything: what the bare "tenant settings" start is pointed at,
 * as a tenant's gateway is pointed at the egress proxy (which refuses what is not allowed).
 */
const refusingProxy = createServer((_req, res) => res.writeHead(403).end());
refusingProxy.on("connect", (_req, socket) => socket.end("HTTP/1.1 403 Forbidden\r\n\r\n"));
await new Promise<void>((r) => refusingProxy.listen(0, "127.0.0.1", r));
const refusingProxyUrl = `http://127.0.0.1:${(refusingProxy.address() as AddressInfo).port}`;

/**
 * A bare `openclaw gateway run` to /readyz. `tenantSettings`: with the OpenClaw settings every
 * tenant with egress gets (the managed egress proxy: `proxy.proxyUrl` plus the proxy variables),
 * so the difference to clawkeep's create is the platform's own.
 */
async function bare(i: number, tenantSettings = false): Promise<Run> {
  const dir = join(root, `bare-${tenantSettings ? "t" : ""}${i}`);
  const paths = await bareGatewayDirs(dir, BARE_UID);
  await writeFile(
    paths.configPath,
    renderOpenClawConfigFile({
      port: BARE_PORT,
      bind: "loopback",
      paths,
      llm: { baseUrl: provider.url, model: provider.model },
      ...(tenantSettings ? { proxyUrl: refusingProxyUrl } : {}),
    }),
  );
  const env = renderGatewayEnv({
    port: BARE_PORT,
    paths,
    nodeBinDir: runtime.nodeBinDir,
    gatewayToken: "t".repeat(40),
    llmApiKey: "k",
    proxyUrl: tenantSettings ? refusingProxyUrl : null,
  });
  const snap0 = await cpuSnapshot();
  const cur = {
    name: tenantSettings ? "bare-tenant" : "bare",
    tl: new Timeline(),
    statusCalls: 0,
    probes: 0,
  };
  current = cur;
  const child = spawn(runtime.nodeBin, gatewayArgs(runtime.entry, BARE_PORT), {
    env,
    cwd: paths.home,
    uid: BARE_UID,
    gid: BARE_UID,
    detached: true,
    stdio: "ignore",
  });
  child.once("spawn", () => cur.tl.mark("spawned"));
  child.unref();
  while (!(await probe(`http://127.0.0.1:${BARE_PORT}`)).ok) await sleep(100);
  const ms = performance.now() - cur.tl.t0;
  current = undefined;
  const cpu = splitCpu(snap0, await cpuSnapshot(), [BARE_UID]);
  const throttle = await fmtThrottle(child.pid);
  await killUid(BARE_UID);
  return { ms, tl: cur.tl, cpu, throttle, statusCalls: 0, probes: cur.probes };
}

const home = join(root, "clawkeep");
const settings = loadSettings({
  ...settingsEnv,
  CLAWKEEP_HOME: home,
  CLAWKEEP_API_LISTEN: "127.0.0.1:0",
  CLAWKEEP_PORT_BASE: "34000",
  CLAWKEEP_UID_BASE: String(UID_BASE),
  CLAWKEEP_TENANT_NET_PREFIX: process.env.CLAWKEEP_TENANT_NET_PREFIX || "10.222",
  CLAWKEEP_EDGE_LISTEN: process.env.CLAWKEEP_EDGE_LISTEN || "127.0.0.1:38443",
  CLAWKEEP_IDMAP_BASE: process.env.CLAWKEEP_IDMAP_BASE || "30000000",
});
const platform = await startPlatform(settings, createLogger("warn"));

// Each step of a start through the platform, seen from the driver and the admission queue.
const driver = platform.driver;
const gatewayUids = new Set<number>();
const uidOf = (st: InstanceStatus): number | undefined => {
  const u = st.details.hostUid ?? (driver.kind.startsWith("host") ? st.details.uid : undefined);
  return typeof u === "number" ? u : undefined;
};
let lastStart: InstanceStatus | undefined;
/** "steady": the start under test is held at its plan's steady CPU quota from the beginning. */
let quotaMode: "start" | "steady" = "start";
type Settling = { settle?: (spec: InstanceSpec, signal?: AbortSignal) => Promise<void> };
const settling = driver as typeof driver & Settling;
{
  const { create, start, status } = driver;
  driver.create = async (spec, signal) => {
    if (current?.name === spec.name) current.tl.mark("driver.create");
    const r = await create.call(driver, spec, signal);
    if (current?.name === spec.name) current.tl.mark("created");
    return r;
  };
  driver.start = async (spec, secrets, signal) => {
    if (current?.name === spec.name) current.tl.mark("driver.start");
    const r = await start.call(driver, spec, secrets, signal);
    if (quotaMode === "steady" && current?.name === spec.name) await settling.settle?.(spec, signal);
    if (current?.name === spec.name) {
      current.tl.mark("spawned");
      lastStart = r;
    }
    const u = uidOf(r);
    if (u !== undefined) gatewayUids.add(u);
    return r;
  };
  driver.status = async (name, signal) => {
    if (current?.name === name) current.statusCalls++;
    return status.call(driver, name, signal);
  };
  const admission = platform.reconciler.admission;
  const run = admission.run.bind(admission);
  admission.run = (fn, signal) =>
    run(() => {
      current?.tl.mark("admitted");
      return fn();
    }, signal);
}

/** What the tenant's gateway tried to reach through the egress proxy (its connection log). */
async function egressTries(name: string): Promise<string> {
  const { readFile } = await import("node:fs/promises");
  const text = await readFile(join(settings.logsDir, "egress.jsonl"), "utf8").catch(() => "");
  const mine = text
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { tenant: string | null; host: string | null; verdict: string })
    .filter((e) => e.tenant === name);
  if (!mine.length) return "no egress";
  const hosts = [...new Set(mine.map((e) => `${e.host} ${e.verdict}`))].join(", ");
  return `${mine.length} egress connections (${hosts})`;
}

async function viaClawkeep(name: string, keep = false): Promise<Run> {
  const snap0 = await cpuSnapshot();
  const cur = { name, tl: new Timeline(), statusCalls: 0, probes: 0 };
  current = cur;
  lastStart = undefined;
  const res = await fetch(`${platform.apiUrl}/v1/tenants`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name, tier }),
  });
  if (res.status !== 201) throw new Error(await res.text());
  cur.tl.mark("api-201");
  for (;;) {
    const t = platform.store.get(name);
    if (t?.actual === "running") break;
    if (t?.actual === "failed") throw new Error(t.reason ?? "failed");
    await sleep(50);
  }
  cur.tl.mark("running");
  const ms = performance.now() - cur.tl.t0;
  current = undefined;
  const st = lastStart as InstanceStatus | undefined;
  const uid = st ? uidOf(st) : undefined;
  const cpu = splitCpu(snap0, await cpuSnapshot(), uid !== undefined ? [uid] : []);
  const throttle = `${await fmtThrottle(st?.pid)}; ${await egressTries(name)}`;
  if (!keep) {
    platform.tenants.delete({ kind: "operator" }, name);
    while (platform.store.get(name)) await sleep(100);
  }
  return { ms, tl: cur.tl, cpu, throttle, statusCalls: cur.statusCalls, probes: cur.probes };
}

const STEPS = [
  "api-201",
  "admitted",
  "driver.create",
  "created",
  "driver.start",
  "spawned",
  "first-probe",
  "readyz-200",
  "running",
];
const describe = (label: string, r: Run) =>
  `${label} ${(r.ms / 1000).toFixed(2)} s\n    steps (s): ${r.tl.format(STEPS)}\n    ${formatSplit(r.cpu)}\n    ${r.throttle}; ${r.probes} probes, ${r.statusCalls} status calls`;

// Host-process gateways (the bare one; every tenant with CLAWKEEP_SANDBOX=off) reach loopback only.
const unblock = await blockEgress("ckbench_prov_noegress", { first: UID_BASE, last: UID_BASE + 999 });
const bareRuns: Run[] = [];
const bareTenantRuns: Run[] = [];
const ckRuns: Run[] = [];
const steadyRuns: Run[] = [];
const list = (runs: Run[]) => runs.map((x) => (x.ms / 1000).toFixed(1)).join(", ");
const medMs = (runs: Run[]) => median(runs.map((r) => r.ms));
try {
  process.stderr.write(`platform driver ${driver.kind}, tier ${tier}\n`);
  const resident = await viaClawkeep("bench-resident", true);
  process.stderr.write(`${describe("first create (starts the pool)", resident)}\n`);
  for (let i = 0; i < rounds; i++) {
    await sleep(SETTLE_MS);
    bareRuns.push(await bare(i));
    await sleep(SETTLE_MS);
    bareTenantRuns.push(await bare(i, true));
    await sleep(SETTLE_MS);
    quotaMode = "start";
    ckRuns.push(await viaClawkeep(`bench-${i}`));
    if (withSteady) {
      await sleep(SETTLE_MS);
      quotaMode = "steady";
      steadyRuns.push(await viaClawkeep(`bench-s${i}`));
      quotaMode = "start";
    }
    process.stderr.write(
      `round ${i + 1}/${rounds}:\n  ${describe("bare", bareRuns[i]!)}\n  ${describe("bare, tenant settings", bareTenantRuns[i]!)}\n  ${describe("clawkeep", ckRuns[i]!)}\n${withSteady ? `  ${describe("clawkeep, steady quota from the start", steadyRuns[i]!)}\n` : ""}`,
    );
  }
  const b = medMs(bareRuns);
  const bt = medMs(bareTenantRuns);
  const c = medMs(ckRuns);
  const k = withSteady ? medMs(steadyRuns) : Number.NaN;
  const medStep = (runs: Run[], step: string) => {
    const xs = runs.map((r) => r.tl.marks.get(step)).filter((x): x is number => x !== undefined);
    return xs.length ? `${step} ${(median(xs) / 1000).toFixed(2)}` : undefined;
  };
  const medCpu = (runs: Run[], key: "gatewayMs" | "controlMs" | "otherMs") =>
    (median(runs.map((r) => r.cpu[key])) / 1000).toFixed(1);
  console.log(`driver ${driver.kind}, tier ${tier}, ${rounds} rounds`);
  console.log(`first create (new pool)                  ${(resident.ms / 1000).toFixed(2)} s`);
  console.log(
    `bare openclaw start to /readyz           median ${(b / 1000).toFixed(2)} s  (${list(bareRuns)})`,
  );
  console.log(
    `bare, with the tenant's OpenClaw settings median ${(bt / 1000).toFixed(2)} s  (${list(bareTenantRuns)})`,
  );
  console.log(
    `clawkeep create to running               median ${(c / 1000).toFixed(2)} s  (${list(ckRuns)})`,
  );
  if (withSteady)
    console.log(
      `  same, steady CPU quota from the start  median ${(k / 1000).toFixed(2)} s  (${list(steadyRuns)})`,
    );
  console.log(
    `  median steps (s): ${STEPS.map((st) => medStep(ckRuns, st))
      .filter(Boolean)
      .join(", ")}`,
  );
  for (const [label, runs] of [
    ["bare", bareRuns],
    ["bare-ten", bareTenantRuns],
    ["clawkeep", ckRuns],
    ...(withSteady ? [["steady", steadyRuns] as const] : []),
  ] as const) {
    console.log(
      `  median cpu-s ${label.padEnd(8)}: gateway ${medCpu(runs, "gatewayMs")}, control plane ${medCpu(runs, "controlMs")}, other ${medCpu(runs, "otherMs")}; probes ${median(runs.map((r) => r.probes))}, status calls ${median(runs.map((r) => r.statusCalls))}`,
    );
  }
  console.log(
    `ratio clawkeep / bare                    ${(c / b).toFixed(3)}  (overhead ${(((c - b) / b) * 100).toFixed(1)} %, target < 5 %)`,
  );
  console.log(
    `ratio bare with tenant settings / bare   ${(bt / b).toFixed(3)}  (what OpenClaw itself spends on the managed egress proxy)`,
  );
  console.log(
    `ratio clawkeep / bare with tenant settings ${(c / bt).toFixed(3)}  (the platform's own share)`,
  );
  if (withSteady) console.log(`ratio clawkeep at steady quota / bare    ${(k / b).toFixed(3)}`);
} finally {
  globalThis.fetch = realFetch;
  await unblock();
  await platform.close({ teardown: true });
  await killUid(BARE_UID);
  for (const uid of gatewayUids) await killUid(uid);
  for (let s = 0; s < 4; s++) await killUid(UID_BASE + s);
  await provider.close();
  refusingProxy.close();
  await rm(root, { recursive: true, force: true });
}
