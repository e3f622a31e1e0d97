import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { z } from "zod";
import { isTier, type Tier } from "../core/tenant.ts";
import { kmsError } from "./errors.ts";
import type { KekScope } from "./service.types.ts";

/**
 * The key service's formats, pure (no I/O): ids, key wrapping, the sealed-value format and the
 * store's JSON records. Everything here is versioned so keys and formats can rotate.
 */

/** Tenant ids as the control plane makes them (`tnt_<hex>`); also plain names. They become file names. */
export const TENANT_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$/;
/** What a sealed secret is for, e.g. "gateway-token". Bound into the ciphertext. */
export const PURPOSE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const KEY_ID_RE = /^[0-9a-f]{16}$/;

/** A bad input as shown in an error: JSON, cut to 60 characters. */
function show(input: unknown): string {
  const s = JSON.stringify(input) ?? String(input);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

export function parseTenantId(input: unknown): string {
  if (typeof input !== "string" || !TENANT_ID_RE.test(input)) {
    throw kmsError(
      "invalid_input",
      `tenant id ${show(input)} is not valid: use 1-80 letters, digits, '_' or '-', starting with a letter or digit`,
    );
  }
  return input;
}

export function parsePurpose(input: unknown): string {
  if (typeof input !== "string" || !PURPOSE_RE.test(input)) {
    throw kmsError(
      "invalid_input",
      `purpose ${show(input)} is not valid: use 1-64 letters, digits, '.', '_' or '-'`,
    );
  }
  return input;
}

export function parseKeyTier(input: unknown): Tier {
  if (!isTier(input))
    throw kmsError("invalid_input", `unknown tier ${show(input)}; use starter, premium or enterprise`);
  return input;
}

export function kekScopeOf(tier: Tier): KekScope {
  return tier === "starter" ? "starter" : "tenant";
}

export const KEY_BYTES = { root: 32, kek: 32, volume: 64, secrets: 32 } as const;
export type WrappedKind = "kek" | "volume" | "secrets";

/** A fresh random key id (8 bytes, hex). Ids say which key sealed or wrapped something; they reveal nothing. */
export function newKeyId(): string {
  return randomBytes(8).toString("hex");
}

/** The root key's id: a domain-separated hash prefix, so a wrong root key is named as such. */
export function rootKeyIdOf(rootKey: Buffer): string {
  return createHash("sha256")
    .update("clawkeep-kms root key id\0")
    .update(rootKey)
    .digest()
    .subarray(0, 8)
    .toString("hex");
}

// ---------------------------------------------------------------------------------------------
// Key wrapping: "CKW1" | iv (12) | tag (16) | ciphertext. The additional data binds what the key
// is, whose it is, its id and version, and the id and version of the key that wraps it, so a
// wrapped key copied to another tenant, kind or version does not unwrap.

const WRAP_MAGIC = Buffer.from("CKW1");
const WRAP_HEADER = WRAP_MAGIC.length + 12 + 16;
/** The owner of the shared Starter KEK in wrapping contexts; tenant ids cannot start with '@'. */
export const STARTER_OWNER = "@starter";

export interface WrapContext {
  kind: WrappedKind;
  /** Tenant id, or STARTER_OWNER for the shared Starter KEK. */
  owner: string;
  keyId: string;
  version: number;
  wrappingKeyId: string;
  wrappingVersion: number;
}

function wrapAad(ctx: WrapContext): Buffer {
  return Buffer.from(
    [
      "clawkeep-kms/wrap/v1",
      ctx.kind,
      ctx.owner,
      ctx.keyId,
      String(ctx.version),
      ctx.wrappingKeyId,
      String(ctx.wrappingVersion),
    ].join("\0"),
  );
}

export function wrapKey(wrappingKey: Buffer, key: Buffer, ctx: WrapContext): Buffer {
  if (key.length !== KEY_BYTES[ctx.kind])
    throw kmsError("internal", `a ${ctx.kind} key must be ${KEY_BYTES[ctx.kind]} bytes`);
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", wrappingKey, iv);
  cipher.setAAD(wrapAad(ctx));
  const ct = Buffer.concat([cipher.update(key), cipher.final()]);
  return Buffer.concat([WRAP_MAGIC, iv, cipher.getAuthTag(), ct]);
}

/**
 * Unwraps a key. `where` names the store entry in errors. Throws `truncated`, `unknown_format` or
 * `store_corrupt` (does not authenticate: corrupted, or moved from another tenant, kind or version).
 */
export function unwrapKey(wrappingKey: Buffer, wrapped: Buffer, ctx: WrapContext, where: string): Buffer {
  const want = WRAP_HEADER + KEY_BYTES[ctx.kind];
  if (wrapped.length >= 4 && !wrapped.subarray(0, 4).equals(WRAP_MAGIC)) {
    throw kmsError(
      "unknown_format",
      `wrapped ${ctx.kind} key ${ctx.keyId} in ${where} has an unknown format version`,
    );
  }
  if (wrapped.length < want) {
    throw kmsError(
      "truncated",
      `wrapped ${ctx.kind} key ${ctx.keyId} in ${where} is truncated (${wrapped.length} of ${want} bytes)`,
    );
  }
  if (wrapped.length > want) {
    throw kmsError(
      "store_corrupt",
      `wrapped ${ctx.kind} key ${ctx.keyId} in ${where} is ${wrapped.length} bytes, not ${want}: corrupted entry`,
    );
  }
  return openGcm(
    wrappingKey,
    { iv: wrapped.subarray(4, 16), tag: wrapped.subarray(16, 32), ciphertext: wrapped.subarray(WRAP_HEADER) },
    wrapAad(ctx),
    (err) =>
      kmsError(
        "store_corrupt",
        `wrapped ${ctx.kind} key ${ctx.keyId} (version ${ctx.version}) in ${where} does not authenticate: the entry is corrupted or was copied from another tenant or version`,
        err,
      ),
  );
}

/**
 * AES-256-GCM decryption of `box` under `key` and `aad`. When it does not authenticate, the
 * plaintext already produced is zeroed and the error `refused(cause)` makes is thrown.
 */
function openGcm(
  key: Buffer,
  box: { iv: Buffer; tag: Buffer; ciphertext: Buffer },
  aad: Buffer,
  refused: (cause: unknown) => Error,
): Buffer {
  const decipher = createDecipheriv("aes-256-gcm", key, box.iv);
  decipher.setAAD(aad);
  decipher.setAuthTag(box.tag);
  const out = decipher.update(box.ciphertext);
  try {
    decipher.final();
  } catch (err) {
    out.fill(0);
    throw refused(err);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Sealed values, format version 2:
//   "CKS2" | secrets key id (8) | key version (u32 BE) | ciphertext length (u32 BE) | iv (12) | tag (16) | ciphertext
// The additional data is the header (magic, key id, version, length) plus tenant and purpose, so a
// value copied to another tenant or purpose, or re-labelled with another key version, does not open.
// Format 1 ("CKS1") is LocalKeyService's (local.ts), sealed directly with the root key.

export const SEAL_MAGIC = Buffer.from("CKS2");
export const LEGACY_SEAL_MAGIC = Buffer.from("CKS1");
const SEAL_HEADER = 4 + 8 + 4 + 4 + 12 + 16;

export interface SealedValue {
  keyId: string;
  version: number;
  /** magic | key id | version | length: the part of the header bound into the additional data. */
  prefix: Buffer;
  iv: Buffer;
  tag: Buffer;
  ciphertext: Buffer;
}

function sealAad(prefix: Buffer, tenantId: string, purpose: string): Buffer {
  return Buffer.concat([prefix, Buffer.from(`\0clawkeep-kms/seal/v2\0${tenantId}\0${purpose}`)]);
}

/** Parses a format-2 sealed value. Throws `truncated` or `unknown_format` naming what is wrong. */
export function parseSealed(sealed: Buffer): SealedValue {
  if (sealed.length >= 4 && sealed.subarray(0, 4).equals(LEGACY_SEAL_MAGIC)) {
    throw kmsError("unknown_format", "sealed value is in format 1 (CKS1, the in-process key service's)");
  }
  if (sealed.length >= 4 && !sealed.subarray(0, 4).equals(SEAL_MAGIC)) {
    throw kmsError("unknown_format", "sealed value has an unknown format version (expected CKS2)");
  }
  if (sealed.length < SEAL_HEADER) {
    throw kmsError(
      "truncated",
      `sealed value is truncated: ${sealed.length} bytes, shorter than its ${SEAL_HEADER}-byte header`,
    );
  }
  const ctLen = sealed.readUInt32BE(16);
  if (sealed.length !== SEAL_HEADER + ctLen) {
    throw kmsError(
      sealed.length < SEAL_HEADER + ctLen ? "truncated" : "unknown_format",
      `sealed value is ${sealed.length < SEAL_HEADER + ctLen ? "truncated" : "too long"}: ${sealed.length} bytes, its header says ${SEAL_HEADER + ctLen}`,
    );
  }
  return {
    keyId: sealed.subarray(4, 12).toString("hex"),
    version: sealed.readUInt32BE(12),
    prefix: sealed.subarray(0, 20),
    iv: sealed.subarray(20, 32),
    tag: sealed.subarray(32, 48),
    ciphertext: sealed.subarray(SEAL_HEADER),
  };
}

export function sealWith(
  key: Buffer,
  keyRef: { id: string; version: number },
  plaintext: Buffer,
  tenantId: string,
  purpose: string,
): Buffer {
  const prefix = Buffer.alloc(20);
  SEAL_MAGIC.copy(prefix, 0);
  Buffer.from(keyRef.id, "hex").copy(prefix, 4);
  prefix.writeUInt32BE(keyRef.version, 12);
  prefix.writeUInt32BE(plaintext.length, 16);
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  cipher.setAAD(sealAad(prefix, tenantId, purpose));
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([prefix, iv, cipher.getAuthTag(), ct]);
}

/** Opens a parsed sealed value. Throws `not_authentic` when it was sealed for another tenant or purpose, or altered. */
export function unsealWith(key: Buffer, v: SealedValue, tenantId: string, purpose: string): Buffer {
  return openGcm(key, v, sealAad(v.prefix, tenantId, purpose), (err) =>
    kmsError(
      "not_authentic",
      `sealed value does not authenticate for tenant ${tenantId} / ${purpose}: it was sealed for another tenant or purpose, or altered`,
      err,
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// Store records (JSON). Strict: unknown keys are corruption.

export const STORE_FORMAT = 1;
const keyId = z.string().regex(KEY_ID_RE);
const version = z.number().int().min(1).max(0xffffffff);
const b64 = z.string().regex(/^[A-Za-z0-9+/]+={0,2}$/);
const time = z.string().min(1).max(40);

export const StoredKekSchema = z.strictObject({
  id: keyId,
  version,
  rootKeyId: keyId,
  wrapped: b64,
  createdAt: time,
});
export const RetiredKekSchema = z.strictObject({ id: keyId, version, retiredAt: time });
export const WrappedDataKeySchema = z.strictObject({
  id: keyId,
  version,
  kekId: keyId,
  kekVersion: version,
  wrapped: b64,
  createdAt: time,
});

export const TenantRecordSchema = z
  .strictObject({
    format: z.literal(STORE_FORMAT),
    tenantId: z.string().regex(TENANT_ID_RE),
    tier: z.enum(["starter", "premium", "enterprise"]),
    createdAt: time,
    /** The tenant's own KEK (Premium/Enterprise); null for Starter, whose data keys sit under the shared KEK. */
    kek: StoredKekSchema.nullable(),
    retiredKeks: z.array(RetiredKekSchema),
    volumeKey: WrappedDataKeySchema,
    /** Every version still able to open sealed values; the highest version seals. */
    secretsKeys: z.array(WrappedDataKeySchema).min(1),
  })
  .refine(
    (r) => (r.tier === "starter") === (r.kek === null),
    "a Starter tenant has no own KEK; others have one",
  );

export const StarterKeksSchema = z.strictObject({
  format: z.literal(STORE_FORMAT),
  /** Live versions; the highest wraps new data keys. Two live at once only during a rotation. */
  keks: z.array(StoredKekSchema).min(1),
  retired: z.array(RetiredKekSchema),
});

export const MetaSchema = z.strictObject({
  format: z.literal(STORE_FORMAT),
  rootKeyId: keyId,
  createdAt: time,
});
export const TombstoneSchema = z.strictObject({
  format: z.literal(STORE_FORMAT),
  tenantId: z.string(),
  destroyedAt: time,
});

export type StoredKek = z.infer<typeof StoredKekSchema>;
export type RetiredKek = z.infer<typeof RetiredKekSchema>;
export type WrappedDataKey = z.infer<typeof WrappedDataKeySchema>;
export type TenantRecord = z.infer<typeof TenantRecordSchema>;
export type StarterKeks = z.infer<typeof StarterKeksSchema>;
export type Meta = z.infer<typeof MetaSchema>;
export type Tombstone = z.infer<typeof TombstoneSchema>;

export function currentOf<T extends { version: number }>(items: readonly T[]): T {
  let best = items[0];
  for (const it of items) if (!best || it.version > best.version) best = it;
  if (!best) throw kmsError("store_corrupt", "a key list is empty");
  return best;
}
