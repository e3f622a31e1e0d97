/**
 * Sandbox benchmark (issue 4), in one run on one machine:
 *  1. create-to-ready of a gateway through the container driver vs the host-process driver,
 *     alternated so both see the same load (target: under 10 % more);
 *  2. noisy neighbour: p99 latency of B's gateway (GET /healthz) while A runs a CPU hog in its own
 *     container vs while A is idle (target: at most 1.2).
 * Storage is plain directories for both drivers, so the ratio is the sandbox's own cost.
 *
 *   npx tsx bench/sandbox.ts [rounds=2] [requests=300]
 */
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { loadSettings } from "../src/config/settings.ts";
import { planFor } from "../src/core/plans.ts";
import { Secret } from "../src/core/secret.ts";
import type { Tier } from "../src/core/tenant.ts";
import { execFile } from "../src/lib/exec.ts";
import { pidsOfUid } from "../src/lib/procfs.ts";
import { startEchoProvider } from "../src/llm/echo-provider.ts";
import { waitReady } from "../src/openclaw/probe.ts";
import { ensureRuntime } from "../src/openclaw/runtime.ts";
import { HostProcessDriver } from "../src/runtime/host/driver.ts";
import { ContainerDriver, detectOciRuntime } from "../src/runtime/local/driver.ts";
import {
  DEFAULT_NETWORK,
  type NetworkConfig,
  removeBridge,
  removeRuleset,
} from "../src/runtime/local/network.ts";
import { PlainVolumes } from "../src/runtime/local/plain-volumes.ts";
import type { InstanceSpec, RuntimeDriver } from "../src/runtime/types.ts";

const rounds = Number(process.argv[2] ?? 2);
const requests = Number(process.argv[3] ?? 300);
const UID_BASE = 204000;
const net: NetworkConfig = {
  ...DEFAULT_NETWORK,
  bridge: "ckbbr0",
  table: "clawkeep_bench",
  prefix16: "198.18",
};

const runtime = await ensureRuntime(loadSettings());
const provider = await startEchoProvider();
const home = await mkdtemp("/tmp/clawkeep-bench-sandbox-");
await chmod(home, 0o711);
const host = new HostProcessDriver({
  tenantsDir: join(home, "tenants"),
  runDir: join(home, "run"),
  runtime,
  portBase: 35000,
  portStride: 200,
  uidBase: UID_BASE,
  gatewayHost: "127.0.0.1",
});
const containers = new ContainerDriver({
  containersDir: join(home, "containers"),
  secretsDir: join(home, "secrets"),
  runtime,
  oci: await detectOciRuntime(),
  network: net,
  volumes: new PlainVolumes(join(home, "volumes")),
  idMapBase: 5_000_000,
  cgroupParent: "clawkeep-bench",
  stopGraceMs: 5000,
});

const spec = (name: string, slot: number, tier: Tier = "premium"): InstanceSpec => ({
  tenantId: `tnt_${name}`,
  name,
  tier,
  slot,
  plan: planFor(tier),
  llm: { baseUrl: provider.url, model: provider.model },
});
const secrets = { gatewayToken: new Secret("t".repeat(40)), llmApiKey: new Secret("k") };

async function createToReady(d: RuntimeDriver, s: InstanceSpec): Promise<number> {
  const t0 = performance.now();
  await d.create(s);
  const st = await d.start(s, secrets);
  await waitReady(st.url!, { timeoutMs: 300_000, intervalMs: 100 });
  return performance.now() - t0;
}

async function p99(url: string): Promise<{ p50: number; p99: number }> {
  const xs: number[] = [];
  for (let i = 0; i < requests; i++) {
    const t0 = performance.now();
    const r = await fetch(`${url}/healthz`);
    await r.arrayBuffer();
    xs.push(performance.now() - t0);
  }
  xs.sort((a, b) => a - b);
  return { p50: xs[Math.floor(xs.length * 0.5)]!, p99: xs[Math.floor(xs.length * 0.99)]! };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const hostMs: number[] = [];
const ctrMs: number[] = [];
const kept: string[] = [];
try {
  for (let i = 0; i < rounds; i++) {
    const h = `bh${i}`;
    hostMs.push(await createToReady(host, spec(h, i, "starter")));
    await host.delete(h);
    const c = `bc${i}`;
    ctrMs.push(await createToReady(containers, spec(c, 10 + i)));
    kept.push(c);
    process.stderr.write(
      `round ${i + 1}/${rounds}: host ${(hostMs[i]! / 1000).toFixed(1)} s, container ${(ctrMs[i]! / 1000).toFixed(1)} s\n`,
    );
  }
  const hm = median(hostMs);
  const cm = median(ctrMs);
  console.log(
    `host-process driver create-to-ready   median ${(hm / 1000).toFixed(2)} s (${hostMs.map((x) => (x / 1000).toFixed(1)).join(", ")})`,
  );
  console.log(
    `container driver create-to-ready      median ${(cm / 1000).toFixed(2)} s (${ctrMs.map((x) => (x / 1000).toFixed(1)).join(", ")})`,
  );
  console.log(`ratio container / host                ${(cm / hm).toFixed(3)}  (target < 1.10)`);

  if (kept.length >= 2) {
    const [a, b] = kept as [string, string];
    const bUrl = containers.urlFor(spec(b, 11));
    await new Promise((r) => setTimeout(r, 5000)); // let post-start work settle
    const idle = await p99(bUrl);
    // A CPU hog in A: as many spinning processes as A's plan has CPUs.
    const cpus = planFor("premium").cpus;
    const hogs = Array.from({ length: cpus }, () =>
      containers
        .exec(a, [runtime.nodeBin, "-e", "const end=Date.now()+120000;while(Date.now()<end){}"])
        .catch(() => ""),
    );
    await new Promise((r) => setTimeout(r, 2000));
    const busy = await p99(bUrl);
    await containers.exec(a, ["pkill", "-f", "while\\(Date"], {}).catch(() => "");
    await Promise.race([Promise.all(hogs), new Promise((r) => setTimeout(r, 5000))]);
    console.log(
      `B /healthz with A idle                p50 ${idle.p50.toFixed(2)} ms  p99 ${idle.p99.toFixed(2)} ms (${requests} requests)`,
    );
    console.log(
      `B /healthz with A hogging ${cpus} CPUs     p50 ${busy.p50.toFixed(2)} ms  p99 ${busy.p99.toFixed(2)} ms`,
    );
    console.log(`ratio p99 busy / idle                 ${(busy.p99 / idle.p99).toFixed(3)}  (target <= 1.2)`);
  }
} finally {
  for (const c of kept) await containers.delete(c).catch(() => {});
  for (let i = 0; i < rounds; i++) await host.delete(`bh${i}`).catch(() => {});
  for (let s = 0; s < rounds; s++)
    for (const pid of await pidsOfUid(UID_BASE + s)) process.kill(pid, "SIGKILL");
  await containers.shutdown();
  await removeRuleset(net).catch(() => {});
  await removeBridge(net).catch(() => {});
  await execFile(["umount", join(home, "secrets")]).catch(() => {});
  await provider.close();
  await rm(home, { recursive: true, force: true });
}
