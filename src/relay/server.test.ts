import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  Agent,
  type ClientRequest,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
} from "node:http";
import { connect, createServer as createNetServer, type Socket } from "node:net";
import { after, before, test } from "node:test";
import { type Relay, startRelay } from "./server.ts";
import {
  FAKE_MODELS,
  type FakeProvider,
  fakeAnthropic,
  fakeOpenAi,
  stateOf,
  tenantEntry,
  upstreamEntry,
} from "./testing.ts";
import type { RelayState, RelayTenant } from "./types.ts";

/*
 * The relay in process against fake providers on 127.0.0.1. Tenants are told apart by the
 * source address of the PROXY v1 line the test writes first, as the egress proxy does.
 */

const OPENAI_KEY = "sk-operator-openai-0123456789";
const ANTHROPIC_KEY = "sk-ant-operator-0123456789";
const A = { key: "ckv_tenant_a_key", addr: "10.9.0.1" };
const B = { key: "ckv_tenant_b_key", addr: "10.9.0.2" };
const OWN_KEY = "sk-tenants-own-key-42";

let openai: FakeProvider;
let anthropic: FakeProvider;
let slow: FakeProvider;
let own: FakeProvider;
let relay: Relay;
let now = Date.parse("2026-12-04T10:00:00Z");

const models = [
  { id: "gpt-test", upstream: "openai" },
  { id: "claude-test", upstream: "anthropic" },
  { id: FAKE_MODELS.fail500, upstream: "openai" },
  { id: FAKE_MODELS.hang, upstream: "openai" },
  { id: "slow-test", upstream: "slow" },
];

function baseState(more: RelayTenant[] = []): RelayState {
  return stateOf(
    [
      tenantEntry("alice", A.key, [A.addr], models),
      tenantEntry("bob", B.key, [B.addr], [{ id: "gpt-test", upstream: "openai" }]),
      ...more,
    ],
    [
      upstreamEntry("openai", openai, OPENAI_KEY, "openai", ["gpt-test"]),
      upstreamEntry("anthropic", anthropic, ANTHROPIC_KEY, "anthropic", ["claude-test"]),
      upstreamEntry("slow", slow, OPENAI_KEY, "openai", ["slow-test"]),
    ],
  );
}

before(async () => {
  openai = await fakeOpenAi({ apiKey: OPENAI_KEY });
  anthropic = await fakeAnthropic({ apiKey: ANTHROPIC_KEY });
  slow = await fakeOpenAi({ apiKey: OPENAI_KEY, pauseMs: 1_000 });
  own = await fakeOpenAi({ apiKey: OWN_KEY });
  relay = await startRelay({ clock: () => now, firstLineTimeoutMs: 500 });
  relay.setState(baseState());
});
after(async () => {
  await relay?.close();
  await Promise.all([openai, anthropic, slow, own].map((p) => p?.close()));
});

/** An agent whose connections start with the PROXY line of `source`, as the egress proxy writes it. */
function proxiedAgent(source: string): Agent {
  const agent = new Agent({ keepAlive: false });
  (agent as unknown as { createConnection: () => Socket }).createConnection = () => {
    const s = connect(relay.port, "127.0.0.1");
    s.write(`PROXY TCP4 ${source} 127.0.0.1 40000 ${relay.port}\r\n`);
    return s;
  };
  return agent;
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: { error?: Record<string, unknown> } & Record<string, unknown>;
  /** ms from the request to each chunk. */
  chunkTimes: number[];
}

async function call(
  path: string,
  opts: {
    from?: string;
    key?: string | null;
    body?: unknown;
    raw?: Buffer | string;
    method?: string;
    headers?: Record<string, string>;
  } = {},
): Promise<Reply> {
  const from = opts.from ?? A.addr;
  const key = opts.key === undefined ? A.key : opts.key;
  const payload =
    opts.raw !== undefined
      ? Buffer.from(opts.raw)
      : opts.body === undefined
        ? undefined
        : Buffer.from(JSON.stringify(opts.body));
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: "127.0.0.1",
        port: relay.port,
        path,
        method: opts.method ?? (payload ? "POST" : "GET"),
        agent: from === "direct" ? undefined : proxiedAgent(from),
        headers: {
          ...(key ? { authorization: `Bearer ${key}` } : {}),
          ...(payload ? { "content-type": "application/json", "content-length": payload.length } : {}),
          ...opts.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        const chunkTimes: number[] = [];
        res.on("data", (c: Buffer) => {
          chunks.push(c);
          chunkTimes.push(performance.now() - t0);
        });
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json = {};
          try {
            json = JSON.parse(text);
          } catch {
            // SSE or empty.
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json, chunkTimes });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

/**
 * A POST to /v1/chat/completions from tenant A (its key, its PROXY line) with `headers` added, left
 * open: the test writes the body itself (or goes away mid-answer).
 */
function openChatRequest(
  headers: OutgoingHttpHeaders,
  onResponse: (res: IncomingMessage) => void,
): ClientRequest {
  return httpRequest(
    {
      host: "127.0.0.1",
      port: relay.port,
      path: "/v1/chat/completions",
      method: "POST",
      agent: proxiedAgent(A.addr),
      headers: { authorization: `Bearer ${A.key}`, ...headers },
    },
    onResponse,
  );
}

const chat = (model = "gpt-test", more: Record<string, unknown> = {}) => ({
  model,
  messages: [{ role: "user", content: "hi" }],
  ...more,
});

/** Drains and acknowledges; returns the batch. */
function drained() {
  const b = relay.drain();
  relay.ack(b.id);
  return b;
}
const tokensOf = (tenant: string) =>
  drained()
    .usage.filter((u) => u.tenant === tenant)
    .reduce((s, u) => ({ in: s.in + u.inputTokens, out: s.out + u.outputTokens, n: s.n + u.requests }), {
      in: 0,
      out: 0,
      n: 0,
    });

test("a relay with no state answers 503 relay_starting (retryable)", async () => {
  const fresh = await startRelay();
  try {
    const r = await new Promise<number>((resolve, reject) => {
      httpRequest({ host: "127.0.0.1", port: fresh.port, path: "/v1/models" }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on("error", reject)
        .end();
    });
    assert.equal(r, 503);
    assert.equal(fresh.health().stateLoaded, false);
  } finally {
    await fresh.close();
  }
});

test("keys: a tenant's key from its own address lists its models only; unknown or missing keys get 401", async () => {
  const a = await call("/v1/models");
  assert.equal(a.status, 200);
  assert.deepEqual(
    (a.json.data as Array<{ id: string }>).map((m) => m.id),
    models.map((m) => m.id),
  );
  const b = await call("/v1/models", { from: B.addr, key: B.key });
  assert.deepEqual(
    (b.json.data as Array<{ id: string }>).map((m) => m.id),
    ["gpt-test"],
    "bob sees only his plan's models",
  );
  const unknown = await call("/v1/models", { key: "ckv_nobody" });
  assert.equal(unknown.status, 401);
  assert.equal(unknown.json.error?.code, "invalid_api_key");
  assert.equal(unknown.json.error?.type, "authentication_error");
  assert.equal((await call("/v1/models", { key: null })).status, 401);
  const viaXApiKey = await call("/v1/models", { key: null, headers: { "x-api-key": A.key } });
  assert.equal(viaXApiKey.status, 200, "x-api-key works like Bearer");
});

test("source: A's key from B's address is 403 wrong_source with a security event; from A's address 200", async () => {
  drained();
  const wrong = await call("/v1/chat/completions", { from: B.addr, key: A.key, body: chat() });
  assert.equal(wrong.status, 403);
  assert.equal(wrong.json.error?.code, "wrong_source");
  assert.match(String(wrong.json.error?.message), /10\.9\.0\.2/);
  const batch = drained();
  assert.deepEqual(
    batch.events.map((e) => [e.tenant, e.type]),
    [["alice", "llm_wrong_source"]],
  );
  assert.equal(batch.usage.length, 0, "nothing counted for a refused request");
  const right = await call("/v1/chat/completions", { from: A.addr, key: A.key, body: chat() });
  assert.equal(right.status, 200, "control: the same request from A's own address");
  const direct = await call("/v1/models", { from: "direct" });
  assert.equal(direct.status, 403, "without a PROXY line the socket's address (127.0.0.1) is the source");
});

test("forwarding: the provider sees the operator's key, never the virtual key; usage from its fields", async () => {
  drained();
  const before = openai.requests.length;
  const r = await call("/v1/chat/completions", {
    body: chat(),
    headers: { "openai-organization": "org-tenant", cookie: "x=1", "x-stainless-lang": "js" },
  });
  assert.equal(r.status, 200);
  assert.equal((r.json.choices as Array<{ message: { content: string } }>)[0]?.message.content, "hello");
  assert.equal(r.headers["openai-organization"], undefined, "the operator's organization does not come back");
  const seen = openai.requests[before];
  assert.ok(seen);
  assert.equal(seen.headers.authorization, `Bearer ${OPENAI_KEY}`);
  assert.ok(!JSON.stringify(seen.headers).includes(A.key), "the virtual key is not forwarded");
  assert.equal(seen.headers["openai-organization"], undefined, "only allowlisted headers go upstream");
  assert.equal(seen.headers.cookie, undefined);
  assert.equal(seen.headers["x-stainless-lang"], "js");
  assert.deepEqual(tokensOf("alice"), { in: 7, out: 5, n: 1 });
});

test("streaming: include_usage is asked for, the stream passes through, its usage is counted", async () => {
  drained();
  const before = openai.requests.length;
  const r = await call("/v1/chat/completions", { body: chat("gpt-test", { stream: true }) });
  assert.equal(r.status, 200);
  assert.match(r.headers["content-type"] ?? "", /text\/event-stream/);
  assert.match(r.text, /"content":"hel"/);
  assert.match(r.text, /data: \[DONE\]/);
  assert.deepEqual(openai.requests[before]?.body.stream_options, { include_usage: true });
  assert.deepEqual(tokensOf("alice"), { in: 7, out: 5, n: 1 });
});

test("streaming: the first chunk reaches the client well before the provider finishes", async () => {
  const r = await call("/v1/chat/completions", { body: chat("slow-test", { stream: true }) });
  assert.equal(r.status, 200);
  const first = r.chunkTimes[0] ?? Number.POSITIVE_INFINITY;
  const last = r.chunkTimes.at(-1) ?? 0;
  assert.ok(last >= 950, `control: the provider pauses 1 s (last chunk at ${last.toFixed(0)} ms)`);
  assert.ok(first < 500, `the first chunk came at ${first.toFixed(0)} ms, before the pause ended`);
});

test("Anthropic: x-api-key injected, usage from message_start and message_delta (stream) or usage (JSON)", async () => {
  drained();
  const before = anthropic.requests.length;
  const plain = await call("/v1/messages", {
    key: null,
    headers: { "x-api-key": A.key, "anthropic-version": "2023-06-01" },
    body: chat("claude-test", { max_tokens: 10 }),
  });
  assert.equal(plain.status, 200);
  const seen = anthropic.requests[before];
  assert.equal(seen?.headers["x-api-key"], ANTHROPIC_KEY);
  assert.equal(seen?.headers.authorization, undefined);
  assert.equal(seen?.headers["anthropic-version"], "2023-06-01");
  const stream = await call("/v1/messages", { body: chat("claude-test", { stream: true, max_tokens: 10 }) });
  assert.equal(stream.status, 200);
  assert.match(stream.text, /message_stop/);
  assert.deepEqual(tokensOf("alice"), { in: 14, out: 10, n: 2 });
  const wrongApi = await call("/v1/chat/completions", { body: chat("claude-test") });
  assert.equal(wrongApi.status, 400);
  assert.equal(wrongApi.json.error?.code, "unsupported_api");
  assert.match(String(wrongApi.json.error?.message), /\/v1\/messages/);
});

test("responses and embeddings: usage from input_tokens/output_tokens and prompt_tokens", async () => {
  drained();
  assert.equal((await call("/v1/responses", { body: { model: "gpt-test", input: "hi" } })).status, 200);
  const s = await call("/v1/responses", { body: { model: "gpt-test", input: "hi", stream: true } });
  assert.match(s.text, /response\.completed/);
  assert.equal((await call("/v1/embeddings", { body: { model: "gpt-test", input: "hi" } })).status, 200);
  assert.deepEqual(tokensOf("alice"), { in: 21, out: 10, n: 3 });
});

test("models: one outside the plan is 403 naming it; the plan's model passes", async () => {
  const r = await call("/v1/chat/completions", { from: B.addr, key: B.key, body: chat("claude-test") });
  assert.equal(r.status, 403);
  assert.equal(r.json.error?.code, "model_not_allowed");
  assert.match(String(r.json.error?.message), /claude-test/);
  assert.equal((await call("/v1/chat/completions", { from: B.addr, key: B.key, body: chat() })).status, 200);
});

test("provider refusals: passed on without the operator key, nothing counted; a 401 becomes 502 upstream_auth_failed", async () => {
  drained();
  const r = await call("/v1/chat/completions", { body: chat(FAKE_MODELS.fail500) });
  assert.equal(r.status, 500);
  assert.match(r.text, /fake failure 500/);
  assert.ok(!r.text.includes(OPENAI_KEY), "the key the provider echoed is redacted");
  assert.match(r.text, /\[redacted\]/);
  assert.deepEqual(tokensOf("alice"), { in: 0, out: 0, n: 0 }, "nothing counted for a non-2xx");

  relay.setState({
    ...baseState(),
    upstreams: baseState().upstreams.map((u) => (u.id === "openai" ? { ...u, apiKey: "sk-wrong" } : u)),
  });
  try {
    const denied = await call("/v1/chat/completions", { body: chat() });
    assert.equal(denied.status, 502);
    assert.equal(denied.json.error?.code, "upstream_auth_failed");
    assert.ok(!denied.text.includes("sk-wrong"));
    assert.deepEqual(tokensOf("alice"), { in: 0, out: 0, n: 0 });
  } finally {
    relay.setState(baseState());
  }
});

test("a provider that is down: 502 upstream_unavailable, retryable", async () => {
  const dead = createNetServer();
  await new Promise<void>((r) => dead.listen(0, "127.0.0.1", () => r()));
  const port = (dead.address() as { port: number }).port;
  await new Promise<void>((r) => dead.close(() => r()));
  relay.setState({
    ...baseState(),
    upstreams: baseState().upstreams.map((u) =>
      u.id === "openai" ? { ...u, baseUrl: `http://127.0.0.1:${port}/v1` } : u,
    ),
  });
  try {
    const r = await call("/v1/chat/completions", { body: chat() });
    assert.equal(r.status, 502);
    assert.equal(r.json.error?.code, "upstream_unavailable");
    assert.equal(r.json.error?.retryable, true);
  } finally {
    relay.setState(baseState());
  }
  assert.equal((await call("/v1/chat/completions", { body: chat() })).status, 200, "control: back up");
});

/**
 * Runs `fn` with one more tenant in the state (`name`, key ckv_<name>, at `addr`, gpt-test only,
 * `more` on top), calling as that tenant; the base state is back afterwards, also on failure.
 */
async function withTenant(
  name: string,
  addr: string,
  more: Partial<RelayTenant>,
  fn: (as: { from: string; key: string; body: ReturnType<typeof chat> }) => Promise<void>,
): Promise<void> {
  relay.setState(
    baseState([tenantEntry(name, `ckv_${name}`, [addr], [{ id: "gpt-test", upstream: "openai" }], more)]),
  );
  try {
    await fn({ from: addr, key: `ckv_${name}`, body: chat() });
  } finally {
    relay.setState(baseState());
  }
}
const unlimited = { tokensPerDay: null, tokensPerMonth: null, requestsPerMinute: null };

test("bring your own key: the provider sees the tenant's own key, not the operator's", async () => {
  const mine = { id: "own", baseUrl: own.baseUrl, apiKey: OWN_KEY, api: "openai" as const, models: [] };
  await withTenant("carol", "10.9.0.3", { own: mine }, async (carol) => {
    const before = own.requests.length;
    const openaiBefore = openai.requests.length;
    assert.equal((await call("/v1/chat/completions", carol)).status, 200);
    assert.equal(own.requests[before]?.headers.authorization, `Bearer ${OWN_KEY}`);
    assert.equal(openai.requests.length, openaiBefore, "the platform's provider saw nothing");
  });
});

test("budget: 429 with the limit and its reset once spent, events at 80 % and 100 %; the next day it works", async () => {
  await withTenant("dave", "10.9.0.4", { limits: { ...unlimited, tokensPerDay: 20 } }, async (dave) => {
    drained();
    assert.equal((await call("/v1/chat/completions", dave)).status, 200, "12 of 20");
    const second = await call("/v1/chat/completions", dave);
    assert.equal(second.status, 200, "24 of 20: under budget when it started");
    const over = await call("/v1/chat/completions", dave);
    assert.equal(over.status, 429);
    assert.equal(over.json.error?.code, "budget_exhausted");
    assert.equal(over.json.error?.limit, "tokens_per_day");
    assert.equal(over.json.error?.resets_at, "2026-12-05T00:00:00.000Z");
    assert.match(String(over.json.error?.message), /daily token budget of 20 tokens is spent/);
    assert.equal(over.headers["retry-after"], String(14 * 3600));
    const batch = drained();
    assert.deepEqual(
      batch.events.filter((e) => e.tenant === "dave").map((e) => e.type),
      ["llm_budget_warning", "llm_budget_exhausted"],
    );
    assert.equal(
      batch.usage.find((u) => u.tenant === "dave")?.requests,
      2,
      "the refused request is not counted",
    );
    now += 14 * 3600 * 1000;
    try {
      assert.equal((await call("/v1/chat/completions", dave)).status, 200, "a new UTC day, a new budget");
    } finally {
      now -= 14 * 3600 * 1000;
    }
  });
});

test("budget: a pushed `used` counts (monthly budget spent before the relay started)", async () => {
  const spent = {
    limits: { ...unlimited, tokensPerMonth: 1000 },
    used: { day: "2026-12-01", dayTokens: 1000, month: "2026-12", monthTokens: 1000 },
  };
  await withTenant("erin", "10.9.0.5", spent, async (erin) => {
    const r = await call("/v1/chat/completions", erin);
    assert.equal(r.status, 429);
    assert.equal(r.json.error?.limit, "tokens_per_month");
    assert.equal(r.json.error?.resets_at, "2027-01-01T00:00:00.000Z");
  });
});

test("rate: the third request in a minute is 429 rate_limited with Retry-After; a minute later it passes", async () => {
  await withTenant("fred", "10.9.0.6", { limits: { ...unlimited, requestsPerMinute: 2 } }, async (fred) => {
    assert.equal((await call("/v1/chat/completions", fred)).status, 200);
    assert.equal((await call("/v1/chat/completions", fred)).status, 200);
    const r = await call("/v1/chat/completions", fred);
    assert.equal(r.status, 429);
    assert.equal(r.json.error?.code, "rate_limited");
    assert.equal(r.json.error?.retryable, true);
    assert.equal(r.headers["retry-after"], "60");
    now += 61_000;
    assert.equal((await call("/v1/chat/completions", fred)).status, 200);
  });
});

test("bad bodies: 400 or 413 in OpenAI's error shape, never a crash", async () => {
  const cases: Array<[string | Buffer, number]> = [
    ["not json", 400],
    ["", 400],
    ["[1,2]", 400],
    ["null", 400],
    ['{"messages": []}', 400],
    ['{"model": 42}', 400],
    ['{"model": ""}', 400],
    [`{"model": "${"x".repeat(300)}"}`, 400],
    ['{"model": "gpt-test", "messages": [', 400],
    [Buffer.from([0xff, 0xfe, 0x00, 0x7b]), 400],
    ['{"model": "nope"}', 403],
  ];
  for (const [raw, status] of cases) {
    const r = await call("/v1/chat/completions", { raw });
    assert.equal(r.status, status, `body ${String(raw).slice(0, 40)}`);
    assert.equal(typeof r.json.error?.message, "string");
    assert.equal(typeof r.json.error?.code, "string");
  }
  const huge = await call("/v1/chat/completions", { raw: Buffer.alloc(9 * 1024 * 1024, 0x20) });
  assert.equal(huge.status, 413);
  assert.equal(huge.json.error?.code, "body_too_large");
  const chunked = await new Promise<number>((resolve, reject) => {
    // No content-length: the cap applies while reading.
    const req = openChatRequest({ "transfer-encoding": "chunked" }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
    const piece = Buffer.alloc(1024 * 1024, 0x20);
    for (let i = 0; i < 9; i++) req.write(piece);
    req.end();
  });
  assert.equal(chunked, 413, "a chunked body over the cap");
  assert.equal((await call("/v1/nope")).status, 404);
  assert.equal((await call("/v1/chat/completions", { method: "GET" })).status, 405);
  assert.equal((await call("/v1/chat/completions", { body: chat() })).status, 200, "control: still serving");
});

/** Writes `bytes` on a fresh connection; resolves with what came back before the relay closed it. */
function rawExchange(bytes: string, waitMs = 2_000): Promise<{ data: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = connect(relay.port, "127.0.0.1");
    let data = "";
    const t = setTimeout(() => {
      s.destroy();
      resolve({ data, closed: false });
    }, waitMs);
    s.on("data", (d) => {
      data += d.toString("latin1");
    });
    s.on("close", () => {
      clearTimeout(t);
      resolve({ data, closed: true });
    });
    s.on("error", () => {});
    if (bytes) s.write(bytes);
  });
}

test("PROXY lines: a malformed, overlong or missing-in-time line closes the connection; a good one is served", async () => {
  const req = `GET /v1/models HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${A.key}\r\nconnection: close\r\n\r\n`;
  for (const bad of [
    "PROXY TCP4 10.9.0.1\r\n",
    "PROXY TCP4 10.9.0.1 127.0.0.1 99999 4180\r\n",
    "PROXY TCP6 10.9.0.1 127.0.0.1 1 4180\r\n",
    "PROXY TCP4  10.9.0.1 127.0.0.1 1 4180\r\n",
    `PROXY TCP4 ${"1".repeat(120)}\r\n`,
  ]) {
    const r = await rawExchange(bad + req);
    assert.ok(r.closed, `closed after ${JSON.stringify(bad.slice(0, 30))}`);
    assert.equal(r.data, "", "no HTTP answer");
  }
  const silent = await rawExchange("", 3_000);
  assert.ok(silent.closed, "a silent connection is closed after the first-line time-out");
  const good = await rawExchange(`PROXY TCP4 ${A.addr} 127.0.0.1 1 4180\r\n${req}`);
  assert.match(good.data, /^HTTP\/1\.1 200/, "control: a well-formed line");
  const unknown = await rawExchange(`PROXY UNKNOWN\r\n${req}`);
  assert.match(unknown.data, /^HTTP\/1\.1 403/, "PROXY UNKNOWN is no tenant's source");
  const forged = await rawExchange(
    `PROXY TCP4 ${B.addr} 127.0.0.1 1 4180\r\nPROXY TCP4 ${A.addr} 127.0.0.1 1 4180\r\n${req}`,
  );
  assert.doesNotMatch(
    forged.data,
    /^HTTP\/1\.1 200/,
    "a second line (the tenant's own bytes) is not a PROXY line",
  );
});

test("garbage on the wire (random bytes, bad request lines, huge headers) never stops the relay", async () => {
  const junk = [
    ...Array.from({ length: 12 }, (_, i) => randomBytes(16 + i * 40).toString("latin1")),
    "GET\r\n\r\n",
    "POST /v1/chat/completions HTTP/1.1\r\ncontent-length: -1\r\n\r\n",
    `GET /v1/models HTTP/1.1\r\nx: ${"a".repeat(70_000)}\r\n\r\n`,
    `PROXY TCP4 ${A.addr} 127.0.0.1 1 2\r\n\x00\x01\x02\r\n\r\n`,
  ];
  await Promise.all(junk.map((j) => rawExchange(j, 1_500)));
  assert.equal((await call("/v1/chat/completions", { body: chat() })).status, 200, "control: still serving");
});

test("a client that goes away mid-stream: the upstream request is aborted and the relay keeps serving", async () => {
  const before = openai.requests.length;
  await new Promise<void>((resolve, reject) => {
    const payload = Buffer.from(JSON.stringify(chat(FAKE_MODELS.hang, { stream: true })));
    const req = openChatRequest({ "content-length": payload.length }, (res) => {
      res.once("data", () => {
        req.destroy();
        resolve();
      });
    });
    req.on("error", () => {});
    req.on("close", () => resolve());
    setTimeout(() => reject(new Error("no first chunk")), 5_000);
    req.end(payload);
  });
  await openai.ended(before + 1);
  assert.equal(openai.requests[before]?.aborted, true, "the provider saw its request go away");
  assert.equal((await call("/v1/chat/completions", { body: chat() })).status, 200);
  assert.equal(relay.health().inFlight, 0);
});

test("an invalid state is refused and the old one stays", () => {
  const bad: unknown[] = [
    { tenants: [], upstreams: [], extra: 1 },
    { ...baseState(), tenants: [{ ...baseState().tenants[0], keyHash: "nothex" }] },
    { ...baseState(), tenants: [{ ...baseState().tenants[0], models: [{ id: "x", upstream: "missing" }] }] },
    {
      ...baseState(),
      tenants: [
        baseState().tenants[0],
        { ...baseState().tenants[1], keyHash: baseState().tenants[0]?.keyHash },
      ],
    },
    { ...baseState(), upstreams: [{ ...baseState().upstreams[0], apiKey: "has space" }] },
    { ...baseState(), tenants: [{ ...baseState().tenants[0], addresses: ["not-an-ip"] }] },
  ];
  for (const s of bad)
    assert.throws(() => relay.setState(s), { name: "RelayError", reason: "invalid_state" });
  assert.equal(relay.health().tenants, 2, "the old state stays");
  for (const s of bad) {
    try {
      relay.setState(s);
    } catch (err) {
      assert.ok(!String((err as Error).message).includes(OPENAI_KEY), "no key in the message");
    }
  }
});
