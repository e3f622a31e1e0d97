/**
 * What the settings clawkeep gives a gateway cost its start: a bare `openclaw gateway run` (fresh
 * state, to /readyz, as bench/provisioning.ts runs it) plain, and with one setting at a time as
 * the platform applies it, alternated in one run. Prints each variant's median start, CPU-seconds
 * (user/kernel), minor page faults, and its ratio to plain.
 *  - managed proxy: openclaw.json `proxy: {enabled, proxyUrl}` (what every tier with egress gets),
 *    pointed at a proxy on loopback that refuses everything and counts what it is asked;
 *  - env proxy: HTTPS_PROXY/HTTP_PROXY plus NODE_USE_ENV_PROXY=1 (Node's own fetch and http
 *    agents go through the proxy) and no managed proxy;
 *  - starter memory: the gateway in a memory cgroup with the Starter plan's limit (V8 sizes its
 *    heap from it: 864 MiB instead of ~4 GiB here);
 *  - pool: managed proxy plus starter memory, as a Starter gateway in a pool starts;
 *  - warm-cache, pool-warm-cache: NODE_COMPILE_CACHE at a cache one earlier start filled;
 *  - *-semi32: the same with NODE_OPTIONS=--max-semi-space-size=32 (V8's young generation as it
 *    is without a memory limit).
 * The gateways reach loopback only.
 *
 *   npx tsx bench/openclaw-start.ts [rounds=2] [variants=plain,managed-proxy,env-proxy,starter-memory,pool]
 */
import { spawn } from "node:child_process";
import { chmod, chown, mkdir, mkdtemp, rm, rmdir, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { loadSettings } from "../src/config/settings.ts";
import { planFor } from "../src/core/plans.ts";
import { pidsOfUid } from "../src/lib/procfs.ts";
import { startEchoProvider } from "../src/llm/echo-provider.ts";
import {
  gatewayArgs,
  type OpenClawConfigInput,
  renderGatewayEnv,
  renderOpenClawConfigFile,
} from "../src/openclaw/config.ts";
import { probe } from "../src/openclaw/probe.ts";
import { ensureRuntime } from "../src/openclaw/runtime.ts";
import { blockEgress } from "./no-egress.ts";
import { bareGatewayDirs, type CpuSplit, cpuSnapshot, median, splitCpu } from "./profile.ts";

const rounds = Number(process.argv[2] ?? 2);
const chosen = (process.argv[3] ?? "plain,managed-proxy,env-proxy,starter-memory,pool").split(",");
const UID = 202950;
const PORT = 33950;
const MEMORY_CGROUP = "/sys/fs/cgroup/memory/clawkeep-bench-start";

interface Variant {
  name: string;
  proxy?: "managed" | "env";
  memoryBytes?: number;
  /** NODE_OPTIONS for the gateway (V8 heap tuning under a memory limit). */
  nodeOptions?: string;
  /** NODE_COMPILE_CACHE: a cache filled by one unmeasured start before the rounds. */
  warmCache?: boolean;
}
const starterMemory = planFor("starter").memoryBytes;
const VARIANTS: Variant[] = [
  { name: "plain" },
  { name: "managed-proxy", proxy: "managed" },
  { name: "env-proxy", proxy: "env" },
  { name: "starter-memory", memoryBytes: starterMemory },
  { name: "pool", proxy: "managed", memoryBytes: starterMemory },
  // V8 sizes its young generation from the heap limit it derives from the cgroup's memory limit:
  // under 1.5 GiB it scavenges more often during the start. These give it the young generation it
  // has without a limit.
  // OpenClaw turns on Node's compile cache, under $TMPDIR unless NODE_COMPILE_CACHE says where: a
  // fresh TMPDIR (every variant above) compiles every module again; these reuse a filled cache.
  { name: "warm-cache", warmCache: true },
  { name: "pool-warm-cache", proxy: "managed", memoryBytes: starterMemory, warmCache: true },
  { name: "starter-memory-semi32", memoryBytes: starterMemory, nodeOptions: "--max-semi-space-size=32" },
  {
    name: "pool-semi32",
    proxy: "managed",
    memoryBytes: starterMemory,
    nodeOptions: "--max-semi-space-size=32",
  },
];
const variants = chosen.map((n) => {
  const v = VARIANTS.find((x) => x.name === n);
  if (!v) throw new Error(`unknown variant ${n}; known: ${VARIANTS.map((x) => x.name).join(", ")}`);
  return v;
});

const provider = await startEchoProvider();
const runtime = await ensureRuntime(loadSettings());
const root = await mkdtemp("/tmp/clawkeep-bench-start-");
await chmod(root, 0o711);
// A proxy on loopback that refuses every request and counts them.
let proxyRequests = 0;
const proxy = createServer((_req, res) => {
  proxyRequests++;
  res.writeHead(403).end();
});
proxy.on("connect", (_req, socket) => {
  proxyRequests++;
  socket.end("HTTP/1.1 403 Forbidden\r\n\r\n");
});
await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;

async function killAll(): Promise<void> {
  for (let pids = await pidsOfUid(UID); pids.length; pids = await pidsOfUid(UID)) {
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
    await sleep(100);
  }
  await rm(`/tmp/openclaw-state-locks-${UID}`, { recursive: true, force: true });
}

async function start(v: Variant, i: number): Promise<{ ms: number; cpu: CpuSplit; proxied: number }> {
  const dir = join(root, `${v.name}-${i}`);
  const paths = await bareGatewayDirs(dir, UID);
  const cfg: OpenClawConfigInput = {
    port: PORT,
    bind: "loopback",
    paths,
    llm: { baseUrl: provider.url, model: provider.model },
    ...(v.proxy === "managed" ? { proxyUrl } : {}),
  };
  await writeFile(paths.configPath, renderOpenClawConfigFile(cfg));
  const env: Record<string, string> = {
    ...renderGatewayEnv({
      port: PORT,
      paths,
      nodeBinDir: runtime.nodeBinDir,
      gatewayToken: "t".repeat(40),
      llmApiKey: "k",
      proxyUrl: v.proxy ? proxyUrl : null,
    }),
  };
  if (v.nodeOptions) env.NODE_OPTIONS = v.nodeOptions;
  if (v.warmCache) env.NODE_COMPILE_CACHE = COMPILE_CACHE;
  if (v.proxy === "env") env.NODE_USE_ENV_PROXY = "1";
  let argv = [runtime.nodeBin, ...gatewayArgs(runtime.entry, PORT)];
  let asUser: { uid?: number; gid?: number } = { uid: UID, gid: UID };
  if (v.memoryBytes) {
    // Into the cgroup as root, then down to the gateway's uid: it is in the cgroup from its first instruction.
    await mkdir(MEMORY_CGROUP).catch(() => {});
    await writeFile(join(MEMORY_CGROUP, "memory.limit_in_bytes"), String(v.memoryBytes));
    argv = [
      "/bin/sh",
      "-c",
      `echo $$ > ${MEMORY_CGROUP}/cgroup.procs && exec "$@"`,
      "sh",
      "/usr/bin/setpriv",
      `--reuid=${UID}`,
      `--regid=${UID}`,
      "--clear-groups",
      ...argv,
    ];
    asUser = {};
  }
  const proxied0 = proxyRequests;
  const snap0 = await cpuSnapshot();
  const t0 = performance.now();
  const child = spawn(argv[0]!, argv.slice(1), {
    env,
    cwd: paths.home,
    ...asUser,
    detached: true,
    stdio: "ignore",
  });
  child.unref();
  while (!(await probe(`http://127.0.0.1:${PORT}`)).ok) {
    if (performance.now() - t0 > 180_000) throw new Error(`${v.name}: not ready after 180 s`);
    await sleep(100);
  }
  const ms = performance.now() - t0;
  const cpu = splitCpu(snap0, await cpuSnapshot(), [UID]);
  await killAll();
  return { ms, cpu, proxied: proxyRequests - proxied0 };
}

const COMPILE_CACHE = join(root, "compile-cache");
await mkdir(COMPILE_CACHE, { mode: 0o700 });
await chown(COMPILE_CACHE, UID, UID);
const unblock = await blockEgress("ckbench_start_noegress", { first: UID, last: UID });
const results = new Map<string, Array<{ ms: number; cpu: CpuSplit; proxied: number }>>();
try {
  if (variants.some((v) => v.warmCache)) {
    // One unmeasured start fills the cache (as any earlier start of the same runtime would).
    const first = await start({ name: "fill-cache", warmCache: true }, 0);
    process.stderr.write(`compile cache filled by one start: ${(first.ms / 1000).toFixed(1)} s\n`);
  }
  for (let r = 0; r < rounds; r++) {
    for (const v of variants) {
      await sleep(2000);
      const res = await start(v, r);
      results.set(v.name, [...(results.get(v.name) ?? []), res]);
      process.stderr.write(
        `round ${r + 1}/${rounds} ${v.name.padEnd(15)} ${(res.ms / 1000).toFixed(1)} s, cpu-s ${(res.cpu.gatewayMs / 1000).toFixed(1)} (kernel ${(res.cpu.gatewaySysMs / 1000).toFixed(1)}), minflt ${res.cpu.gatewayMinflt}, proxy requests ${res.proxied}\n`,
      );
    }
  }
  const base = median((results.get("plain") ?? results.get(variants[0]!.name)!).map((x) => x.ms));
  console.log(`bare OpenClaw start to /readyz under clawkeep's settings, ${rounds} rounds (medians):`);
  for (const v of variants) {
    const xs = results.get(v.name)!;
    const ms = median(xs.map((x) => x.ms));
    console.log(
      `  ${v.name.padEnd(15)} ${(ms / 1000).toFixed(2)} s  cpu-s ${(median(xs.map((x) => x.cpu.gatewayMs)) / 1000).toFixed(1)} (kernel ${(median(xs.map((x) => x.cpu.gatewaySysMs)) / 1000).toFixed(1)})  minflt ${median(xs.map((x) => x.cpu.gatewayMinflt))}  ratio ${(ms / base).toFixed(3)}  (${xs.map((x) => (x.ms / 1000).toFixed(1)).join(", ")})`,
    );
  }
} finally {
  await killAll();
  await rmdir(MEMORY_CGROUP).catch(() => {});
  await unblock();
  proxy.close();
  await provider.close();
  await rm(root, { recursive: true, force: true });
}
