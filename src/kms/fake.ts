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

/**
 * A TenantKeyService for tests of its callers: the real key tree (KmsEngine) in a temporary
 * directory, in process, that records every call (tenant and operation, never key material) and
 * fails the calls a test asks it to. close() removes the directory.
 */
export class FakeKeyService implements TenantKeyService {
  readonly calls: { op: KmsOp; tenantId: string | null }[] = [];
  readonly #engine: KmsEngine;
  readonly #dir: string;
  readonly #failures = new Map<KmsOp, Error[]>();

  private constructor(engine: KmsEngine, dir: string) {
    this.#engine = engine;
    this.#dir = dir;
  }

  static async create(): Promise<FakeKeyService> {
    const dir = await mkdtemp(join(tmpdir(), "ck-kms-fake-"));
    return new FakeKeyService(await KmsEngine.open({ dir: join(dir, "store") }), dir);
  }

  /** The next call of `op` throws `err` (queued: call it twice to fail two calls). */
  failNext(op: KmsOp, err: Error): void {
    this.#failures.set(op, [...(this.#failures.get(op) ?? []), err]);
  }

  async #run<T>(op: KmsOp, tenantId: string | null, fn: () => Promise<T>): Promise<T> {
    this.calls.push({ op, tenantId });
    const queued = this.#failures.get(op);
    const err = queued?.shift();
    if (err) throw err;
    return fn();
  }

  createTenantKeys(tenantId: string, tier: Tier, opts?: CallOptions): Promise<TenantKeyInfo> {
    return this.#run("createTenantKeys", tenantId, () => this.#engine.createTenantKeys(tenantId, tier, opts));
  }
  describeTenant(tenantId: string, opts?: CallOptions): Promise<TenantKeyInfo> {
    return this.#run("describeTenant", tenantId, () => this.#engine.describeTenant(tenantId, opts));
  }
  getVolumeKey(tenantId: string, opts?: CallOptions): Promise<Buffer> {
    return this.#run("getVolumeKey", tenantId, () => this.#engine.getVolumeKey(tenantId, opts));
  }
  seal(plaintext: Buffer, ctx: SealContext, opts?: CallOptions): Promise<Buffer> {
    return this.#run("seal", ctx.tenantId, () => this.#engine.seal(plaintext, ctx, opts));
  }
  unseal(sealed: Buffer, ctx: SealContext, opts?: CallOptions): Promise<Buffer> {
    return this.#run("unseal", ctx.tenantId, () => this.#engine.unseal(sealed, ctx, opts));
  }
  rotateKek(tenantId: string, opts?: CallOptions): Promise<TenantKeyInfo> {
    return this.#run("rotateKek", tenantId, () => this.#engine.rotateKek(tenantId, opts));
  }
  rotateStarterKek(opts?: CallOptions): Promise<StarterRotation> {
    return this.#run("rotateStarterKek", null, () => this.#engine.rotateStarterKek(opts));
  }
  destroyTenant(tenantId: string, opts?: CallOptions): Promise<void> {
    return this.#run("destroyTenant", tenantId, () => this.#engine.destroyTenant(tenantId, opts));
  }
  audit(query?: AuditQuery, opts?: CallOptions): Promise<AuditEntry[]> {
    return this.#run("audit", query?.tenant ?? null, () => this.#engine.audit(query, opts));
  }

  async close(): Promise<void> {
    await this.#engine.close();
    await rm(this.#dir, { recursive: true, force: true });
  }
}
