import assert from "node:assert/strict";
import { test } from "node:test";
import { ModelServerError } from "./errors.ts";
import { toChatHistory, toFunctions } from "./history.ts";
import { completionBody, parseChatRequest, usage, wireError } from "./openai.ts";
import { openClawLikeRequest, parseSse } from "./testing.ts";

const invalid = (param: string | undefined, pattern: RegExp) => (err: unknown) => {
  assert.ok(err instanceof ModelServerError, String(err));
  assert.equal(err.reason, "invalid_request");
  assert.equal(err.details?.param, param);
  assert.match(err.message, pattern);
  return true;
};

test("an OpenClaw request parses: stream, usage, 12 tools, content parts, max_completion_tokens", () => {
  const body = openClawLikeRequest({ model: "tiny" });
  assert.ok(JSON.stringify(body).length > 55_000, "the fixture is ~60 KB like the real thing");
  const r = parseChatRequest(body);
  assert.equal(r.model, "tiny");
  assert.equal(r.stream, true);
  assert.equal(r.includeUsage, true);
  assert.equal(r.maxTokens, 8192);
  assert.equal(r.tools.length, 12);
  assert.equal(r.toolChoice, "auto");
  assert.deepEqual(
    r.messages.map((m) => m.role),
    ["system", "user", "user"],
  );
  assert.match(r.messages[2]!.role === "user" ? r.messages[2]!.text : "", /BEGIN_OPENCLAW_INTERNAL_CONTEXT/);
  const history = toChatHistory(r.messages);
  assert.deepEqual(
    history.map((h) => h.type),
    ["system", "user", "user", "model"],
  );
  assert.equal(Object.keys(toFunctions(r.tools)).length, 12);
});

test("unknown fields are accepted; unsupported ones are refused naming the field", () => {
  const base = { messages: [{ role: "user", content: "hi" }] };
  const r = parseChatRequest({
    ...base,
    store: false,
    user: "x",
    metadata: { a: 1 },
    reasoning_effort: "low",
    n: 1,
  });
  assert.equal(r.stream, false);
  assert.equal(r.model, undefined);
  assert.throws(() => parseChatRequest({ ...base, n: 2 }), invalid("n", /n must be 1/));
  assert.throws(() => parseChatRequest({ ...base, logprobs: true }), invalid("logprobs", /not supported/));
  assert.throws(
    () => parseChatRequest({ ...base, response_format: { type: "json_schema" } }),
    invalid("response_format", /json_schema is not supported/),
  );
  assert.throws(() => parseChatRequest({ messages: [] }), invalid("messages", /must not be empty/));
  assert.throws(
    () => parseChatRequest({ messages: [{ role: "wizard", content: "x" }] }),
    invalid("messages[0].role", /./),
  );
  assert.throws(() => parseChatRequest({ ...base, temperature: 3 }), invalid("temperature", /./));
  assert.throws(() => parseChatRequest({ ...base, max_tokens: 0 }), invalid("max_tokens", /./));
  assert.throws(() => parseChatRequest("hello"), invalid(undefined, /./));
});

test("tools: names checked, duplicates refused, tool_choice resolved", () => {
  const tool = (name: string) => ({ type: "function", function: { name, parameters: { type: "object" } } });
  const base = { messages: [{ role: "user", content: "hi" }] };
  assert.throws(
    () => parseChatRequest({ ...base, tools: [tool("a b")] }),
    invalid("tools[0].function.name", /tool names/),
  );
  assert.throws(
    () => parseChatRequest({ ...base, tools: [tool("a"), tool("a")] }),
    invalid("tools[1]", /defined twice/),
  );
  assert.throws(
    () =>
      parseChatRequest({
        ...base,
        tools: [tool("a")],
        tool_choice: { type: "function", function: { name: "b" } },
      }),
    invalid("tool_choice", /'b', which is not in tools/),
  );
  assert.throws(
    () => parseChatRequest({ ...base, tool_choice: "required" }),
    invalid("tool_choice", /no tools/),
  );
  const named = parseChatRequest({
    ...base,
    tools: [tool("a"), tool("b")],
    tool_choice: { type: "function", function: { name: "b" } },
  });
  assert.deepEqual(named.toolChoice, { name: "b" });
  const none = parseChatRequest({ ...base, tools: [tool("a")], tool_choice: "none" });
  assert.deepEqual(none.tools, [], "tool_choice none offers no tools");
  assert.equal(parseChatRequest({ ...base, parallel_tool_calls: false }).parallelToolCalls, false);
});

test("a tool conversation maps to node-llama-cpp history with results attached to their calls", () => {
  const r = parseChatRequest({
    messages: [
      { role: "developer", content: "be brief" },
      {
        role: "user",
        content: [
          { type: "text", text: "look " },
          { type: "image_url", image_url: { url: "x" } },
        ],
      },
      {
        role: "assistant",
        content: null,
        tool_calls: [
          { id: "c1", type: "function", function: { name: "read", arguments: '{"path":"a.txt"}' } },
          { id: "c2", type: "function", function: { name: "ls", arguments: "not json" } },
        ],
      },
      { role: "tool", tool_call_id: "c1", content: "contents of a" },
      { role: "tool", tool_call_id: "c2", content: [{ type: "text", text: "a.txt" }] },
      { role: "tool", tool_call_id: "c9", content: "orphan" },
    ],
    stop: "END",
  });
  assert.deepEqual(r.stop, ["END"]);
  assert.equal(
    r.messages[1]!.role === "user" && r.messages[1]!.text,
    "look [image_url omitted: this model reads text only]",
  );
  const h = toChatHistory(r.messages);
  assert.deepEqual(h, [
    { type: "system", text: "be brief" },
    { type: "user", text: "look [image_url omitted: this model reads text only]" },
    {
      type: "model",
      response: [
        { type: "functionCall", name: "read", params: { path: "a.txt" }, result: "contents of a" },
        { type: "functionCall", name: "ls", params: "not json", result: "a.txt" },
      ],
    },
    { type: "user", text: "Result of tool call c9:\norphan" },
    { type: "model", response: [] },
  ]);
});

test("a request ending with an assistant message continues it", () => {
  const h = toChatHistory(
    parseChatRequest({
      messages: [
        { role: "user", content: "hi" },
        { role: "assistant", content: "Hello, " },
      ],
    }).messages,
  );
  assert.deepEqual(h.at(-1), { type: "model", response: ["Hello, "] });
});

test("wire bodies: completion with tool calls, usage, and errors mapped to status and OpenAI codes", () => {
  const body = completionBody({
    id: "x",
    created: 1,
    model: "m",
    text: "",
    toolCalls: [{ id: "call_1", name: "read", arguments: '{"path":"a"}' }],
    finishReason: "tool_calls",
    usage: usage(10, 5, 7),
  });
  assert.equal(body.choices[0]!.message.content, null);
  assert.deepEqual(body.choices[0]!.message.tool_calls, [
    { id: "call_1", type: "function", function: { name: "read", arguments: '{"path":"a"}' } },
  ]);
  assert.deepEqual(body.usage, {
    prompt_tokens: 10,
    completion_tokens: 5,
    total_tokens: 15,
    prompt_tokens_details: { cached_tokens: 7 },
  });

  const ctx = wireError(new ModelServerError("context_length_exceeded", "too long"));
  assert.equal(ctx.status, 400);
  assert.equal(ctx.body.error.code, "context_length_exceeded");
  assert.equal(wireError(new ModelServerError("busy", "busy")).status, 429);
  assert.equal(wireError(new ModelServerError("not_registered", "no")).body.error.code, "model_not_found");
  assert.equal(wireError(new Error("boom")).status, 500);
});

test("parseSse reads OpenAI streams and notices a missing [DONE]", () => {
  const chunk = (delta: object, finish: string | null = null) =>
    `data: ${JSON.stringify({ choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
  const full = `${chunk({ role: "assistant", content: "" })}: keep-alive\n\n${chunk({ content: "a" })}${chunk({ content: "b" })}${chunk({}, "stop")}data: [DONE]\n\n`;
  const s = parseSse(full);
  assert.equal(s.content, "ab");
  assert.equal(s.finishReason, "stop");
  assert.equal(s.done, true);
  assert.equal(parseSse(full.replace("data: [DONE]\n\n", "")).done, false);
});
