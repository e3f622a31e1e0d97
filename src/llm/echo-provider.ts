import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A small OpenAI-compatible chat server that answers every request with a fixed, predictable
 * reply built from the last user message. It stands in for an LLM provider the host cannot
 * reach: tests start it on loopback (or in a namespace of their own), and `npm start` offers it
 * as the demo provider when the operator has configured none. It never calls out.
 */
export interface EchoProviderOptions {
  host?: string;
  port?: number;
  /** Model id reported by /v1/models and accepted in requests. */
  model?: string;
  /** Bearer key the server requires; unset means any key is accepted. */
  apiKey?: string;
  /** Prefix of every reply. */
  replyPrefix?: string;
}

export interface ChatRecord {
  at: number;
  model: string;
  stream: boolean;
  lastUserMessage: string;
  authorization: string | undefined;
  bytes: number;
}

export interface EchoProvider {
  readonly url: string;
  readonly model: string;
  /** Requests received, oldest first. */
  readonly requests: ChatRecord[];
  close(): Promise<void>;
}

export function replyFor(prefix: string, userMessage: string): string {
  return `${prefix}${userMessage.trim().slice(0, 200)}`;
}

/**
 * The words a person typed, out of a user message as OpenClaw sends it: it wraps context around
 * them in marked blocks, prefixes a timestamp ("[Sat 2026-11-28 19:34 UTC] ") and appends a
 * "Runtime: ..." paragraph.
 */
export function userWords(text: string): string {
  const bare = text
    .replace(/<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>[\s\S]*?<<<END_OPENCLAW_INTERNAL_CONTEXT>>>/g, "")
    .trim();
  const first = bare.split(/\n\s*\n/)[0] ?? "";
  return first.replace(/^\[[^\]\n]{1,80}\]\s*/, "").trim();
}

function lastUserText(body: unknown): string {
  if (typeof body !== "object" || body === null) return "";
  const messages = (body as { messages?: unknown }).messages;
  if (!Array.isArray(messages)) return "";
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i] as { role?: unknown; content?: unknown };
    if (m?.role !== "user") continue;
    const raw =
      typeof m.content === "string"
        ? m.content
        : Array.isArray(m.content)
          ? m.content
              .map((part: { type?: unknown; text?: unknown }) =>
                part?.type === "text" ? String(part.text) : "",
              )
              .join("")
          : "";
    const words = userWords(raw);
    if (words) return words;
  }
  return "";
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new Error("body too large");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export async function startEchoProvider(opts: EchoProviderOptions = {}): Promise<EchoProvider> {
  const model = opts.model ?? "echo-1";
  const prefix = opts.replyPrefix ?? "echo: ";
  const requests: ChatRecord[] = [];

  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };

  const server: Server = createServer(async (req, res) => {
    try {
      if (opts.apiKey && req.headers.authorization !== `Bearer ${opts.apiKey}` && req.url !== "/health") {
        send(res, 401, { error: { message: "invalid api key", type: "invalid_request_error" } });
        return;
      }
      const path = (req.url ?? "/").split("?")[0];
      if (req.method === "GET" && (path === "/health" || path === "/healthz")) {
        send(res, 200, { ok: true });
        return;
      }
      if (req.method === "GET" && path === "/v1/models") {
        send(res, 200, { object: "list", data: [{ id: model, object: "model", owned_by: "clawkeep" }] });
        return;
      }
      if (req.method === "POST" && path === "/v1/chat/completions") {
        const raw = await readBody(req, 8 * 1024 * 1024);
        const body = JSON.parse(raw.toString("utf8")) as { stream?: boolean; model?: string };
        const text = replyFor(prefix, lastUserText(body));
        const stream = body.stream === true;
        requests.push({
          at: Date.now(),
          model: String(body.model ?? ""),
          stream,
          lastUserMessage: lastUserText(body),
          authorization: req.headers.authorization,
          bytes: raw.length,
        });
        const id = `chatcmpl-${requests.length}`;
        const created = Math.floor(Date.now() / 1000);
        if (!stream) {
          send(res, 200, {
            id,
            object: "chat.completion",
            created,
            model,
            choices: [{ index: 0, message: { role: "assistant", content: text }, finish_reason: "stop" }],
            usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
          });
          return;
        }
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
        const chunk = (delta: object, finish: string | null) =>
          `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
        res.write(chunk({ role: "assistant", content: "" }, null));
        res.write(chunk({ content: text }, null));
        res.write(chunk({}, "stop"));
        res.write(
          `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model, choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } })}\n\n`,
        );
        res.end("data: [DONE]\n\n");
        return;
      }
      send(res, 404, { error: { message: `no route ${req.method} ${path}`, type: "not_found" } });
    } catch (err) {
      send(res, 400, { error: { message: (err as Error).message, type: "invalid_request_error" } });
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return {
    url: `http://${opts.host ?? "127.0.0.1"}:${addr.port}/v1`,
    model,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
