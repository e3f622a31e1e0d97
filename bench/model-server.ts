/**
 * Model server throughput and latency, measured side by side in one run on one server process:
 * tokens/s and time to first token with 1 request at a time vs 4 at once; the first token of an
 * OpenClaw-sized prompt (~60 KB, ~15k tokens) cold vs served from the sequence's prompt cache; and
 * (as root, with the OpenClaw runtime installed) a chat through a real OpenClaw gateway whose only
 * provider is this server vs an OpenClaw-shaped request straight to the server, alternated.
 * Run: npx tsx bench/model-server.ts [--model FILE.gguf] [--threads N (default cores - 1)] [--tokens N]
 *   [--no-gateway]
 * Default model: the generated tiny test model (no download). About 1-3 min with the gateway
 * (its start is ~25 CPU-s); loopback only.
 */
import { spawn } from "node:child_process";
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { loadSettings } from "../src/config/settings.ts";
import { pidsOfUid } from "../src/lib/procfs.ts";
import { writeTinyModel } from "../src/llm/gguf/tiny-model.ts";
import { startModelServerProcess } from "../src/llm/model-server/supervisor.ts";
import { freePort, openClawLikeRequest, parseSse } from "../src/llm/model-server/testing.ts";
import { gatewayArgs, renderGatewayEnv, renderOpenClawConfigFile } from "../src/openclaw/config.ts";
import { waitReady } from "../src/openclaw/probe.ts";
import { findRuntime } from "../src/openclaw/runtime.ts";

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    // One core is left to the HTTP side and the client; more threads than free cores collapse decode.
    threads: { type: "string", default: String(Math.max(1, availableParallelism() - 1)) },
    tokens: { type: "string", default: "48" },
    "no-gateway": { type: "boolean", default: false },
  },
});
const threads = Number(values.threads);
const maxTokens = Number(values.tokens);
const BUDGET_MS = 100_000;
const ROUNDS = 3;

interface Sample {
  ttftMs: number;
  totalMs: number;
  tokens: number;
  /** What the server logged for the upstream requests of this call. */
  upstream: ServerFacts[];
}

/** What the server logged about each chat request (its pino "request" lines). */
interface ServerFacts {
  completionTokens: number;
  promptTokens: number;
  evaluatedPromptTokens: number;
  ttftMs: number;
}
const served: ServerFacts[] = [];
let logBuf = "";
const onServerLog = (chunk: string) => {
  logBuf += chunk;
  for (let nl = logBuf.indexOf("\n"); nl >= 0; nl = logBuf.indexOf("\n")) {
    const line = logBuf.slice(0, nl);
    logBuf = logBuf.slice(nl + 1);
    try {
      const j = JSON.parse(line) as Partial<ServerFacts> & { msg?: string; path?: string };
      if (j.msg === "request" && j.path === "/v1/chat/completions" && j.completionTokens !== undefined)
        served.push(j as ServerFacts);
    } catch {
      // not a log line of ours
    }
  }
};

const dir = await mkdtemp(join(tmpdir(), "ck-model-bench-"));
const modelPath = values.model ?? join(dir, "tiny.gguf");
if (!values.model) await writeTinyModel(modelPath);
const started = Date.now();
const server = await startModelServerProcess({
  model: { path: modelPath, id: "bench" },
  host: "127.0.0.1",
  port: await freePort(),
  threads,
  sequences: 4,
  contextSize: 32768,
  // A cap: OpenClaw asks for 8192 tokens, and the tiny model never stops by itself.
  maxTokens,
  output: onServerLog,
});
console.log(`model server up in ${Date.now() - started} ms (${modelPath}, ${threads} threads, 4 sequences)`);

let prompt = 0;
/**
 * One streamed chat; the first content chunk's arrival is the time to first token. Tokens: the
 * stream's usage, else what the model server logged for the requests made meanwhile.
 */
async function stream(
  body: Record<string, unknown>,
  to: { url: string; token?: string } = { url: server.url },
): Promise<Sample> {
  const before = served.length;
  const t0 = performance.now();
  let ttft = 0;
  const res = await fetch(`${to.url}/chat/completions`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(to.token ? { authorization: `Bearer ${to.token}` } : {}),
    },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let scanned = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
    if (ttft) continue;
    // The first event with non-empty content marks the first token.
    for (let end = text.indexOf("\n\n", scanned); end >= 0 && !ttft; end = text.indexOf("\n\n", scanned)) {
      const event = text.slice(scanned, end);
      scanned = end + 2;
      if (!event.startsWith("data: {")) continue;
      const delta = (JSON.parse(event.slice(6)) as { choices: Array<{ delta: { content?: string } }> })
        .choices[0]?.delta;
      if (delta?.content) ttft = performance.now() - t0;
    }
  }
  const totalMs = performance.now() - t0;
  const sse = parseSse(text);
  if (!sse.done) throw new Error(`stream did not end with [DONE]: ${text.slice(-500)}`);
  // The server's log line comes right after its last chunk.
  for (let i = 0; i < 50 && served.length === before; i++) await new Promise((r) => setTimeout(r, 20));
  const upstream = served.slice(before);
  const logged = upstream.reduce((a, f) => a + f.completionTokens, 0);
  return {
    ttftMs: ttft || totalMs,
    totalMs,
    tokens: Number(sse.usage?.completion_tokens ?? logged),
    upstream,
  };
}

const short = () => ({
  model: "bench",
  messages: [
    { role: "system", content: "You are a helpful assistant." },
    { role: "user", content: `Question ${prompt++}: what should I know about files and tools today?` },
  ],
  max_tokens: maxTokens,
  temperature: 0,
  stream: true,
  stream_options: { include_usage: true },
});

/** `concurrency` streams at once, ROUNDS times; aggregate tokens/s and mean time to first token. */
async function phase(concurrency: number): Promise<{ tokensPerSec: number; ttftMs: number }> {
  const samples: Sample[] = [];
  const t0 = performance.now();
  for (let r = 0; r < ROUNDS && Date.now() - started < BUDGET_MS; r++) {
    samples.push(...(await Promise.all(Array.from({ length: concurrency }, () => stream(short())))));
  }
  const wall = (performance.now() - t0) / 1000;
  const tokens = samples.reduce((a, s) => a + s.tokens, 0);
  return { tokensPerSec: tokens / wall, ttftMs: samples.reduce((a, s) => a + s.ttftMs, 0) / samples.length };
}

/**
 * A bare OpenClaw gateway (the installed runtime, its own uid and state, loopback) whose only
 * provider is the model server: what an Enterprise tenant's gateway is, without the sandbox.
 */
const GW_UID = 202961;
let gatewaySpawned = false;
async function killGateway(): Promise<void> {
  for (const pid of await pidsOfUid(GW_UID)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
  while ((await pidsOfUid(GW_UID)).length) await new Promise((r) => setTimeout(r, 100));
  await rm(`/tmp/openclaw-state-locks-${GW_UID}`, { recursive: true, force: true });
}
async function startGateway(): Promise<{ url: string; token: string } | string> {
  if (values["no-gateway"]) return "--no-gateway";
  if (process.getuid?.() !== 0) return "not root (the gateway runs under its own uid)";
  const runtime = await findRuntime(loadSettings());
  if (!runtime) return "the OpenClaw runtime is not installed (clawkeep runtime install)";
  const port = await freePort();
  const gw = join(dir, "gateway");
  const paths = {
    stateDir: join(gw, "state"),
    home: join(gw, "home"),
    tmpDir: join(gw, "tmp"),
    workspaceDir: join(gw, "workspace"),
    configPath: join(gw, "state", "openclaw.json"),
    logFile: join(gw, "state", "logs", "openclaw.log"),
  };
  await chmod(dir, 0o711);
  for (const d of [gw, paths.stateDir, paths.home, paths.tmpDir, paths.workspaceDir]) {
    await mkdir(d, { recursive: true, mode: 0o700 });
    await chown(d, GW_UID, GW_UID);
  }
  await writeFile(
    paths.configPath,
    renderOpenClawConfigFile({ port, bind: "loopback", paths, llm: { baseUrl: server.url, model: "bench" } }),
  );
  const token = "b".repeat(40);
  const t0 = Date.now();
  const child = spawn(runtime.nodeBin, gatewayArgs(runtime.entry, port), {
    env: renderGatewayEnv({
      port,
      paths,
      nodeBinDir: runtime.nodeBinDir,
      gatewayToken: token,
      llmApiKey: "none",
    }),
    cwd: paths.home,
    uid: GW_UID,
    gid: GW_UID,
    detached: true,
    stdio: "ignore",
  });
  child.unref();
  gatewaySpawned = true;
  const url = `http://127.0.0.1:${port}`;
  await waitReady(url, { timeoutMs: 300_000, alive: async () => (await pidsOfUid(GW_UID)).length > 0 });
  console.log(`OpenClaw gateway ready in ${Date.now() - t0} ms (${runtime.openclawVersion})`);
  return { url: `${url}/v1`, token };
}

try {
  await stream(short()); // warm-up
  const one = await phase(1);
  const four = await phase(4);

  // An OpenClaw turn: a ~60 KB prompt, first cold, then again with the prompt cached.
  const oc = openClawLikeRequest({ model: "bench", maxTokens: 8, temperature: 0 });
  const cold = await stream(oc);
  const warm = await stream(oc);

  const row = (name: string, a: number, b: number, unit: string) =>
    console.log(
      `${name.padEnd(34)} ${a.toFixed(1).padStart(10)} ${b.toFixed(1).padStart(10)}  ${unit.padEnd(6)} ${(b / a).toFixed(2).padStart(6)}x`,
    );
  console.log(`\n${"".padEnd(34)} ${"1 at once".padStart(10)} ${"4 at once".padStart(10)}  unit    4 vs 1`);
  row("throughput (completion tokens/s)", one.tokensPerSec, four.tokensPerSec, "tok/s");
  row("time to first token (mean)", one.ttftMs, four.ttftMs, "ms");
  console.log(`\n${"".padEnd(34)} ${"cold".padStart(10)} ${"cached".padStart(10)}  unit    cached vs cold`);
  row("OpenClaw-sized prompt: first token", cold.ttftMs, warm.ttftMs, "ms");

  // Through a real OpenClaw gateway vs straight to the server, alternated so both see the same load.
  const gw = await startGateway();
  if (typeof gw === "string") {
    console.log(`\n(through OpenClaw: skipped, ${gw})`);
  } else {
    const ask = (i: number) => `Question ${i}: what should I know about files and tools today?`;
    const viaGateway = (i: number) =>
      stream({ model: "openclaw", stream: true, messages: [{ role: "user", content: ask(i) }] }, gw);
    const direct = (i: number) => {
      const body = openClawLikeRequest({ model: "bench", maxTokens, temperature: 0 });
      const messages = body.messages as Array<{ role: string; content: string }>;
      messages[messages.length - 1] = { role: "user", content: ask(i) };
      return stream({ ...body, stream_options: { include_usage: true } });
    };
    await viaGateway(1000); // OpenClaw's first chat on a new process is slow (~10 s): not measured
    await direct(1000); // the same for the direct prompt's cache
    const g: Sample[] = [];
    const d: Sample[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      g.push(await viaGateway(i));
      d.push(await direct(i));
    }
    const mean = (xs: Sample[], f: (s: Sample) => number) => xs.reduce((a, s) => a + f(s), 0) / xs.length;
    const tps = (xs: Sample[]) =>
      xs.reduce((a, s) => a + s.tokens, 0) / (xs.reduce((a, s) => a + s.totalMs, 0) / 1000);
    console.log(
      `\n${"".padEnd(34)} ${"direct".padStart(10)} ${"OpenClaw".padStart(10)}  unit    OpenClaw vs direct`,
    );
    row("throughput (completion tokens/s)", tps(d), tps(g), "tok/s");
    row(
      "time to first token (mean)",
      mean(d, (s) => s.ttftMs),
      mean(g, (s) => s.ttftMs),
      "ms",
    );
    row(
      "whole reply (mean)",
      mean(d, (s) => s.totalMs),
      mean(g, (s) => s.totalMs),
      "ms",
    );
    const server = (xs: Sample[]) => {
      const u = xs.flatMap((s) => s.upstream);
      const m = (f: (x: ServerFacts) => number) =>
        Math.round(u.reduce((a, x) => a + f(x), 0) / (u.length || 1));
      return `${u.length / xs.length} request(s) per chat, prompt ${m((x) => x.promptTokens)} tokens (~${m((x) => x.evaluatedPromptTokens)} evaluated, the rest from cache), server-side first token ${m((x) => x.ttftMs)} ms`;
    };
    console.log(
      `(tokens per reply: direct ${d.map((s) => s.tokens).join("/")}, OpenClaw ${g.map((s) => s.tokens).join("/")})`,
    );
    console.log(`(model server saw, direct:   ${server(d)})`);
    console.log(`(model server saw, OpenClaw: ${server(g)})`);
  }
  console.log(
    `\n(${maxTokens} tokens per reply, ${ROUNDS} rounds per column; total ${Date.now() - started} ms)`,
  );
} finally {
  if (gatewaySpawned) await killGateway();
  await server.stop();
  await rm(dir, { recursive: true, force: true });
}
