import { type FileHandle, open } from "node:fs/promises";
import { ClawkeepError } from "../../core/errors.ts";
import { GGUF_TYPE } from "./writer.ts";

/** A file that is not a well-formed GGUF model; the message says where and what. */
export class GgufFormatError extends ClawkeepError {
  constructor(message: string) {
    super("invalid_request", message);
  }
}

export interface GgufInfo {
  /** GGUF format version (2 or 3). */
  version: number;
  tensorCount: number;
  kvCount: number;
  /** general.architecture, e.g. "llama" or "qwen2". */
  architecture: string | undefined;
  /** general.name, when present. */
  name: string | undefined;
  /** <architecture>.context_length, when present. */
  contextLength: number | undefined;
  /** Whether tokenizer.chat_template is present. */
  hasChatTemplate: boolean;
  /** Where tensor data starts. */
  dataOffset: number;
  /**
   * The least file size the tensor table needs: the end of the last tensor whose type has a known
   * size, else the start of the last tensor plus one byte.
   */
  requiredSize: number;
}

/** Bytes per block and elements per block of ggml types whose layout is certain (ggml.c type_traits). */
const GGML_TYPE_SIZES: ReadonlyMap<number, readonly [bytes: number, elements: number]> = new Map([
  [0, [4, 1]], // F32
  [1, [2, 1]], // F16
  [2, [18, 32]], // Q4_0
  [3, [20, 32]], // Q4_1
  [6, [22, 32]], // Q5_0
  [7, [24, 32]], // Q5_1
  [8, [34, 32]], // Q8_0
  [10, [84, 256]], // Q2_K
  [11, [110, 256]], // Q3_K
  [12, [144, 256]], // Q4_K
  [13, [176, 256]], // Q5_K
  [14, [210, 256]], // Q6_K
  [30, [2, 1]], // BF16
]);

const MAX_STRING = 64 * 1024 * 1024;
const MAX_COUNT = 16 * 1024 * 1024;
const CHUNK = 1 << 20;

/** Sequential little-endian reads over a file handle, a chunk at a time. */
class Reader {
  private buf = Buffer.alloc(0);
  private bufStart = 0;
  pos = 0;

  constructor(
    private readonly fh: FileHandle,
    readonly size: number,
    private readonly path: string,
    private readonly signal: AbortSignal | undefined,
  ) {}

  private async ensure(n: number, what: string): Promise<Buffer> {
    if (this.pos + n > this.size) {
      throw new GgufFormatError(
        `${this.path} is truncated: ${what} at byte ${this.pos} needs ${n} bytes, the file has ${this.size}`,
      );
    }
    const end = this.bufStart + this.buf.length;
    if (this.pos < this.bufStart || this.pos + n > end) {
      this.signal?.throwIfAborted();
      const len = Math.min(Math.max(n, CHUNK), this.size - this.pos);
      const next = Buffer.alloc(len);
      const { bytesRead } = await this.fh.read(next, 0, len, this.pos);
      this.buf = next.subarray(0, bytesRead);
      this.bufStart = this.pos;
      if (bytesRead < n) throw new GgufFormatError(`${this.path}: short read at byte ${this.pos}`);
    }
    const off = this.pos - this.bufStart;
    this.pos += n;
    return this.buf.subarray(off, off + n);
  }

  async u8(what: string) {
    return (await this.ensure(1, what)).readUInt8(0);
  }
  async u32(what: string) {
    return (await this.ensure(4, what)).readUInt32LE(0);
  }
  async u64(what: string): Promise<number> {
    const v = (await this.ensure(8, what)).readBigUInt64LE(0);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new GgufFormatError(`${this.path}: ${what} at byte ${this.pos - 8} is implausibly large (${v})`);
    }
    return Number(v);
  }
  async f32(what: string) {
    return (await this.ensure(4, what)).readFloatLE(0);
  }
  async str(what: string): Promise<string> {
    const len = await this.u64(`${what} length`);
    if (len > MAX_STRING) throw new GgufFormatError(`${this.path}: ${what} claims ${len} bytes`);
    return (await this.ensure(len, what)).toString("utf8");
  }
  skip(n: number, what: string): Promise<Buffer> {
    return this.ensure(n, what);
  }
}

const SCALAR_SIZES: Record<number, number> = {
  [GGUF_TYPE.uint8]: 1,
  [GGUF_TYPE.int8]: 1,
  [GGUF_TYPE.uint16]: 2,
  [GGUF_TYPE.int16]: 2,
  [GGUF_TYPE.uint32]: 4,
  [GGUF_TYPE.int32]: 4,
  [GGUF_TYPE.float32]: 4,
  [GGUF_TYPE.bool]: 1,
  [GGUF_TYPE.uint64]: 8,
  [GGUF_TYPE.int64]: 8,
  [GGUF_TYPE.float64]: 8,
};

/** Reads one metadata value; returns it when it is a scalar or string (arrays are skipped). */
async function readValue(r: Reader, type: number, key: string, path: string): Promise<unknown> {
  if (type === GGUF_TYPE.string) return r.str(`value of ${key}`);
  if (type === GGUF_TYPE.array) {
    const elemType = await r.u32(`element type of ${key}`);
    const count = await r.u64(`element count of ${key}`);
    if (count > MAX_COUNT) throw new GgufFormatError(`${path}: ${key} claims ${count} elements`);
    if (elemType === GGUF_TYPE.string) {
      for (let i = 0; i < count; i++) await r.str(`${key}[${i}]`);
    } else if (elemType === GGUF_TYPE.array) {
      throw new GgufFormatError(`${path}: ${key} is an array of arrays, which GGUF does not allow`);
    } else {
      const size = SCALAR_SIZES[elemType];
      if (size === undefined)
        throw new GgufFormatError(`${path}: ${key} has unknown element type ${elemType}`);
      let left = count * size;
      while (left > 0) {
        const n = Math.min(left, CHUNK);
        await r.skip(n, `${key} data`);
        left -= n;
      }
    }
    return undefined;
  }
  const size = SCALAR_SIZES[type];
  if (size === undefined) throw new GgufFormatError(`${path}: ${key} has unknown value type ${type}`);
  switch (type) {
    case GGUF_TYPE.uint32:
      return r.u32(key);
    case GGUF_TYPE.float32:
      return r.f32(key);
    case GGUF_TYPE.uint64:
      return r.u64(key);
    case GGUF_TYPE.bool:
      return (await r.u8(key)) !== 0;
    default:
      await r.skip(size, key);
      return undefined;
  }
}

/**
 * Reads and checks a GGUF file's header, metadata and tensor table (not the weights): magic,
 * version 2 or 3, plausible counts, every key and tensor entry well-formed, and a file long enough
 * for its tensors. Throws GgufFormatError naming the file and what is wrong.
 */
export async function readGgufInfo(path: string, opts: { signal?: AbortSignal } = {}): Promise<GgufInfo> {
  const fh = await open(path, "r");
  try {
    const { size } = await fh.stat();
    const r = new Reader(fh, size, path, opts.signal);
    if (size < 24) throw new GgufFormatError(`${path} is not a GGUF model: only ${size} bytes`);
    const magic = (await r.skip(4, "magic")).toString("latin1");
    if (magic !== "GGUF") {
      throw new GgufFormatError(
        `${path} is not a GGUF model: it starts with ${JSON.stringify(magic)} instead of "GGUF"`,
      );
    }
    const version = await r.u32("version");
    if (version !== 2 && version !== 3) {
      throw new GgufFormatError(`${path} has GGUF version ${version}; llama.cpp reads versions 2 and 3`);
    }
    const tensorCount = await r.u64("tensor count");
    const kvCount = await r.u64("metadata count");
    if (tensorCount === 0 || tensorCount > 1_000_000 || kvCount > 1_000_000) {
      throw new GgufFormatError(
        `${path}: implausible header (${tensorCount} tensors, ${kvCount} metadata keys)`,
      );
    }
    const meta = new Map<string, unknown>();
    for (let i = 0; i < kvCount; i++) {
      const key = await r.str(`metadata key ${i}`);
      const type = await r.u32(`type of ${key}`);
      meta.set(key, await readValue(r, type, key, path));
    }
    const alignmentValue = meta.get("general.alignment");
    const alignment = typeof alignmentValue === "number" && alignmentValue > 0 ? alignmentValue : 32;
    let requiredData = 0;
    for (let i = 0; i < tensorCount; i++) {
      const name = await r.str(`tensor ${i} name`);
      const nDims = await r.u32(`dimension count of ${name}`);
      if (nDims < 1 || nDims > 4)
        throw new GgufFormatError(`${path}: tensor ${name} has ${nDims} dimensions`);
      let elements = 1;
      for (let d = 0; d < nDims; d++) elements *= await r.u64(`dimension ${d} of ${name}`);
      const type = await r.u32(`type of ${name}`);
      const offset = await r.u64(`offset of ${name}`);
      const layout = GGML_TYPE_SIZES.get(type);
      const end = layout ? offset + Math.ceil(elements / layout[1]) * layout[0] : offset + 1;
      requiredData = Math.max(requiredData, end);
    }
    const dataOffset = Math.ceil(r.pos / alignment) * alignment;
    const requiredSize = dataOffset + requiredData;
    if (size < requiredSize) {
      throw new GgufFormatError(
        `${path} is truncated: its tensors need ${requiredSize} bytes, the file has ${size}`,
      );
    }
    const architecture =
      typeof meta.get("general.architecture") === "string"
        ? (meta.get("general.architecture") as string)
        : undefined;
    const ctx = architecture ? meta.get(`${architecture}.context_length`) : undefined;
    const name = meta.get("general.name");
    return {
      version,
      tensorCount,
      kvCount,
      architecture,
      name: typeof name === "string" ? name : undefined,
      contextLength: typeof ctx === "number" ? ctx : undefined,
      hasChatTemplate: typeof meta.get("tokenizer.chat_template") === "string",
      dataOffset,
      requiredSize,
    };
  } finally {
    await fh.close();
  }
}
