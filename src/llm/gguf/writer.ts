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

/** The JavaScript value each GGUF metadata type holds here. */
interface GgufValueTypes {
  uint32: number;
  int32: number;
  float32: number;
  bool: boolean;
  string: string;
  uint64: bigint;
  "string[]": readonly string[];
  "float32[]": readonly number[] | Float32Array;
  "int32[]": readonly number[] | Int32Array;
}

/** One metadata value, tagged with its GGUF type. */
export type GgufValue = {
  [K in keyof GgufValueTypes]: { type: K; value: GgufValueTypes[K] };
}[keyof GgufValueTypes];

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

  /** Appends `n` bytes that `write` puts at offset `at` of the buffer. */
  private put(n: number, write: (buf: Buffer, at: number) => void): void {
    this.reserve(n);
    write(this.buf, this.length);
    this.length += n;
  }

  u32(v: number): void {
    this.put(4, (buf, at) => buf.writeUInt32LE(v, at));
  }
  i32(v: number): void {
    this.put(4, (buf, at) => buf.writeInt32LE(v, at));
  }
  u64(v: bigint | number): void {
    this.put(8, (buf, at) => buf.writeBigUInt64LE(BigInt(v), at));
  }
  f32(v: number): void {
    this.put(4, (buf, at) => buf.writeFloatLE(v, at));
  }
  u8(v: number): void {
    this.put(1, (buf, at) => buf.writeUInt8(v, at));
  }
  bytes(b: Uint8Array): void {
    this.put(b.length, (buf, at) => buf.set(b, at));
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

/** One GGUF element type: its type id and how one value of it is written. */
interface Element<T> {
  id: number;
  write(out: ByteSink, value: T): void;
}

const ELEMENT = {
  uint32: { id: GGUF_TYPE.uint32, write: (out, v) => out.u32(v) } satisfies Element<number>,
  int32: { id: GGUF_TYPE.int32, write: (out, v) => out.i32(v) } satisfies Element<number>,
  float32: { id: GGUF_TYPE.float32, write: (out, v) => out.f32(v) } satisfies Element<number>,
  bool: { id: GGUF_TYPE.bool, write: (out, v) => out.u8(v ? 1 : 0) } satisfies Element<boolean>,
  string: { id: GGUF_TYPE.string, write: (out, v) => out.str(v) } satisfies Element<string>,
  uint64: { id: GGUF_TYPE.uint64, write: (out, v) => out.u64(v) } satisfies Element<bigint>,
};

/** A scalar value: its type id, then the value. */
function scalar<T>(element: Element<T>): (out: ByteSink, value: T) => void {
  return (out, value) => {
    out.u32(element.id);
    element.write(out, value);
  };
}

/** An array value: the array type id, the element type id, the count, then each element. */
function array<T>(element: Element<T>): (out: ByteSink, values: ArrayLike<T> & Iterable<T>) => void {
  return (out, values) => {
    out.u32(GGUF_TYPE.array);
    out.u32(element.id);
    out.u64(values.length);
    for (const v of values) element.write(out, v);
  };
}

const WRITE_VALUE: { [K in keyof GgufValueTypes]: (out: ByteSink, value: GgufValueTypes[K]) => void } = {
  uint32: scalar(ELEMENT.uint32),
  int32: scalar(ELEMENT.int32),
  float32: scalar(ELEMENT.float32),
  bool: scalar(ELEMENT.bool),
  string: scalar(ELEMENT.string),
  uint64: scalar(ELEMENT.uint64),
  "string[]": array(ELEMENT.string),
  "float32[]": array(ELEMENT.float32),
  "int32[]": array(ELEMENT.int32),
};

function writeValue<K extends keyof GgufValueTypes>(
  out: ByteSink,
  v: { type: K; value: GgufValueTypes[K] },
): void {
  WRITE_VALUE[v.type](out, v.value);
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
