import { randomUUID } from "node:crypto";
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { ModelServerError } from "./errors.ts";
import { parseModelPath, parseSha256, type VerifiedModelFile, verifyModelFile } from "./verify.ts";

/** A model the operator registered: a GGUF file pinned by size and SHA-256. */
export interface ModelEntry {
  /** Served as the model id in /v1/models; what plans and tenants refer to. */
  id: string;
  /** Absolute path of the GGUF file. */
  path: string;
  sha256: string;
  size: number;
  /** ISO time of registration. */
  registeredAt: string;
}

export interface VerifiedModel extends ModelEntry {
  gguf: VerifiedModelFile["gguf"];
}

/** Lower-case letters, digits, '.', '_', '-'; starts with a letter or digit; at most 64. */
const MODEL_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export function parseModelId(id: string): string {
  if (!MODEL_ID.test(id) || id.includes("..")) {
    throw new ModelServerError(
      "invalid_request",
      `model id '${id}' is invalid: use 1-64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit`,
      { details: { field: "id" } },
    );
  }
  return id;
}

const entrySchema = z.strictObject({
  id: z.string(),
  path: z.string(),
  sha256: z.string(),
  size: z.number().int().nonnegative(),
  registeredAt: z.string(),
});
const fileSchema = z.strictObject({ version: z.literal(1), models: z.array(entrySchema) });

export const REGISTRY_FILE = "models.json";

/**
 * The operator's list of GGUF models, kept as `models.json` in a directory the caller owns. Every
 * change rewrites the file atomically (temporary file, fsync, rename), so a crash leaves the old
 * list or the new one, never half of one. Mutations are serialized within this process; give the
 * directory to one process (the control plane).
 *
 * Registering checks the file as it is now (header, size, checksum) and pins it; `verify` checks it
 * again before each use, so a file replaced or damaged since is refused with a clear error.
 */
export class ModelRegistry {
  readonly file: string;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(readonly dir: string) {
    this.file = join(dir, REGISTRY_FILE);
  }

  /** All registered models, sorted by id. A missing file is an empty registry. */
  async list(): Promise<ModelEntry[]> {
    return (await this.load()).sort((a, b) => a.id.localeCompare(b.id));
  }

  /** One model's entry; throws `not_registered` when there is none. */
  async get(id: string): Promise<ModelEntry> {
    parseModelId(id);
    const entry = (await this.load()).find((m) => m.id === id);
    if (!entry) {
      throw new ModelServerError("not_registered", `no model is registered as '${id}'`, { details: { id } });
    }
    return entry;
  }

  /**
   * Registers a model after checking the file. With `sha256`/`size` given, the file must match
   * them (the operator's pin from where the model came from); without, they are measured now.
   * Registering the same id with the same file and checksum again is not an error (idempotent);
   * with a different one it is `already_registered` (remove it first).
   */
  async register(
    input: { id: string; path: string; sha256?: string; size?: number },
    opts: { signal?: AbortSignal; now?: Date } = {},
  ): Promise<ModelEntry> {
    const id = parseModelId(input.id);
    const path = parseModelPath(input.path);
    const expected = input.sha256 === undefined ? undefined : parseSha256(input.sha256);
    if (input.size !== undefined && (!Number.isSafeInteger(input.size) || input.size < 0)) {
      throw new ModelServerError("invalid_request", `size ${input.size} is not a byte count`, {
        details: { field: "size" },
      });
    }
    return this.serialize(async () => {
      const checked = await verifyModelFile(
        path,
        {
          ...(expected ? { sha256: expected } : {}),
          ...(input.size !== undefined ? { size: input.size } : {}),
        },
        opts.signal ? { signal: opts.signal } : {},
      );
      const entry: ModelEntry = {
        id,
        path,
        sha256: checked.sha256!,
        size: checked.size,
        registeredAt: (opts.now ?? new Date()).toISOString(),
      };
      const models = await this.load();
      const existing = models.find((m) => m.id === id);
      if (existing) {
        if (
          existing.path === entry.path &&
          existing.sha256 === entry.sha256 &&
          existing.size === entry.size
        ) {
          return existing;
        }
        throw new ModelServerError(
          "already_registered",
          `model '${id}' is already registered with ${existing.path} (sha256 ${existing.sha256}); remove it first`,
          { details: { id } },
        );
      }
      await this.save([...models, entry]);
      return entry;
    });
  }

  /** Removes a model; returns whether it was there. The file itself is left alone. */
  async remove(id: string): Promise<boolean> {
    parseModelId(id);
    return this.serialize(async () => {
      const models = await this.load();
      const rest = models.filter((m) => m.id !== id);
      if (rest.length === models.length) return false;
      await this.save(rest);
      return true;
    });
  }

  /**
   * Checks a registered model's file against its pin (size, header, SHA-256) before use. Throws
   * `not_registered`, `model_missing` or `model_corrupt` naming the file and what is wrong.
   */
  async verify(id: string, opts: { signal?: AbortSignal } = {}): Promise<VerifiedModel> {
    const entry = await this.get(id);
    const checked = await verifyModelFile(
      entry.path,
      { size: entry.size, sha256: entry.sha256 },
      opts.signal ? { signal: opts.signal } : {},
    );
    return { ...entry, gguf: checked.gguf };
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => {});
    return next;
  }

  private async load(): Promise<ModelEntry[]> {
    let text: string;
    try {
      text = await readFile(this.file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    let parsed: z.infer<typeof fileSchema>;
    try {
      parsed = fileSchema.parse(JSON.parse(text));
    } catch (err) {
      throw new ModelServerError(
        "registry_corrupt",
        `model registry ${this.file} is not a valid registry file: ${(err as Error).message.split("\n")[0]}`,
        { cause: err, details: { file: this.file } },
      );
    }
    return parsed.models;
  }

  private async save(models: ModelEntry[]): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const body = `${JSON.stringify({ version: 1, models }, null, 2)}\n`;
    const tmp = join(this.dir, `.${REGISTRY_FILE}.${randomUUID()}.tmp`);
    try {
      const fh = await open(tmp, "wx", 0o600);
      try {
        await fh.writeFile(body, "utf8");
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, this.file);
      const dirHandle = await open(this.dir, "r");
      try {
        await dirHandle.sync();
      } finally {
        await dirHandle.close();
      }
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }
}
