import { randomUUID } from "node:crypto";
import { rename, rm, writeFile } from "node:fs/promises";
import { BPE_PIECES } from "./pieces.ts";
import { CHATML_TEMPLATE, QWEN25_TEMPLATE } from "./templates.ts";
import { encodeGguf, type GgufTensor, type GgufValue } from "./writer.ts";

/**
 * A tiny, valid GGUF v3 language model with deterministic random weights, for tests and benchmarks
 * on machines that cannot download a real one. Architecture `llama`, a SentencePiece-style vocab
 * with byte fallback (every input is representable) and 3000 BPE pieces (so a 60 KB OpenClaw request
 * is about as many tokens as with a real model), and Qwen2.5's chat template (ChatML with tool calls).
 *
 * It writes nonsense, but the same nonsense for the same prompt at temperature 0. Only text pieces
 * have output weights: control and byte tokens get a logit of 0 while the best random piece's is
 * positive, so it never ends a reply by itself (it always runs to max_tokens) and never writes
 * broken UTF-8.
 */
export interface TinyModelOptions {
  /** PRNG seed for the weights (default 1). Same seed and options, same bytes. */
  seed?: number;
  /** Model width (default 64; a multiple of `heads`). */
  embedding?: number;
  /** Transformer blocks (default 1: the cost of a 15k-token prompt is mostly attention, per block). */
  layers?: number;
  /**
   * Attention heads and key/value heads (default 1 and 1, so a head is 64 wide: llama.cpp's CPU
   * flash attention is ~10x slower per FLOP on 8- or 16-wide heads).
   */
  heads?: number;
  kvHeads?: number;
  /** Feed-forward width (default 3 x embedding). */
  feedForward?: number;
  /** Trained context length written into the metadata (default 32768). */
  contextLength?: number;
  /** general.name (default "clawkeep-tiny"). */
  name?: string;
  /** Qwen2.5's template, with tool calls (default), or plain ChatML. */
  chatTemplate?: "qwen2.5" | "chatml";
}

/**
 * Gain on the attention query and output weights. At 1, a random model's next token depends almost
 * only on the previous one (a bigram walk: every prompt gets the same reply); at 4, attention mixes
 * enough of the prompt in that different prompts get different replies.
 */
const ATTENTION_GAIN = 4;

const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, byte: 6 } as const;
const SPACE = "\u2581";

/** Deterministic PRNG (mulberry32), uniform in [0, 1): the same seed gives the same sequence. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface TinyVocab {
  tokens: string[];
  scores: number[];
  types: number[];
  /** Ids of <unk>, <s>, </s>, <|im_start|>, <|im_end|>. */
  special: { unk: number; bos: number; eos: number; imStart: number; imEnd: number };
}

/**
 * The vocab: control tokens, 256 byte tokens (the fallback for anything else), "\u2581" and the
 * printable ASCII characters, then the BPE pieces. llama.cpp's SentencePiece tokenizer merges the
 * adjacent pair whose joined piece scores highest, so scoring pieces by merge order replays BPE.
 */
export function tinyVocab(pieces: readonly string[] = BPE_PIECES): TinyVocab {
  const tokens: string[] = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"];
  const types: number[] = [
    TOKEN_TYPE.unknown,
    TOKEN_TYPE.control,
    TOKEN_TYPE.control,
    TOKEN_TYPE.control,
    TOKEN_TYPE.control,
  ];
  const scores: number[] = [0, 0, 0, 0, 0];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
    types.push(TOKEN_TYPE.byte);
    scores.push(0);
  }
  const seen = new Set(tokens);
  const add = (piece: string, score: number) => {
    if (!piece || seen.has(piece)) return;
    seen.add(piece);
    tokens.push(piece);
    types.push(TOKEN_TYPE.normal);
    scores.push(score);
  };
  add(SPACE, 0);
  for (let c = 0x21; c < 0x7f; c++) add(String.fromCharCode(c), 0);
  for (const [rank, piece] of pieces.entries()) add(piece, pieces.length - rank);
  return { tokens, scores, types, special: { unk: 0, bos: 1, eos: 2, imStart: 3, imEnd: 4 } };
}

/** The model file's bytes (a few hundred KB with the defaults; ~10 ms). */
export function buildTinyModel(opts: TinyModelOptions = {}): Buffer {
  const nEmbd = opts.embedding ?? 64;
  const nLayer = opts.layers ?? 1;
  const nHead = opts.heads ?? 1;
  const nHeadKv = opts.kvHeads ?? 1;
  const nFf = opts.feedForward ?? nEmbd * 3;
  const ctx = opts.contextLength ?? 32768;
  if (nEmbd % nHead !== 0 || nHead % nHeadKv !== 0) {
    throw new Error(`embedding ${nEmbd} must divide by heads ${nHead}, and heads by kvHeads ${nHeadKv}`);
  }
  const headDim = nEmbd / nHead;
  const vocab = tinyVocab();
  const nVocab = vocab.tokens.length;
  const rand = mulberry32(opts.seed ?? 1);

  const uniform = (n: number, scale: number) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = (rand() * 2 - 1) * scale;
    return a;
  };
  const ones = (n: number) => new Float32Array(n).fill(1);

  const embd = uniform(nEmbd * nVocab, 1);
  const output = uniform(nEmbd * nVocab, 1);
  for (let t = 0; t < nVocab; t++) {
    if (vocab.types[t] !== TOKEN_TYPE.normal) output.fill(0, t * nEmbd, (t + 1) * nEmbd);
  }

  const tensors: GgufTensor[] = [
    { name: "token_embd.weight", dims: [nEmbd, nVocab], data: embd, type: "f16" },
  ];
  const w = (fanIn: number, fanOut: number, gain = 1) => uniform(fanIn * fanOut, gain / Math.sqrt(fanIn));
  for (let l = 0; l < nLayer; l++) {
    const p = `blk.${l}.`;
    tensors.push(
      { name: `${p}attn_norm.weight`, dims: [nEmbd], data: ones(nEmbd) },
      { name: `${p}attn_q.weight`, dims: [nEmbd, nEmbd], data: w(nEmbd, nEmbd, ATTENTION_GAIN), type: "f16" },
      {
        name: `${p}attn_k.weight`,
        dims: [nEmbd, headDim * nHeadKv],
        data: w(nEmbd, headDim * nHeadKv),
        type: "f16",
      },
      {
        name: `${p}attn_v.weight`,
        dims: [nEmbd, headDim * nHeadKv],
        data: w(nEmbd, headDim * nHeadKv),
        type: "f16",
      },
      {
        name: `${p}attn_output.weight`,
        dims: [nEmbd, nEmbd],
        data: w(nEmbd, nEmbd, ATTENTION_GAIN),
        type: "f16",
      },
      { name: `${p}ffn_norm.weight`, dims: [nEmbd], data: ones(nEmbd) },
      { name: `${p}ffn_gate.weight`, dims: [nEmbd, nFf], data: w(nEmbd, nFf), type: "f16" },
      { name: `${p}ffn_up.weight`, dims: [nEmbd, nFf], data: w(nEmbd, nFf), type: "f16" },
      { name: `${p}ffn_down.weight`, dims: [nFf, nEmbd], data: w(nFf, nEmbd), type: "f16" },
    );
  }
  tensors.push(
    { name: "output_norm.weight", dims: [nEmbd], data: ones(nEmbd) },
    { name: "output.weight", dims: [nEmbd, nVocab], data: output, type: "f16" },
  );

  const u32 = (value: number): GgufValue => ({ type: "uint32", value });
  const metadata: Array<readonly [string, GgufValue]> = [
    ["general.architecture", { type: "string", value: "llama" }],
    ["general.name", { type: "string", value: opts.name ?? "clawkeep-tiny" }],
    ["general.file_type", u32(0)],
    ["llama.context_length", u32(ctx)],
    ["llama.embedding_length", u32(nEmbd)],
    ["llama.block_count", u32(nLayer)],
    ["llama.feed_forward_length", u32(nFf)],
    ["llama.attention.head_count", u32(nHead)],
    ["llama.attention.head_count_kv", u32(nHeadKv)],
    ["llama.attention.layer_norm_rms_epsilon", { type: "float32", value: 1e-5 }],
    ["llama.rope.dimension_count", u32(headDim)],
    ["llama.rope.freq_base", { type: "float32", value: 10000 }],
    ["llama.vocab_size", u32(nVocab)],
    ["tokenizer.ggml.model", { type: "string", value: "llama" }],
    ["tokenizer.ggml.tokens", { type: "string[]", value: vocab.tokens }],
    ["tokenizer.ggml.scores", { type: "float32[]", value: vocab.scores }],
    ["tokenizer.ggml.token_type", { type: "int32[]", value: vocab.types }],
    ["tokenizer.ggml.unknown_token_id", u32(vocab.special.unk)],
    ["tokenizer.ggml.bos_token_id", u32(vocab.special.bos)],
    ["tokenizer.ggml.eos_token_id", u32(vocab.special.imEnd)],
    ["tokenizer.ggml.add_bos_token", { type: "bool", value: false }],
    ["tokenizer.ggml.add_eos_token", { type: "bool", value: false }],
    [
      "tokenizer.chat_template",
      { type: "string", value: opts.chatTemplate === "chatml" ? CHATML_TEMPLATE : QWEN25_TEMPLATE },
    ],
  ];
  return encodeGguf(metadata, tensors);
}

/** Writes the tiny model to `path` atomically (temporary file, then rename). Returns its size. */
export async function writeTinyModel(path: string, opts: TinyModelOptions = {}): Promise<number> {
  const bytes = buildTinyModel(opts);
  const tmp = `${path}.${randomUUID()}.tmp`;
  try {
    await writeFile(tmp, bytes, { mode: 0o644 });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return bytes.length;
}
