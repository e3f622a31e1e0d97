// The model server as its own process, on a real (tiny, generated) GGUF model with llama.cpp on
// the CPU: OpenAI-compatible chat with and without streaming, an OpenClaw-sized request, tool
// calls, the context limit, concurrency, disconnects, restart after a kill, and corrupt models.
// Nothing is downloaded; everything listens on 127.0.0.1 in 41000-60999.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, type TestContext, test } from "node:test";
import { buildTinyModel } from "../src/llm/gguf/tiny-model.ts";
import { ModelServerError } from "../src/llm/model-server/errors.ts";
import {
  type ModelServerProcess,
  type ModelServerProcessOptions,
  startModelServerProcess,
} from "../src/llm/model-server/supervisor.ts";
import { freePort, openClawLikeRequest, parseSse } from "../src/llm/model-server/testing.ts";

const API_KEY = "sk-model-server-test";
let dir = "";
let modelPath = "";
let modelSha = "";
let server: ModelServerProcess | undefined;
const serverLog: string[] = [];
const fatals: ModelServerError[] = [];
const restarts: number[] = [];

const base = (): Omit<ModelServerProcessOptions, "port"> => ({
  model: { path: modelPath, id: "tiny", sha256: modelSha },
  host: "127.0.0.1",
  // One thread: on a shared 2-core machine, llama.cpp's spinning threads collapse decode 10-50x
  // as soon as another process wants a core (threads must not exceed the CPU actually available).
  threads: 1,
  sequences: 2,
  contextSize: 32768,
  apiKey: API_KEY,
  output: (chunk) => serverLog.push(chunk),
  backoff: { initialMs: 100, maxMs: 1000 },
});

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "clawkeep-model-server-"));
  modelPath = join(dir, "tiny.gguf");
  const bytes = buildTinyModel();
  modelSha = createHash("sha256").update(bytes).digest("hex");
  await writeFile(modelPath, bytes);
  server = await startModelServerProcess({
    ...base(),
    port: await freePort(),
    onFatal: (e) => fatals.push(e),
    onRestart: (i) => restarts.push(i.restarts),
  });
});

after(async () => {
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** A test whose failure message ends with the model servers' last log lines. */
function logged(name: string, fn: (t: TestContext) => Promise<void>): void {
  test(name, async (t) => {
    try {
      await fn(t);
    } catch (err) {
      if (err instanceof Error)
        err.message += `\n--- model server log tail ---\n${serverLog.join("").slice(-3000)}`;
      throw err;
    }
  });
}

async function until(cond: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const s = () => {
  assert.ok(server, "the server started");
  return server;
};

async function chat(body: Record<string, unknown>, opts: { key?: string } = {}): Promise<Response> {
  return fetch(`${s().url}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${opts.key ?? API_KEY}` },
    body: JSON.stringify(body),
  });
}

interface Completion {
  choices: Array<{
    message: {
      content: string | null;
      tool_calls?: Array<{ function: { name: string; arguments: string } }>;
    };
    finish_reason: string;
  }>;
  usage: {
    prompt_tokens: number;
    completion_tokens: number;
    prompt_tokens_details: { cached_tokens: number };
  };
}

const hello = (text: string, extra: Record<string, unknown> = {}) => ({
  model: "tiny",
  messages: [
    { role: "system", content: "You are a helpful assistant." },
    { role: "user", content: text },
  ],
  max_tokens: 12,
  temperature: 0,
  ...extra,
});

logged("health, models and the API key", async () => {
  const health = (await (await fetch(`${s().url.replace(/\/v1$/, "")}/health`)).json()) as Record<
    string,
    unknown
  >;
  assert.equal(health.status, "ok");
  assert.equal(health.model, "tiny");
  assert.equal(health.contextSize, 32768);
  assert.equal(health.architecture, "llama");
  const models = await fetch(`${s().url}/models`, { headers: { authorization: `Bearer ${API_KEY}` } });
  assert.equal(((await models.json()) as { data: Array<{ id: string }> }).data[0]!.id, "tiny");
  assert.equal((await chat(hello("hi"), { key: "sk-wrong" })).status, 401);
});

logged("at temperature 0 the same request gets the same non-empty reply, streamed or not", async () => {
  const first = (await (await chat(hello("Tell me about the weather"))).json()) as Completion;
  const second = (await (await chat(hello("Tell me about the weather"))).json()) as Completion;
  const reply = first.choices[0]!.message.content ?? "";
  assert.ok(reply.trim().length > 0, "non-empty");
  assert.equal(second.choices[0]!.message.content, reply);
  assert.equal(first.choices[0]!.finish_reason, "length", "the tiny model never stops by itself");
  assert.equal(first.usage.completion_tokens, 12);
  assert.ok(first.usage.prompt_tokens > 5);

  const other = (await (await chat(hello("Write a poem about files"))).json()) as Completion;
  assert.notEqual(other.choices[0]!.message.content, reply, "control: another prompt, another reply");

  const streamed = parseSse(await (await chat(hello("Tell me about the weather", { stream: true }))).text());
  assert.equal(streamed.done, true);
  assert.equal(streamed.content, reply);
  assert.equal(streamed.finishReason, "length");
});

logged(
  "an OpenClaw-sized request (~60 KB, ~15k tokens, 12 tools, stream) gets a valid SSE stream",
  async (t) => {
    const body = openClawLikeRequest({ model: "tiny", maxTokens: 16, temperature: 0 });
    assert.ok(JSON.stringify(body).length > 55_000);
    const started = Date.now();
    const res = await chat(body);
    assert.equal(res.status, 200);
    const cold = parseSse(await res.text());
    const coldMs = Date.now() - started;
    assert.equal(cold.done, true, "ends with data: [DONE]");
    assert.ok(cold.content.trim().length > 0);
    assert.ok(cold.finishReason === "length" || cold.finishReason === "tool_calls");
    const promptTokens = Number(cold.usage?.prompt_tokens);
    assert.ok(promptTokens > 10_000 && promptTokens < 32_768, `prompt_tokens ${promptTokens}`);

    // The next turn shares the prompt: it is served from the sequence's cache, with the same reply.
    const t2 = Date.now();
    const warm = parseSse(await (await chat(body)).text());
    const warmMs = Date.now() - t2;
    assert.equal(warm.done, true);
    assert.equal(warm.content, cold.content);
    const details = warm.usage?.prompt_tokens_details as { cached_tokens: number } | undefined;
    const cached = Number(details?.cached_tokens);
    assert.ok(cached > promptTokens * 0.9, `cached ${cached} of ${promptTokens}`);
    t.diagnostic(`OpenClaw-sized request: ${promptTokens} tokens, cold ${coldMs} ms, cached ${warmMs} ms`);
  },
);

logged("tool_choice required makes the model call a tool with arguments that fit the schema", async () => {
  const tools = [
    {
      type: "function",
      function: {
        name: "get_weather",
        description: "Weather for a city",
        parameters: {
          type: "object",
          properties: { city: { type: "string", enum: ["Paris", "Oslo"] }, unit: { enum: ["c", "f"] } },
          required: ["city", "unit"],
        },
      },
    },
    { type: "function", function: { name: "noop", description: "Does nothing" } },
  ];
  const body = hello("What is the weather in Paris?", { tools, tool_choice: "required", max_tokens: 64 });
  const r = (await (await chat(body)).json()) as Completion;
  assert.equal(r.choices[0]!.finish_reason, "tool_calls");
  const call = r.choices[0]!.message.tool_calls?.[0];
  assert.ok(call, JSON.stringify(r));
  if (call.function.name === "get_weather") {
    const args = JSON.parse(call.function.arguments) as { city: string; unit: string };
    assert.ok(
      ["Paris", "Oslo"].includes(args.city) && ["c", "f"].includes(args.unit),
      call.function.arguments,
    );
  } else {
    assert.equal(call.function.name, "noop");
  }
  // A named tool is the one called; streamed, the call arrives as a tool_calls delta.
  const named = {
    ...body,
    tool_choice: { type: "function", function: { name: "get_weather" } },
    stream: true,
  };
  const sse = parseSse(await (await chat(named)).text());
  assert.equal(sse.done, true);
  assert.equal(sse.finishReason, "tool_calls");
  const fn = sse.toolCalls[0]?.function as { name: string; arguments: string };
  assert.equal(fn.name, "get_weather");
  assert.ok(["Paris", "Oslo"].includes((JSON.parse(fn.arguments) as { city: string }).city));
  // The next turn carries the call and its result back; the model goes on from the result.
  const turn2 = {
    ...hello("What is the weather in Paris?", { tools, max_tokens: 8 }),
    messages: [
      ...hello("What is the weather in Paris?").messages,
      {
        role: "assistant",
        content: null,
        tool_calls: [
          {
            id: "call_1",
            type: "function",
            function: { name: "get_weather", arguments: '{"city":"Paris","unit":"c"}' },
          },
        ],
      },
      { role: "tool", tool_call_id: "call_1", content: "18 degrees, sunny" },
    ],
  };
  const after2 = (await (await chat(turn2)).json()) as Completion;
  assert.ok((after2.choices[0]!.message.content ?? "").length > 0, JSON.stringify(after2));
  // Control: without tool_choice the same request is answered in text by this model.
  const plain = (await (await chat({ ...body, tool_choice: "auto" })).json()) as Completion;
  assert.equal(plain.choices[0]!.message.tool_calls, undefined);
});

logged(
  "a prompt longer than the context is refused with an OpenAI context_length_exceeded error",
  async () => {
    const huge = hello("x ".repeat(10)).messages;
    huge[0] = { role: "system", content: "The tool reads a file and returns its content. ".repeat(5000) };
    const res = await chat({ model: "tiny", messages: huge, stream: true, temperature: 0 });
    assert.equal(res.status, 400);
    const err = ((await res.json()) as { error: { code: string; message: string } }).error;
    assert.equal(err.code, "context_length_exceeded");
    assert.match(
      err.message,
      /maximum context length is 32768 tokens\. However, your messages resulted in \d+ tokens/,
    );
    // Control: the server is fine afterwards.
    assert.equal((await chat(hello("hi"))).status, 200);
  },
);

logged("concurrent requests beyond the sequences wait their turn and all succeed", async () => {
  const prompts = ["one", "two", "three", "four"].map((w) => hello(`Say ${w}`));
  const replies = await Promise.all(prompts.map(async (p) => (await (await chat(p)).json()) as Completion));
  for (const r of replies) assert.ok((r.choices[0]!.message.content ?? "").length > 0);
  const health = (await (await fetch(`${s().url.replace(/\/v1$/, "")}/health`)).json()) as Record<
    string,
    number
  >;
  assert.equal(health.busy, 0);
  assert.equal(health.queued, 0);
});

logged("a client that disconnects mid-stream frees its sequence", async () => {
  const ac = new AbortController();
  const res = await fetch(`${s().url}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${API_KEY}` },
    // ~30k tokens would take ~30 s here: back to idle within seconds means the abort stopped it.
    body: JSON.stringify(hello("Write a long story", { max_tokens: 30000, stream: true })),
    signal: ac.signal,
  });
  const reader = res.body!.getReader();
  await reader.read();
  ac.abort();
  const healthUrl = `${s().url.replace(/\/v1$/, "")}/health`;
  let busy = -1;
  for (let i = 0; i < 100; i++) {
    busy = ((await (await fetch(healthUrl)).json()) as { busy: number }).busy;
    if (busy === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(busy, 0, "the generation stopped instead of running to 30000 tokens");
  const again = (await (await chat(hello("Tell me about the weather"))).json()) as Completion;
  assert.ok((again.choices[0]!.message.content ?? "").length > 0);
});

logged("a killed server is restarted and the next chat works", async () => {
  const before = (await (await chat(hello("Tell me about the weather"))).json()) as Completion;
  const pid = s().pid;
  assert.ok(pid);
  process.kill(pid, "SIGKILL");
  await until(() => s().restarts === 1, "the supervisor noticed the death");
  await s().ready();
  assert.equal(s().restarts, 1);
  assert.deepEqual(restarts, [1]);
  assert.notEqual(s().pid, pid);
  const afterRestart = (await (await chat(hello("Tell me about the weather"))).json()) as Completion;
  assert.equal(afterRestart.choices[0]!.message.content, before.choices[0]!.message.content);
});

logged(
  "a corrupt or missing model: the process exits naming the file and the fault, and is not restarted",
  async () => {
    const junk = join(dir, "junk.gguf");
    await writeFile(junk, "definitely not a model");
    const started = Date.now();
    await assert.rejects(
      startModelServerProcess({ ...base(), model: { path: junk, id: "junk" }, port: await freePort() }),
      (err: unknown) => {
        assert.ok(err instanceof ModelServerError, String(err));
        assert.equal(err.reason, "model_corrupt");
        assert.match(err.message, new RegExp(`${junk} is not a GGUF model`));
        return true;
      },
    );
    await assert.rejects(
      startModelServerProcess({ ...base(), model: { path: join(dir, "gone.gguf") }, port: await freePort() }),
      (err: unknown) =>
        err instanceof ModelServerError &&
        err.reason === "model_missing" &&
        /gone\.gguf does not exist/.test(err.message),
    );
    assert.ok(Date.now() - started < 60_000);
  },
);

// Runs last: it breaks the shared server's model on purpose.
logged("a model damaged while the server runs: after the next death it fails for good, once", async () => {
  assert.deepEqual(restarts, [1], "one restart so far (the kill test)");
  // Replace the file (same size, other weights) under the running server, then kill it.
  await writeFile(`${modelPath}.new`, buildTinyModel({ seed: 99 }));
  await rename(`${modelPath}.new`, modelPath);
  process.kill(s().pid!, "SIGKILL");
  await until(() => restarts.length === 2, "the supervisor noticed the death");
  await assert.rejects(s().ready(), (err: unknown) => {
    assert.ok(err instanceof ModelServerError);
    assert.equal(err.reason, "model_corrupt");
    assert.match(err.message, /tiny\.gguf has SHA-256 [0-9a-f]{64}, expected [0-9a-f]{64}/);
    return true;
  });
  assert.equal(s().state, "failed");
  await new Promise((r) => setTimeout(r, 1500)); // more than the backoff: no new attempt
  assert.deepEqual(restarts, [1, 2], "one attempt after the damage, no spinning");
  assert.equal(fatals.length, 1);
  assert.equal(s().failure?.reason, "model_corrupt");
  assert.equal(s().pid, undefined);
});
