import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { mkdir, open, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { KmsError, kmsError } from "./errors.ts";
import type { KeyService, SealContext } from "./types.ts";

/**
 * Sealed format, version 1:
 *   "CKS1" | keyId (8 bytes: first bytes of SHA-256 of the root key) | iv (12) | tag (16) | ciphertext
 * The additional data binds magic, key id, tenant and purpose, so a value copied to another
 * tenant or purpose does not decrypt.
 */
const MAGIC = Buffer.from("CKS1");
const HEADER = MAGIC.length + 8 + 12 + 16;

export function keyIdOf(rootKey: Buffer): Buffer {
  return createHash("sha256").update("clawkeep-key-id").update(rootKey).digest().subarray(0, 8);
}

function aad(keyId: Buffer, ctx: SealContext): Buffer {
  return Buffer.concat([MAGIC, keyId, Buffer.from(`\0${ctx.tenantId}\0${ctx.purpose}`)]);
}

/** Reads the root key file, creating it (mode 0400) on first use. Refuses a file others can read. */
export async function loadOrCreateRootKey(dir: string): Promise<Buffer> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, "root.key");
  try {
    const fh = await open(path, "wx", 0o400);
    try {
      const key = randomBytes(32);
      await fh.writeFile(key);
      await fh.sync();
      return key;
    } finally {
      await fh.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST")
      throw new KmsError(`cannot create root key ${path}`, err);
  }
  const st = await stat(path);
  if ((st.mode & 0o077) !== 0) {
    throw new KmsError(
      `root key ${path} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); it must be 0400`,
    );
  }
  const key = await readFile(path);
  if (key.length !== 32) throw new KmsError(`root key ${path} must hold 32 bytes, it holds ${key.length}`);
  return key;
}

/**
 * A key service in the control plane's own process, backed by a root key file: one key for every
 * tenant, no key tree. No production path serves tenants with it any more: the isolated key
 * service (engine.ts) does, and reads the values this one sealed (format CKS1) with it, checking
 * its own tombstones first. destroyTenant() keeps the contract's rule for this object's lifetime
 * (its values for the tenant no longer open, nothing new is sealed for it); a single root key
 * cannot be shredded per tenant, so lasting destruction is the key tree's.
 */
export class LocalKeyService implements KeyService {
  readonly #key: Buffer;
  readonly #keyId: Buffer;
  readonly #destroyed = new Set<string>();

  constructor(rootKey: Buffer) {
    this.#key = Buffer.from(rootKey);
    this.#keyId = keyIdOf(rootKey);
  }

  static async open(dir: string): Promise<LocalKeyService> {
    const key = await loadOrCreateRootKey(dir);
    try {
      return new LocalKeyService(key);
    } finally {
      key.fill(0);
    }
  }

  #refuseDestroyed(tenantId: string): void {
    if (this.#destroyed.has(tenantId))
      throw kmsError("tenant_destroyed", `tenant ${tenantId}'s keys were destroyed`);
  }

  async seal(plaintext: Buffer, ctx: SealContext): Promise<Buffer> {
    this.#refuseDestroyed(ctx.tenantId);
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", this.#key, iv);
    cipher.setAAD(aad(this.#keyId, ctx));
    const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return Buffer.concat([MAGIC, this.#keyId, iv, cipher.getAuthTag(), ct]);
  }

  async unseal(sealed: Buffer, ctx: SealContext): Promise<Buffer> {
    this.#refuseDestroyed(ctx.tenantId);
    if (sealed.length < HEADER)
      throw kmsError("truncated", `sealed value is truncated (${sealed.length} bytes)`);
    if (!sealed.subarray(0, 4).equals(MAGIC))
      throw kmsError("unknown_format", "sealed value has an unknown format version");
    const keyId = sealed.subarray(4, 12);
    if (!keyId.equals(this.#keyId)) {
      throw kmsError(
        "wrong_key_version",
        `sealed value names key ${keyId.toString("hex")}, which this key service does not hold`,
      );
    }
    const iv = sealed.subarray(12, 24);
    const tag = sealed.subarray(24, 40);
    const decipher = createDecipheriv("aes-256-gcm", this.#key, iv);
    decipher.setAAD(aad(keyId, ctx));
    decipher.setAuthTag(tag);
    try {
      return Buffer.concat([decipher.update(sealed.subarray(HEADER)), decipher.final()]);
    } catch (err) {
      throw new KmsError(
        `sealed value does not authenticate for tenant ${ctx.tenantId} / ${ctx.purpose}`,
        err,
        "not_authentic",
      );
    }
  }

  /** From now on the tenant's sealed values do not open here, and nothing is sealed for it. Idempotent. */
  async destroyTenant(tenantId: string): Promise<void> {
    this.#destroyed.add(tenantId);
  }

  async close(): Promise<void> {
    this.#key.fill(0);
  }
}
