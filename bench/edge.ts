/**
 * The edge's cost, measured side by side in one run on loopback with wrk:
 *   direct      wrk -> upstream (plain HTTP)
 *   edge        wrk -> nginx (TLS 1.3, limits) -> upstream
 *   edge+ModSec the same with ModSecurity on and no CRS rule: what the engine alone costs per request
 *   edge+WAF    the same with ModSecurity and the tuned OWASP CRS (what clawkeep runs)
 *   edge+stock  the same with the CRS rule set as shipped (what "untuned" costs)
 * Rounds alternate the targets so all see the same machine load; medians are printed with ratios.
 * Throughput with 16 connections (saturating); latency percentiles with 1 connection (unloaded).
 * GET /v1/models?page=1 for all targets, and a chat POST (an OpenClaw chat request of ~1.9 KB of
 * JSON) through the edge, the WAF and the stock set: request bodies are where the CRS works hardest.
 * Targets: edge+WAF keeps >= 50 % of the edge's throughput and adds < 2 ms to p99.
 * Needs root, nginx, libnginx-mod-http-modsecurity, modsecurity-crs and wrk.
 *
 * The upstream is a trivial HTTP server by default (the edge's own cost, nothing else), or with
 * `--upstream openclaw` a real OpenClaw gateway (a tenant, as the issue's benchmark names it:
 * its authenticated GET /v1/models; no chat rows, a chat is an agent run, not an edge cost).
 *
 *   npx tsx bench/edge.ts [--seconds 3] [--rounds 3] [--connections 16] [--upstream trivial|openclaw]
 */
import { type ChildProcess, spawn } from "node:child_process";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { loadSettings } from "../src/config/settings.ts";
import { readCrsFiles, stockCrs } from "../src/edge/crs.ts";
import { Edge } from "../src/edge/edge.ts";
import { DEBIAN_EDGE_SYSTEM, renderEdge } from "../src/edge/render.ts";
import { ensureSystemUser } from "../src/edge/user.ts";
import { execFile } from "../src/lib/exec.ts";
import { pidsOfUid } from "../src/lib/procfs.ts";
import { startEchoProvider } from "../src/llm/echo-provider.ts";
import { gatewayArgs, renderGatewayEnv, renderOpenClawConfigFile } from "../src/openclaw/config.ts";
import { waitReady } from "../src/openclaw/probe.ts";
import { ensureRuntime } from "../src/openclaw/runtime.ts";
import { bareGatewayDirs } from "./profile.ts";
import { LISTEN_AND_PRINT_PORT, numberArg } from "./support.ts";

const SECONDS = numberArg("seconds", 3);
const ROUNDS = numberArg("rounds", 3);
const CONNECTIONS = numberArg("connections", 16);
const LATENCY_SECONDS = Math.max(2, Math.round(SECONDS * 0.75));
const UPSTREAM_KIND = (() => {
  const i = process.argv.indexOf("--upstream");
  const v = i >= 0 ? process.argv[i + 1] : "trivial";
  if (v !== "trivial" && v !== "openclaw") {
    console.error(`--upstream must be trivial or openclaw, got ${v}`);
    process.exit(2);
  }
  return v;
})();
const GATEWAY_UID = 202970;
const GATEWAY_TOKEN = `ocgw_${"b".repeat(40)}`;
/** The gateway's token on every GET when the upstream is a real gateway. */
const AUTH = UPSTREAM_KIND === "openclaw" ? ["-H", `Authorization: Bearer ${GATEWAY_TOKEN}`] : [];
const USER = "ck-edge-bench";
const HOST = "bench.edge.bench";

const UPSTREAM = `
import { createServer } from "node:http";
const body = JSON.stringify({ ok: true, model: "openclaw", note: "a small JSON answer like a gateway's" });
const s = createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  });
});
s.keepAliveTimeout = 65000;
${LISTEN_AND_PRINT_PORT}`;

async function freePort(): Promise<number> {
  for (;;) {
    const port = 41_000 + Math.floor(Math.random() * 19_000);
    const s = createServer();
    const ok = await new Promise<boolean>((resolve) => {
      s.once("error", () => resolve(false));
      s.listen(port, "127.0.0.1", () => resolve(true));
    });
    if (ok) {
      await new Promise((r) => s.close(r));
      return port;
    }
  }
}

/** A real OpenClaw gateway on loopback as the tenant behind the edge (run as its own uid). */
async function startOpenClaw(
  root: string,
): Promise<{ child: ChildProcess; port: number; stop: () => Promise<void> }> {
  const runtime = await ensureRuntime(loadSettings());
  const provider = await startEchoProvider();
  const port = await freePort();
  const dir = join(root, "gateway");
  const paths = await bareGatewayDirs(dir, GATEWAY_UID);
  await writeFile(
    paths.configPath,
    renderOpenClawConfigFile({
      port,
      bind: "loopback",
      paths,
      llm: { baseUrl: provider.url, model: provider.model },
      // nginx connects from loopback and sets X-Forwarded-For: trust it, as gateways trust the edge.
      trustedProxies: ["127.0.0.1"],
    }),
  );
  const env = renderGatewayEnv({
    port,
    paths,
    nodeBinDir: runtime.nodeBinDir,
    gatewayToken: GATEWAY_TOKEN,
    llmApiKey: "k",
  });
  const child = spawn(runtime.nodeBin, gatewayArgs(runtime.entry, port), {
    env,
    cwd: paths.home,
    uid: GATEWAY_UID,
    gid: GATEWAY_UID,
    stdio: "ignore",
  });
  const stop = async () => {
    for (const pid of await pidsOfUid(GATEWAY_UID)) process.kill(pid, "SIGKILL");
    await provider.close();
  };
  process.stderr.write("starting an OpenClaw gateway as the upstream (~25 s)...\n");
  try {
    await waitReady(`http://127.0.0.1:${port}`, { timeoutMs: 180_000 });
  } catch (err) {
    await stop();
    throw err;
  }
  return { child, port, stop };
}

function startUpstream(): Promise<{ child: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--input-type=module", "-e", UPSTREAM], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    child.stdout!.once("data", (d: Buffer) =>
      resolve({ child, port: (JSON.parse(d.toString()) as { port: number }).port }),
    );
    child.once("error", reject);
  });
}

interface WrkResult {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  requests: number;
  /** CPU the edge's nginx workers spent per request, in microseconds (0 for direct). */
  cpuUs: number;
}

/** utime + stime of processes, in clock ticks (100 per second). */
async function cpuTicks(pids: number[]): Promise<number> {
  let total = 0;
  for (const pid of pids) {
    const st = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    const f = st.slice(st.lastIndexOf(")") + 2).split(" ");
    total += Number(f[11] ?? 0) + Number(f[12] ?? 0);
  }
  return total;
}

/** Milliseconds from wrk's "1.23ms" / "456.00us" / "1.02s". */
function ms(v: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(v.trim());
  if (!m) return Number.NaN;
  const n = Number(m[1]);
  return m[2] === "us" ? n / 1000 : m[2] === "s" ? n * 1000 : n;
}

async function wrk(
  url: string,
  connections: number,
  seconds: number,
  pids: number[] = [],
  script?: string,
): Promise<WrkResult> {
  const cpu0 = await cpuTicks(pids);
  const out = await execFile([
    "wrk",
    `-t${Math.min(2, connections)}`,
    `-c${connections}`,
    `-d${seconds}s`,
    "--latency",
    "-H",
    `Host: ${HOST}`,
    ...(script ? [] : AUTH),
    ...(script ? ["-s", script] : []),
    url,
  ]);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const p50 = ms(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? "");
  const p99 = ms(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? "");
  const errLine = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const errors = non2xx + (errLine ? errLine.slice(1).reduce((a, b) => a + Number(b), 0) : 0);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  const cpuUs = pids.length && requests ? (((await cpuTicks(pids)) - cpu0) * 10_000) / requests : 0;
  return { rps, p50, p99, errors, requests, cpuUs };
}

/** An OpenClaw chat request of ~1.9 KB: a system prompt and a conversation of several turns. */
const CHAT_BODY = JSON.stringify({
  model: "openclaw",
  stream: true,
  messages: [
    {
      role: "system",
      content: "You are OpenClaw, a helpful personal assistant. Answer briefly and cite the tools you used.",
    },
    ...Array.from({ length: 8 }, (_v, i) => ({
      role: i % 2 === 0 ? "user" : "assistant",
      content:
        i % 2 === 0
          ? `Turn ${i}: can you help me plan a three-day trip to Lisbon next month? I like museums, good coffee and walking, but I don't want to rush. What should we book in advance?`
          : `Turn ${i}: day one is Alfama and the castle, day two Belem with the monastery and the tower, day three LX Factory and a walk by the river. Book the castle and the monastery ahead; the rest is walk-in.`,
    })),
  ],
});

/** A wrk script that POSTs the chat body as JSON. */
const chatScript = (body: string) =>
  `wrk.method = "POST"\nwrk.body = ${JSON.stringify(body)}\nwrk.headers["Content-Type"] = "application/json"\nwrk.headers["Authorization"] = "Bearer ocgw_0123456789abcdef0123456789abcdef"\n`;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

if (process.getuid?.() !== 0) {
  console.error("bench/edge.ts needs root: nginx binds ports and drops its workers to the edge user");
  process.exit(2);
}
await execFile(["wrk", "--version"]).catch((err: { stdout?: string }) => {
  // wrk --version exits 1 after printing its version.
  if (!err.stdout?.includes("wrk")) {
    console.error("wrk is missing: apt-get install wrk");
    process.exit(2);
  }
});

/**
 * Where the edges listen. OpenClaw refuses a proxied request whose client is loopback (it cannot
 * attribute it), and real clients never are: against a real gateway the edges listen on the
 * address of a bridge of the benchmark's own (no ports, nothing routed), and wrk connects there.
 */
const BENCH_BRIDGE = "ckebr0";
const EDGE_HOST = UPSTREAM_KIND === "openclaw" ? "10.223.0.1" : "127.0.0.1";
if (UPSTREAM_KIND === "openclaw") {
  await execFile(["ip", "link", "del", BENCH_BRIDGE]).catch(() => "");
  await execFile(["ip", "link", "add", BENCH_BRIDGE, "type", "bridge"]);
  await execFile(["ip", "addr", "add", `${EDGE_HOST}/24`, "dev", BENCH_BRIDGE]);
  await execFile(["ip", "link", "set", BENCH_BRIDGE, "up"]);
}
const root = await mkdtemp("/tmp/clawkeep-edge-bench-");
await chmod(root, 0o711);
const user = await ensureSystemUser(USER);
const upstream: { child: ChildProcess; port: number; stop?: () => Promise<void> } =
  UPSTREAM_KIND === "openclaw" ? await startOpenClaw(root) : await startUpstream();
const upstreamUrl = `http://127.0.0.1:${upstream.port}`;
const stock = stockCrs(await readCrsFiles(DEBIAN_EDGE_SYSTEM.crsRulesDir), DEBIAN_EDGE_SYSTEM.crsRulesDir);
const unlimited = {
  clientRatePerSecond: 1_000_000,
  clientBurst: 1_000_000,
  tenantRatePerSecond: 1_000_000,
  tenantBurst: 1_000_000,
  clientConnections: 65_535,
  tenantConnections: 65_535,
};
const edges: Edge[] = [];
async function edge(name: string, waf: boolean, crsRules?: string): Promise<{ url: string; pids: number[] }> {
  const e = new Edge({
    stateDir: join(root, name),
    domain: "edge.bench",
    listen: { host: EDGE_HOST, port: await freePort() },
    waf,
    user: USER,
    limits: unlimited,
    workerShutdownSeconds: 5,
    ...(crsRules ? { render: (cfg) => renderEdge({ ...cfg, crsRules }) } : {}),
  });
  edges.push(e);
  await e.start();
  await e.setRoutes([{ tenant: "bench", upstream: upstreamUrl }]);
  // Old workers of the start-up config leave within workerShutdownSeconds; count the current ones.
  await new Promise((r) => setTimeout(r, 500));
  const pids = (await e.status()).workers.map((w) => w.pid);
  return { url: `https://${EDGE_HOST}:${e.listen.port}/v1/models?page=1`, pids };
}

const withChat = UPSTREAM_KIND === "trivial";
console.log(
  UPSTREAM_KIND === "openclaw"
    ? "upstream: a real OpenClaw gateway (GET /v1/models with its token)"
    : "upstream: a trivial HTTP server (the edge's own cost)",
);
try {
  const targets: Array<{ name: string; url: string; pids: number[]; chat: boolean }> = [
    { name: "direct", url: `${upstreamUrl}/v1/models?page=1`, pids: [], chat: false },
    { name: "edge (TLS, no WAF)", ...(await edge("plain", false)), chat: withChat },
    { name: "edge + ModSec, no CRS", ...(await edge("engine", true, "# no CRS rules")), chat: false },
    { name: "edge + WAF (tuned CRS)", ...(await edge("waf", true)), chat: withChat },
    { name: "edge + WAF (stock CRS)", ...(await edge("stock", true, stock)), chat: withChat },
  ];
  const chatLua = join(root, "chat.lua");
  await writeFile(chatLua, chatScript(CHAT_BODY));
  const tput = new Map<string, WrkResult[]>(targets.map((t) => [t.name, []]));
  const lat = new Map<string, WrkResult[]>(targets.map((t) => [t.name, []]));
  const chat = new Map<string, WrkResult[]>(targets.map((t) => [t.name, []]));
  // Every target must answer 200 before it is measured: a fast error is not throughput.
  for (const t of targets) {
    const out = await execFile([
      "curl",
      "-sk",
      "-w",
      "\n%{http_code}",
      "-H",
      `Host: ${HOST}`,
      ...AUTH,
      t.url,
    ]).catch((err: { stdout?: string }) => err.stdout ?? "curl failed");
    const status = out.slice(out.lastIndexOf("\n") + 1).trim();
    if (status !== "200")
      throw new Error(`${t.name}: ${t.url} answered ${status}, not 200: ${out.slice(0, 300)}`);
  }
  for (const t of targets) await wrk(t.url, 4, 1); // warm up: TLS session cache, upstream keep-alive
  for (let r = 0; r < ROUNDS; r++) {
    for (const t of targets) {
      tput.get(t.name)!.push(await wrk(t.url, CONNECTIONS, SECONDS, t.pids));
      lat.get(t.name)!.push(await wrk(t.url, 1, LATENCY_SECONDS, t.pids));
      if (t.chat) chat.get(t.name)!.push(await wrk(t.url, CONNECTIONS, SECONDS, t.pids, chatLua));
    }
    process.stderr.write(`round ${r + 1}/${ROUNDS} done\n`);
  }
  const row = (name: string) => {
    const T = tput.get(name)!;
    const L = lat.get(name)!;
    const C = chat.get(name)!;
    return {
      rps: median(T.map((x) => x.rps)),
      p99Loaded: median(T.map((x) => x.p99)),
      cpuUs: median([...T, ...L].map((x) => x.cpuUs)),
      p50: median(L.map((x) => x.p50)),
      p99: median(L.map((x) => x.p99)),
      errors: [...T, ...L, ...C].reduce((a, x) => a + x.errors, 0),
      chatRps: C.length ? median(C.map((x) => x.rps)) : Number.NaN,
      chatCpuUs: C.length ? median(C.map((x) => x.cpuUs)) : Number.NaN,
    };
  };
  const pad = (v: string, n: number) => v.padStart(n);
  const num = (v: number, unit = "") => (Number.isNaN(v) ? "-" : `${v.toFixed(0)}${unit}`);
  console.log(
    `\n${"target".padEnd(24)}${pad("req/s", 9)}${pad("nginx CPU/req", 15)}${pad(`p99 @${CONNECTIONS}c`, 11)}${pad("p50 @1c", 10)}${pad("p99 @1c", 10)}${pad("chat req/s", 12)}${pad("chat CPU/req", 14)}${pad("errors", 8)}`,
  );
  for (const t of targets) {
    const x = row(t.name);
    const cpu = t.pids.length ? `${x.cpuUs.toFixed(0)} us` : "-";
    console.log(
      `${t.name.padEnd(24)}${pad(x.rps.toFixed(0), 9)}${pad(cpu, 15)}${pad(`${x.p99Loaded.toFixed(2)}ms`, 11)}${pad(`${x.p50.toFixed(2)}ms`, 10)}${pad(`${x.p99.toFixed(2)}ms`, 10)}${pad(num(x.chatRps), 12)}${pad(num(x.chatCpuUs, " us"), 14)}${pad(String(x.errors), 8)}`,
    );
  }
  const [direct, plain, engine, waf, stockRow] = targets.map((t) => row(t.name)) as [
    ReturnType<typeof row>,
    ReturnType<typeof row>,
    ReturnType<typeof row>,
    ReturnType<typeof row>,
    ReturnType<typeof row>,
  ];
  const pct = (a: number, b: number) => `${((a / b) * 100).toFixed(1)} %`;
  const verdict = (ok: boolean) => (ok ? "met" : "MISSED");
  console.log(`\nratios (medians of ${ROUNDS} alternating rounds; req/s is wall clock on a shared machine)`);
  console.log(`  edge / direct                     ${pct(plain.rps, direct.rps)}`);
  console.log(`  edge+WAF / direct                 ${pct(waf.rps, direct.rps)}`);
  console.log(
    `  edge+WAF / edge                   ${pct(waf.rps, plain.rps)}   target >= 50 %: ${verdict(waf.rps / plain.rps >= 0.5)}`,
  );
  console.log(
    `  edge+ModSec no CRS / edge         ${pct(engine.rps, plain.rps)}   (the engine alone: the most any rule set can keep)`,
  );
  console.log(`  edge+WAF stock CRS / edge         ${pct(stockRow.rps, plain.rps)}`);
  console.log(`  tuned / stock CRS (req/s)         ${(waf.rps / stockRow.rps).toFixed(2)}x`);
  if (withChat) {
    console.log(`  chat POST: edge+WAF / edge        ${pct(waf.chatRps, plain.chatRps)}`);
    console.log(`  chat POST: stock CRS / edge       ${pct(stockRow.chatRps, plain.chatRps)}`);
  }
  console.log("nginx CPU per request (steadier than req/s when other work shares the CPUs)");
  console.log(`  edge+WAF / edge                   ${(waf.cpuUs / plain.cpuUs).toFixed(2)}x`);
  console.log(`  edge+ModSec no CRS / edge         ${(engine.cpuUs / plain.cpuUs).toFixed(2)}x`);
  console.log(`  stock CRS / tuned CRS             ${(stockRow.cpuUs / waf.cpuUs).toFixed(2)}x`);
  if (withChat)
    console.log(`  chat POST: stock / tuned CRS      ${(stockRow.chatCpuUs / waf.chatCpuUs).toFixed(2)}x`);
  const added = waf.p99 - plain.p99;
  console.log("latency added by the WAF (1 connection, unloaded)");
  console.log(
    `  p99 edge+WAF - edge               ${added.toFixed(2)} ms   target < 2 ms: ${verdict(added < 2)}`,
  );
  console.log(`  p50 edge+WAF - edge               ${(waf.p50 - plain.p50).toFixed(2)} ms`);
  console.log(`  p99 edge - direct                 ${(plain.p99 - direct.p99).toFixed(2)} ms`);
} finally {
  for (const e of edges) await e.stop().catch((err: unknown) => console.error(err));
  upstream.child.kill();
  await upstream.stop?.().catch(() => {});
  if (user.created) await execFile(["userdel", USER]).catch(() => {});
  if (UPSTREAM_KIND === "openclaw") await execFile(["ip", "link", "del", BENCH_BRIDGE]).catch(() => "");
  await rm(root, { recursive: true, force: true });
}
