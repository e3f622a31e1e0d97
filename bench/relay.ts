/**
 * The LLM relay's cost, measured side by side in one run on loopback: the same requests straight
 * to a fake OpenAI-compatible provider (with the operator's key) and through the relay (with a
 * tenant's virtual key), alternating in blocks so that drift cancels out. The relay runs as its own
 * supervised process (as in production), the provider as another process, the client here.
 *
 *   npx tsx bench/relay.ts [--requests 2000] [--streams 300] [--seconds 4] [--concurrency 16] [--tenants 1000]
 *
 * Prints: non-streaming p50/p99 and the relay's added latency (target p99 < +1 ms); streaming time
 * to first byte (target <= 1.05x direct); streams per second at 16 concurrent streams (target >=
 * 0.9x direct); the relay's RSS with no tenant and with `--tenants` tenants' keys loaded.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { renderRelayConfig } from "../src/relay/config.ts";
import { startRelayService } from "../src/relay/service.ts";
import { stateOf, tenantEntry } from "../src/relay/testing.ts";
import type { RelayState } from "../src/relay/types.ts";
import { LISTEN_AND_PRINT_PORT, numberArg, opsPerSecond } from "./support.ts";

const REQUESTS = numberArg("requests", 2000);
const STREAMS = numberArg("streams", 300);
const SECONDS = numberArg("seconds", 4);
const CONCURRENCY = numberArg("concurrency", 16);
const TENANTS = numberArg("tenants", 1000);
const PACED_STREAMS = numberArg("paced-streams", 40);
const BLOCK = 50;
const OPERATOR_KEY = "sk-bench-operator";
const VIRTUAL_KEY = "ckv_bench_tenant";
const MODEL = "bench-model";

/** The fake provider in its own process (src/relay/testing.ts), on a port above 41000. */
async function startProvider(
  chunkIntervalMs = 0,
  firstTokenMs = 0,
): Promise<{ url: string; stop: () => void }> {
  const script = `
import { fakeOpenAi } from "./src/relay/testing.ts";
for (;;) {
  try {
    const p = await fakeOpenAi({ apiKey: ${JSON.stringify(OPERATOR_KEY)}, streamChunks: 20, noRecord: true,
      chunkIntervalMs: ${chunkIntervalMs}, firstTokenMs: ${firstTokenMs}, port: 41000 + Math.floor(Math.random() * 19000) });
    console.log(JSON.stringify({ url: p.url }));
    break;
  } catch (err) { if (err.code !== "EADDRINUSE") throw err; }
}`;
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.once("data", (d: Buffer) => resolve((JSON.parse(d.toString()) as { url: string }).url));
    child.once("exit", (code) => reject(new Error(`the fake provider exited with ${code}`)));
  });
  return { url, stop: () => child.kill("SIGTERM") };
}

/**
 * A bare proxy in its own process: read the body, one undici request with the operator's key,
 * write each chunk back. No checks, no usage: the floor any relay's added latency stands on.
 */
async function startBareProxy(target: string): Promise<{ url: string; stop: () => void }> {
  const script = `
import { createServer } from "node:http";
import { Agent, request } from "undici";
const agent = new Agent({});
const s = createServer(async (req, res) => {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const up = await request(${JSON.stringify(target)} + req.url, { method: "POST", dispatcher: agent, body: Buffer.concat(chunks),
    headers: { authorization: "Bearer ${OPERATOR_KEY}", "content-type": "application/json" } });
  res.writeHead(up.statusCode, { "content-type": up.headers["content-type"] });
  for await (const c of up.body) res.write(c);
  res.end();
});
${LISTEN_AND_PRINT_PORT}`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once("data", (d: Buffer) => resolve((JSON.parse(d.toString()) as { port: number }).port));
    child.once("exit", (code) => reject(new Error(`the bare proxy exited with ${code}`)));
  });
  return { url: `http://127.0.0.1:${port}`, stop: () => child.kill("SIGTERM") };
}

interface Target {
  name: string;
  base: string;
  key: string;
  agent: Agent;
}

/** One chat request; resolves with [ms to the first body byte, ms to the end]. */
function once(t: Target, stream: boolean): Promise<[number, number]> {
  const body = Buffer.from(
    JSON.stringify({ model: MODEL, stream, messages: [{ role: "user", content: "benchmark" }] }),
  );
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(
      `${t.base}/v1/chat/completions`,
      {
        method: "POST",
        agent: t.agent,
        headers: {
          authorization: `Bearer ${t.key}`,
          "content-type": "application/json",
          "content-length": body.length,
        },
      },
      (res) => {
        let first = -1;
        res.on("data", () => {
          if (first < 0) first = performance.now() - t0;
        });
        res.on("end", () => {
          if (res.statusCode !== 200) reject(new Error(`${t.name}: HTTP ${res.statusCode}`));
          else resolve([first, performance.now() - t0]);
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
};

/** [p50, p99] of the samples of `name`. */
const p5099 = (samples: Map<string, number[]>, name: string): [number, number] => {
  const xs = samples.get(name) ?? [];
  return [pct(xs, 50), pct(xs, 99)];
};

/** `n` sequential requests to each target, alternating in blocks; returns each one's samples. */
async function alternate(
  targets: Target[],
  n: number,
  pick: (r: [number, number]) => number,
  stream: boolean,
  { warm = 20, block = BLOCK } = {},
) {
  const samples = new Map(targets.map((t) => [t.name, [] as number[]]));
  for (const t of targets) for (let i = 0; i < warm; i++) await once(t, stream); // warm-up
  for (let done = 0; done < n; done += block) {
    for (const t of targets) {
      for (let i = 0; i < block && done + i < n; i++) samples.get(t.name)?.push(pick(await once(t, stream)));
    }
  }
  return samples;
}

async function rssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
}

function manyTenants(n: number, upstreamUrl: string): RelayState {
  const tenants = Array.from({ length: n }, (_, i) =>
    tenantEntry(
      `tenant-${i}`,
      `ckv_${randomBytes(32).toString("base64url")}`,
      [`10.216.${i >> 8}.${i & 255}`],
      [{ id: MODEL, upstream: "bench" }],
      { limits: { tokensPerDay: 1_000_000, tokensPerMonth: 20_000_000, requestsPerMinute: 120 } },
    ),
  );
  tenants.push(tenantEntry("bench", VIRTUAL_KEY, ["127.0.0.1"], [{ id: MODEL, upstream: "bench" }]));
  return stateOf(tenants, [
    { id: "bench", baseUrl: `${upstreamUrl}/v1`, apiKey: OPERATOR_KEY, api: "openai", models: [MODEL] },
  ]);
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "ck-bench-relay-"));
  const provider = await startProvider();
  const bareProxy = await startBareProxy(provider.url);
  let state: RelayState = stateOf(
    [tenantEntry("bench", VIRTUAL_KEY, ["127.0.0.1"], [{ id: MODEL, upstream: "bench" }])],
    [{ id: "bench", baseUrl: `${provider.url}/v1`, apiKey: OPERATOR_KEY, api: "openai", models: [MODEL] }],
  );
  const configPath = join(dir, "relay.json");
  await writeFile(
    configPath,
    renderRelayConfig({
      listen: { host: "127.0.0.1", port: 41000 + Math.floor(Math.random() * 19000) },
      adminSocket: join(dir, "relay.sock"),
      logLevel: "warn",
    }),
  );
  const relay = await startRelayService({ configPath, state: () => state });
  try {
    // Memory first, before any traffic grows the heap: one tenant, then TENANTS more.
    const emptyRss = await rssKiB(relay.pid!);
    state = manyTenants(TENANTS, provider.url);
    await relay.refresh();
    const loadedRss = await rssKiB(relay.pid!);
    const direct: Target = {
      name: "direct",
      base: provider.url,
      key: OPERATOR_KEY,
      agent: new Agent({ keepAlive: true, maxSockets: 64 }),
    };
    const relayed: Target = {
      name: "relay",
      base: relay.url,
      key: VIRTUAL_KEY,
      agent: new Agent({ keepAlive: true, maxSockets: 64 }),
    };
    const both = [direct, relayed];
    console.log(
      `# relay bench ${new Date().toISOString()}; load ${(await readFile("/proc/loadavg", "utf8")).split(" ").slice(0, 3).join(" ")}`,
    );

    const bare: Target = {
      name: "bare",
      base: bareProxy.url,
      key: OPERATOR_KEY,
      agent: new Agent({ keepAlive: true, maxSockets: 64 }),
    };
    const lat = await alternate([...both, bare], REQUESTS, (r) => r[1], false);
    const [[d50, d99], [r50, r99], [b50, b99]] = [
      p5099(lat, "direct"),
      p5099(lat, "relay"),
      p5099(lat, "bare"),
    ];
    console.log(
      `non-streaming (${REQUESTS} each): direct p50 ${d50.toFixed(3)} ms p99 ${d99.toFixed(3)} ms; relay p50 ${r50.toFixed(3)} ms p99 ${r99.toFixed(3)} ms; added p50 +${(r50 - d50).toFixed(3)} ms, p99 +${(r99 - d99).toFixed(3)} ms (target p99 < +1 ms)`,
    );
    console.log(
      `  control, a bare undici proxy process (no checks, no usage): p50 ${b50.toFixed(3)} ms p99 ${b99.toFixed(3)} ms; added p50 +${(b50 - d50).toFixed(3)} ms, p99 +${(b99 - d99).toFixed(3)} ms: the hop itself`,
    );
    bare.agent.destroy();

    const ttfb = await alternate(both, STREAMS, (r) => r[0], true);
    const [[t50d, t99d], [t50r, t99r]] = [p5099(ttfb, "direct"), p5099(ttfb, "relay")];
    console.log(
      `streaming time to first byte (${STREAMS} each): direct p50 ${t50d.toFixed(3)} ms p99 ${t99d.toFixed(3)} ms; relay p50 ${t50r.toFixed(3)} ms p99 ${t99r.toFixed(3)} ms; ratio p50 ${(t50r / t50d).toFixed(2)}x (a provider that answers at once: the hop's own cost)`,
    );

    const throughput = async (label: string, d: Target, r: Target) => {
      const rates = new Map<string, number[]>([
        ["direct", []],
        ["relay", []],
      ]);
      for (let round = 0; round < 2; round++) {
        for (const t of [d, r])
          rates.get(t.name)?.push(await opsPerSecond(() => once(t, true), (SECONDS * 1000) / 2, CONCURRENCY));
      }
      const mean = (xs: number[] = []) => xs.reduce((a, b) => a + b, 0) / xs.length;
      const [dRate, rRate] = [mean(rates.get("direct")), mean(rates.get("relay"))];
      console.log(
        `throughput at ${CONCURRENCY} concurrent streams, ${label}: direct ${dRate.toFixed(1)} streams/s, relay ${rRate.toFixed(1)} streams/s, ratio ${(rRate / dRate).toFixed(2)}x (target >= 0.9x)`,
      );
    };
    await throughput("22 SSE events sent at once (CPU-bound: the relay's own cost)", direct, relayed);
    // As a model streams: 20 tokens 10 ms apart. A second provider behind the same relay.
    const paced = await startProvider(10, 50);
    try {
      const [up] = state.upstreams;
      if (up) state = { ...state, upstreams: [{ ...up, baseUrl: `${paced.url}/v1` }] };
      await relay.refresh();
      const pacedDirect = { ...direct, base: paced.url };
      await throughput(
        "first token after 50 ms, 20 more 10 ms apart (as a model streams)",
        pacedDirect,
        relayed,
      );
      const pt = await alternate([pacedDirect, relayed], PACED_STREAMS, (r) => r[0], true, {
        warm: 2,
        block: 10,
      });
      const [[p50d], [p50r]] = [p5099(pt, "direct"), p5099(pt, "relay")];
      console.log(
        `streaming time to first byte, first token after 50 ms (${PACED_STREAMS} each): direct p50 ${p50d.toFixed(2)} ms, relay p50 ${p50r.toFixed(2)} ms, ratio ${(p50r / p50d).toFixed(3)}x (target <= 1.05x)`,
      );
    } finally {
      paced.stop();
    }

    console.log(
      `relay RSS: ${(emptyRss / 1024).toFixed(1)} MiB with 1 tenant, ${(loadedRss / 1024).toFixed(1)} MiB with ${TENANTS + 1} tenants' keys loaded (+${((loadedRss - emptyRss) / 1024).toFixed(1)} MiB)`,
    );
    const health = await relay.health();
    console.log(`relay health: ${health.tenants} tenants, state loaded ${health.stateLoaded}`);
    direct.agent.destroy();
    relayed.agent.destroy();
  } finally {
    await relay.stop();
    provider.stop();
    bareProxy.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
