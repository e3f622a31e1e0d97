/**
 * A minimal GGUF v3 serializer: metadata key/values and F32/F16 tensors, laid out as llama.cpp reads
 * them (little-endian; header, key/values, tensor infos, padding to `general.alignment`, data).
 * Pure: it returns bytes and touches no file.
 */

/** GGUF metadata value types (gguf.h `gguf_type`). */
export const GGUF_TYPE = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
} as const;

/** ggml tensor types used here (ggml.h `ggml_type`). */
export const GGML_TYPE = { f32: 0, f16: 1 } as const;

export const GGUF_MAGIC = "GGUF";
export const GGUF_VERSION = 3;
export const GGUF_ALIGNMENT = 32;

/** One metadata value, tagged with its GGUF type. */
export type GgufValue =
  | { type: "uint32"; value: number }
  | { type: "int32"; value: number }
  | { type: "float32"; value: number }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string }
  | { type: "uint64"; value: bigint }
  | { type: "string[]"; value: readonly string[] }
  | { type: "float32[]"; value: readonly number[] | Float32Array }
  | { type: "int32[]"; value: readonly number[] | Int32Array };

export interface GgufTensor {
  name: string;
  /** ggml order: dims[0] varies fastest (a PyTorch (out, in) weight is [in, out]). */
  dims: readonly number[];
  data: Float32Array;
  /** Stored as F32 (default) or F16 (half the size; llama.cpp needs F32 for norms). */
  type?: "f32" | "f16";
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE 754 half precision bits of `value` (round to nearest even; overflow to infinity). */
export function toHalf(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

function tensorBytes(t: GgufTensor): Uint8Array {
  if ((t.type ?? "f32") === "f32") return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const out = Buffer.alloc(t.data.length * 2);
  for (let i = 0; i < t.data.length; i++) out.writeUInt16LE(toHalf(t.data[i]!), i * 2);
  return out;
}

/** Grows a byte buffer as values are appended. */
class ByteSink {
  private buf = Buffer.alloc(1 << 16);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = Buffer.alloc(size);
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }

  u32(v: number): void {
    this.reserve(4);
    this.buf.writeUInt32LE(v, this.length);
    this.length += 4;
  }
  i32(v: number): void {
    this.reserve(4);
    this.buf.writeInt32LE(v, this.length);
    this.length += 4;
  }
  u64(v: bigint | number): void {
    this.reserve(8);
    this.buf.writeBigUInt64LE(BigInt(v), this.length);
    this.length += 8;
  }
  f32(v: number): void {
    this.reserve(4);
    this.buf.writeFloatLE(v, this.length);
    this.length += 4;
  }
  u8(v: number): void {
    this.reserve(1);
    this.buf.writeUInt8(v, this.length);
    this.length += 1;
  }
  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  str(s: string): void {
    const b = Buffer.from(s, "utf8");
    this.u64(b.length);
    this.bytes(b);
  }
  pad(alignment: number): void {
    const rem = this.length % alignment;
    if (rem) this.bytes(new Uint8Array(alignment - rem));
  }
  result(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

function writeValue(out: ByteSink, v: GgufValue): void {
  switch (v.type) {
    case "uint32":
      out.u32(GGUF_TYPE.uint32);
      out.u32(v.value);
      return;
    case "int32":
      out.u32(GGUF_TYPE.int32);
      out.i32(v.value);
      return;
    case "float32":
      out.u32(GGUF_TYPE.float32);
      out.f32(v.value);
      return;
    case "bool":
      out.u32(GGUF_TYPE.bool);
      out.u8(v.value ? 1 : 0);
      return;
    case "string":
      out.u32(GGUF_TYPE.string);
      out.str(v.value);
      return;
    case "uint64":
      out.u32(GGUF_TYPE.uint64);
      out.u64(v.value);
      return;
    case "string[]":
      out.u32(GGUF_TYPE.array);
      out.u32(GGUF_TYPE.string);
      out.u64(v.value.length);
      for (const s of v.value) out.str(s);
      return;
    case "float32[]":
      out.u32(GGUF_TYPE.array);
      out.u32(GGUF_TYPE.float32);
      out.u64(v.value.length);
      for (const x of v.value) out.f32(x);
      return;
    case "int32[]":
      out.u32(GGUF_TYPE.array);
      out.u32(GGUF_TYPE.int32);
      out.u64(v.value.length);
      for (const x of v.value) out.i32(x);
      return;
  }
}

/** Serializes a GGUF v3 file with the given metadata (in order) and F32/F16 tensors. */
export function encodeGguf(
  metadata: ReadonlyArray<readonly [string, GgufValue]>,
  tensors: readonly GgufTensor[],
): Buffer {
  const out = new ByteSink();
  out.bytes(Buffer.from(GGUF_MAGIC, "latin1"));
  out.u32(GGUF_VERSION);
  out.u64(tensors.length);
  out.u64(metadata.length);
  for (const [key, value] of metadata) {
    out.str(key);
    writeValue(out, value);
  }
  let offset = 0;
  const data = tensors.map(tensorBytes);
  for (const [i, t] of tensors.entries()) {
    const elements = t.dims.reduce((a, b) => a * b, 1);
    if (elements !== t.data.length) {
      throw new Error(
        `tensor ${t.name}: dims ${t.dims.join("x")} need ${elements} values, got ${t.data.length}`,
      );
    }
    out.str(t.name);
    out.u32(t.dims.length);
    for (const d of t.dims) out.u64(d);
    out.u32(GGML_TYPE[t.type ?? "f32"]);
    out.u64(offset);
    offset += data[i]!.byteLength;
    offset += (GGUF_ALIGNMENT - (offset % GGUF_ALIGNMENT)) % GGUF_ALIGNMENT;
  }
  out.pad(GGUF_ALIGNMENT);
  for (const d of data) {
    out.bytes(d);
    out.pad(GGUF_ALIGNMENT);
  }
  return out.result();
}
