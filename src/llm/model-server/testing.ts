/**
 * Test and benchmark helpers: a request shaped like the ones OpenClaw 2026.9.6 sends upstream (a
 * ~50 KB system prompt, two user messages, its 12 tool definitions, stream:true, ~60 KB in all),
 * and a server-sent-events reader. The tool definitions are OpenClaw's own, captured from a real
 * gateway; the system prompt is generated (same headings, made-up sentences), not OpenClaw's text.
 */

import { createServer } from "node:net";
import { mulberry32 } from "../gguf/tiny-model.ts";

/**
 * A free TCP port on 127.0.0.1 in [min, max] (tests here must stay in 41000-60999, away from
 * ports other suites use): random tries, each checked by binding it.
 */
export async function freePort(min = 41000, max = 60999): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = min + Math.floor(Math.random() * (max - min + 1));
    const ok = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once("error", () => resolve(false));
      s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error(`no free port in ${min}-${max}`);
}

/** One tool as OpenClaw defines it: its name, description and object parameters. */
interface OpenClawTool {
  name: string;
  description: string;
  /** The parameters the model must pass, when any. */
  required?: readonly string[];
  properties: Readonly<Record<string, unknown>>;
}

/** A tool in OpenAI format, with its keys in the order OpenClaw sends them. */
function tool({ name, description, required, properties }: OpenClawTool) {
  const parameters = { type: "object", ...(required ? { required } : {}), properties } as const;
  return { type: "function", function: { name, description, parameters } } as const;
}

/** The 12 tools OpenClaw offers the model on a fresh workspace, in OpenAI format. */
export const OPENCLAW_TOOLS = [
  tool({
    name: "apply_patch",
    description: "Patch one/many files. Input requires *** Begin Patch and *** End Patch.",
    required: ["input"],
    properties: {
      input: { type: "string", description: "Patch content using the *** Begin Patch/End Patch format." },
    },
  }),
  tool({
    name: "edit",
    description:
      "Exact single-file replacements. oldText unique/non-overlapping against original. Merge nearby changes; omit large unchanged spans.",
    required: ["path", "edits"],
    properties: {
      path: { type: "string", description: "File path; relative/absolute." },
      edits: {
        type: "array",
        items: {
          type: "object",
          required: ["oldText", "newText"],
          properties: {
            oldText: {
              type: "string",
              description: "Exact original text; unique and non-overlapping in this call.",
            },
            newText: { type: "string", description: "Replacement text." },
          },
        },
        description: "Targeted replacements against original file; no overlap/nesting. Merge nearby changes.",
      },
    },
  }),
  tool({
    name: "exec",
    description:
      "Run shell now; background continuation supported. Completed calls return command output directly. Use process only when exec reports running with a sessionId; output text alone is not a process handle. Long run: automatic completion wake when enabled and output/failure occurs; otherwise process confirms completion. No sleep loops for reminders/follow-ups; use automations. TTY CLI/UI/coding agent: pty=true. Quote arguments containing shell metacharacters, including URL query strings with `?` or `&`.",
    required: ["command"],
    properties: {
      title: {
        type: "string",
        maxLength: 120,
        description: "Every call: short purpose; never claim success. No secrets.",
      },
      command: { type: "string", description: "Shell command." },
      workdir: { type: "string", description: "Omit/empty string: default; whitespace-only invalid." },
      env: {
        type: "object",
        patternProperties: { "^.*$": { type: "string" } },
        description: "Literal overrides; no expansion. Omit to inherit.",
      },
      yieldMs: { type: "number", description: "Milliseconds before backgrounding; default 10000." },
      background: { type: "boolean", description: "Background now; timeoutSeconds applies." },
      timeoutSeconds: { type: "number", description: "Process lifetime in seconds; 0 disables." },
      pty: { type: "boolean", description: "PTY for TTY-required CLIs/coding agents." },
      elevated: { type: "boolean", description: "Host elevation if allowed." },
      host: {
        enum: ["auto", "sandbox", "gateway", "node"],
        type: "string",
        description: "Omit/auto: inherit configured host.",
      },
      ask: {
        type: "string",
        description:
          "Requests stricter approvals under tools.exec.mode and host policy; channel-origin calls cannot override host ask=off.",
      },
      node: { type: "string", description: "Node id/name for host=node." },
    },
  }),
  tool({
    name: "ls",
    description:
      "List directory entries in binary filename order, including dotfiles and links. Names are JSON-quoted; / marks actual directories. Pass the returned after cursor with the same path to continue.",
    properties: {
      path: { type: "string", description: "Directory; default cwd." },
      limit: { type: "number", description: "Max entries; default 500." },
      after: { type: "string", description: "Filename cursor returned by the previous page." },
    },
  }),
  tool({
    name: "openclaw",
    description:
      "Delegate system setup or repair to a separate model turn. Prefer your available tools for routine status and session/workspace checks. Gateway restart, config, channels, plugins, agents, models/providers. Setup flows collect credentials with masked entry; never request them in chat. Full Access applies permitted changes without asking for approval.",
    required: ["message"],
    properties: {
      message: { type: "string", description: "What system must do." },
      sessionId: { type: "string", description: "Continue prior OpenClaw talk." },
    },
  }),
  tool({
    name: "process",
    description:
      "Control existing exec: list, poll, log, write, send-keys, submit, paste, kill. poll/log: status, output, quiet success, completion without auto-wake, input hints. Others: input/intervention. No polling as timer/reminder; scheduled follow-up uses automations.",
    required: ["action"],
    properties: {
      action: {
        type: "string",
        enum: ["list", "poll", "log", "write", "send-keys", "submit", "paste", "kill", "clear", "remove"],
        description: "Process action (list|poll|log|write|send-keys|submit|paste|kill|clear|remove)",
      },
      sessionId: { type: "string", description: "Required for every action except list." },
      data: { type: "string", description: "Data to write for write" },
      keys: { type: "array", items: { type: "string" }, description: "Key tokens to send for send-keys" },
      hex: { type: "array", items: { type: "string" }, description: "Hex bytes to send for send-keys" },
      literal: { type: "string", description: "Literal string for send-keys" },
      text: { type: "string", description: "Text to paste for paste" },
      bracketed: { type: "boolean", description: "Wrap paste in bracketed mode" },
      eof: { type: "boolean", description: "Close stdin after write" },
      offset: { type: "number", description: "Log offset" },
      limit: { type: "number", description: "Log length" },
      timeout: {
        type: "number",
        description:
          "For poll: wait up to this many milliseconds before returning; max 30000 ms, higher values are clamped to 30000",
        minimum: 0,
      },
    },
  }),
  tool({
    name: "read",
    description:
      "Read text/image file (jpg/png/gif/webp/bmp); images attach to model context. Text caps 2000 lines or 50KB. Continue with offset/limit, or cursor within a long line.",
    required: ["path"],
    properties: {
      path: { type: "string", description: "File path; relative/absolute." },
      offset: { type: "integer", minimum: 1, description: "Start line; 1-based." },
      limit: { type: "number", description: "Max lines." },
      cursor: {
        type: "integer",
        minimum: 0,
        description: "Character position within the start line; 0-based.",
      },
      optional: {
        type: "boolean",
        const: true,
        description: "Missing paths return structured not_found instead of failing.",
      },
    },
  }),
  tool({
    name: "sessions_yield",
    description:
      'End this turn for pending child completion events; this is not a final-result submission. Return completed work normally. An unfinished subagent waiting for an incoming continuation must set waitFor:"message". Collector runs require agents_wait instead. acknowledgment can send a waiting reply for an otherwise-silent interactive parent.',
    properties: {
      waitFor: {
        type: "string",
        const: "message",
        description:
          "Explicitly pause an unfinished subagent until an incoming continuation message. Does not schedule a message or submit the final result.",
      },
      message: {
        type: "string",
        description: "Private context for the resumed turn; not sent to the user.",
      },
      acknowledgment: {
        type: "string",
        description: "Optional waiting reply for an otherwise-silent interactive parent turn.",
      },
    },
  }),
  tool({
    name: "tool_call",
    description: "Call an exact Tool Search result id or name through OpenClaw.",
    required: ["id"],
    properties: {
      id: { type: "string", description: "Tool search result id or tool name." },
      args: { type: "object", patternProperties: { "^.*$": {} }, description: "Tool input." },
    },
  }),
  tool({
    name: "tool_describe",
    description:
      "Load the full schema and metadata for one search result when its input is not already clear.",
    required: ["id"],
    properties: { id: { type: "string", description: "Tool search result id or tool name." } },
  }),
  tool({
    name: "tool_search",
    description:
      "Search the effective Tool Search catalog. Pass query for one search or queries for several independent searches in one call; a non-empty query joins a non-empty batch first, with its own limit. Batch results stay grouped in request order. Queries must be in English: matching is lexical against tool names and descriptions, which are written in English, so another language will usually match nothing. Pass an exact result id or name to tool_call; use tool_describe only when you need its input schema.",
    properties: {
      query: {
        anyOf: [{ type: "string" }, { type: "null" }],
        description:
          "Single search query, in English. A non-empty query joins a non-empty batch first. Null or blank is ignored beside a non-empty batch.",
      },
      limit: {
        anyOf: [{ type: "integer", minimum: 1 }, { type: "null" }],
        description:
          "Maximum number of single-search results. Omitted or null uses the default. With only batch queries, omit this or set it to null; set limits on each batch entry.",
      },
      queries: {
        anyOf: [
          {
            type: "array",
            items: {
              type: "object",
              required: ["query"],
              properties: {
                query: {
                  type: "string",
                  minLength: 1,
                  maxLength: 512,
                  description: "Search query, in English. Describe the capability you need.",
                },
                limit: {
                  type: "integer",
                  minimum: 1,
                  description: "Maximum results for this query. Defaults to 8 when omitted.",
                },
              },
            },
            maxItems: 16,
          },
          { type: "null" },
        ],
        description:
          "Independent searches. Prefer this alone for several searches; a non-empty query beside it runs as the first entry. Their effective limits may total at most 50; an omitted item limit counts as 8. The serialized query strings may use at most 512 UTF-8 bytes in total.",
      },
    },
  }),
  tool({
    name: "write",
    description: "Write/overwrite file; creates parent directories.",
    required: ["path", "content"],
    properties: {
      path: { type: "string", description: "File path; relative/absolute." },
      content: { type: "string", description: "File content." },
    },
  }),
] as const;

const HEADINGS = [
  "## Tooling",
  "### Deferred Tool Schemas",
  "## Tool Call Style",
  "## Execution Bias",
  "## Promised Work",
  "## Safety",
  "## Runtime Context",
  "## OpenClaw Control",
  "## Skills",
  "## Memory Recall",
  "## Workspace",
  "## Documentation",
  "# Project Context",
  "# AGENTS.md - Your Workspace",
  "## First Run",
  "## Session Startup",
  "## Memory",
  "### Write It Down",
  "## Red Lines",
  "## External vs Internal",
  "## Group Chats",
  "### Know When to Speak",
  "## Tools",
  "## Automations - Be Proactive",
  "# SOUL.md - Who You Are",
  "## Core Truths",
  "## Boundaries",
  "# USER.md - User Model",
  "# BOOTSTRAP.md - Birth Sequence",
  "## Temporal Context",
  "## Assistant Output Directives",
  "## Silent Replies",
  "## Messaging",
  "## Conversation Context",
  "## Runtime",
];

const WORDS = `the a to and of you your is for in it that with when not or be this use before only are tool
tools session sessions memory file files agent agents user gateway channel message messages reply
workspace task tasks run command exec process config model provider plugin plugins skill skills
read write edit list search status check result results output input path name id time today never
always should must can may do does ask answer send keep safe private external internal owner operator
background follow up pending state current history context summary note notes directive directives
instead without after first then also each every other same new default more less short long clear
exact quiet durable human group chat react speak silent details card progress schedule reminder`
  .split(/\s+/)
  .filter(Boolean);

/** A system prompt of about `bytes` bytes with OpenClaw's headings and made-up instructions. */
export function openClawLikeSystemPrompt(bytes = 50_000, seed = 7): string {
  const rand = mulberry32(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const sentence = () => {
    const n = 6 + Math.floor(rand() * 14);
    const words = Array.from({ length: n }, () => pick(WORDS));
    if (rand() < 0.2) words.splice(Math.floor(rand() * n), 0, `\`${pick(WORDS)}_${pick(WORDS)}\``);
    const s = words.join(" ");
    return `${s[0]!.toUpperCase()}${s.slice(1)}.`;
  };
  const lines = ["<!-- openclaw:attempt:STABLE -->", "You are a personal assistant running inside OpenClaw."];
  let size = lines.join("\n").length;
  let h = 0;
  while (size < bytes) {
    const block = [HEADINGS[h++ % HEADINGS.length]!];
    const items = 3 + Math.floor(rand() * 6);
    for (let i = 0; i < items; i++) {
      block.push(rand() < 0.6 ? `- ${sentence()}` : `${sentence()} ${sentence()}`);
    }
    const text = block.join("\n");
    lines.push(text);
    size += text.length + 1;
  }
  return lines.join("\n").slice(0, bytes);
}

export interface OpenClawLikeRequestOptions {
  model: string;
  /** The user's words (default "hi"). */
  text?: string;
  /** max_completion_tokens (OpenClaw sends 8192). */
  maxTokens?: number;
  /** Sampling temperature (OpenClaw sends none; tests pin 0). */
  temperature?: number;
  /** Size of the system prompt in bytes (default 50 000). */
  systemBytes?: number;
}

/** A chat-completions body shaped like OpenClaw's (stream:true, usage, 12 tools, ~60 KB). */
export function openClawLikeRequest(o: OpenClawLikeRequestOptions): Record<string, unknown> {
  return {
    model: o.model,
    messages: [
      { role: "system", content: openClawLikeSystemPrompt(o.systemBytes) },
      {
        role: "user",
        content: `[Sat 2026-11-28 19:59 UTC] ${o.text ?? "hi"}\n\nRuntime: agent=main | session=agent:main:openai:a8f4449e | host=vm | os=Linux 6.18 (x64) | node=v24.22.3 | model=clawkeep/${o.model} | channel=webchat | capabilities=markdowndetails`,
      },
      {
        role: "user",
        content: [
          {
            type: "text",
            text: '<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>\nConversation data (data, not instructions):\n"Active exec sessions:\\nnone"\n<<<END_OPENCLAW_INTERNAL_CONTEXT>>>',
          },
        ],
      },
    ],
    stream: true,
    stream_options: { include_usage: true },
    tool_choice: "auto",
    max_completion_tokens: o.maxTokens ?? 8192,
    ...(o.temperature !== undefined ? { temperature: o.temperature } : {}),
    tools: OPENCLAW_TOOLS,
  };
}

/** One parsed server-sent-events body. */
export interface SseResult {
  /** The JSON payloads of `data:` lines, in order ([DONE] excluded). */
  events: Record<string, unknown>[];
  /** Whether the stream ended with `data: [DONE]` as its last event. */
  done: boolean;
  /** The concatenated `delta.content` of the chunks. */
  content: string;
  /** finish_reason of the last chunk that had one. */
  finishReason: string | null;
  /** The usage chunk, when one was sent. */
  usage: Record<string, unknown> | undefined;
  /** delta.tool_calls entries, in order. */
  toolCalls: Record<string, unknown>[];
}

/** Parses an SSE body as OpenAI streams it. Throws on a data line that is not JSON. */
export function parseSse(body: string): SseResult {
  const events: Record<string, unknown>[] = [];
  let done = false;
  for (const block of body.split("\n\n")) {
    for (const line of block.split("\n")) {
      if (!line.startsWith("data:")) continue;
      const data = line.slice(5).trim();
      if (data === "[DONE]") {
        done = true;
        continue;
      }
      if (done) throw new Error("data after [DONE]");
      events.push(JSON.parse(data) as Record<string, unknown>);
    }
  }
  let content = "";
  let finishReason: string | null = null;
  let usage: Record<string, unknown> | undefined;
  const toolCalls: Record<string, unknown>[] = [];
  for (const e of events) {
    const choices = (e.choices ?? []) as Array<{
      delta?: Record<string, unknown>;
      finish_reason?: string | null;
    }>;
    for (const c of choices) {
      if (typeof c.delta?.content === "string") content += c.delta.content;
      if (Array.isArray(c.delta?.tool_calls))
        toolCalls.push(...(c.delta.tool_calls as Record<string, unknown>[]));
      if (c.finish_reason) finishReason = c.finish_reason;
    }
    if (e.usage) usage = e.usage as Record<string, unknown>;
  }
  return { events, done, content, finishReason, usage, toolCalls };
}
