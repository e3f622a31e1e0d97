import { mkdtempSync, rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Tier } from "../core/tenant.ts";
import { KmsEngine } from "./engine.ts";
import type {
  AuditEntry,
  AuditQuery,
  CallOptions,
  StarterRotation,
  TenantKeyInfo,
  TenantKeyService,
} from "./service.types.ts";
import type { SealContext } from "./types.ts";

export type KmsOp =
  | "createTenantKeys"
  | "describeTenant"
  | "getVolumeKey"
  | "seal"
  | "unseal"
  | "rotateKek"
  | "rotateStarterKek"
  | "destroyTenant"
  | "audit";

/** Directories of fakes made with createNow() and not closed yet: removed when the process exits. */
const leftAtExit = new Set<string>();

/**
 * A TenantKeyService for tests of its callers: the real key tree (KmsEngine) in a temporary
 * directory, in process, that records every call (tenant and operation, never key material) and
 * fails the calls a test asks it to. close() removes the directory.
 */
export class FakeKeyService implements TenantKeyService {
  readonly calls: { op: KmsOp; tenantId: string | null }[] = [];
  readonly #opening: Promise<KmsEngine>;
  readonly #dir: string;
  readonly #failures = new Map<KmsOp, Error[]>();

  private constructor(opening: Promise<KmsEngine>, dir: string) {
    this.#opening = opening;
    this.#dir = dir;
    // A failed open surfaces on the first call, not as an unhandled rejection.
    opening.catch(() => {});
  }

  static async create(): Promise<FakeKeyService> {
    const dir = await mkdtemp(join(tmpdir(), "ck-kms-fake-"));
    const fake = new FakeKeyService(KmsEngine.open({ dir: join(dir, "store") }), dir);
    await fake.#opening;
    return fake;
  }

  /**
   * The same, made at once for fixtures that cannot wait (the control-plane harness): calls wait
   * for the engine to open. Its directory goes at close() or, at the latest, when the process exits.
   */
  static createNow(): FakeKeyService {
    const dir = mkdtempSync(join(tmpdir(), "ck-kms-fake-"));
    if (leftAtExit.size === 0)
      process.once("exit", () => {
        for (const d of leftAtExit) rmSync(d, { recursive: true, force: true });
      });
    leftAtExit.add(dir);
    return new FakeKeyService(KmsEngine.open({ dir: join(dir, "store") }), dir);
  }

  /** The next call of `op` throws `err` (queued: call it twice to fail two calls). */
  failNext(op: KmsOp, err: Error): void {
    this.#failures.set(op, [...(this.#failures.get(op) ?? []), err]);
  }

  async #run<T>(op: KmsOp, tenantId: string | null, fn: (engine: KmsEngine) => Promise<T>): Promise<T> {
    this.calls.push({ op, tenantId });
    const queued = this.#failures.get(op);
    const err = queued?.shift();
    if (err) throw err;
    return fn(await this.#opening);
  }

  /** The tenants `op` was called for, in order. */
  callsOf(op: KmsOp): Array<string | null> {
    return this.calls.filter((c) => c.op === op).map((c) => c.tenantId);
  }

  createTenantKeys(tenantId: string, tier: Tier, opts?: CallOptions): Promise<TenantKeyInfo> {
    return this.#run("createTenantKeys", tenantId, (e) => e.createTenantKeys(tenantId, tier, opts));
  }
  describeTenant(tenantId: string, opts?: CallOptions): Promise<TenantKeyInfo> {
    return this.#run("describeTenant", tenantId, (e) => e.describeTenant(tenantId, opts));
  }
  getVolumeKey(tenantId: string, opts?: CallOptions): Promise<Buffer> {
    return this.#run("getVolumeKey", tenantId, (e) => e.getVolumeKey(tenantId, opts));
  }
  seal(plaintext: Buffer, ctx: SealContext, opts?: CallOptions): Promise<Buffer> {
    return this.#run("seal", ctx.tenantId, (e) => e.seal(plaintext, ctx, opts));
  }
  unseal(sealed: Buffer, ctx: SealContext, opts?: CallOptions): Promise<Buffer> {
    return this.#run("unseal", ctx.tenantId, (e) => e.unseal(sealed, ctx, opts));
  }
  rotateKek(tenantId: string, opts?: CallOptions): Promise<TenantKeyInfo> {
    return this.#run("rotateKek", tenantId, (e) => e.rotateKek(tenantId, opts));
  }
  rotateStarterKek(opts?: CallOptions): Promise<StarterRotation> {
    return this.#run("rotateStarterKek", null, (e) => e.rotateStarterKek(opts));
  }
  destroyTenant(tenantId: string, opts?: CallOptions): Promise<void> {
    return this.#run("destroyTenant", tenantId, (e) => e.destroyTenant(tenantId, opts));
  }
  audit(query?: AuditQuery, opts?: CallOptions): Promise<AuditEntry[]> {
    return this.#run("audit", query?.tenant ?? null, (e) => e.audit(query, opts));
  }

  async close(): Promise<void> {
    await (await this.#opening).close();
    await rm(this.#dir, { recursive: true, force: true });
    leftAtExit.delete(this.#dir);
  }
}
