/**
 * Model server throughput and latency, measured side by side in one run on one server process:
 * tokens/s and time to first token with 1 request at a time vs 4 at once, and the first token of an
 * OpenClaw-sized prompt (~60 KB, ~15k tokens) cold vs served from the sequence's prompt cache.
 * Run: npx tsx bench/model-server.ts [--model FILE.gguf] [--threads N (default cores - 1)] [--tokens N]
 * Default model: the generated tiny test model (no download). About 30-90 s; loopback only.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { writeTinyModel } from "../src/llm/gguf/tiny-model.ts";
import { startModelServerProcess } from "../src/llm/model-server/supervisor.ts";
import { freePort, openClawLikeRequest, parseSse } from "../src/llm/model-server/testing.ts";

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    // One core is left to the HTTP side and the client; more threads than free cores collapse decode.
    threads: { type: "string", default: String(Math.max(1, availableParallelism() - 1)) },
    tokens: { type: "string", default: "48" },
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
}

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
  output: "ignore",
});
console.log(`model server up in ${Date.now() - started} ms (${modelPath}, ${threads} threads, 4 sequences)`);

let prompt = 0;
/** One streamed chat; the first content chunk's arrival is the time to first token. */
async function stream(body: Record<string, unknown>): Promise<Sample> {
  const t0 = performance.now();
  let ttft = 0;
  const res = await fetch(`${server.url}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
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
  const sse = parseSse(text);
  if (!sse.done) throw new Error("stream did not end with [DONE]");
  return {
    ttftMs: ttft || performance.now() - t0,
    totalMs: performance.now() - t0,
    tokens: Number(sse.usage?.completion_tokens ?? 0),
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
  console.log(
    `\n(${maxTokens} tokens per reply, ${ROUNDS} rounds per column; total ${Date.now() - started} ms)`,
  );
} finally {
  await server.stop();
  await rm(dir, { recursive: true, force: true });
}
