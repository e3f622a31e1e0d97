import { randomBytes } from "node:crypto";
import { join } from "node:path";
import type { Tier } from "../core/tenant.ts";
import { AuditLog } from "./audit.ts";
import { KmsError, kmsError } from "./errors.ts";
import {
  currentOf,
  KEY_BYTES,
  kekScopeOf,
  LEGACY_SEAL_MAGIC,
  newKeyId,
  parseKeyTier,
  parsePurpose,
  parseSealed,
  parseTenantId,
  STARTER_OWNER,
  STORE_FORMAT,
  type StoredKek,
  sealWith,
  type TenantRecord,
  unsealWith,
  unwrapKey,
  type WrapContext,
  type WrappedDataKey,
  type WrappedKind,
  wrapKey,
} from "./format.ts";
import { keyIdOf, LocalKeyService } from "./local.ts";
import type {
  AuditCaller,
  AuditEntry,
  AuditQuery,
  CallOptions,
  StarterRotation,
  TenantKeyInfo,
  TenantKeyService,
} from "./service.types.ts";
import { KeyStore } from "./store.ts";
import type { SealContext } from "./types.ts";

export interface KmsEngineOptions {
  dir: string;
  rootKeyPath?: string;
  auditPath?: string;
  /** Take the store's lock file (default true). */
  lock?: boolean;
}

/** Call options inside the service: who is calling, for the audit log. */
export interface EngineCallOptions extends CallOptions {
  caller?: AuditCaller;
}

const MAX_SEAL_BYTES = 64 * 1024;
const b64 = (s: string): Buffer => Buffer.from(s, "base64");
const now = (): string => new Date().toISOString();

function infoOf(rec: TenantRecord): TenantKeyInfo {
  const secrets = currentOf(rec.secretsKeys);
  return {
    tenantId: rec.tenantId,
    tier: rec.tier,
    kek: rec.kek
      ? { scope: "tenant", id: rec.kek.id, version: rec.kek.version }
      : { scope: "starter", id: rec.volumeKey.kekId, version: rec.volumeKey.kekVersion },
    volumeKey: { id: rec.volumeKey.id, version: rec.volumeKey.version },
    secretsKey: { id: secrets.id, version: secrets.version },
    createdAt: rec.createdAt,
  };
}

function dataCtx(kind: WrappedKind, tenantId: string, dk: WrappedDataKey): WrapContext {
  return {
    kind,
    owner: tenantId,
    keyId: dk.id,
    version: dk.version,
    wrappingKeyId: dk.kekId,
    wrappingVersion: dk.kekVersion,
  };
}

/**
 * The key tree, in process: what the key service process runs behind its socket (server.ts), and
 * usable directly in tests and benchmarks. Mutations are serialised; every call is audited.
 * Unwrapped keys exist only inside one call and are zeroed before it returns, except the volume
 * key getVolumeKey hands to its caller and the root key, held until close().
 */
export class KmsEngine implements TenantKeyService {
  readonly store: KeyStore;
  readonly rootKeyId: string;
  readonly recovered: readonly string[];
  readonly #root: Buffer;
  readonly #audit: AuditLog;
  #queue: Promise<unknown> = Promise.resolve();
  readonly #inflight = new Set<Promise<unknown>>();
  #closed = false;

  private constructor(
    store: KeyStore,
    root: Buffer,
    rootKeyId: string,
    audit: AuditLog,
    recovered: string[],
  ) {
    this.store = store;
    this.#root = root;
    this.rootKeyId = rootKeyId;
    this.#audit = audit;
    this.recovered = recovered;
  }

  static async open(opts: KmsEngineOptions): Promise<KmsEngine> {
    const opened = await KeyStore.open({ dir: opts.dir, rootKeyPath: opts.rootKeyPath, lock: opts.lock });
    try {
      const audit = await AuditLog.open(opts.auditPath ?? join(opts.dir, "audit.log"));
      const engine = new KmsEngine(opened.store, opened.rootKey, opened.rootKeyId, audit, opened.recovered);
      await audit.append(
        { time: now(), caller: "in-process", tenant: null, op: "open", keyId: opened.rootKeyId, ok: true },
        { sync: true },
      );
      return engine;
    } catch (err) {
      opened.rootKey.fill(0);
      await opened.store.unlock();
      throw err;
    }
  }

  /**
   * Runs one audited call, tracked as in flight until it settles. Mutations run one at a time and
   * their audit entry is fsynced.
   */
  #call<T>(
    op: string,
    tenant: string | null,
    opts: EngineCallOptions | undefined,
    mutating: boolean,
    fn: (note: { keyId: string | null }) => Promise<T>,
  ): Promise<T> {
    const p = (async (): Promise<T> => {
      const note: { keyId: string | null } = { keyId: null };
      const entry = (ok: boolean, error?: string): AuditEntry => ({
        time: now(),
        caller: opts?.caller ?? "in-process",
        tenant,
        op,
        keyId: note.keyId,
        ok,
        ...(error === undefined ? {} : { error }),
      });
      let value: T;
      try {
        if (this.#closed) throw kmsError("unavailable", "the key service is closed");
        opts?.signal?.throwIfAborted();
        value = mutating ? await this.#serial(() => fn(note)) : await fn(note);
      } catch (e) {
        const err =
          e instanceof KmsError ? e : new KmsError(`${op} failed: ${(e as Error).message}`, e, "internal");
        if (!this.#closed)
          await this.#audit.append(entry(false, err.message), { sync: mutating }).catch(() => {});
        throw err;
      }
      try {
        await this.#audit.append(entry(true), { sync: mutating });
      } catch (e) {
        if (Buffer.isBuffer(value)) value.fill(0);
        throw new KmsError(
          `${op} succeeded but its audit entry could not be written: ${(e as Error).message}`,
          e,
          "internal",
        );
      }
      return value;
    })();
    this.#inflight.add(p);
    const done = () => this.#inflight.delete(p);
    p.then(done, done);
    return p;
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => {});
    return run;
  }

  #unwrapKek(k: StoredKek, owner: string, where: string): Buffer {
    if (k.rootKeyId !== this.rootKeyId) {
      throw kmsError(
        "root_key_wrong",
        `KEK ${k.id} in ${where} is wrapped under root key ${k.rootKeyId}, but this service holds root key ${this.rootKeyId}`,
      );
    }
    return unwrapKey(
      this.#root,
      b64(k.wrapped),
      {
        kind: "kek",
        owner,
        keyId: k.id,
        version: k.version,
        wrappingKeyId: this.rootKeyId,
        wrappingVersion: 1,
      },
      where,
    );
  }

  #wrapKek(kek: Buffer, owner: string, id: string, version: number): StoredKek {
    const wrapped = wrapKey(this.#root, kek, {
      kind: "kek",
      owner,
      keyId: id,
      version,
      wrappingKeyId: this.rootKeyId,
      wrappingVersion: 1,
    });
    return { id, version, rootKeyId: this.rootKeyId, wrapped: wrapped.toString("base64"), createdAt: now() };
  }

  /** The unwrapped KEK that wraps `dk`; the caller zeroes it. */
  async #kekFor(rec: TenantRecord, dk: WrappedDataKey, kind: WrappedKind): Promise<Buffer> {
    const where = this.store.tenantPath(rec.tenantId);
    if (rec.kek) {
      if (dk.kekId !== rec.kek.id || dk.kekVersion !== rec.kek.version) {
        const retired = rec.retiredKeks.find((r) => r.id === dk.kekId && r.version === dk.kekVersion);
        throw kmsError(
          "wrong_key_version",
          `wrong key version: the ${kind} key in ${where} names KEK ${dk.kekId} version ${dk.kekVersion}, but tenant ${rec.tenantId}'s KEK is ${rec.kek.id} version ${rec.kek.version}${retired ? ` (version ${retired.version} was retired at ${retired.retiredAt}; the entry is stale)` : ""}`,
        );
      }
      return this.#unwrapKek(rec.kek, rec.tenantId, where);
    }
    const starter = await this.store.readStarter();
    if (!starter) {
      throw kmsError(
        "store_corrupt",
        `tenant ${rec.tenantId} is a Starter tenant but ${this.store.starterPath} is missing`,
      );
    }
    const k = starter.keks.find((x) => x.id === dk.kekId && x.version === dk.kekVersion);
    if (!k) {
      const retired = starter.retired.find((r) => r.id === dk.kekId && r.version === dk.kekVersion);
      throw kmsError(
        "wrong_key_version",
        `wrong key version: the ${kind} key in ${where} names Starter KEK ${dk.kekId} version ${dk.kekVersion}, which ${retired ? `was retired at ${retired.retiredAt}` : "the store does not hold"}; live versions: ${starter.keks.map((x) => x.version).join(", ")}`,
      );
    }
    return this.#unwrapKek(k, STARTER_OWNER, this.store.starterPath);
  }

  async #unwrapData(rec: TenantRecord, dk: WrappedDataKey, kind: WrappedKind): Promise<Buffer> {
    const kek = await this.#kekFor(rec, dk, kind);
    try {
      return unwrapKey(
        kek,
        b64(dk.wrapped),
        dataCtx(kind, rec.tenantId, dk),
        this.store.tenantPath(rec.tenantId),
      );
    } finally {
      kek.fill(0);
    }
  }

  async #load(tenantId: string): Promise<TenantRecord> {
    const stone = await this.store.readTombstone(tenantId);
    if (stone) {
      throw kmsError(
        "tenant_destroyed",
        `tenant ${tenantId}'s keys were destroyed at ${stone.destroyedAt}; nothing can unwrap them`,
      );
    }
    const rec = await this.store.readTenant(tenantId);
    if (!rec) {
      throw kmsError(
        "unknown_tenant",
        `tenant ${tenantId} has no keys in the key service; create them with createTenantKeys`,
      );
    }
    if (rec.tenantId !== tenantId) {
      throw kmsError(
        "store_corrupt",
        `store entry ${this.store.tenantPath(tenantId)} is corrupted: it holds tenant ${rec.tenantId}'s keys`,
      );
    }
    return rec;
  }

  /** The current Starter KEK, unwrapped (the caller zeroes it); created on first use. */
  async #starterKek(): Promise<{ key: Buffer; ref: StoredKek }> {
    const starter = await this.store.readStarter();
    if (starter) {
      const ref = currentOf(starter.keks);
      return { key: this.#unwrapKek(ref, STARTER_OWNER, this.store.starterPath), ref };
    }
    const key = randomBytes(KEY_BYTES.kek);
    const ref = this.#wrapKek(key, STARTER_OWNER, newKeyId(), 1);
    await this.store.writeStarter({ format: STORE_FORMAT, keks: [ref], retired: [] });
    return { key, ref };
  }

  #wrapData(
    kek: Buffer,
    kekRef: { id: string; version: number },
    tenantId: string,
    kind: WrappedKind,
    key: Buffer,
    id: string,
    version: number,
    createdAt: string,
  ): WrappedDataKey {
    const dk = { id, version, kekId: kekRef.id, kekVersion: kekRef.version, createdAt };
    const wrapped = wrapKey(kek, key, dataCtx(kind, tenantId, { ...dk, wrapped: "" }));
    return { ...dk, wrapped: wrapped.toString("base64") };
  }

  createTenantKeys(tenantId: string, tier: Tier, opts?: EngineCallOptions): Promise<TenantKeyInfo> {
    return this.#call("createTenantKeys", tenantId, opts, true, async (note) => {
      parseTenantId(tenantId);
      parseKeyTier(tier);
      const stone = await this.store.readTombstone(tenantId);
      if (stone) {
        throw kmsError(
          "tenant_destroyed",
          `tenant ${tenantId}'s keys were destroyed at ${stone.destroyedAt}; a destroyed tenant id is never reused`,
        );
      }
      const existing = await this.store.readTenant(tenantId);
      if (existing) {
        note.keyId = infoOf(existing).kek.id;
        if (kekScopeOf(existing.tier) !== kekScopeOf(tier)) {
          throw kmsError(
            "tier_conflict",
            `tenant ${tenantId} already has keys for tier ${existing.tier} (${kekScopeOf(existing.tier)} KEK); they were not changed`,
          );
        }
        if (existing.tier === tier) return infoOf(existing);
        const moved: TenantRecord = { ...existing, tier };
        await this.store.writeTenant(moved);
        return infoOf(moved);
      }
      const createdAt = now();
      const volume = randomBytes(KEY_BYTES.volume);
      const secrets = randomBytes(KEY_BYTES.secrets);
      let kek: Buffer | undefined;
      try {
        let kekRef: StoredKek;
        let own: StoredKek | null = null;
        if (tier === "starter") {
          ({ key: kek, ref: kekRef } = await this.#starterKek());
        } else {
          kek = randomBytes(KEY_BYTES.kek);
          own = this.#wrapKek(kek, tenantId, newKeyId(), 1);
          kekRef = own;
        }
        const rec: TenantRecord = {
          format: STORE_FORMAT,
          tenantId,
          tier,
          createdAt,
          kek: own,
          retiredKeks: [],
          volumeKey: this.#wrapData(kek, kekRef, tenantId, "volume", volume, newKeyId(), 1, createdAt),
          secretsKeys: [this.#wrapData(kek, kekRef, tenantId, "secrets", secrets, newKeyId(), 1, createdAt)],
        };
        note.keyId = kekRef.id;
        await this.store.writeTenant(rec);
        return infoOf(rec);
      } finally {
        volume.fill(0);
        secrets.fill(0);
        kek?.fill(0);
      }
    });
  }

  describeTenant(tenantId: string, opts?: EngineCallOptions): Promise<TenantKeyInfo> {
    return this.#call("describeTenant", tenantId, opts, false, async (note) => {
      const info = infoOf(await this.#load(parseTenantId(tenantId)));
      note.keyId = info.kek.id;
      return info;
    });
  }

  getVolumeKey(tenantId: string, opts?: EngineCallOptions): Promise<Buffer> {
    return this.#call("getVolumeKey", tenantId, opts, false, async (note) => {
      const rec = await this.#load(parseTenantId(tenantId));
      note.keyId = rec.volumeKey.id;
      return this.#unwrapData(rec, rec.volumeKey, "volume");
    });
  }

  seal(plaintext: Buffer, ctx: SealContext, opts?: EngineCallOptions): Promise<Buffer> {
    return this.#call("seal", ctx.tenantId, opts, false, async (note) => {
      parseTenantId(ctx.tenantId);
      parsePurpose(ctx.purpose);
      if (plaintext.length > MAX_SEAL_BYTES) {
        throw kmsError(
          "invalid_input",
          `a sealed secret is at most ${MAX_SEAL_BYTES} bytes; this one is ${plaintext.length}`,
        );
      }
      const rec = await this.#load(ctx.tenantId);
      const dk = currentOf(rec.secretsKeys);
      note.keyId = dk.id;
      const key = await this.#unwrapData(rec, dk, "secrets");
      try {
        return sealWith(key, dk, plaintext, ctx.tenantId, ctx.purpose);
      } finally {
        key.fill(0);
      }
    });
  }

  unseal(sealed: Buffer, ctx: SealContext, opts?: EngineCallOptions): Promise<Buffer> {
    return this.#call("unseal", ctx.tenantId, opts, false, async (note) => {
      parseTenantId(ctx.tenantId);
      parsePurpose(ctx.purpose);
      if (sealed.length >= 4 && sealed.subarray(0, 4).equals(LEGACY_SEAL_MAGIC))
        return this.#unsealLegacy(sealed, ctx, note);
      const v = parseSealed(sealed);
      note.keyId = v.keyId;
      const rec = await this.#load(ctx.tenantId);
      const dk = rec.secretsKeys.find((k) => k.id === v.keyId && k.version === v.version);
      if (!dk) {
        const held = rec.secretsKeys.map((k) => `${k.id} version ${k.version}`).join(", ");
        throw kmsError(
          "wrong_key_version",
          `wrong key version: the sealed value names secrets key ${v.keyId} version ${v.version}, which tenant ${ctx.tenantId} does not hold (it holds ${held}); it was sealed for another tenant or altered`,
        );
      }
      const key = await this.#unwrapData(rec, dk, "secrets");
      try {
        return unsealWith(key, v, ctx.tenantId, ctx.purpose);
      } finally {
        key.fill(0);
      }
    });
  }

  /**
   * Values sealed by the in-process LocalKeyService (format CKS1) open when this service holds the
   * same root key (the default: both use <kms dir>/root.key), so tokens sealed before the switch
   * keep working. Refused once the tenant is destroyed. Re-seal them to move them under the tree.
   */
  async #unsealLegacy(sealed: Buffer, ctx: SealContext, note: { keyId: string | null }): Promise<Buffer> {
    const stone = await this.store.readTombstone(ctx.tenantId);
    if (stone)
      throw kmsError(
        "tenant_destroyed",
        `tenant ${ctx.tenantId}'s keys were destroyed at ${stone.destroyedAt}`,
      );
    const named = sealed.subarray(4, 12).toString("hex");
    note.keyId = named;
    if (sealed.length < 12 || !keyIdOf(this.#root).equals(sealed.subarray(4, 12))) {
      throw kmsError(
        sealed.length < 12 ? "truncated" : "unknown_format",
        `sealed value is in format 1 (CKS1) under key ${named}, which is not this service's root key`,
      );
    }
    const legacy = new LocalKeyService(this.#root);
    try {
      return await legacy.unseal(sealed, ctx);
    } catch (err) {
      const msg = (err as Error).message;
      throw kmsError(/truncated/.test(msg) ? "truncated" : "not_authentic", msg, err);
    } finally {
      await legacy.close();
    }
  }

  rotateKek(tenantId: string, opts?: EngineCallOptions): Promise<TenantKeyInfo> {
    return this.#call("rotateKek", tenantId, opts, true, async (note) => {
      const rec = await this.#load(parseTenantId(tenantId));
      const old = rec.kek;
      if (!old) {
        throw kmsError(
          "shared_kek",
          `tenant ${tenantId} is a Starter tenant: its data keys sit under the shared Starter KEK; rotate that with rotateStarterKek`,
        );
      }
      const oldKek = await this.#kekFor(rec, rec.volumeKey, "volume");
      const fresh = randomBytes(KEY_BYTES.kek);
      const plain: Buffer[] = [];
      try {
        const newRef = this.#wrapKek(fresh, tenantId, newKeyId(), old.version + 1);
        const where = this.store.tenantPath(tenantId);
        const rewrap = (dk: WrappedDataKey, kind: WrappedKind): WrappedDataKey => {
          if (dk.kekId !== old.id || dk.kekVersion !== old.version) {
            throw kmsError(
              "wrong_key_version",
              `wrong key version: the ${kind} key ${dk.id} in ${where} names KEK version ${dk.kekVersion}, not ${old.version}`,
            );
          }
          const key = unwrapKey(oldKek, b64(dk.wrapped), dataCtx(kind, tenantId, dk), where);
          plain.push(key);
          return this.#wrapData(fresh, newRef, tenantId, kind, key, dk.id, dk.version, dk.createdAt);
        };
        const next: TenantRecord = {
          ...rec,
          kek: newRef,
          retiredKeks: [...rec.retiredKeks, { id: old.id, version: old.version, retiredAt: now() }],
          volumeKey: rewrap(rec.volumeKey, "volume"),
          secretsKeys: rec.secretsKeys.map((k) => rewrap(k, "secrets")),
        };
        note.keyId = newRef.id;
        await this.store.writeTenant(next);
        return infoOf(next);
      } finally {
        for (const k of plain) k.fill(0);
        oldKek.fill(0);
        fresh.fill(0);
      }
    });
  }

  rotateStarterKek(opts?: EngineCallOptions): Promise<StarterRotation> {
    return this.#call("rotateStarterKek", null, opts, true, async (note) => {
      const starter = await this.store.readStarter();
      if (!starter) {
        const { key, ref } = await this.#starterKek();
        key.fill(0);
        note.keyId = ref.id;
        return { kek: { id: ref.id, version: ref.version }, rewrapped: 0 };
      }
      // 1. Add the new version (both live). 2. Re-wrap every Starter tenant. 3. Retire the old ones.
      // A crash at any point leaves every tenant's keys under a live version.
      const fresh = randomBytes(KEY_BYTES.kek);
      const old = new Map<string, Buffer>();
      try {
        const newRef = this.#wrapKek(fresh, STARTER_OWNER, newKeyId(), currentOf(starter.keks).version + 1);
        note.keyId = newRef.id;
        await this.store.writeStarter({ ...starter, keks: [...starter.keks, newRef] });
        const oldKek = (dk: WrappedDataKey): Buffer => {
          const tag = `${dk.kekId}/${dk.kekVersion}`;
          let k = old.get(tag);
          if (!k) {
            const stored = starter.keks.find((x) => x.id === dk.kekId && x.version === dk.kekVersion);
            if (!stored)
              throw kmsError("wrong_key_version", `a Starter data key names KEK ${tag}, which is not live`);
            k = this.#unwrapKek(stored, STARTER_OWNER, this.store.starterPath);
            old.set(tag, k);
          }
          return k;
        };
        let rewrapped = 0;
        for (const id of await this.store.listTenants()) {
          const rec = await this.store.readTenant(id);
          if (rec?.tier !== "starter") continue;
          const where = this.store.tenantPath(id);
          const plain: Buffer[] = [];
          try {
            const rewrap = (dk: WrappedDataKey, kind: WrappedKind): WrappedDataKey => {
              if (dk.kekId === newRef.id && dk.kekVersion === newRef.version) return dk;
              const key = unwrapKey(oldKek(dk), b64(dk.wrapped), dataCtx(kind, id, dk), where);
              plain.push(key);
              return this.#wrapData(fresh, newRef, id, kind, key, dk.id, dk.version, dk.createdAt);
            };
            await this.store.writeTenant({
              ...rec,
              volumeKey: rewrap(rec.volumeKey, "volume"),
              secretsKeys: rec.secretsKeys.map((k) => rewrap(k, "secrets")),
            });
            rewrapped++;
          } finally {
            for (const k of plain) k.fill(0);
          }
        }
        const retiredAt = now();
        await this.store.writeStarter({
          format: STORE_FORMAT,
          keks: [newRef],
          retired: [
            ...starter.retired,
            ...starter.keks.map((k) => ({ id: k.id, version: k.version, retiredAt })),
          ],
        });
        return { kek: { id: newRef.id, version: newRef.version }, rewrapped };
      } finally {
        fresh.fill(0);
        for (const k of old.values()) k.fill(0);
      }
    });
  }

  destroyTenant(tenantId: string, opts?: EngineCallOptions): Promise<void> {
    return this.#call("destroyTenant", tenantId, opts, true, async (note) => {
      parseTenantId(tenantId);
      const rec = await this.store.readTenant(tenantId).catch(() => undefined);
      note.keyId = rec ? infoOf(rec).kek.id : null;
      await this.store.destroyTenant(tenantId);
    });
  }

  audit(query: AuditQuery = {}, opts?: EngineCallOptions): Promise<AuditEntry[]> {
    return this.#call("audit", query.tenant ?? null, opts, false, async () => {
      if (query.tenant !== undefined) parseTenantId(query.tenant);
      if (
        query.limit !== undefined &&
        (!Number.isInteger(query.limit) || query.limit < 1 || query.limit > 100_000)
      ) {
        throw kmsError("invalid_input", "audit limit must be a whole number from 1 to 100000");
      }
      return this.#audit.read(query);
    });
  }

  /** Records a call the server refused before it reached the key tree (for instance a uid not allowed). */
  async recordRefusal(caller: AuditCaller, op: string, error: string): Promise<void> {
    if (this.#closed) return;
    await this.#audit.append(
      { time: now(), caller, tenant: null, op, keyId: null, ok: false, error },
      { sync: true },
    );
  }

  /** Waits for running mutations, zeroes the root key, closes the audit log and releases the store. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#inflight]);
    await this.#queue;
    this.#root.fill(0);
    await this.#audit.close();
    await this.store.unlock();
  }
}
