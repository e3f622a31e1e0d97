import { ModelServerError } from "./errors.ts";
import { type ChatRequest, type ToolCall, toolCallId } from "./openai.ts";
import type { ChatEngine, EngineStats, GenerationResult, GenerationSink, ModelInfo } from "./types.ts";

/** What the fake does for one call, decided from the request. */
export interface FakeScript {
  /** Text pieces to emit, in order (default: "fake: " and the last user message). */
  pieces?: string[];
  toolCalls?: Array<Omit<ToolCall, "id">>;
  /** Thrown before onStart (a request error) ... */
  errorBeforeStart?: unknown;
  /** ... or after the first piece (a mid-stream failure). */
  errorAfterFirstPiece?: unknown;
  /** Wait this long between pieces (lets tests disconnect mid-stream). */
  pieceDelayMs?: number;
  promptTokens?: number;
}

export interface FakeCall {
  request: ChatRequest;
  /** Set once the call ended: "done", "aborted" or "error". */
  outcome: "running" | "done" | "aborted" | "error";
}

/**
 * A ChatEngine for tests of the HTTP layer: it records every call, answers from a script (by
 * default an echo of the last user message), honours abort signals, and has `sequences` slots (a
 * call beyond them fails with `busy`).
 */
export class FakeEngine implements ChatEngine {
  readonly calls: FakeCall[] = [];
  closed = false;
  private running = 0;

  constructor(
    readonly info: ModelInfo = {
      id: "fake-1",
      contextSize: 4096,
      sequences: 2,
      threads: 1,
      architecture: "fake",
    },
    private readonly script: (request: ChatRequest) => FakeScript = () => ({}),
  ) {}

  stats(): EngineStats {
    return { sequences: this.info.sequences, busy: this.running, queued: 0 };
  }

  async generate(request: ChatRequest, sink: GenerationSink, signal: AbortSignal): Promise<GenerationResult> {
    const call: FakeCall = { request, outcome: "running" };
    this.calls.push(call);
    const s = this.script(request);
    try {
      if (s.errorBeforeStart) throw s.errorBeforeStart;
      if (this.running >= this.info.sequences)
        throw new ModelServerError("busy", "all fake sequences are busy");
      this.running++;
      try {
        const last = [...request.messages].reverse().find((m) => m.role === "user");
        const pieces = s.pieces ?? ["fake: ", last?.text ?? ""];
        const promptTokens = s.promptTokens ?? 10;
        sink.onStart({ promptTokens, maxTokens: request.maxTokens ?? 100 });
        let text = "";
        for (const [i, p] of pieces.entries()) {
          signal.throwIfAborted();
          if (s.pieceDelayMs) await new Promise((r) => setTimeout(r, s.pieceDelayMs));
          signal.throwIfAborted();
          text += p;
          sink.onText(p);
          if (i === 0 && s.errorAfterFirstPiece) throw s.errorAfterFirstPiece;
        }
        const toolCalls = (s.toolCalls ?? []).map((c) => ({ ...c, id: toolCallId() }));
        for (const [i, c] of toolCalls.entries()) sink.onToolCall(c, i);
        call.outcome = "done";
        return {
          text,
          toolCalls,
          finishReason: toolCalls.length > 0 ? "tool_calls" : "stop",
          promptTokens,
          completionTokens: pieces.length,
          evaluatedPromptTokens: promptTokens,
        };
      } finally {
        this.running--;
      }
    } catch (err) {
      call.outcome = signal.aborted ? "aborted" : "error";
      throw signal.aborted ? signal.reason : err;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
