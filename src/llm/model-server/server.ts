import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { isIP } from "node:net";
import type { Logger } from "../../lib/log.ts";
import { ModelServerError } from "./errors.ts";
import {
  type ChatRequest,
  chunkEvent,
  completionBody,
  completionId,
  DONE_EVENT,
  parseChatRequest,
  requestError,
  usage,
  usageEvent,
  wireError,
} from "./openai.ts";
import type { ChatEngine, GenerationResult } from "./types.ts";

export interface ModelServerOptions {
  engine: ChatEngine;
  /** An IP address (the tenant sandbox's own); "localhost" is accepted too. */
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** When set, every route but /health needs `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Largest request body (default 8 MiB; an OpenClaw turn is ~60 KB plus history). */
  maxBodyBytes?: number;
  /** While the prompt is evaluated, an SSE comment this often keeps proxies from timing out (default 15 s). */
  keepAliveMs?: number;
  log?: Logger;
}

export interface ModelServer {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** Stops listening, aborts requests in flight, and closes the engine. Idempotent. */
  close(): Promise<void>;
}

/** Checks a listen address from a caller before it reaches listen(). */
export function parseListenAddress(host: string, port: number): { host: string; port: number } {
  if (host !== "localhost" && isIP(host) === 0) {
    throw new ModelServerError("invalid_request", `listen host '${host}' must be an IP address`, {
      details: { field: "host" },
    });
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ModelServerError("invalid_request", `listen port ${port} must be 0-65535`, {
      details: { field: "port" },
    });
  }
  return { host, port };
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > limit)
    throw requestError(`request body is ${declared} bytes; the limit is ${limit}`, undefined, {
      status: 413,
    });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw requestError(`request body exceeds ${limit} bytes`, undefined, { status: 413 });
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: ServerResponse, err: unknown): number {
  const { status, body } = wireError(err);
  if (res.headersSent) {
    // Mid-stream: OpenAI clients raise an error for a data event carrying `error`.
    res.end(`data: ${JSON.stringify(body)}\n\n`);
  } else {
    sendJson(res, status, body);
  }
  return status;
}

const digest = (s: string) => createHash("sha256").update(s).digest();

/**
 * The OpenAI-compatible HTTP server in front of a ChatEngine: `GET /health`, `GET /v1/models`,
 * `GET /v1/models/<id>`, `POST /v1/chat/completions` with and without `stream: true`. It never
 * calls out. Errors use OpenAI's body `{"error": {message, type, param, code}}`: 400 bad request or
 * `context_length_exceeded`, 401 bad key, 404 unknown model or route, 413 body too large, 429 all
 * sequences busy and the queue full, 500 internal. A client that disconnects aborts its generation.
 */
export async function startModelServer(opts: ModelServerOptions): Promise<ModelServer> {
  const { host, port } = parseListenAddress(opts.host, opts.port);
  const engine = opts.engine;
  const modelId = engine.info.id;
  const maxBody = opts.maxBodyBytes ?? 8 * 1024 * 1024;
  const keepAliveMs = opts.keepAliveMs ?? 15_000;
  const keyDigest = opts.apiKey ? digest(opts.apiKey) : undefined;
  const inflight = new Set<AbortController>();
  const log = opts.log;

  const authorized = (req: IncomingMessage): boolean => {
    if (!keyDigest) return true;
    const header = req.headers.authorization ?? "";
    const m = /^Bearer\s+(.+)$/i.exec(header);
    return m !== null && timingSafeEqual(digest(m[1]!.trim()), keyDigest);
  };

  const modelObject = { id: modelId, object: "model", created: 0, owned_by: "clawkeep" };

  const chat = async (req: IncomingMessage, res: ServerResponse): Promise<Record<string, unknown>> => {
    const raw = await readBody(req, maxBody);
    let body: unknown;
    try {
      body = JSON.parse(raw.toString("utf8"));
    } catch (err) {
      throw requestError(`request body is not valid JSON: ${(err as Error).message}`);
    }
    const request: ChatRequest = parseChatRequest(body);
    if (request.model && request.model !== modelId) {
      throw new ModelServerError(
        "not_registered",
        `The model '${request.model}' does not exist; this server serves '${modelId}'`,
        { details: { param: "model" } },
      );
    }
    const ac = new AbortController();
    inflight.add(ac);
    res.on("close", () => {
      if (!res.writableFinished)
        ac.abort(new ModelServerError("unavailable", "the client closed the connection"));
    });
    const base = { id: completionId(), created: Math.floor(Date.now() / 1000), model: modelId };
    const started = Date.now();
    let firstTokenAt = 0;
    let keepAlive: NodeJS.Timeout | undefined;
    const firstToken = () => {
      if (firstTokenAt) return;
      firstTokenAt = Date.now();
      clearInterval(keepAlive);
    };
    let result: GenerationResult;
    try {
      result = await engine.generate(
        request,
        {
          onStart: () => {
            if (!request.stream) return;
            res.writeHead(200, {
              "content-type": "text/event-stream; charset=utf-8",
              "cache-control": "no-cache",
              connection: "keep-alive",
              "x-accel-buffering": "no",
            });
            res.write(chunkEvent(base, { role: "assistant", content: "" }));
            keepAlive = setInterval(() => res.write(": keep-alive\n\n"), keepAliveMs);
          },
          onText: (text) => {
            firstToken();
            if (request.stream) res.write(chunkEvent(base, { content: text }));
          },
          onToolCall: (call, index) => {
            firstToken();
            if (request.stream) res.write(chunkEvent(base, { toolCall: { index, call } }));
          },
        },
        ac.signal,
      );
    } finally {
      clearInterval(keepAlive);
      inflight.delete(ac);
    }
    const u = usage(
      result.promptTokens,
      result.completionTokens,
      result.promptTokens - result.evaluatedPromptTokens,
    );
    if (request.stream) {
      res.write(chunkEvent(base, {}, result.finishReason));
      if (request.includeUsage) res.write(usageEvent(base, u));
      res.end(DONE_EVENT);
    } else {
      sendJson(
        res,
        200,
        completionBody({
          ...base,
          text: result.text,
          toolCalls: result.toolCalls,
          finishReason: result.finishReason,
          usage: u,
        }),
      );
    }
    return {
      stream: request.stream,
      promptTokens: result.promptTokens,
      evaluatedPromptTokens: result.evaluatedPromptTokens,
      completionTokens: result.completionTokens,
      finish: result.finishReason,
      ttftMs: firstTokenAt ? firstTokenAt - started : undefined,
      ms: Date.now() - started,
    };
  };

  const server: Server = createServer((req, res) => {
    // A write racing a client's disconnect must not become an uncaught 'error' event.
    res.on("error", () => {});
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const started = Date.now();
    void (async () => {
      let status = 200;
      let facts: Record<string, unknown> = {};
      try {
        if (req.method === "GET" && (path === "/health" || path === "/healthz")) {
          sendJson(res, 200, { status: "ok", model: modelId, ...engine.info, ...engine.stats() });
          return;
        }
        if (!authorized(req)) {
          throw requestError("Incorrect API key provided", undefined, {
            status: 401,
            code: "invalid_api_key",
          });
        }
        if (req.method === "GET" && path === "/v1/models") {
          sendJson(res, 200, { object: "list", data: [modelObject] });
          return;
        }
        if (req.method === "GET" && path.startsWith("/v1/models/")) {
          const id = decodeURIComponent(path.slice("/v1/models/".length));
          if (id !== modelId) {
            throw new ModelServerError("not_registered", `The model '${id}' does not exist`, {
              details: { param: "model" },
            });
          }
          sendJson(res, 200, modelObject);
          return;
        }
        if (path === "/v1/chat/completions") {
          if (req.method !== "POST") throw requestError(`use POST for ${path}`, undefined, { status: 405 });
          facts = await chat(req, res);
          return;
        }
        throw requestError(`no route ${req.method} ${path}`, undefined, { status: 404, code: "not_found" });
      } catch (err) {
        if (res.destroyed || res.writableEnded) {
          status = 499;
        } else {
          status = sendError(res, err);
        }
        if (status >= 500) log?.error({ err: (err as Error).message, path }, "request failed");
      } finally {
        if (path !== "/health" && path !== "/healthz") {
          log?.info({ method: req.method, path, status, ms: Date.now() - started, ...facts }, "request");
        }
      }
    })();
  });
  server.keepAliveTimeout = 65_000;
  server.requestTimeout = 0;

  await new Promise<void>((resolve, reject) => {
    server.once("error", (err) =>
      reject(
        new ModelServerError("unavailable", `cannot listen on ${host}:${port}: ${err.message}`, {
          cause: err,
        }),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const urlHost = isIP(host) === 6 ? `[${host}]` : host;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${addr.port}/v1`,
    host,
    port: addr.port,
    close: () => {
      closing ??= (async () => {
        for (const ac of inflight)
          ac.abort(new ModelServerError("unavailable", "the model server is shutting down"));
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        await engine.close();
      })();
      return closing;
    },
  };
}
