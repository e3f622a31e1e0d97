import type { ChatRequest, FinishReason, ToolCall } from "./openai.ts";

/** What one server serves. */
export interface ModelInfo {
  /** The id in /v1/models and the only `model` requests may name. */
  id: string;
  /** Tokens one request may use, prompt and reply together. */
  contextSize: number;
  /** Requests served at once; more wait in a queue. */
  sequences: number;
  threads: number;
  architecture: string | undefined;
}

/** Where a generation's output goes as it is produced. */
export interface GenerationSink {
  /**
   * Called once, after the request was checked (it fits the context) and got a sequence, right
   * before the prompt is evaluated. Errors before it are the request's fault or the server's state
   * (answer with a status code); errors after it happen mid-stream.
   */
  onStart(info: { promptTokens: number; maxTokens: number }): void;
  /** A piece of the reply's text. */
  onText(text: string): void;
  /** A finished tool call (the nth of this reply, from 0). */
  onToolCall(call: ToolCall, index: number): void;
}

export interface GenerationResult {
  text: string;
  toolCalls: ToolCall[];
  finishReason: FinishReason;
  promptTokens: number;
  completionTokens: number;
  /** Prompt tokens evaluated this time (the rest came from the sequence's cache). */
  evaluatedPromptTokens: number;
}

export interface EngineStats {
  sequences: number;
  busy: number;
  queued: number;
}

/**
 * The model behind the HTTP server. generate() is safe to call concurrently: each call holds one of
 * `info.sequences` sequences, or waits for one (queue full: ModelServerError `busy`). Aborting
 * `signal` stops the generation and frees the sequence; the promise then rejects with the
 * signal's reason. Prompts that do not fit the context are refused with `context_length_exceeded`
 * before any work; max tokens are cut to what fits.
 */
export interface ChatEngine {
  readonly info: ModelInfo;
  generate(request: ChatRequest, sink: GenerationSink, signal: AbortSignal): Promise<GenerationResult>;
  stats(): EngineStats;
  /** Refuses new work, waits for none, frees the model. Idempotent. */
  close(): Promise<void>;
}
