import assert from "node:assert/strict";
import { after, test } from "node:test";
import { ModelServerError } from "./errors.ts";
import { FakeEngine, type FakeScript } from "./fake.ts";
import type { ChatRequest } from "./openai.ts";
import { startModelServer } from "./server.ts";
import { freePort, openClawLikeRequest, parseSse } from "./testing.ts";

let script: (r: ChatRequest) => FakeScript = () => ({});
const engine = new FakeEngine(undefined, (r) => script(r));
const server = await startModelServer({
  engine,
  host: "127.0.0.1",
  port: await freePort(),
  apiKey: "sk-test",
  keepAliveMs: 20,
});
after(() => server.close());

const auth = { authorization: "Bearer sk-test", "content-type": "application/json" };
const post = (body: unknown, headers: Record<string, string> = auth) =>
  fetch(`${server.url}/chat/completions`, {
    method: "POST",
    headers,
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
const hi = { model: "fake-1", messages: [{ role: "user", content: "hello" }] };

test("health needs no key; everything else needs the bearer key", async () => {
  const h = await fetch(`${server.url.replace(/\/v1$/, "")}/health`);
  assert.equal(h.status, 200);
  const health = (await h.json()) as Record<string, unknown>;
  assert.equal(health.status, "ok");
  assert.equal(health.model, "fake-1");
  assert.equal(health.sequences, 2);

  const noKey = await fetch(`${server.url}/models`);
  assert.equal(noKey.status, 401);
  assert.equal(((await noKey.json()) as { error: { code: string } }).error.code, "invalid_api_key");
  assert.equal((await post(hi, { ...auth, authorization: "Bearer sk-wrong" })).status, 401);
  const before = engine.calls.length;
  assert.equal(engine.calls.length, before, "a refused request never reaches the engine");

  const models = await fetch(`${server.url}/models`, { headers: auth });
  assert.deepEqual(await models.json(), {
    object: "list",
    data: [{ id: "fake-1", object: "model", created: 0, owned_by: "clawkeep" }],
  });
  assert.equal((await fetch(`${server.url}/models/fake-1`, { headers: auth })).status, 200);
  assert.equal((await fetch(`${server.url}/models/other`, { headers: auth })).status, 404);
  assert.equal((await fetch(`${server.url}/nowhere`, { headers: auth })).status, 404);
});

test("a non-streamed completion", async () => {
  const res = await post(hi);
  assert.equal(res.status, 200);
  const body = (await res.json()) as {
    object: string;
    model: string;
    choices: Array<{ message: { content: string }; finish_reason: string }>;
    usage: Record<string, unknown>;
  };
  assert.equal(body.object, "chat.completion");
  assert.equal(body.model, "fake-1");
  assert.equal(body.choices[0]!.message.content, "fake: hello");
  assert.equal(body.choices[0]!.finish_reason, "stop");
  assert.equal(body.usage.prompt_tokens, 10);
});

test("a streamed completion: role chunk, content chunks, finish, usage, [DONE]", async () => {
  const res = await post({ ...hi, stream: true, stream_options: { include_usage: true } });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
  const s = parseSse(await res.text());
  assert.equal(s.done, true);
  assert.equal(s.content, "fake: hello");
  assert.equal(s.finishReason, "stop");
  assert.deepEqual((s.events[0]!.choices as Array<{ delta: unknown }>)[0]!.delta, {
    role: "assistant",
    content: "",
  });
  assert.equal(s.usage?.total_tokens, 12);
  const noUsage = parseSse(await (await post({ ...hi, stream: true })).text());
  assert.equal(noUsage.usage, undefined);
});

test("tool calls, streamed and not", async () => {
  script = () => ({ pieces: [], toolCalls: [{ name: "read", arguments: '{"path":"a"}' }] });
  try {
    const body = (await (await post(hi)).json()) as {
      choices: Array<{
        message: { content: unknown; tool_calls: Array<{ id: string; function: unknown }> };
        finish_reason: string;
      }>;
    };
    assert.equal(body.choices[0]!.finish_reason, "tool_calls");
    assert.equal(body.choices[0]!.message.content, null);
    assert.match(body.choices[0]!.message.tool_calls[0]!.id, /^call_/);
    assert.deepEqual(body.choices[0]!.message.tool_calls[0]!.function, {
      name: "read",
      arguments: '{"path":"a"}',
    });
    const s = parseSse(await (await post({ ...hi, stream: true })).text());
    assert.equal(s.finishReason, "tool_calls");
    assert.equal(s.toolCalls.length, 1);
    assert.equal(s.toolCalls[0]!.index, 0);
    assert.equal(s.toolCalls[0]!.type, "function");
  } finally {
    script = () => ({});
  }
});

test("request errors get OpenAI bodies and never reach the engine", async () => {
  const before = engine.calls.length;
  const cases: Array<[unknown, number, string | null, RegExp]> = [
    ["{not json", 400, null, /not valid JSON/],
    [{ messages: [] }, 400, null, /must not be empty/],
    [
      { ...hi, model: "gpt-4o" },
      404,
      "model_not_found",
      /'gpt-4o' does not exist; this server serves 'fake-1'/,
    ],
    [{ ...hi, n: 3 }, 400, null, /n must be 1/],
  ];
  for (const [body, status, code, pattern] of cases) {
    const res = await post(body);
    assert.equal(res.status, status, JSON.stringify(body));
    const err = ((await res.json()) as { error: { message: string; type: string; code: string | null } })
      .error;
    assert.equal(err.code, code);
    assert.match(err.message, pattern);
    assert.ok(err.type.length > 0);
  }
  assert.equal(engine.calls.length, before);
  const big = await post({ ...hi, messages: [{ role: "user", content: "x".repeat(9 * 1024 * 1024) }] });
  assert.equal(big.status, 413);
});

test("an OpenClaw-sized request (~60 KB, 12 tools) reaches the engine intact", async () => {
  const res = await post(openClawLikeRequest({ model: "fake-1" }));
  const s = parseSse(await res.text());
  assert.equal(s.done, true);
  const seen = engine.calls.at(-1)!.request;
  assert.equal(seen.tools.length, 12);
  assert.equal(seen.maxTokens, 8192);
  assert.ok(seen.messages[0]!.role === "system" && seen.messages[0]!.text.length >= 49_000);
});

test("engine errors: before the stream a status, mid-stream an error event without [DONE]", async () => {
  script = () => ({
    errorBeforeStart: new ModelServerError(
      "context_length_exceeded",
      "This model's maximum context length is 4096 tokens.",
    ),
  });
  try {
    const res = await post({ ...hi, stream: true });
    assert.equal(res.status, 400);
    const err = ((await res.json()) as { error: { code: string; param: string } }).error;
    assert.equal(err.code, "context_length_exceeded");
    assert.equal(err.param, "messages");

    script = () => ({ errorBeforeStart: new ModelServerError("busy", "all busy") });
    assert.equal((await post(hi)).status, 429);

    script = () => ({ errorAfterFirstPiece: new Error("kaboom"), pieces: ["a", "b"] });
    const mid = await post({ ...hi, stream: true });
    assert.equal(mid.status, 200);
    const s = parseSse(await mid.text());
    assert.equal(s.done, false);
    assert.match(JSON.stringify(s.events.at(-1)), /"error":\{"message":"internal error: kaboom"/);
  } finally {
    script = () => ({});
  }
});

test("keep-alive comments flow while the first token is slow", async () => {
  script = () => ({ pieces: ["slow"], pieceDelayMs: 120 });
  try {
    const text = await (await post({ ...hi, stream: true })).text();
    assert.match(text, /^: keep-alive$/m);
    assert.equal(parseSse(text).content, "slow");
  } finally {
    script = () => ({});
  }
});

test("a client that disconnects aborts its generation", async () => {
  script = () => ({ pieces: Array.from({ length: 50 }, () => "x"), pieceDelayMs: 20 });
  try {
    const ac = new AbortController();
    const res = await fetch(`${server.url}/chat/completions`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ ...hi, stream: true }),
      signal: ac.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    ac.abort();
    const call = engine.calls.at(-1)!;
    for (let i = 0; i < 100 && call.outcome === "running"; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(call.outcome, "aborted");
    // Control: the same request read to the end finishes.
    const full = parseSse(await (await post({ ...hi, stream: true })).text());
    assert.equal(full.content.length, 50);
    assert.equal(engine.calls.at(-1)!.outcome, "done");
  } finally {
    script = () => ({});
  }
});

test("listen addresses are validated", async () => {
  await assert.rejects(
    startModelServer({ engine, host: "example.com", port: 41000 }),
    /must be an IP address/,
  );
  await assert.rejects(startModelServer({ engine, host: "127.0.0.1", port: 70000 }), /0-65535/);
});
