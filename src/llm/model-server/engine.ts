import { createHash } from "node:crypto";
import {
  type ChatHistoryItem,
  type ChatModelFunctions,
  type ChatWrapper,
  type ChatWrapperGenerateContextStateOptions,
  type ChatWrapperGeneratedContextState,
  getLlama,
  InsufficientMemoryError,
  type Llama,
  LlamaChat,
  type LlamaContext,
  type LlamaContextSequence,
  LlamaLogLevel,
  type LlamaModel,
  LlamaText,
  resolveChatWrapper,
} from "node-llama-cpp";
import type { Logger } from "../../lib/log.ts";
import { ModelServerError } from "./errors.ts";
import { toChatHistory, toFunctions } from "./history.ts";
import { type ChatRequest, type FinishReason, type ToolCall, toolCallId } from "./openai.ts";
import { SequencePool } from "./pool.ts";
import type { ChatEngine, EngineStats, GenerationResult, GenerationSink, ModelInfo } from "./types.ts";

export interface LlamaEngineOptions {
  /** A GGUF file, already verified (verify.ts). */
  modelPath: string;
  /** The id served in /v1/models. */
  modelId: string;
  /** CPU threads for evaluation: the sandbox's CPU quota (more collapses throughput under contention). */
  threads: number;
  /**
   * Tokens per sequence, prompt and reply together. Default: the model's trained context, at most
   * 32768 (an OpenClaw request is ~15k tokens before any history).
   */
  contextSize?: number;
  /** Requests served at once (default 2); each costs one context's KV cache. */
  sequences?: number;
  /** Requests that may wait for a sequence (default 16); more get 429. */
  maxQueue?: number;
  /** llama.cpp flash attention (default true: less memory, faster long prompts on CPU). */
  flashAttention?: boolean;
  /** Sampling temperature when a request gives none (default 0.7). */
  temperature?: number;
  /**
   * The longest reply: a request asking for more (OpenClaw asks for 8192) or for nothing gets this
   * many tokens at most (default: whatever fits the context).
   */
  maxTokens?: number;
  /** Aborts loading. */
  signal?: AbortSignal;
  log?: Logger;
}

/** Least room a reply must have after the prompt, in tokens; less is `context_length_exceeded`. */
export const MIN_REPLY_TOKENS = 16;

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * A chat wrapper that makes the model call a function before anything else (tool_choice
 * "required" or a named tool): the prompt is the same, and generation starts in function-call
 * mode, where the grammar allows only the given functions' names and arguments.
 */
function forcingFunctionCall(wrapper: ChatWrapper): ChatWrapper {
  const fn = wrapper.settings.functions;
  const inject = LlamaText([fn.parallelism?.call.sectionPrefix ?? "", fn.call.prefix]);
  return new Proxy(wrapper, {
    get(target, prop, receiver) {
      if (prop !== "generateContextState") return Reflect.get(target, prop, receiver);
      return (options: ChatWrapperGenerateContextStateOptions): ChatWrapperGeneratedContextState => {
        const state = target.generateContextState.call(receiver, options);
        if (state.functionCall !== undefined || state.ignoreStartText !== undefined) {
          return { ...state, functionCall: { initiallyEngaged: true, disengageInitiallyEngaged: [] } };
        }
        return {
          contextText: state.contextText,
          stopGenerationTriggers: state.stopGenerationTriggers,
          noPrefixTrigger: { type: "functionCall", inject },
          detectFunctionCalls: true,
        };
      };
    },
  });
}

class LlamaEngine implements ChatEngine {
  private closing: Promise<void> | undefined;

  constructor(
    readonly info: ModelInfo,
    private readonly llama: Llama,
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    private readonly wrapper: ChatWrapper,
    private readonly pool: SequencePool<LlamaContextSequence>,
    private readonly defaults: { temperature: number; maxTokens: number | undefined },
    private readonly log: Logger | undefined,
  ) {}

  stats(): EngineStats {
    return { sequences: this.pool.size, busy: this.pool.busy, queued: this.pool.queued };
  }

  /** Tokens the prompt takes, rendered exactly as LlamaChat will render it. */
  private promptTokens(
    wrapper: ChatWrapper,
    history: ChatHistoryItem[],
    functions: ChatModelFunctions | undefined,
  ): number {
    const state = wrapper.generateContextState({
      chatHistory: history,
      ...(functions ? { availableFunctions: functions } : {}),
      documentFunctionParams: true,
    });
    return state.contextText.tokenize(this.model.tokenizer).length;
  }

  async generate(request: ChatRequest, sink: GenerationSink, signal: AbortSignal): Promise<GenerationResult> {
    if (this.closing) throw new ModelServerError("unavailable", "the model server is shutting down");
    const history = toChatHistory(request.messages);
    const forced = request.toolChoice === "required" || typeof request.toolChoice === "object";
    const tools =
      typeof request.toolChoice === "object"
        ? request.tools.filter((t) => t.name === (request.toolChoice as { name: string }).name)
        : request.tools;
    const functions = tools.length > 0 ? toFunctions(tools) : undefined;
    const wrapper = forced && functions ? forcingFunctionCall(this.wrapper) : this.wrapper;

    const promptTokens = this.promptTokens(wrapper, history, functions);
    const room = this.info.contextSize - promptTokens;
    if (room < MIN_REPLY_TOKENS) {
      throw new ModelServerError(
        "context_length_exceeded",
        `This model's maximum context length is ${this.info.contextSize} tokens. However, your messages resulted in ${promptTokens} tokens. Please reduce the length of the messages.`,
        { details: { contextSize: this.info.contextSize, promptTokens } },
      );
    }
    const cap = this.defaults.maxTokens ?? room;
    const maxTokens = Math.min(request.maxTokens ?? cap, cap, room - 1);

    // Requests that share a system prompt (every OpenClaw turn) go to the sequence that holds it.
    const first = request.messages[0];
    const affinity =
      first?.role === "system"
        ? createHash("sha256").update(first.text).digest("hex").slice(0, 16)
        : undefined;
    const lease = await this.pool.acquire({ signal, ...(affinity ? { affinity } : {}) });
    const sequence = lease.item;
    let healthy = false;
    const chat = new LlamaChat({ contextSequence: sequence, chatWrapper: wrapper });
    try {
      sink.onStart({ promptTokens, maxTokens });
      const before = sequence.tokenMeter.getState();
      const toolCalls: ToolCall[] = [];
      /** Records a call the model made and passes it on to the sink. */
      const reportCall = (call: { functionName: string; params?: unknown }): void => {
        const tc = {
          id: toolCallId(),
          name: call.functionName,
          arguments: JSON.stringify(call.params ?? {}),
        };
        toolCalls.push(tc);
        sink.onToolCall(tc, toolCalls.length - 1);
      };
      const stop = request.stop;
      const penalties = request.presencePenalty !== undefined || request.frequencyPenalty !== undefined;
      const result = await chat.generateResponse(history, {
        signal,
        stopOnAbortSignal: false,
        maxTokens,
        temperature: request.temperature ?? this.defaults.temperature,
        ...(request.topP !== undefined ? { topP: request.topP } : {}),
        ...(request.seed !== undefined ? { seed: request.seed } : {}),
        ...(stop.length > 0 ? { customStopTriggers: stop } : {}),
        repeatPenalty: penalties
          ? {
              presencePenalty: Math.max(0, request.presencePenalty ?? 0),
              frequencyPenalty: Math.max(0, request.frequencyPenalty ?? 0),
            }
          : false,
        onTextChunk: (text) => {
          if (text) sink.onText(text);
        },
        ...(functions
          ? {
              functions,
              documentFunctionParams: true,
              ...(request.parallelToolCalls ? {} : { maxParallelFunctionCalls: 1 }),
              onFunctionCall: reportCall,
            }
          : {}),
      });
      // Calls the callback did not report (it reports each as it completes).
      for (const call of (result.functionCalls ?? []).slice(toolCalls.length)) reportCall(call);
      const reason = result.metadata.stopReason;
      if (reason === "abort") throw signal.reason ?? new Error("aborted");
      const finishReason: FinishReason =
        toolCalls.length > 0 ? "tool_calls" : reason === "maxTokens" ? "length" : "stop";
      const used = sequence.tokenMeter.diff(before);
      healthy = true;
      return {
        text: result.response,
        toolCalls,
        finishReason,
        promptTokens,
        completionTokens: used.usedOutputTokens,
        evaluatedPromptTokens: Math.max(0, used.usedInputTokens - used.usedOutputTokens),
      };
    } catch (err) {
      if (signal.aborted) throw signal.reason ?? err;
      if (err instanceof ModelServerError) throw err;
      throw new ModelServerError("internal", `generation failed: ${errorText(err)}`, { cause: err });
    } finally {
      chat.dispose({ disposeSequence: false });
      if (!healthy) {
        // An aborted or failed evaluation may leave partial state: start this sequence afresh.
        await sequence.clearHistory().catch((err: unknown) => {
          this.log?.warn({ err: errorText(err), sequence: lease.index }, "could not clear a sequence");
        });
      }
      lease.release(healthy ? affinity : undefined);
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.pool.close();
      await this.context.dispose();
      await this.model.dispose();
      await this.llama.dispose();
    })();
    return this.closing;
  }
}

/**
 * Loads a GGUF model with llama.cpp on the CPU and prepares a context with a fixed pool of
 * sequences. Throws ModelServerError `model_corrupt` when llama.cpp refuses the file and
 * `load_failed` when the machine cannot hold it (memory) or the native binary cannot run.
 */
export async function loadLlamaEngine(opts: LlamaEngineOptions): Promise<ChatEngine> {
  const threads = opts.threads;
  if (!Number.isInteger(threads) || threads < 1 || threads > 256) {
    throw new ModelServerError("invalid_request", `threads must be 1-256, got ${threads}`);
  }
  const sequences = opts.sequences ?? 2;
  if (!Number.isInteger(sequences) || sequences < 1 || sequences > 64) {
    throw new ModelServerError("invalid_request", `sequences must be 1-64, got ${sequences}`);
  }
  const log = opts.log;
  let llama: Llama;
  try {
    llama = await getLlama({
      gpu: false,
      build: "never",
      usePrebuiltBinaries: true,
      skipDownload: true,
      progressLogs: false,
      maxThreads: threads,
      logLevel: LlamaLogLevel.warn,
      logger: (level, message) => {
        const text = message.trim();
        if (!text) return;
        if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal)
          log?.error({ llama: text }, "llama.cpp");
        else log?.debug({ llama: text }, "llama.cpp");
      },
    });
  } catch (err) {
    throw new ModelServerError(
      "load_failed",
      `the llama.cpp CPU binary could not be loaded: ${errorText(err)}`,
      {
        cause: err,
      },
    );
  }
  let model: LlamaModel;
  try {
    model = await llama.loadModel({
      modelPath: opts.modelPath,
      gpuLayers: 0,
      ...(opts.signal ? { loadSignal: opts.signal } : {}),
    });
  } catch (err) {
    await llama.dispose();
    if (err instanceof InsufficientMemoryError) {
      throw new ModelServerError(
        "load_failed",
        `not enough memory to load ${opts.modelPath}: ${errorText(err)}`,
        {
          cause: err,
        },
      );
    }
    throw new ModelServerError(
      "model_corrupt",
      `model file ${opts.modelPath} could not be loaded: ${errorText(err)}`,
      {
        cause: err,
        details: { path: opts.modelPath },
      },
    );
  }
  const trained = model.trainContextSize;
  const contextSize = opts.contextSize ?? Math.min(trained > 0 ? trained : 32768, 32768);
  let context: LlamaContext;
  try {
    context = await model.createContext({
      contextSize,
      sequences,
      threads,
      flashAttention: opts.flashAttention ?? true,
      ...(opts.signal ? { createSignal: opts.signal } : {}),
    });
  } catch (err) {
    await model.dispose();
    await llama.dispose();
    throw new ModelServerError(
      "load_failed",
      `could not create a context of ${contextSize} tokens x ${sequences} sequences for ${opts.modelPath}: ${errorText(err)}`,
      { cause: err },
    );
  }
  const seqs: LlamaContextSequence[] = [];
  for (let i = 0; i < sequences; i++) seqs.push(context.getSequence());
  const wrapper = resolveChatWrapper(model);
  log?.info(
    {
      model: opts.modelId,
      path: opts.modelPath,
      architecture: model.fileInfo.metadata?.general?.architecture,
      contextSize: context.contextSize,
      sequences,
      threads,
      flashAttention: context.flashAttention,
      chatWrapper: wrapper.wrapperName,
    },
    "model loaded",
  );
  return new LlamaEngine(
    {
      id: opts.modelId,
      contextSize: context.contextSize,
      sequences,
      threads,
      architecture: model.fileInfo.metadata?.general?.architecture,
    },
    llama,
    model,
    context,
    wrapper,
    new SequencePool(seqs, opts.maxQueue ?? 16),
    { temperature: opts.temperature ?? 0.7, maxTokens: opts.maxTokens },
    log,
  );
}
