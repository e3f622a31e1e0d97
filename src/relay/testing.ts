import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { sha256Hex } from "./server.ts";
import type { RelayState, RelayTenant, RelayUpstream } from "./types.ts";

/*
 * Fakes and fixtures for the relay's tests and benchmark: providers on 127.0.0.1 that require
 * their key and report usage the way the real ones do. Not run on its own.
 */

/** One request a fake provider received. */
export interface FakeRequest {
  path: string;
  headers: IncomingMessage["headers"];
  body: Record<string, unknown>;
  /** Whether the client went away before the answer was complete. */
  aborted: boolean;
}

export interface FakeProvider {
  readonly url: string;
  /** baseUrl for an upstream: `${url}/v1`. */
  readonly baseUrl: string;
  readonly requests: FakeRequest[];
  /** Resolves once a request's answer ended (complete or aborted): how many have. */
  ended(n: number): Promise<void>;
  close(): Promise<void>;
}

export interface FakeProviderOptions {
  /** The key the provider requires (Bearer for openai, x-api-key for anthropic). */
  apiKey: string;
  /** Reported usage of every answer. Default 7 in, 5 out. */
  usage?: { input: number; output: number };
  /** A stream's pause after its first chunk. Default 0. */
  pauseMs?: number;
  /** Content chunks of a chat stream after the first one. Default 1. */
  streamChunks?: number;
  /** A chat stream's pause before its first chunk (a model's time to first token). Default 0. */
  firstTokenMs?: number;
  /** A pause between those chunks, as a model generating tokens makes. Default 0. */
  chunkIntervalMs?: number;
  /** Default 0 (any free port). */
  port?: number;
  /** Keep no record of requests (benchmarks: memory stays flat). */
  noRecord?: boolean;
}

/**
 * Models with a behaviour: "fail-500" and "fail-429" answer that status; "hang" streams its
 * first chunk and then nothing until the client goes away; anything else answers normally.
 */
export const FAKE_MODELS = { fail500: "fail-500", fail429: "fail-429", hang: "hang" } as const;

const sse = (res: ServerResponse, data: unknown, event?: string) =>
  res.write(
    `${event ? `event: ${event}\n` : ""}data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`,
  );

function serve(
  opts: FakeProviderOptions,
  authorized: (req: IncomingMessage) => boolean,
  answer: (
    req: IncomingMessage,
    res: ServerResponse,
    body: Record<string, unknown>,
    usage: { input: number; output: number },
  ) => Promise<void>,
): Promise<FakeProvider> {
  const requests: FakeRequest[] = [];
  let endedCount = 0;
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  const usage = opts.usage ?? { input: 7, output: 5 };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as Record<string, unknown>;
      } catch {
        // Recorded as {}.
      }
      const rec: FakeRequest = { path: req.url ?? "", headers: req.headers, body, aborted: false };
      if (!opts.noRecord) requests.push(rec);
      res.on("close", () => {
        rec.aborted = !res.writableFinished;
        endedCount++;
        for (const w of waiters.filter((w) => endedCount >= w.n)) w.resolve();
      });
      if (!authorized(req)) {
        res.writeHead(401, { "content-type": "application/json" });
        res.end(
          JSON.stringify({
            error: {
              message: "Incorrect API key provided",
              type: "invalid_request_error",
              code: "invalid_api_key",
            },
          }),
        );
        return;
      }
      if (body.model === FAKE_MODELS.fail500 || body.model === FAKE_MODELS.fail429) {
        const status = body.model === FAKE_MODELS.fail500 ? 500 : 429;
        res.writeHead(status, { "content-type": "application/json", "retry-after": "3" });
        res.end(
          JSON.stringify({
            error: { message: `fake failure ${status} (key ${opts.apiKey})`, type: "server_error" },
          }),
        );
        return;
      }
      answer(req, res, body, usage).catch(() => res.destroy());
    });
  });
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      resolve({
        url,
        baseUrl: `${url}/v1`,
        requests,
        ended: (n) =>
          endedCount >= n ? Promise.resolve() : new Promise<void>((r) => waiters.push({ n, resolve: r })),
        close: () =>
          new Promise<void>((r) => {
            server.close(() => r());
            server.closeAllConnections();
          }),
      });
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const untilClosed = (res: ServerResponse) => new Promise<void>((r) => res.once("close", () => r()));

/** An OpenAI-compatible provider: chat completions (streaming and not), responses, embeddings, models. */
export function fakeOpenAi(opts: FakeProviderOptions): Promise<FakeProvider> {
  return serve(
    opts,
    (req) => req.headers.authorization === `Bearer ${opts.apiKey}`,
    async (req, res, body, u) => {
      const json = (data: unknown) => {
        const b = Buffer.from(JSON.stringify(data));
        res.writeHead(200, {
          "content-type": "application/json",
          "content-length": b.length,
          "openai-organization": "operator-org",
        });
        res.end(b);
      };
      const usage = { prompt_tokens: u.input, completion_tokens: u.output, total_tokens: u.input + u.output };
      const path = (req.url ?? "").split("?")[0];
      if (path === "/v1/embeddings")
        return json({
          object: "list",
          data: [{ object: "embedding", index: 0, embedding: [0.1, 0.2] }],
          model: body.model,
          usage: { prompt_tokens: u.input, total_tokens: u.input },
        });
      if (path === "/v1/responses") {
        const r = {
          id: "resp_1",
          object: "response",
          status: "completed",
          output: [],
          usage: { input_tokens: u.input, output_tokens: u.output, total_tokens: u.input + u.output },
        };
        if (body.stream !== true) return json(r);
        res.writeHead(200, { "content-type": "text/event-stream" });
        sse(
          res,
          { type: "response.created", response: { ...r, status: "in_progress", usage: null } },
          "response.created",
        );
        await sleep(opts.pauseMs ?? 0);
        sse(res, { type: "response.output_text.delta", delta: "hello" }, "response.output_text.delta");
        sse(res, { type: "response.completed", response: r }, "response.completed");
        res.end();
        return;
      }
      if (path !== "/v1/chat/completions") {
        res.writeHead(404, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { message: `no ${path}` } }));
        return;
      }
      const chunk = (content: string) => ({
        id: "c1",
        object: "chat.completion.chunk",
        model: body.model,
        choices: [{ index: 0, delta: { content } }],
      });
      if (body.stream !== true)
        return json({
          id: "c1",
          object: "chat.completion",
          model: body.model,
          choices: [{ index: 0, message: { role: "assistant", content: "hello" }, finish_reason: "stop" }],
          usage,
        });
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      if (opts.firstTokenMs) {
        res.flushHeaders();
        await sleep(opts.firstTokenMs);
      }
      sse(res, chunk("hel"));
      if (body.model === FAKE_MODELS.hang) return untilClosed(res);
      await sleep(opts.pauseMs ?? 0);
      for (let i = 0; i < (opts.streamChunks ?? 1); i++) {
        if (i > 0 && opts.chunkIntervalMs) await sleep(opts.chunkIntervalMs);
        sse(res, chunk("lo"));
      }
      const so = body.stream_options as { include_usage?: unknown } | undefined;
      if (so?.include_usage === true)
        sse(res, { id: "c1", object: "chat.completion.chunk", model: body.model, choices: [], usage });
      sse(res, "[DONE]");
      res.end();
    },
  );
}

/** An Anthropic Messages provider (streaming and not). */
export function fakeAnthropic(opts: FakeProviderOptions): Promise<FakeProvider> {
  return serve(
    opts,
    (req) => req.headers["x-api-key"] === opts.apiKey,
    async (_req, res, body, u) => {
      const message = {
        id: "msg_1",
        type: "message",
        role: "assistant",
        model: body.model,
        content: [{ type: "text", text: "hello" }],
        stop_reason: "end_turn",
      };
      if (body.stream !== true) {
        const b = Buffer.from(
          JSON.stringify({ ...message, usage: { input_tokens: u.input, output_tokens: u.output } }),
        );
        res.writeHead(200, { "content-type": "application/json", "content-length": b.length });
        res.end(b);
        return;
      }
      res.writeHead(200, { "content-type": "text/event-stream" });
      sse(
        res,
        {
          type: "message_start",
          message: { ...message, content: [], usage: { input_tokens: u.input, output_tokens: 1 } },
        },
        "message_start",
      );
      await sleep(opts.pauseMs ?? 0);
      sse(
        res,
        { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "hello" } },
        "content_block_delta",
      );
      sse(
        res,
        { type: "message_delta", delta: { stop_reason: "end_turn" }, usage: { output_tokens: u.output } },
        "message_delta",
      );
      sse(res, { type: "message_stop" }, "message_stop");
      res.end();
    },
  );
}

/** The sha256 hex of a virtual key, as the state carries it. */
export const keyHash = sha256Hex;

/** A tenant entry with unlimited limits and nothing used (override what a test needs). */
export function tenantEntry(
  name: string,
  key: string,
  addresses: string[],
  models: Array<{ id: string; upstream: string }>,
  more: Partial<RelayTenant> = {},
): RelayTenant {
  return {
    name,
    tenantId: `id-${name}`,
    keyHash: keyHash(key),
    addresses,
    models,
    limits: { tokensPerDay: null, tokensPerMonth: null, requestsPerMinute: null },
    used: { day: "2000-01-01", dayTokens: 0, month: "2000-01", monthTokens: 0 },
    ...more,
  };
}

/** An upstream entry for a fake provider. */
export const upstreamEntry = (
  id: string,
  p: FakeProvider,
  apiKey: string,
  api: RelayUpstream["api"],
  models: string[],
): RelayUpstream => ({ id, baseUrl: p.baseUrl, apiKey, api, models });

/** A state of `tenants` over `upstreams`. */
export const stateOf = (tenants: RelayTenant[], upstreams: RelayUpstream[]): RelayState => ({
  tenants,
  upstreams,
});
