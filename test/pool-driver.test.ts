import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, chown, mkdir, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { loadSettings } from "../src/config/settings.ts";
import { planFor } from "../src/core/plans.ts";
import { Secret } from "../src/core/secret.ts";
import type { EgressProxy } from "../src/egress/proxy.ts";
import { execFile } from "../src/lib/exec.ts";
import { procInfo } from "../src/lib/procfs.ts";
import { waitReady } from "../src/openclaw/probe.ts";
import { ensureRuntime, type OpenClawRuntime } from "../src/openclaw/runtime.ts";
import { driverConformance } from "../src/runtime/conformance.ts";
import { CpuGuard, cpuControllerRoot, scanTenantCgroups } from "../src/runtime/cpu-guard.ts";
import {
  DEFAULT_NETWORK,
  hostAddress,
  hostIf,
  type NetworkConfig,
  netnsName,
  removeRuleset,
  tenantAddress,
} from "../src/runtime/linux/net/network.ts";
import { Fscrypt, keyIdentifier } from "../src/runtime/linux/volume/fscrypt.ts";
import { LocalVolumes } from "../src/runtime/linux/volume/volume.ts";
import { PoolDriver, startQuota } from "../src/runtime/pool/driver.ts";
import { NetworkMembers, POOL_NFT_TABLE } from "../src/runtime/pool/network.ts";
import { EncryptedPoolStorage, PlainPoolStorage, type PoolStorage } from "../src/runtime/pool/storage.ts";
import { cpuGuardQuotas } from "../src/runtime/sandbox.ts";
import type { InstanceSpec } from "../src/runtime/types.ts";
import { testSpec } from "../src/testing/specs.ts";
import { removeCgroupTrees, sandboxHome } from "./fixtures/host.ts";
import { volumeSkipReason } from "./fixtures/volumes.ts";
import { type HostSide, PROBE_SCRIPT, probeFromHost, proxyRegistry, startHostSide } from "./netns.ts";
import { chat, needsRoot } from "./support.ts";

/**
 * Starter pools for real: runc, user namespaces, seccomp, per-tenant cgroups, Landlock, a shared
 * network namespace with per-tenant addresses, the egress proxy. Two real OpenClaw gateways
 * (s1, s2) share one pool; every other tenant runs a small Node gateway (same uid, cgroup,
 * confinement and network path; it answers /readyz and checks its token). Each isolation
 * property is crossed for real and must stop the attempt; control cases show the same attempt
 * works where the boundary is absent.
 *
 * Slots: pools 50-52 (plain storage) and 53-54 (encrypted storage); tenants 55-60 (59 is used in
 * turn by f3, the first encrypted-pool tenant and the conformance suite, each deleted before the
 * next; 60 by the second encrypted-pool tenant).
 */
const skip = needsRoot();
const EDGE_UID = 209991;
const NOBODY = 65534;
const net: NetworkConfig = {
  ...DEFAULT_NETWORK,
  bridge: "ckpbr0",
  table: "clawkeep_pool_test",
  // Not 198.18: the container driver's test uses that /16 on its own bridge, and two bridges
  // with one /16 on a host send each other's traffic astray when both suites run at once.
  prefix16: "10.218",
  egressPort: 3129,
  allowedUids: [0, EDGE_UID],
};
const INTERNET = "10.217.251";
const LLM_HOST = "llm.fake.test";
const CGROUP_PARENT = "clawkeep-pooltest";
const CGROUP_PARENT_ENC = "clawkeep-pooltest-enc";
const GiB = 1024 ** 3;
const SLOT = { s1: 55, s2: 56, f1: 57, f2: 58, f3: 59, e1: 59, e2: 60, conf: 59 } as const;

/** The small gateway: answers health probes, wants its token for anything else, says who it is. */
const FAKE_GATEWAY = `const http=require("http");const port=Number(process.argv[1]);const tok=process.env.OPENCLAW_GATEWAY_TOKEN;
http.createServer((q,r)=>{if(q.url==="/readyz"||q.url==="/healthz"){r.end("ok");return}
if(q.headers.authorization!=="Bearer "+tok){r.statusCode=401;r.end("unauthorized");return}
r.end(JSON.stringify({uid:process.getuid(),pid:process.pid}))}).listen(port,"0.0.0.0")`;

let home = "";
let runtime: OpenClawRuntime;
let side: HostSide | undefined;
let proxy: EgressProxy;
let members: NetworkMembers;
let real: PoolDriver;
let small: PoolDriver;
let enc: PoolDriver | undefined;
let encStorage: EncryptedPoolStorage | undefined;
const HOST_PORT = 41235;

const spec = (name: string, slot: number): InstanceSpec =>
  testSpec(name, "starter", slot, { baseUrl: `http://${LLM_HOST}/v1`, model: "echo-1" });
const tokens: Record<string, string> = {};
const secretsOf = (name: string) => {
  tokens[name] ??= `token-${name}-${randomBytes(12).toString("hex")}`;
  return { gatewayToken: new Secret(tokens[name]!), llmApiKey: new Secret("llm-key") };
};

function makeDriver(o: { fake: boolean; storage?: PoolStorage; encrypted?: boolean }): PoolDriver {
  return new PoolDriver({
    poolsDir: join(home, o.encrypted ? "pools-enc" : "pools"),
    secretsDir: join(home, o.encrypted ? "secrets-enc" : "secrets"),
    runtime,
    network: members,
    ...(o.encrypted ? { networkOwner: "pools-enc" } : {}),
    storage: o.storage ?? new PlainPoolStorage(join(home, "pooldata")),
    idMapBase: o.encrypted ? 7_500_000 : 7_000_000,
    cgroupParent: o.encrypted ? CGROUP_PARENT_ENC : CGROUP_PARENT,
    poolSlots: o.encrypted ? { first: 53, count: 2 } : { first: 50, count: 3 },
    // Two Starter tenants (1.5 GiB each) per pool.
    poolMemoryBytes: 3 * GiB + 512 * 1024 * 1024,
    stopGraceMs: 5000,
    ...(o.fake ? { gatewayCommand: ({ port, nodeBin }) => [nodeBin, "-e", FAKE_GATEWAY, String(port)] } : {}),
  });
}

async function startReady(d: PoolDriver, name: string, slot: number, timeoutMs = 30_000) {
  const s = spec(name, slot);
  await d.create(s);
  const st = await d.start(s, secretsOf(name));
  await waitReady(st.url!, {
    timeoutMs,
    alive: async () => (await d.status(name)).state === "running",
  }).catch(async (err) => {
    throw new Error(`${name}: ${(err as Error).message}\n${await d.logTail(name, 30)}`);
  });
  return d.status(name);
}

/** The gateway's pid as the pool sees it (the last NSpid field). */
async function nspid(hostPid: number): Promise<number> {
  const status = await readFile(`/proc/${hostPid}/status`, "utf8");
  return Number(/^NSpid:\s+(.*)$/m.exec(status)![1]!.trim().split(/\s+/).at(-1));
}

const sh = (d: PoolDriver, name: string, cmd: string, confined = true) =>
  d.exec(name, ["/bin/sh", "-c", `${cmd} 2>&1; echo "rc=$?"`], { confined });

const PY_BIND = `import socket,sys
s=socket.socket()
try:
  s.bind(("0.0.0.0",int(sys.argv[1])));print("bound")
except OSError as e:
  print("refused",e.errno)`;
const PY_PTRACE = `import ctypes,sys
l=ctypes.CDLL(None,use_errno=True)
r=l.ptrace(16,int(sys.argv[1]),0,0)
print("ptrace",r,ctypes.get_errno())
if r==0: l.ptrace(17,int(sys.argv[1]),0,0)`;

async function probeFromTenant(d: PoolDriver, name: string, targets: Array<[string, number]>) {
  return JSON.parse(
    await d.exec(name, [runtime.nodeBin, "-e", PROBE_SCRIPT, JSON.stringify(targets)]),
  ) as string[];
}

async function leftoversOf(name: string, pools: string[] = []): Promise<string[]> {
  const left: string[] = [];
  for (const c of ["memory", "pids", "cpu"]) {
    for (const parent of [CGROUP_PARENT, CGROUP_PARENT_ENC]) {
      for (const p of await readdir(`/sys/fs/cgroup/${c}/${parent}`).catch(() => [] as string[])) {
        if (existsSync(`/sys/fs/cgroup/${c}/${parent}/${p}/t-${name}`))
          left.push(`cgroup ${c}/${p}/t-${name}`);
      }
    }
  }
  for (const d of ["pools", "pools-enc"]) {
    if (existsSync(join(home, d, "tenants", `${name}.json`))) left.push(`record in ${d}`);
  }
  for (const p of pools) {
    if (existsSync(join(home, "pooldata", p, "tenants", name))) left.push(`directory in ${p}`);
  }
  return left;
}

before(async () => {
  if (skip) return;
  home = await sandboxHome("clawkeep-pool-");
  runtime = await ensureRuntime(loadSettings());
  side = await startHostSide({
    net,
    ns: "ckp-inet",
    hostIf: "ckp-inet0",
    subnet24: INTERNET,
    hostPort: HOST_PORT,
    logFile: join(home, "egress.log"),
    resolve: (h) => (h === LLM_HOST ? [`${INTERNET}.2`] : []),
  });
  proxy = side.proxy;
  members = new NetworkMembers(
    net,
    proxyRegistry(net, () => proxy, [LLM_HOST]),
  );
  real = makeDriver({ fake: false });
  small = makeDriver({ fake: true });
});

after(async () => {
  if (skip || !home) return;
  for (const [d, names] of [
    [small, ["f1", "f2", "f3", "s1", "s2"]],
    [enc, ["e1"]],
  ] as const) {
    for (const n of names) await d?.delete(n).catch((e) => console.error(`cleanup ${n}:`, e));
  }
  // Whatever a failed test left: containers, netns, veths, cgroups, volumes, mounts.
  for (const root of ["secrets", "secrets-enc"]) {
    const runc = ["runc", "--root", join(home, root, "runc")];
    const ids = (await execFile([...runc, "list", "-q"]).catch(() => "")).split("\n").filter(Boolean);
    for (const id of ids) {
      console.error(`cleanup: container ${id} was left`);
      await execFile([...runc, "kill", "--all", id, "KILL"]).catch(() => {});
      await execFile([...runc, "delete", "--force", id]).catch(() => {});
    }
  }
  for (let slot = 50; slot <= 54; slot++) {
    await execFile(["ip", "link", "del", hostIf(slot)]).catch(() => {});
    await execFile(["ip", "netns", "delete", netnsName(slot)]).catch(() => {});
  }
  await removeCgroupTrees([CGROUP_PARENT, CGROUP_PARENT_ENC]);
  for (const p of ["pool-0", "pool-1"])
    await encStorage?.destroyPool(p).catch((e) => console.error("cleanup:", e));
  await real?.shutdown().catch(() => {});
  await enc?.shutdown().catch(() => {});
  await side?.close();
  for (const root of ["secrets", "secrets-enc"]) await execFile(["umount", join(home, root)]).catch(() => {});
  await rm(home, { recursive: true, force: true });
});

// Development only: CLAWKEEP_TEST_POOL_SMALL_ONLY=1 leaves out the suite that starts OpenClaw.
const skipReal =
  skip ??
  (process.env.CLAWKEEP_TEST_POOL_SMALL_ONLY === "1"
    ? "CLAWKEEP_TEST_POOL_SMALL_ONLY=1: the real OpenClaw suite is left out on request"
    : undefined);
if (skipReal && !skip) process.stderr.write(`\n# SKIPPING the real OpenClaw pool suite: ${skipReal}\n\n`);

describe("two real OpenClaw gateways in one pool", { skip: skipReal }, () => {
  before(async () => {
    if (skipReal) return;
    for (const n of ["s1", "s2"] as const) await startReady(real, n, SLOT[n], 300_000);
  });

  test("both share one pool container but not a process, a uid, a port or a cgroup", async () => {
    const [a, b] = [await real.status("s1"), await real.status("s2")];
    assert.equal(a.state, "running");
    assert.equal(b.state, "running");
    assert.equal(a.details.pool, b.details.pool, "one pool");
    assert.notEqual(a.details.uid, b.details.uid);
    assert.notEqual(a.details.port, b.details.port);
    assert.notEqual(a.details.cgroup, b.details.cgroup);
    assert.equal(a.url, real.urlFor(spec("s1", SLOT.s1)), "the URL is where urlFor said, pure");
    assert.match(
      String(a.details.egress),
      /^per tenant: proxy at 10\.218\.0\.1:3129, source 10\.218\.0\.65$/,
    );
    const pools = await real.pools();
    assert.deepEqual(pools.find((p) => p.id === a.details.pool)?.tenants, ["s1", "s2"]);
  });

  test("each chats through its own gateway, through the egress proxy, which sees each tenant apart", async () => {
    for (const n of ["s1", "s2"] as const) {
      const r = await chat((await real.status(n)).url!, tokens[n]!, `hello from ${n}`);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.content, `internet-llm: hello from ${n}`);
      const log = proxy.recentLog(n);
      assert.ok(
        log.some((e) => e.host === LLM_HOST && e.verdict === "allow" && e.bytesUp > 0),
        `${n}'s own egress entries: ${JSON.stringify(log)}`,
      );
      assert.ok(proxy.counters(n).bytesUp > 0);
    }
  });

  test("S1's token is refused by S2's gateway; S2's own opens it", async () => {
    const url = (await real.status("s2")).url!;
    const wrong = await chat(url, tokens.s1!, "x");
    assert.equal(wrong.status, 401, wrong.text);
    const res = await fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${tokens.s2}` } });
    await res.arrayBuffer();
    assert.equal(res.status, 200, "control: S2's token opens S2's gateway");
  });

  test("S1 cannot read, list or write S2's directory; S2 can; with the mode opened S1 could list it", async () => {
    const d2 = "/pool/tenants/s2";
    assert.match(await sh(real, "s1", `ls ${d2}`), /Permission denied[\s\S]*rc=2/);
    assert.match(await sh(real, "s1", `cat ${d2}/state/openclaw.json`), /Permission denied[\s\S]*rc=1/);
    assert.match(await sh(real, "s1", `touch ${d2}/x`), /Permission denied[\s\S]*rc=1/);
    assert.match(await sh(real, "s1", `ls ${d2}/state`), /Permission denied[\s\S]*rc=2/);
    // Control: S2 lists and writes its own.
    assert.match(await sh(real, "s2", `ls ${d2} && touch ${d2}/home/mine`), /state[\s\S]*rc=0/);
    // Control: the mode is what stops S1.
    const hostDir = join(home, "pooldata", String((await real.status("s2")).details.pool), "tenants", "s2");
    assert.equal((await stat(hostDir)).mode & 0o777, 0o700);
    try {
      await chmod(hostDir, 0o755);
      assert.match(await sh(real, "s1", `ls ${d2}`), /state[\s\S]*rc=0/);
    } finally {
      await chmod(hostDir, 0o700);
    }
  });

  test("S1 cannot see, signal or ptrace S2's gateway; S2 can signal its own", async () => {
    const pid2 = await nspid((await real.status("s2")).pid!);
    const pid1 = await nspid((await real.status("s1")).pid!);
    // Probes run unconfined where a control needs it: a confined probe is a Landlock domain of its
    // own, which may neither see nor signal the gateway's domain, not even its own tenant's.
    assert.match(
      await sh(real, "s1", `ls /proc/${pid2}`, false),
      /No such file[\s\S]*rc=2/,
      "hidden by hidepid",
    );
    assert.match(await sh(real, "s1", `ls /proc/${pid1}/status`, false), /rc=0/, "control: S1 sees its own");
    assert.match(await sh(real, "s1", `kill -0 ${pid2}`), /Operation not permitted[\s\S]*rc=[12]/);
    assert.match(
      await sh(real, "s1", `kill -0 ${pid2}`, false),
      /Operation not permitted/,
      "the uid alone stops it",
    );
    assert.match(
      await sh(real, "s2", `kill -0 ${pid2}`, false),
      /rc=0/,
      "control: S2's uid signals its own gateway",
    );
    assert.match(
      await sh(real, "s2", `kill -0 ${pid2}`),
      /Operation not permitted/,
      "Landlock scopes signals",
    );
    const pt = await real.exec("s1", ["/usr/bin/python3", "-c", PY_PTRACE, String(pid2)]);
    assert.match(pt, /ptrace -1 1\b/, pt);
    // Control: the same program attaches to a process of its own uid where nothing forbids it.
    const child = (await import("node:child_process")).spawn("/usr/bin/sleep", ["30"], {
      uid: NOBODY,
      gid: NOBODY,
    });
    try {
      const out = await execFile([
        "setpriv",
        `--reuid=${NOBODY}`,
        `--regid=${NOBODY}`,
        "--clear-groups",
        "/usr/bin/python3",
        "-c",
        PY_PTRACE,
        String(child.pid),
      ]);
      assert.match(out, /ptrace 0 0/, `control on the host: ${out}`);
    } finally {
      child.kill("SIGKILL");
    }
    assert.equal((await real.status("s2")).state, "running");
  });

  test("S1 cannot bind a port of S2's range; without Landlock it could, and S2 can", async () => {
    const p2 = Number((await real.status("s2")).details.port) + 7;
    const p1 = Number((await real.status("s1")).details.port) + 7;
    const bind = (n: string, port: number, confined = true) =>
      real.exec(n, ["/usr/bin/python3", "-c", PY_BIND, String(port)], { confined });
    assert.match(await bind("s1", p2), /refused 13/, "Landlock: EACCES");
    assert.match(await bind("s1", p2, false), /bound/, "control: the uid alone would let S1 take it");
    assert.match(await bind("s2", p2), /bound/, "control: S2 binds its own");
    assert.match(await bind("s1", p1), /bound/, "control: S1 binds its own");
    // The gateway's own port while it runs: taken anyway.
    assert.match(await bind("s1", Number((await real.status("s2")).details.port)), /refused (13|98)/);
  });

  test("inside the pool S1 cannot even connect to S2's gateway port; without the pool's rules it could", async () => {
    const p2 = Number((await real.status("s2")).details.port);
    const targets: Array<[string, number]> = [
      ["127.0.0.1", p2],
      [tenantAddress(net, SLOT.s2), p2],
      [tenantAddress(net, SLOT.s2), net.gatewayPort],
    ];
    assert.deepEqual(await probeFromTenant(real, "s1", targets), [
      "ECONNREFUSED",
      "ECONNREFUSED",
      "ECONNREFUSED",
    ]);
    assert.equal(
      (await probeFromTenant(real, "s2", targets.slice(0, 1)))[0],
      "open",
      "control: S2 reaches its own",
    );
    const pool = String((await real.status("s1")).details.pool);
    const ns = netnsName(50 + Number(pool.slice(5)));
    try {
      await execFile(["ip", "netns", "exec", ns, "nft", "delete", "table", "inet", POOL_NFT_TABLE]);
      assert.equal(
        (await probeFromTenant(real, "s1", targets.slice(0, 1)))[0],
        "open",
        "control: no rules, S1 gets in",
      );
    } finally {
      await real.create(spec("s1", SLOT.s1));
    }
    assert.notEqual(
      (await probeFromTenant(real, "s1", targets.slice(0, 1)))[0],
      "open",
      "the rules are back",
    );
  });

  test("reachability: the edge's uid reaches a Starter URL, another host uid does not; without the ruleset it would", async () => {
    const target: Array<[string, number]> = [[tenantAddress(net, SLOT.s1), net.gatewayPort]];
    assert.deepEqual(await probeFromHost(runtime.nodeBin, EDGE_UID, target), ["open"]);
    assert.notDeepEqual(await probeFromHost(runtime.nodeBin, NOBODY, target), ["open"]);
    // From the pool: no host port, no internet, only the proxy.
    const out = await probeFromTenant(real, "s1", [
      [hostAddress(net), HOST_PORT],
      [`${INTERNET}.2`, 80],
      [hostAddress(net), net.egressPort],
    ]);
    assert.deepEqual(
      out.map((x) => x === "open"),
      [false, false, true],
    );
    try {
      await removeRuleset(net);
      assert.deepEqual(
        await probeFromHost(runtime.nodeBin, NOBODY, target),
        ["open"],
        "control: no rules, anyone gets in",
      );
    } finally {
      await real.create(spec("s1", SLOT.s1));
    }
    assert.notDeepEqual(await probeFromHost(runtime.nodeBin, NOBODY, target), ["open"], "blocked again");
  });

  test("one tenant's memory blow-up is stopped at its own bound; its neighbour keeps answering", async () => {
    const cg1 = (await real.cgroupOf("s1"))!;
    const cg2 = (await real.cgroupOf("s2"))!;
    const before1 = (await cg1.memoryFacts())!;
    const before2 = (await cg2.memoryFacts())!;
    // Last in this suite: S1's gateway may not survive it.
    assert.equal(before1.limitBytes, planFor("starter").memoryBytes);
    const gw1 = (await real.status("s1")).pid;
    const gw2 = (await real.status("s2")).pid;
    for (const cg of [cg1.dir("memory"), join(cg1.poolDir("memory"))])
      await writeFile(join(cg, "memory.max_usage_in_bytes"), "0");
    const hog = await real
      .exec("s1", [
        "/bin/sh",
        "-c",
        `echo 1000 > /proc/self/oom_score_adj; exec ${runtime.nodeBin} -e 'const a=[];for(;;){a.push(Buffer.alloc(64<<20,1))}'`,
      ])
      .then(() => "exited 0")
      .catch((e: Error) => e.message);
    assert.doesNotMatch(hog, /exited 0/);
    const after1 = (await cg1.memoryFacts())!;
    const after2 = (await cg2.memoryFacts())!;
    assert.ok(after1.oomKills > before1.oomKills, `S1's cgroup killed the hog: ${JSON.stringify(after1)}`);
    assert.ok(
      after1.maxUsageBytes >= after1.limitBytes * 0.95,
      `S1 reached its own bound: ${JSON.stringify(after1)}`,
    );
    const pool = String((await real.status("s1")).details.pool);
    const poolMax = Number(
      await readFile(`/sys/fs/cgroup/memory/${CGROUP_PARENT}/${pool}/memory.max_usage_in_bytes`, "utf8"),
    );
    const poolLimit = Number(
      await readFile(`/sys/fs/cgroup/memory/${CGROUP_PARENT}/${pool}/memory.limit_in_bytes`, "utf8"),
    );
    assert.ok(
      poolMax < poolLimit * 0.95,
      `the pool never came near its own limit (${poolMax} of ${poolLimit})`,
    );
    assert.equal(after2.oomKills, before2.oomKills, "nothing of S2 was killed");
    assert.equal((await real.status("s2")).pid, gw2, "S2's gateway is the same process");
    // The kernel may take S1's own gateway as a second victim while the hog's memory is being
    // freed: that is S1's bound doing its work; its restart is S1's own (see the lifecycle tests).
    const s1 = await real.status("s1");
    assert.ok(
      s1.pid === gw1 || s1.state === "exited",
      `S1 is either untouched or exited: ${JSON.stringify(s1)}`,
    );
    const r = await chat((await real.status("s2")).url!, tokens.s2!, "still here?");
    assert.equal(r.status, 200, r.text);
    assert.equal(r.content, "internet-llm: still here?");
  });
});

describe("pool lifecycle with small gateways", { skip }, () => {
  const poolOf = async (n: string) => String((await small.status(n)).details.pool);
  const poolPid = async (id: string) => (await small.pools()).find((p) => p.id === id)?.pid ?? null;

  test("placement: a new tenant goes into a pool with room, a new pool starts when all are full, an empty pool goes", async () => {
    // s1 and s2 (if that suite ran) fill pool-0; f1, f2 fill the next; f3 opens a third.
    const f1 = await startReady(small, "f1", SLOT.f1);
    const f2 = await startReady(small, "f2", SLOT.f2);
    assert.equal(f1.details.pool, f2.details.pool, "f2 joins f1's pool, which has room");
    await startReady(small, "f3", SLOT.f3);
    const p3 = await poolOf("f3");
    assert.notEqual(p3, f1.details.pool, "a full pool makes a new one");
    const slot = 50 + Number(p3.slice(5));
    assert.ok((await execFile(["ip", "netns", "list"])).includes(netnsName(slot)));
    await small.delete("f3");
    assert.equal(
      (await small.pools()).find((p) => p.id === p3),
      undefined,
      "the empty pool is gone",
    );
    const left: string[] = [];
    if ((await execFile(["ip", "link"])).includes(`${hostIf(slot)}@`)) left.push("veth");
    if ((await execFile(["ip", "netns", "list"])).includes(netnsName(slot))) left.push("netns");
    if (existsSync(`/sys/fs/cgroup/memory/${CGROUP_PARENT}/${p3}`)) left.push("cgroup");
    if (existsSync(join(home, "pooldata", p3))) left.push("volume");
    if (existsSync(join(home, "pools", "pools", p3))) left.push("pool record");
    if (existsSync(join(home, "secrets", "bundles", p3))) left.push("bundle");
    left.push(...(await leftoversOf("f3", [p3])));
    assert.deepEqual(left, []);
  });

  test("the gateway runs as the tenant: own uid, own cgroup with the plan's limits, confined, token checked", async () => {
    const st = await small.status("f1");
    const info = await procInfo(st.pid!);
    assert.equal(info?.uid, st.details.hostUid);
    const cg = (await small.cgroupOf("f1"))!;
    assert.ok((await cg.pids()).includes(st.pid!), "the gateway sits in its own cgroup");
    assert.equal((await cg.memoryFacts())?.limitBytes, planFor("starter").memoryBytes);
    assert.equal(
      (await readFile(join(cg.dir("pids"), "pids.max"), "utf8")).trim(),
      String(planFor("starter").pids),
    );
    // CPU: the start ran with the pool's cores; settle() takes the gateway to its plan's one core.
    const quota = async () =>
      Number((await readFile(join(cg.dir("cpu"), "cpu.cfs_quota_us"), "utf8")).trim());
    const plan = planFor("starter");
    assert.equal(await quota(), Math.round(startQuota(plan.cpus, 2) * 100_000), "the start quota");
    await small.settle(spec("f1", 0));
    assert.equal(await quota(), plan.cpus * 100_000, "the plan's quota once settled");
    await small.settle(spec("f1", 0));
    assert.equal(await quota(), plan.cpus * 100_000, "settle is idempotent");
    const status = await readFile(`/proc/${st.pid}/status`, "utf8");
    assert.match(status, /^CapEff:\s+0000000000000000$/m);
    assert.match(status, /^NoNewPrivs:\s+1$/m);
    assert.match(status, /^Seccomp:\s+2$/m);
    const url = st.url!;
    assert.equal((await fetch(`${url}/x`)).status, 401);
    const me = (await (
      await fetch(`${url}/x`, { headers: { authorization: `Bearer ${tokens.f1}` } })
    ).json()) as {
      uid: number;
    };
    assert.equal(me.uid, st.details.uid);
    // The process file that carried the secrets is gone from the tmpfs.
    assert.deepEqual(
      (await readdir(join(home, "secrets", "bundles", String(st.details.pool)))).filter((f) =>
        f.includes("process"),
      ),
      [],
    );
  });

  test("a tenant spinning at its CPU quota goes to the idle class, its quiet neighbour does not; it comes back once calm", async () => {
    const cg1 = (await small.cgroupOf("f1"))!;
    const cg2 = (await small.cgroupOf("f2"))!;
    for (const n of ["f1", "f2"]) await small.settle(spec(n, 0)); // the plan's one core each
    const idle = async (cg: typeof cg1) => (await readFile(join(cg.dir("cpu"), "cpu.idle"), "utf8")).trim();
    const until = async (what: () => Promise<boolean>, ms: number) => {
      for (const end = Date.now() + ms; Date.now() < end; ) {
        if (await what()) return true;
        await new Promise((r) => setTimeout(r, 100));
      }
      return what();
    };
    const changes: string[] = [];
    const whys: string[] = [];
    // The control plane's 1 s interval and 5-interval spin window (longer than an idle
    // gateway's own bursts: f2 has them too); a shorter calm window.
    const guard = new CpuGuard({
      targets: () => scanTenantCgroups({ cpuRoot: cpuControllerRoot(), poolsParent: CGROUP_PARENT }),
      policy: { calmSamples: 5 },
      quotas: cpuGuardQuotas(() => planFor("starter")),
      onChange: (t, d, why) => {
        changes.push(`${t}:${d ? "idle" : "normal"}`);
        whys.push(`${t}: ${why}`);
      },
    });
    assert.equal(await idle(cg1), "0");
    guard.start();
    try {
      // Two threads against a one-core quota for 12 s: throttled in most periods.
      const spinJs =
        "const {Worker}=require('node:worker_threads');const s='const e=Date.now()+12000;while(Date.now()<e){}';new Worker(s,{eval:true});eval(s)";
      const hog = small.exec("f1", [runtime.nodeBin, "-e", spinJs]).catch((e: Error) => e.message);
      assert.ok(await until(async () => (await idle(cg1)) === "1", 10_000), `f1 demoted: ${whys}`);
      assert.equal(await idle(cg2), "0", `its quiet neighbour stays in the normal class: ${whys}`);
      await hog;
      assert.ok(await until(async () => (await idle(cg1)) === "0", 10_000), `f1 restored once calm: ${whys}`);
      assert.deepEqual(
        changes.filter((c) => c.startsWith("f")),
        ["f1:idle", "f1:normal"],
        whys.join("; "),
      );
      // Judged by its CPU time too (its own cpuacct cgroup), not by throttling alone.
      assert.match(whys[0]!, /^f1: .* [01]\.\d\d cores on average/);
    } finally {
      await guard.stop();
      await writeFile(join(cg1.dir("cpu"), "cpu.idle"), "0").catch(() => {});
    }
  });

  test("starting a tenant never restarts its neighbours; a gateway that dies is restarted alone", async () => {
    const pool = await poolOf("f1");
    const poolBefore = await poolPid(pool);
    const f2 = (await small.status("f2")).pid;
    await small.stop("f1");
    assert.equal((await small.status("f1")).state, "created");
    await startReady(small, "f1", SLOT.f1);
    assert.equal((await small.status("f2")).pid, f2, "f2 untouched by f1's start");
    assert.equal(await poolPid(pool), poolBefore, "the pool untouched");
    // f1's gateway dies: only f1 shows it, and only f1 is started again.
    process.kill((await small.status("f1")).pid!, "SIGKILL");
    await waitFor(async () => (await small.status("f1")).state === "exited");
    assert.equal((await small.status("f2")).state, "running");
    await startReady(small, "f1", SLOT.f1);
    assert.equal((await small.status("f2")).pid, f2);
    assert.equal(await poolPid(pool), poolBefore);
  });

  test("a pool that dies comes back with all its tenants, one start at a time", async () => {
    const pool = await poolOf("f1");
    const old = await poolPid(pool);
    process.kill(old!, "SIGKILL");
    await waitFor(
      async () =>
        (await small.status("f1")).state === "exited" && (await small.status("f2")).state === "exited",
    );
    await startReady(small, "f1", SLOT.f1);
    const again = await poolPid(pool);
    assert.ok(again && again !== old, "a new pool container");
    assert.equal((await small.status("f2")).state, "exited", "f2 waits for its own start");
    const f1 = (await small.status("f1")).pid;
    await startReady(small, "f2", SLOT.f2);
    assert.equal((await small.status("f1")).pid, f1, "f2's start did not touch f1");
    assert.equal(await poolPid(pool), again);
  });

  test("a tenant moves to another pool with its data, its uid changes, its URL does not", async () => {
    const from = await poolOf("f2");
    await small.exec("f2", ["/bin/sh", "-c", "echo keep-me > /pool/tenants/f2/home/note"]);
    const before = await small.status("f2");
    const moved = await small.move(spec("f2", SLOT.f2), { secrets: secretsOf("f2") });
    assert.equal(moved.state, "running");
    assert.notEqual(moved.details.pool, from);
    assert.notEqual(moved.details.hostUid, before.details.hostUid);
    assert.equal(moved.url, before.url);
    await waitReady(moved.url!, { timeoutMs: 30_000 });
    assert.equal((await small.exec("f2", ["/bin/cat", "/pool/tenants/f2/home/note"])).trim(), "keep-me");
    assert.match(
      await small.exec("f2", ["/usr/bin/stat", "-c", "%u", "/pool/tenants/f2/home/note"]),
      new RegExp(`^${moved.details.uid}`),
    );
    assert.equal(existsSync(join(home, "pooldata", from, "tenants", "f2")), false, "the old copy is gone");
    assert.equal((await small.status("f1")).details.pool, from, "f1 stays where it was");
    // Back again (pool-wise), so both small tenants share one pool for the tests that follow.
    await small.move(spec("f2", SLOT.f2), { to: from, secrets: secretsOf("f2") });
    assert.equal(await poolOf("f2"), from);
    assert.equal((await small.exec("f2", ["/bin/cat", "/pool/tenants/f2/home/note"])).trim(), "keep-me");
  });

  test("root never follows a link a tenant plants in its own directory", async () => {
    const canary = join(home, "canary");
    await mkdir(canary, { mode: 0o755 });
    await writeFile(join(canary, "file"), "canary\n");
    const st = await small.status("f1");
    const hostDir = join(home, "pooldata", String(st.details.pool), "tenants", "f1");
    const d = "/pool/tenants/f1";
    try {
      // As f1, inside the pool: its tmp becomes a link to a host path (root resolves it on the host).
      await small.exec("f1", ["/bin/sh", "-c", `rm -rf ${d}/tmp && ln -s ${canary} ${d}/tmp`]);
      await assert.rejects(small.create(spec("f1", SLOT.f1)), /refusing to follow/);
      assert.equal((await stat(canary)).uid, 0, "the canary is still root's");
      // Control: a plain chown by root follows the link to the host directory.
      await chown(join(hostDir, "tmp"), Number(st.details.hostUid), Number(st.details.hostUid));
      assert.equal(
        (await stat(canary)).uid,
        Number(st.details.hostUid),
        "control: the link reaches the host",
      );
      await chown(canary, 0, 0);
      // The gateway log: a link in its place stops the start, and nothing is written through it.
      await small.stop("f1");
      await rm(join(hostDir, "gateway.log"), { force: true });
      await symlink(join(canary, "file"), join(hostDir, "gateway.log"));
      await assert.rejects(small.start(spec("f1", SLOT.f1), secretsOf("f1")), /symlink: refusing to follow/);
      assert.equal(await readFile(join(canary, "file"), "utf8"), "canary\n");
      assert.equal(await small.logTail("f1"), "", "logTail does not read through the link either");
    } finally {
      await rm(join(hostDir, "tmp"), { force: true });
      await rm(join(hostDir, "gateway.log"), { force: true });
      await startReady(small, "f1", SLOT.f1);
    }
  });

  test("encrypted pool storage: each tenant directory under its own key, one locked while the other is open; moves keep the data", async (t) => {
    const images = join(home, "volumes", "images");
    // Only the kernel lacking fscrypt (or loop devices) skips, said loudly; the driver's own
    // errors fail the test.
    const why = await volumeSkipReason(home);
    if (why) {
      process.stderr.write(`# SKIP encrypted pool storage: ${why}\n`);
      t.skip(why);
      return;
    }
    const vols = new LocalVolumes({ imagesRoot: images, mountsRoot: join(home, "volumes", "mnt") });
    const keys = new Map<string, Buffer>();
    encStorage = new EncryptedPoolStorage({
      volumes: vols,
      sizeBytes: 256 * 1024 * 1024,
      volumeKey: async (s) => {
        if (!keys.has(s.tenantId)) keys.set(s.tenantId, randomBytes(64));
        return Buffer.from(keys.get(s.tenantId)!);
      },
    });
    enc = makeDriver({ fake: true, storage: encStorage, encrypted: true });
    const fscrypt = new Fscrypt();
    try {
      await startReady(enc, "e1", SLOT.e1);
      await startReady(enc, "e2", SLOT.e2);
      const p0 = String((await enc.status("e1")).details.pool);
      assert.equal(String((await enc.status("e2")).details.pool), p0, "two Starter tenants share one pool");
      // Each directory's policy names its own tenant's key.
      const ids: string[] = [];
      for (const n of ["e1", "e2"] as const) {
        const policy = await fscrypt.getPolicy(encStorage.tenantDir(p0, n));
        assert.ok(policy, `${n}'s directory is not encrypted`);
        assert.equal(
          policy.keyIdentifier,
          keyIdentifier(keys.get(`tnt_${n}`)!).toString("hex"),
          `${n}'s key`,
        );
        ids.push(policy.keyIdentifier);
      }
      assert.notEqual(ids[0], ids[1], "two tenants, two keys");
      for (const n of ["e1", "e2"] as const)
        await enc.exec(n, ["/bin/sh", "-c", `echo secret-${n} > /pool/tenants/${n}/home/note`]);
      await enc.stop("e1");
      // e1 locked: its names are ciphertext (or unreadable); e2, open, still reads its own.
      const locked = await readdir(join(encStorage.tenantDir(p0, "e1"), "home")).catch(
        (e: NodeJS.ErrnoException) => [e.code ?? "error"],
      );
      assert.ok(!locked.includes("note"), `locked: names are ciphertext or unreadable (${locked.join(",")})`);
      assert.ok(
        (await readdir(join(encStorage.tenantDir(p0, "e2"), "home"))).includes("note"),
        "the open neighbour's names are plaintext",
      );
      assert.equal((await enc.exec("e2", ["/bin/cat", "/pool/tenants/e2/home/note"])).trim(), "secret-e2");
      await enc.delete("e2");
      const moved = await enc.move(spec("e1", SLOT.e1), { to: p0 === "pool-0" ? "pool-1" : "pool-0" });
      assert.equal(moved.state, "created", "stopped before the move, stopped after it");
      await enc.start(spec("e1", SLOT.e1), secretsOf("e1"));
      await waitReady(moved.url!, { timeoutMs: 30_000 });
      assert.equal((await enc.exec("e1", ["/bin/cat", "/pool/tenants/e1/home/note"])).trim(), "secret-e1");
      assert.equal(existsSync(join(images, `starter-${p0}.img`)), false, "the emptied pool's image is gone");
      await enc.delete("e1");
      assert.deepEqual(await readdir(images).catch(() => []), [], "no image left");
    } finally {
      // e1 shares slot 59 with the conformance tenant that comes next.
      for (const n of ["e2", "e1"]) await enc.delete(n).catch((e) => console.error(`cleanup ${n}:`, e));
    }
    assert.deepEqual(await enc.pools(), []);
  });
});

async function waitFor(fn: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 100));
  }
}

if (!skip) {
  driverConformance({
    label: "pool driver (small gateways in a Starter pool)",
    driver: () => small,
    fresh: () => makeDriver({ fake: true }),
    specs: [{ tier: "starter", slot: SLOT.conf, plan: planFor("starter") }],
    llm: () => ({ baseUrl: `http://${LLM_HOST}/v1`, model: "echo-1" }),
    readyTimeoutMs: 30_000,
    dataDirs: () => [join(home, "pools"), join(home, "pooldata")],
    leftovers: (name) => leftoversOf(name, ["pool-0", "pool-1", "pool-2"]),
  });
}
