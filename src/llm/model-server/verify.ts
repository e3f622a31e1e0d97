import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { isAbsolute } from "node:path";
import { pipeline } from "node:stream/promises";
import { GgufFormatError, type GgufInfo, readGgufInfo } from "../gguf/header.ts";
import { ModelServerError } from "./errors.ts";

/** What a model file must be: its size in bytes and its SHA-256 (lower-case hex). */
export interface ModelExpectation {
  size?: number;
  sha256?: string;
}

export interface VerifiedModelFile {
  path: string;
  size: number;
  /** Lower-case hex; computed unless `skipChecksum` was set. */
  sha256: string | undefined;
  gguf: GgufInfo;
}

const SHA256 = /^[0-9a-f]{64}$/;

/** Lower-case letters, digits, '.', '_', '-'; starts with a letter or digit; at most 64. */
export const MODEL_ID_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/**
 * Checks a model id (served as the model name in /v1/models; what plans and tenants refer to):
 * 1-64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit, no "..".
 */
export function parseModelId(id: string): string {
  if (!MODEL_ID_RE.test(id) || id.includes("..")) {
    throw new ModelServerError(
      "invalid_request",
      `model id '${id}' is invalid: use 1-64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit`,
      { details: { field: "id" } },
    );
  }
  return id;
}

/** Normalizes and checks a SHA-256 given by a caller. */
export function parseSha256(value: string): string {
  const v = value.trim().toLowerCase();
  if (!SHA256.test(v)) {
    throw new ModelServerError("invalid_request", `'${value}' is not a SHA-256 checksum (64 hex digits)`, {
      details: { field: "sha256" },
    });
  }
  return v;
}

/** Checks a model path from a caller: absolute, no NUL, no newline. */
export function parseModelPath(path: string): string {
  if (!isAbsolute(path) || /[\0\n\r]/.test(path)) {
    throw new ModelServerError("invalid_request", `model path '${path}' must be an absolute file path`, {
      details: { field: "path" },
    });
  }
  return path;
}

/** SHA-256 of a file, streamed; aborts with `signal`. */
export async function sha256File(path: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash("sha256");
  await pipeline(createReadStream(path, { highWaterMark: 1 << 20 }), hash, { signal });
  return hash.digest("hex");
}

/**
 * Checks a model file before use, cheapest checks first: it exists and is a regular file, its size
 * (when expected), its GGUF header and tensor table, then its SHA-256 (when expected, or always
 * unless `skipChecksum`). Throws ModelServerError `model_missing` or `model_corrupt` with a message
 * that names the file and what is wrong.
 */
export async function verifyModelFile(
  path: string,
  expect: ModelExpectation = {},
  opts: { signal?: AbortSignal; skipChecksum?: boolean } = {},
): Promise<VerifiedModelFile> {
  parseModelPath(path);
  let size: number;
  try {
    const st = await stat(path);
    if (!st.isFile()) {
      throw new ModelServerError("model_missing", `model file ${path} is not a regular file`, {
        details: { path },
      });
    }
    size = st.size;
  } catch (err) {
    if (err instanceof ModelServerError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new ModelServerError(
      "model_missing",
      code === "ENOENT" ? `model file ${path} does not exist` : `model file ${path} cannot be read (${code})`,
      { cause: err, details: { path } },
    );
  }
  if (expect.size !== undefined && size !== expect.size) {
    throw new ModelServerError(
      "model_corrupt",
      `model file ${path} is ${size} bytes, expected ${expect.size}: it is truncated, still being copied, or another file`,
      { details: { path, size, expectedSize: expect.size } },
    );
  }
  let gguf: GgufInfo;
  try {
    gguf = await readGgufInfo(path, opts.signal ? { signal: opts.signal } : {});
  } catch (err) {
    if (err instanceof GgufFormatError) {
      // GgufFormatError messages start with the path.
      throw new ModelServerError("model_corrupt", `model file ${err.message}`, {
        cause: err,
        details: { path },
      });
    }
    throw err;
  }
  let sha256: string | undefined;
  if (expect.sha256 !== undefined || !opts.skipChecksum) {
    sha256 = await sha256File(path, opts.signal);
    if (expect.sha256 !== undefined && sha256 !== parseSha256(expect.sha256)) {
      throw new ModelServerError(
        "model_corrupt",
        `model file ${path} has SHA-256 ${sha256}, expected ${parseSha256(expect.sha256)}: the file is corrupt or was replaced`,
        { details: { path, sha256, expectedSha256: parseSha256(expect.sha256) } },
      );
    }
  }
  return { path, size, sha256, gguf };
}
