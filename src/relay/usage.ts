import { createParser, type EventSourceParser } from "eventsource-parser";
import type { TokenUsage } from "./ledger.ts";

/*
 * The tokens a request used, read from the provider's own usage fields; nothing is estimated.
 *
 *   OpenAI chat / embeddings   usage.prompt_tokens, usage.completion_tokens (a chat stream's last
 *                              chunk, which the relay asks for with stream_options.include_usage)
 *   OpenAI responses           usage.input_tokens, usage.output_tokens (a stream's
 *                              response.completed event: response.usage)
 *   Anthropic messages         usage.input_tokens (+ cache_creation_input_tokens and
 *                              cache_read_input_tokens, which Anthropic reports apart and bills),
 *                              usage.output_tokens; a stream's message_start (message.usage) and
 *                              message_delta (usage, cumulative)
 *
 * Stream reports are cumulative, so the largest value seen of each field wins.
 */

const num = (v: unknown): number =>
  typeof v === "number" && Number.isFinite(v) && v > 0 ? Math.min(Math.floor(v), Number.MAX_SAFE_INTEGER) : 0;

/** The tokens of one `usage` object of any of the shapes above, or null when it is none. */
export function tokensOf(usage: unknown): TokenUsage | null {
  if (typeof usage !== "object" || usage === null || Array.isArray(usage)) return null;
  const u = usage as Record<string, unknown>;
  const known = ["prompt_tokens", "completion_tokens", "input_tokens", "output_tokens"].some(
    (k) => typeof u[k] === "number",
  );
  if (!known) return null;
  const input =
    num(u.prompt_tokens ?? u.input_tokens) +
    num(u.cache_creation_input_tokens) +
    num(u.cache_read_input_tokens);
  return { inputTokens: input, outputTokens: num(u.completion_tokens ?? u.output_tokens) };
}

/** The usage objects one JSON value (an answer, or one stream event) carries, at the places above. */
function usagesIn(value: unknown): unknown[] {
  if (typeof value !== "object" || value === null) return [];
  const v = value as { usage?: unknown; response?: { usage?: unknown }; message?: { usage?: unknown } };
  return [v.usage, v.response?.usage, v.message?.usage].filter((u) => u !== undefined && u !== null);
}

/** Keeps the largest value of each field. */
function merge(a: TokenUsage | null, b: TokenUsage | null): TokenUsage | null {
  if (!a) return b;
  if (!b) return a;
  return {
    inputTokens: Math.max(a.inputTokens, b.inputTokens),
    outputTokens: Math.max(a.outputTokens, b.outputTokens),
  };
}

/** The usage of one JSON value (see usagesIn), or null when it reports none. */
export function usageOfJson(value: unknown): TokenUsage | null {
  let out: TokenUsage | null = null;
  for (const u of usagesIn(value)) out = merge(out, tokensOf(u));
  return out;
}

/** Reads the usage out of an answer body fed to it chunk by chunk, as it passes to the client. */
export interface UsageReader {
  feed(chunk: Buffer): void;
  /** The usage reported so far (null: none). */
  result(): TokenUsage | null;
}

/** A JSON answer kept whole up to this size; past it, only its tail is searched. */
export const JSON_KEEP_BYTES = 8 * 1024 * 1024;
const TAIL_BYTES = 64 * 1024;

/**
 * A non-streaming JSON answer: kept whole up to JSON_KEEP_BYTES and parsed at the end; a larger
 * one (embeddings of many inputs) keeps only its last 64 KiB, where providers put `usage`, and
 * reads the last `"usage": {...}` object found there.
 */
export function jsonUsageReader(): UsageReader {
  let chunks: Buffer[] = [];
  let size = 0;
  let tail: Buffer | null = null;
  return {
    feed(chunk) {
      size += chunk.length;
      if (tail === null && size <= JSON_KEEP_BYTES) {
        chunks.push(chunk);
        return;
      }
      const all = Buffer.concat(tail ? [tail, chunk] : [...chunks, chunk]);
      chunks = [];
      tail = all.subarray(Math.max(0, all.length - TAIL_BYTES));
    },
    result() {
      if (tail === null) {
        try {
          return usageOfJson(JSON.parse(Buffer.concat(chunks).toString("utf8")));
        } catch {
          return null;
        }
      }
      const text = (tail as Buffer).toString("utf8");
      const matches = [...text.matchAll(/"usage"\s*:\s*(\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\})/g)];
      for (const m of matches.reverse()) {
        try {
          const u = tokensOf(JSON.parse(m[1] ?? ""));
          if (u) return u;
        } catch {
          // Cut or not JSON: try an earlier one.
        }
      }
      return null;
    },
  };
}

/** One SSE event's data may not exceed this (a stream that does is no longer read for usage). */
const SSE_EVENT_LIMIT = 4 * 1024 * 1024;

/**
 * An SSE answer (text/event-stream), parsed with eventsource-parser as it passes: each event's
 * data that is JSON is searched for usage; `[DONE]` and non-JSON events are skipped. The parser's
 * buffer is bounded; past it the stream is still passed on, only no longer read.
 */
export function sseUsageReader(): UsageReader {
  let usage: TokenUsage | null = null;
  let broken = false;
  const decoder = new TextDecoder();
  const parser: EventSourceParser = createParser({
    maxBufferSize: SSE_EVENT_LIMIT,
    onEvent: (e) => {
      if (e.data === "[DONE]" || !e.data.includes("usage")) return;
      try {
        usage = merge(usage, usageOfJson(JSON.parse(e.data)));
      } catch {
        // Not JSON: not ours to judge.
      }
    },
    onError: (err) => {
      if (err.type === "max-buffer-size-exceeded") broken = true;
    },
  });
  return {
    feed(chunk) {
      if (broken) return;
      try {
        parser.feed(decoder.decode(chunk, { stream: true }));
      } catch {
        broken = true;
      }
    },
    result: () => usage,
  };
}
