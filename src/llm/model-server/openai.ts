/**
 * The OpenAI chat-completions wire format, as far as the model server speaks it: request parsing
 * (pure, no model needed) and the response, chunk and error bodies.
 *
 * Requests are parsed leniently on purpose, unlike clawkeep's own API: OpenAI clients send fields
 * this server has no use for (`store`, `user`, `metadata`, `reasoning_effort`, ...) and must not be
 * refused for them. Fields it cannot honour in a way the caller relies on (`n` > 1, `logprobs`,
 * JSON response formats, audio output) are refused with an OpenAI-style error naming the field.
 */
import { randomBytes } from "node:crypto";
import { z } from "zod";
import { ModelServerError } from "./errors.ts";

export interface ToolCall {
  id: string;
  name: string;
  /** JSON text, as OpenAI sends it. */
  arguments: string;
}

export type ChatMessage =
  | { role: "system"; text: string }
  | { role: "user"; text: string }
  | { role: "assistant"; text: string; toolCalls: ToolCall[] }
  | { role: "tool"; toolCallId: string; text: string };

export interface ToolDefinition {
  name: string;
  description: string | undefined;
  /** JSON Schema of the arguments, as sent (converted for the grammar in schema.ts). */
  parameters: unknown;
}

/** "auto": the model decides; "none": no tools; "required": some tool; `{name}`: that tool. */
export type ToolChoice = "auto" | "none" | "required" | { name: string };

export interface ChatRequest {
  /** The model id asked for; undefined or "" means whatever this server serves. */
  model: string | undefined;
  messages: ChatMessage[];
  stream: boolean;
  /** stream_options.include_usage: a last chunk with token counts. */
  includeUsage: boolean;
  /** max_completion_tokens, else max_tokens. */
  maxTokens: number | undefined;
  temperature: number | undefined;
  topP: number | undefined;
  seed: number | undefined;
  presencePenalty: number | undefined;
  frequencyPenalty: number | undefined;
  stop: string[];
  tools: ToolDefinition[];
  toolChoice: ToolChoice;
  parallelToolCalls: boolean;
}

/** A request the server refuses: 400 (or `status`) with `param` naming the field. */
export function requestError(
  message: string,
  param?: string,
  opts: { code?: string; status?: number } = {},
): ModelServerError {
  return new ModelServerError("invalid_request", message, {
    details: {
      ...(param ? { param } : {}),
      ...(opts.code ? { openaiCode: opts.code } : {}),
      ...(opts.status ? { status: opts.status } : {}),
    },
  });
}

const TOOL_NAME = /^[A-Za-z0-9_-]{1,64}$/;

const textPart = z.object({ type: z.literal("text"), text: z.string() });
const otherPart = z.object({ type: z.string() });
const content = z.union([z.string(), z.null(), z.array(z.union([textPart, otherPart]))]);

const toolCallSchema = z.object({
  id: z.string().min(1),
  type: z.literal("function").optional(),
  function: z.object({ name: z.string().regex(TOOL_NAME), arguments: z.string() }),
});

const messageSchema = z.discriminatedUnion("role", [
  z.object({ role: z.literal("system"), content }),
  z.object({ role: z.literal("developer"), content }),
  z.object({ role: z.literal("user"), content }),
  z.object({
    role: z.literal("assistant"),
    content: content.optional(),
    tool_calls: z.array(toolCallSchema).optional(),
    function_call: z.object({ name: z.string(), arguments: z.string() }).nullish(),
  }),
  z.object({ role: z.literal("tool"), content, tool_call_id: z.string().min(1) }),
  z.object({ role: z.literal("function"), content, name: z.string() }),
]);

const toolSchema = z.object({
  type: z.literal("function"),
  function: z.object({
    name: z.string().regex(TOOL_NAME, "tool names are 1-64 letters, digits, '_' or '-'"),
    description: z.string().optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
  }),
});

const requestSchema = z.object({
  model: z.string().optional(),
  messages: z.array(messageSchema).min(1, "messages must not be empty"),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
  max_tokens: z.number().int().positive().nullish(),
  max_completion_tokens: z.number().int().positive().nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  seed: z.number().int().nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  stop: z.union([z.string(), z.array(z.string()).max(16)]).nullish(),
  n: z.number().int().nullish(),
  logprobs: z.boolean().nullish(),
  response_format: z.object({ type: z.string() }).nullish(),
  modalities: z.array(z.string()).nullish(),
  tools: z.array(toolSchema).nullish(),
  tool_choice: z
    .union([
      z.enum(["auto", "none", "required"]),
      z.object({ type: z.literal("function"), function: z.object({ name: z.string() }) }),
    ])
    .nullish(),
  parallel_tool_calls: z.boolean().nullish(),
});

type ContentValue = z.infer<typeof content> | undefined;

/** The text of a message's content; parts that are not text become a short marker. */
export function contentText(value: ContentValue): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  return value
    .map((part) =>
      part.type === "text" && "text" in part
        ? (part as { text: string }).text
        : `[${part.type} omitted: this model reads text only]`,
    )
    .join("");
}

function pathOf(path: ReadonlyArray<PropertyKey>): string {
  return path.reduce<string>(
    (acc, p) => (typeof p === "number" ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p)),
    "",
  );
}

/** Parses and checks a chat-completions request body. Throws `requestError` (400) on a bad one. */
export function parseChatRequest(body: unknown): ChatRequest {
  const parsed = requestSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const param = pathOf(issue.path);
    throw requestError(`${param ? `${param}: ` : ""}${issue.message}`, param || undefined);
  }
  const r = parsed.data;
  if (r.n !== undefined && r.n !== null && r.n !== 1)
    throw requestError("n must be 1: this server generates one choice", "n");
  if (r.logprobs) throw requestError("logprobs are not supported by this server", "logprobs");
  if (r.response_format && r.response_format.type !== "text") {
    throw requestError(
      `response_format ${r.response_format.type} is not supported by this server`,
      "response_format",
    );
  }
  if (r.modalities?.some((m) => m !== "text"))
    throw requestError("only text output is supported", "modalities");

  const tools: ToolDefinition[] = (r.tools ?? []).map((t) => ({
    name: t.function.name,
    description: t.function.description,
    parameters: t.function.parameters,
  }));
  const names = new Set<string>();
  for (const [i, t] of tools.entries()) {
    if (names.has(t.name)) throw requestError(`tool '${t.name}' is defined twice`, `tools[${i}]`);
    names.add(t.name);
  }
  let toolChoice: ToolChoice = "auto";
  if (typeof r.tool_choice === "string") toolChoice = r.tool_choice;
  else if (r.tool_choice) {
    const name = r.tool_choice.function.name;
    if (!names.has(name))
      throw requestError(`tool_choice names '${name}', which is not in tools`, "tool_choice");
    toolChoice = { name };
  }
  if (toolChoice === "required" && tools.length === 0) {
    throw requestError("tool_choice is 'required' but no tools are given", "tool_choice");
  }

  const messages: ChatMessage[] = r.messages.map((m): ChatMessage => {
    switch (m.role) {
      case "system":
      case "developer":
        return { role: "system", text: contentText(m.content) };
      case "user":
        return { role: "user", text: contentText(m.content) };
      case "assistant": {
        const toolCalls = (m.tool_calls ?? []).map((c) => ({
          id: c.id,
          name: c.function.name,
          arguments: c.function.arguments,
        }));
        if (m.function_call) {
          toolCalls.push({
            id: `legacy_${toolCalls.length}`,
            name: m.function_call.name,
            arguments: m.function_call.arguments,
          });
        }
        return { role: "assistant", text: contentText(m.content), toolCalls };
      }
      case "tool":
        return { role: "tool", toolCallId: m.tool_call_id, text: contentText(m.content) };
      default:
        // The legacy "function" role: a result named by its function.
        return { role: "tool", toolCallId: `name:${m.name}`, text: contentText(m.content) };
    }
  });

  const stop = r.stop === undefined || r.stop === null ? [] : typeof r.stop === "string" ? [r.stop] : r.stop;
  return {
    model: r.model,
    messages,
    stream: r.stream === true,
    includeUsage: r.stream_options?.include_usage === true,
    maxTokens: r.max_completion_tokens ?? r.max_tokens ?? undefined,
    temperature: r.temperature ?? undefined,
    topP: r.top_p ?? undefined,
    seed: r.seed ?? undefined,
    presencePenalty: r.presence_penalty ?? undefined,
    frequencyPenalty: r.frequency_penalty ?? undefined,
    stop: stop.filter((s) => s.length > 0),
    tools: toolChoice === "none" ? [] : tools,
    toolChoice,
    parallelToolCalls: r.parallel_tool_calls !== false,
  };
}

export type FinishReason = "stop" | "length" | "tool_calls";

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** cached_tokens: prompt tokens reused from the sequence's cache instead of evaluated. */
  prompt_tokens_details: { cached_tokens: number };
}

export function usage(promptTokens: number, completionTokens: number, cachedTokens = 0): Usage {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
    prompt_tokens_details: { cached_tokens: Math.max(0, Math.min(promptTokens, cachedTokens)) },
  };
}

export function completionId(): string {
  return `chatcmpl-${randomBytes(12).toString("hex")}`;
}

export function toolCallId(): string {
  return `call_${randomBytes(12).toString("hex")}`;
}

function wireToolCalls(calls: readonly ToolCall[]) {
  return calls.map((c) => ({
    id: c.id,
    type: "function" as const,
    function: { name: c.name, arguments: c.arguments },
  }));
}

/** The body of a non-streamed completion. */
export function completionBody(o: {
  id: string;
  created: number;
  model: string;
  text: string;
  toolCalls: readonly ToolCall[];
  finishReason: FinishReason;
  usage: Usage;
}) {
  return {
    id: o.id,
    object: "chat.completion" as const,
    created: o.created,
    model: o.model,
    choices: [
      {
        index: 0,
        message: {
          role: "assistant" as const,
          content: o.text.length > 0 || o.toolCalls.length === 0 ? o.text : null,
          ...(o.toolCalls.length > 0 ? { tool_calls: wireToolCalls(o.toolCalls) } : {}),
        },
        logprobs: null,
        finish_reason: o.finishReason,
      },
    ],
    usage: o.usage,
  };
}

/** One server-sent event carrying a completion chunk. */
export function chunkEvent(
  base: { id: string; created: number; model: string },
  delta: { role?: "assistant"; content?: string; toolCall?: { index: number; call: ToolCall } },
  finishReason: FinishReason | null = null,
): string {
  const wireDelta: Record<string, unknown> = {};
  if (delta.role) wireDelta.role = delta.role;
  if (delta.content !== undefined) wireDelta.content = delta.content;
  if (delta.toolCall) {
    wireDelta.tool_calls = [{ index: delta.toolCall.index, ...wireToolCalls([delta.toolCall.call])[0] }];
  }
  const body = {
    id: base.id,
    object: "chat.completion.chunk",
    created: base.created,
    model: base.model,
    choices: [{ index: 0, delta: wireDelta, logprobs: null, finish_reason: finishReason }],
  };
  return `data: ${JSON.stringify(body)}\n\n`;
}

/** The last chunk when the client asked for usage (stream_options.include_usage). */
export function usageEvent(base: { id: string; created: number; model: string }, u: Usage): string {
  return `data: ${JSON.stringify({ id: base.id, object: "chat.completion.chunk", created: base.created, model: base.model, choices: [], usage: u })}\n\n`;
}

export const DONE_EVENT = "data: [DONE]\n\n";

/** OpenAI's error body. */
export interface WireError {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** Maps an error to an HTTP status and OpenAI's error body (the one place that does). */
export function wireError(err: unknown): { status: number; body: WireError } {
  const make = (
    status: number,
    message: string,
    type: string,
    param: string | null,
    code: string | null,
  ) => ({
    status,
    body: { error: { message, type, param, code } },
  });
  if (err instanceof ModelServerError) {
    const param = typeof err.details?.param === "string" ? err.details.param : null;
    const code = typeof err.details?.openaiCode === "string" ? err.details.openaiCode : null;
    switch (err.reason) {
      case "invalid_request":
        return make(
          typeof err.details?.status === "number" ? err.details.status : 400,
          err.message,
          "invalid_request_error",
          param,
          code,
        );
      case "context_length_exceeded":
        return make(400, err.message, "invalid_request_error", "messages", "context_length_exceeded");
      case "not_registered":
        return make(404, err.message, "invalid_request_error", "model", "model_not_found");
      case "busy":
        return make(429, err.message, "rate_limit_error", null, "server_busy");
      case "unavailable":
        return make(503, err.message, "server_error", null, null);
      default:
        return make(500, err.message, "server_error", null, null);
    }
  }
  return make(500, `internal error: ${(err as Error)?.message ?? String(err)}`, "server_error", null, null);
}
