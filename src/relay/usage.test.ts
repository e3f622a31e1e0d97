import assert from "node:assert/strict";
import { test } from "node:test";
import { JSON_KEEP_BYTES, jsonUsageReader, sseUsageReader, tokensOf, usageOfJson } from "./usage.ts";

const feedAll = (r: ReturnType<typeof jsonUsageReader>, text: string, pieces = 7) => {
  const b = Buffer.from(text);
  const step = Math.max(1, Math.ceil(b.length / pieces));
  for (let i = 0; i < b.length; i += step) r.feed(b.subarray(i, i + step));
  return r.result();
};

test("usage fields of every API shape; none when absent or not numbers", () => {
  assert.deepEqual(tokensOf({ prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 }), {
    inputTokens: 3,
    outputTokens: 4,
  });
  assert.deepEqual(tokensOf({ input_tokens: 5, output_tokens: 6 }), { inputTokens: 5, outputTokens: 6 });
  assert.deepEqual(
    tokensOf({
      input_tokens: 5,
      cache_creation_input_tokens: 10,
      cache_read_input_tokens: 20,
      output_tokens: 1,
    }),
    { inputTokens: 35, outputTokens: 1 },
    "Anthropic's cache tokens are input it bills",
  );
  assert.deepEqual(
    tokensOf({ prompt_tokens: 9, total_tokens: 9 }),
    { inputTokens: 9, outputTokens: 0 },
    "embeddings",
  );
  for (const none of [null, 1, "x", [], {}, { total_tokens: 5 }, { prompt_tokens: "5" }])
    assert.equal(tokensOf(none), null, JSON.stringify(none));
  assert.deepEqual(
    tokensOf({ prompt_tokens: -5, completion_tokens: Number.NaN, input_tokens: 1 }),
    {
      inputTokens: 0,
      outputTokens: 0,
    },
    "negative and NaN count as 0",
  );
  assert.deepEqual(usageOfJson({ response: { usage: { input_tokens: 1, output_tokens: 2 } } }), {
    inputTokens: 1,
    outputTokens: 2,
  });
  assert.deepEqual(usageOfJson({ message: { usage: { input_tokens: 3, output_tokens: 1 } } }), {
    inputTokens: 3,
    outputTokens: 1,
  });
  assert.equal(usageOfJson({ choices: [] }), null);
});

test("JSON answers: read whole in pieces; a huge one by its tail", () => {
  assert.deepEqual(
    feedAll(
      jsonUsageReader(),
      JSON.stringify({ id: "x", usage: { prompt_tokens: 2, completion_tokens: 3 } }),
    ),
    {
      inputTokens: 2,
      outputTokens: 3,
    },
  );
  assert.equal(feedAll(jsonUsageReader(), "not json"), null);
  const big = `{"data":[${'"x",'.repeat(JSON_KEEP_BYTES / 4 + 10)}"y"],"usage":{"prompt_tokens":11,"total_tokens":11}}`;
  assert.deepEqual(feedAll(jsonUsageReader(), big, 50), { inputTokens: 11, outputTokens: 0 });
});

test("SSE streams: OpenAI's last usage chunk, the responses API's completed event, Anthropic's start and delta", () => {
  const chat = [
    `data: {"choices":[{"delta":{"content":"a"}}]}\n\n`,
    `data: {"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":6}}\n\n`,
    "data: [DONE]\n\n",
  ].join("");
  assert.deepEqual(feedAll(sseUsageReader(), chat, 13), { inputTokens: 4, outputTokens: 6 });
  const responses = [
    `event: response.created\ndata: {"type":"response.created","response":{"usage":null}}\n\n`,
    `event: response.completed\ndata: {"type":"response.completed","response":{"usage":{"input_tokens":8,"output_tokens":2}}}\n\n`,
  ].join("");
  assert.deepEqual(feedAll(sseUsageReader(), responses), { inputTokens: 8, outputTokens: 2 });
  const anthropic = [
    `event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":25,"output_tokens":1}}}\n\n`,
    `event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"usage"}}\n\n`,
    `event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":15}}\n\n`,
  ].join("");
  assert.deepEqual(feedAll(sseUsageReader(), anthropic, 20), { inputTokens: 25, outputTokens: 15 });
  assert.equal(
    feedAll(sseUsageReader(), 'data: {"choices":[]}\n\n'),
    null,
    "control: a stream without usage",
  );
  assert.equal(feedAll(sseUsageReader(), "data: usage {{{\n\n"), null, "not JSON: skipped");
});

test("SSE streams: an event past the parser's bound stops the reading, not the stream", () => {
  const r = sseUsageReader();
  r.feed(Buffer.from(`data: ${"x".repeat(5 * 1024 * 1024)}`));
  r.feed(Buffer.from(`\n\ndata: {"usage":{"prompt_tokens":1,"completion_tokens":1}}\n\n`));
  assert.equal(r.result(), null);
});
