import { randomBytes } from "node:crypto";
import {
  chmod,
  type FileHandle,
  lstat,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  unlink,
} from "node:fs/promises";
import { join } from "node:path";
import type { z } from "zod";
import { procInfo } from "../lib/procfs.ts";
import { KmsError, kmsError } from "./errors.ts";
import {
  KEY_BYTES,
  type Meta,
  MetaSchema,
  parseTenantId,
  rootKeyIdOf,
  STORE_FORMAT,
  type StarterKeks,
  StarterKeksSchema,
  type TenantRecord,
  TenantRecordSchema,
  type Tombstone,
  TombstoneSchema,
} from "./format.ts";

/**
 * The key service's own directory (0700), apart from the control plane's database:
 *
 *   meta.json              format and the id of the root key the store was initialised with
 *   root.key               the root key (0400), unless the operator supplies one elsewhere
 *   keks/starter.json      the shared Starter KEK, wrapped under the root key
 *   tenants/<id>.json      a tenant's own KEK (wrapped under the root key) and its wrapped data keys
 *   destroyed/<id>.json    tombstones of crypto-shredded tenants (no key material)
 *   audit.log              append-only audit log (audit.ts)
 *   kms.lock               pid and start time of the service that holds the store
 *
 * Only wrapped keys are written. Every write is atomic: a temporary file in the same directory,
 * fsync, rename over the old one, fsync of the directory; the replaced file's blocks are then
 * overwritten with zeros through a descriptor kept open across the rename (best effort: a
 * journaling or copy-on-write file system may keep old blocks; the root key still guards them).
 */

const errno = (err: unknown): string | undefined => (err as NodeJS.ErrnoException | undefined)?.code;

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Overwrites an open file's contents with zeros and syncs it. */
async function zeroFile(fh: FileHandle): Promise<void> {
  const { size } = await fh.stat();
  if (size > 0) {
    await fh.write(Buffer.alloc(size), 0, size, 0);
    await fh.sync();
  }
}

/** Writes `data` to `path` atomically (tmp, fsync, rename, fsync dir) and shreds what it replaced. */
export async function writeFileAtomic(path: string, data: Buffer | string): Promise<void> {
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  const fh = await open(tmp, "wx", 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await fh.close();
  let old: FileHandle | undefined;
  try {
    old = await open(path, "r+");
  } catch (err) {
    if (errno(err) !== "ENOENT") {
      await unlink(tmp).catch(() => {});
      throw err;
    }
  }
  try {
    await rename(tmp, path);
    await fsyncDir(dir);
    if (old) await zeroFile(old);
  } finally {
    await old?.close();
  }
}

/** Overwrites a file with zeros, syncs, unlinks it and syncs its directory. Absent files are fine. */
export async function shredFile(path: string): Promise<boolean> {
  let fh: FileHandle;
  try {
    fh = await open(path, "r+");
  } catch (err) {
    if (errno(err) === "ENOENT") return false;
    throw err;
  }
  try {
    await zeroFile(fh);
  } finally {
    await fh.close();
  }
  await unlink(path);
  await fsyncDir(path.slice(0, path.lastIndexOf("/")) || "/");
  return true;
}

/** Reads and validates a JSON store entry; undefined when absent. Corruption is `store_corrupt`, naming the file. */
export async function readEntry<S extends z.ZodType>(
  path: string,
  schema: S,
): Promise<z.infer<S> | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if (errno(err) === "ENOENT") return undefined;
    throw new KmsError(`cannot read store entry ${path}: ${(err as Error).message}`, err, "store_corrupt");
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw kmsError(
      "store_corrupt",
      `store entry ${path} is corrupted: it is not valid JSON (${text.length} bytes)`,
      err,
    );
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const at = issue ? `${issue.path.join(".") || "(top)"}: ${issue.message}` : "invalid";
    throw kmsError("store_corrupt", `store entry ${path} is corrupted: ${at}`);
  }
  return parsed.data as z.infer<S>;
}

/** Creates `path` (and parents) if needed and makes it a 0700 directory owned by this process's uid. */
export async function ensurePrivateDir(path: string): Promise<void> {
  await mkdir(path, { recursive: true, mode: 0o700 });
  const st = await lstat(path);
  if (!st.isDirectory()) throw kmsError("invalid_input", `${path} is not a directory`);
  const uid = process.getuid?.() ?? 0;
  if (st.uid !== uid) {
    throw kmsError("invalid_input", `${path} belongs to uid ${st.uid}, not to the key service's uid ${uid}`);
  }
  if ((st.mode & 0o777) !== 0o700) await chmod(path, 0o700);
}

export interface OpenedStore {
  store: KeyStore;
  /** The root key, in memory; the owner zeroes it on close. */
  rootKey: Buffer;
  rootKeyId: string;
  /** What start-up recovery did (temporary files removed, interrupted destroys finished). */
  recovered: string[];
}

export class KeyStore {
  readonly dir: string;
  /**
   * Parsed entries this process read or wrote. The service is the store's only writer (kms.lock),
   * so the cache is coherent; a restart re-reads and re-validates everything from disk.
   */
  readonly #tenants = new Map<string, TenantRecord>();
  readonly #tombstones = new Map<string, Tombstone>();
  /** Ids with a tombstone file, read at open and kept up to date by destroyTenant. */
  readonly #destroyed = new Set<string>();
  #starter: StarterKeks | undefined;

  private constructor(dir: string) {
    this.dir = dir;
  }

  get metaPath(): string {
    return join(this.dir, "meta.json");
  }
  get starterPath(): string {
    return join(this.dir, "keks", "starter.json");
  }
  get lockPath(): string {
    return join(this.dir, "kms.lock");
  }
  tenantPath(tenantId: string): string {
    return join(this.dir, "tenants", `${parseTenantId(tenantId)}.json`);
  }
  tombstonePath(tenantId: string): string {
    return join(this.dir, "destroyed", `${parseTenantId(tenantId)}.json`);
  }

  /**
   * Opens (or initialises) the store and loads the root key. Never overwrites anything it cannot
   * read: a missing root key for an initialised store, a wrong root key, or a corrupted meta.json
   * stop it with an error naming which.
   */
  static async open(opts: { dir: string; rootKeyPath?: string; lock?: boolean }): Promise<OpenedStore> {
    const store = new KeyStore(opts.dir);
    await ensurePrivateDir(opts.dir);
    for (const sub of ["keks", "tenants", "destroyed"]) await ensurePrivateDir(join(opts.dir, sub));
    if (opts.lock !== false) await store.#lock();
    try {
      const meta = await readEntry(store.metaPath, MetaSchema);
      const hasKeys = await store.#hasKeys();
      const rootKey = await loadRootKey(opts.rootKeyPath ?? join(opts.dir, "root.key"), {
        operatorSupplied: opts.rootKeyPath !== undefined,
        initialised: meta !== undefined || hasKeys,
        dir: opts.dir,
        expectedId: meta?.rootKeyId,
      });
      const rootKeyId = rootKeyIdOf(rootKey);
      if (meta && meta.rootKeyId !== rootKeyId) {
        rootKey.fill(0);
        throw kmsError(
          "root_key_wrong",
          `wrong root key: the store at ${opts.dir} was initialised with root key ${meta.rootKeyId}, the key given has id ${rootKeyId}; nothing was changed`,
        );
      }
      if (!meta) {
        if (hasKeys) {
          rootKey.fill(0);
          throw kmsError(
            "store_corrupt",
            `store entry ${store.metaPath} is missing, but the store holds keys; restore it from a backup`,
          );
        }
        const fresh: Meta = { format: STORE_FORMAT, rootKeyId, createdAt: new Date().toISOString() };
        await writeFileAtomic(store.metaPath, `${JSON.stringify(fresh)}\n`);
      }
      const recovered = await store.#recover();
      return { store, rootKey, rootKeyId, recovered };
    } catch (err) {
      if (opts.lock !== false) await store.unlock();
      throw err;
    }
  }

  async #hasKeys(): Promise<boolean> {
    const tenants = await readdir(join(this.dir, "tenants"));
    if (tenants.some((f) => f.endsWith(".json"))) return true;
    return (await readdir(join(this.dir, "keks"))).some((f) => f.endsWith(".json"));
  }

  /** One service per store: a lock file naming the holder's pid and start time; a dead holder's lock is taken over. */
  async #lock(): Promise<void> {
    const me = await procInfo(process.pid);
    const mine = JSON.stringify({ pid: process.pid, startTicks: me?.startTicks ?? 0 });
    try {
      const held = JSON.parse(await readFile(this.lockPath, "utf8")) as {
        pid?: unknown;
        startTicks?: unknown;
      };
      if (typeof held.pid === "number" && held.pid !== process.pid) {
        const p = await procInfo(held.pid);
        if (p && p.startTicks === held.startTicks) {
          throw kmsError(
            "already_running",
            `another key service (pid ${held.pid}) holds the store at ${this.dir}; stop it first`,
          );
        }
      }
    } catch (err) {
      if (err instanceof KmsError) throw err;
      // Absent or unreadable lock: take it.
    }
    await writeFileAtomic(this.lockPath, `${mine}\n`);
  }

  async unlock(): Promise<void> {
    try {
      const held = JSON.parse(await readFile(this.lockPath, "utf8")) as { pid?: unknown };
      if (held.pid === process.pid) await unlink(this.lockPath);
    } catch {
      // Already gone.
    }
  }

  /** Removes temporary files a killed service left and finishes destroys that a crash interrupted. */
  async #recover(): Promise<string[]> {
    const done: string[] = [];
    for (const sub of ["", "keks", "tenants", "destroyed"]) {
      const d = join(this.dir, sub);
      for (const f of await readdir(d)) {
        if (f.endsWith(".tmp")) {
          await shredFile(join(d, f));
          done.push(`removed temporary file ${join(d, f)}`);
        }
      }
    }
    for (const f of await readdir(join(this.dir, "destroyed"))) {
      if (!f.endsWith(".json")) continue;
      const id = f.slice(0, -5);
      this.#destroyed.add(id);
      try {
        if (await shredFile(this.tenantPath(id))) done.push(`finished destroying tenant ${id}`);
      } catch (err) {
        if (!(err instanceof KmsError)) throw err;
      }
    }
    return done;
  }

  /** A tenant's record (treat it as read-only), undefined when it has none. */
  async readTenant(tenantId: string): Promise<TenantRecord | undefined> {
    const hit = this.#tenants.get(tenantId);
    if (hit) return hit;
    const rec = await readEntry(this.tenantPath(tenantId), TenantRecordSchema);
    if (rec) this.#tenants.set(tenantId, rec);
    return rec;
  }

  async writeTenant(rec: TenantRecord): Promise<void> {
    this.#tenants.delete(rec.tenantId);
    await writeFileAtomic(this.tenantPath(rec.tenantId), `${JSON.stringify(rec)}\n`);
    this.#tenants.set(rec.tenantId, rec);
  }

  async listTenants(): Promise<string[]> {
    return (await readdir(join(this.dir, "tenants")))
      .filter((f) => f.endsWith(".json"))
      .map((f) => f.slice(0, -5))
      .sort();
  }

  async readStarter(): Promise<StarterKeks | undefined> {
    this.#starter ??= await readEntry(this.starterPath, StarterKeksSchema);
    return this.#starter;
  }

  async writeStarter(s: StarterKeks): Promise<void> {
    this.#starter = undefined;
    await writeFileAtomic(this.starterPath, `${JSON.stringify(s)}\n`);
    this.#starter = s;
  }

  /** The tombstone of a destroyed tenant, undefined when it was not destroyed. */
  async readTombstone(tenantId: string): Promise<Tombstone | undefined> {
    const hit = this.#tombstones.get(tenantId);
    if (hit) return hit;
    if (!this.#destroyed.has(tenantId)) return undefined;
    const t = await readEntry(this.tombstonePath(tenantId), TombstoneSchema);
    if (t) this.#tombstones.set(tenantId, t);
    return t;
  }

  /** Tombstone first, then shred: a crash in between is finished at the next start. */
  async destroyTenant(tenantId: string): Promise<{ shredded: boolean }> {
    if (!(await this.readTombstone(tenantId).catch(() => undefined))) {
      const t: Tombstone = { format: STORE_FORMAT, tenantId, destroyedAt: new Date().toISOString() };
      await writeFileAtomic(this.tombstonePath(tenantId), `${JSON.stringify(t)}\n`);
      this.#tombstones.set(tenantId, t);
      this.#destroyed.add(tenantId);
    }
    this.#tenants.delete(tenantId);
    return { shredded: await shredFile(this.tenantPath(tenantId)) };
  }
}

/**
 * Loads the root key, creating it (32 random bytes, mode 0400) only for a store that was never
 * initialised and only at the default path. Refuses a key others can read, a key owned by another
 * uid, and a key of the wrong size; never overwrites one.
 */
export async function loadRootKey(
  path: string,
  o: { operatorSupplied: boolean; initialised: boolean; dir: string; expectedId?: string | undefined },
): Promise<Buffer> {
  let exists = true;
  try {
    await lstat(path);
  } catch (err) {
    if (errno(err) !== "ENOENT")
      throw kmsError("root_key_invalid", `cannot read root key ${path}: ${(err as Error).message}`, err);
    exists = false;
  }
  if (!exists) {
    if (o.operatorSupplied)
      throw kmsError(
        "root_key_missing",
        `root key ${path} does not exist (it was given by the operator; it is never created)`,
      );
    if (o.initialised) {
      throw kmsError(
        "root_key_missing",
        `root key ${path} is missing, but the store at ${o.dir} was initialised${o.expectedId ? ` with root key ${o.expectedId}` : ""}: restore the key file (or pass --root-key); nothing was created`,
      );
    }
    const fh = await open(path, "wx", 0o400);
    const key = randomBytes(KEY_BYTES.root);
    try {
      await fh.writeFile(key);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsyncDir(path.slice(0, path.lastIndexOf("/")) || "/");
    return key;
  }
  const st = await lstat(path);
  if (!st.isFile()) throw kmsError("root_key_invalid", `root key ${path} is not a regular file`);
  if ((st.mode & 0o077) !== 0) {
    throw kmsError(
      "root_key_invalid",
      `root key ${path} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); it must be 0400`,
    );
  }
  const uid = process.getuid?.() ?? 0;
  if (st.uid !== uid)
    throw kmsError(
      "root_key_invalid",
      `root key ${path} belongs to uid ${st.uid}, not to the key service's uid ${uid}`,
    );
  const key = await readFile(path);
  if (key.length !== KEY_BYTES.root) {
    key.fill(0);
    throw kmsError(
      "root_key_invalid",
      `root key ${path} must hold ${KEY_BYTES.root} bytes, it holds ${st.size}`,
    );
  }
  return key;
}
