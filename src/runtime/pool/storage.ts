import { chmod, chown, mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { ClawkeepError } from "../../core/errors.ts";
import { parseTenantName } from "../../core/tenant.ts";
import type { LocalVolumes } from "../linux/volume/volume.ts";
import type { InstanceSpec } from "../types.ts";
import { StarterPoolVolumes } from "../volumes/starter-pool.ts";

/**
 * Where Starter pools keep their tenants' data: one volume per pool, bound into the pool at
 * /pool, one 0700 directory per tenant at `<pool dir>/tenants/<name>` under the tenant's uid.
 */
export interface PoolStorage {
  /** Makes (first time) and mounts the pool's volume; returns the host directory bound at /pool. Idempotent. */
  openPool(pool: string, signal?: AbortSignal): Promise<string>;
  /** Unmounts the pool's volume (every tenant directory on it locks). Idempotent. */
  closePool(pool: string, signal?: AbortSignal): Promise<void>;
  /** Removes the pool's volume and everything on it. Idempotent. */
  destroyPool(pool: string, signal?: AbortSignal): Promise<void>;
  /** Makes (first time) and unlocks the tenant's directory, owned by ownerUid, 0700; returns its host path. */
  openTenant(pool: string, spec: InstanceSpec, ownerUid: number, signal?: AbortSignal): Promise<string>;
  /** Locks the tenant's directory; the data stays. Idempotent. */
  closeTenant(pool: string, name: string, signal?: AbortSignal): Promise<void>;
  /** Removes the tenant's directory and its data. Idempotent. */
  destroyTenant(pool: string, name: string, signal?: AbortSignal): Promise<void>;
  /** Host path of the tenant's directory (whether or not it exists). */
  tenantDir(pool: string, name: string): string;
}

const POOL_RE = /^pool-[0-9]{1,5}$/;

export function checkPoolId(pool: string): string {
  if (!POOL_RE.test(pool)) throw new ClawkeepError("invalid_request", `bad pool id ${JSON.stringify(pool)}`);
  return pool;
}

/** Plain directories (no size limit, no encryption): hosts without fscrypt, and tests of the pool itself. */
export class PlainPoolStorage implements PoolStorage {
  constructor(private readonly root: string) {}

  #pool(pool: string): string {
    return join(this.root, checkPoolId(pool));
  }

  tenantDir(pool: string, name: string): string {
    return join(this.#pool(pool), "tenants", parseTenantName(name));
  }

  async openPool(pool: string): Promise<string> {
    await mkdir(this.root, { recursive: true, mode: 0o711 });
    const dir = this.#pool(pool);
    for (const d of [dir, join(dir, "tenants")]) {
      await mkdir(d, { recursive: true, mode: 0o711 });
      await chmod(d, 0o711);
    }
    return dir;
  }

  async closePool(): Promise<void> {}

  async destroyPool(pool: string): Promise<void> {
    await rm(this.#pool(pool), { recursive: true, force: true });
  }

  async openTenant(pool: string, spec: InstanceSpec, ownerUid: number): Promise<string> {
    await this.openPool(pool);
    const dir = this.tenantDir(pool, spec.name);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chown(dir, ownerUid, ownerUid);
    await chmod(dir, 0o700);
    return dir;
  }

  async closeTenant(): Promise<void> {}

  async destroyTenant(pool: string, name: string): Promise<void> {
    await rm(this.tenantDir(pool, name), { recursive: true, force: true });
  }
}

export interface EncryptedPoolStorageOptions {
  volumes: LocalVolumes;
  /** Size of each pool's (sparse) image. */
  sizeBytes: number;
  /** The tenant's own 64-byte key (wrapped under the shared Starter KEK); zeroed once used. */
  volumeKey: (spec: InstanceSpec, signal?: AbortSignal) => Promise<Buffer>;
}

/**
 * One encrypted ext4 image per pool (`<imagesRoot>/starter-<pool>.img`, mounted at
 * `<mountsRoot>/starter-<pool>`), each tenant directory on it under the tenant's own fscrypt key
 * (StarterPoolVolumes): locked whenever the tenant's gateway is stopped.
 */
export class EncryptedPoolStorage implements PoolStorage {
  readonly #o: EncryptedPoolStorageOptions;
  readonly #pools = new Map<string, StarterPoolVolumes>();

  constructor(opts: EncryptedPoolStorageOptions) {
    this.#o = opts;
  }

  paths(pool: string): { image: string; mountpoint: string } {
    const p = checkPoolId(pool);
    return {
      image: join(this.#o.volumes.imagesRoot, `starter-${p}.img`),
      mountpoint: join(this.#o.volumes.mountsRoot, `starter-${p}`),
    };
  }

  #of(pool: string): StarterPoolVolumes {
    let v = this.#pools.get(pool);
    if (!v) {
      const p = this.paths(pool);
      v = new StarterPoolVolumes({
        volumes: this.#o.volumes,
        image: p.image,
        mountpoint: p.mountpoint,
        sizeBytes: this.#o.sizeBytes,
        volumeKey: this.#o.volumeKey,
      });
      this.#pools.set(pool, v);
    }
    return v;
  }

  tenantDir(pool: string, name: string): string {
    return this.#of(pool).dirOf(name);
  }

  async openPool(pool: string, signal?: AbortSignal): Promise<string> {
    const p = this.paths(pool);
    const s = signal ? { signal } : {};
    await this.#o.volumes.createVolume({ image: p.image, sizeBytes: this.#o.sizeBytes, ...s });
    await this.#o.volumes.mountVolume({ image: p.image, mountpoint: p.mountpoint, ...s });
    await chmod(p.mountpoint, 0o711);
    await mkdir(this.#of(pool).tenantsDir, { recursive: true, mode: 0o711 });
    await chmod(this.#of(pool).tenantsDir, 0o711);
    return p.mountpoint;
  }

  async closePool(pool: string, signal?: AbortSignal): Promise<void> {
    await this.#o.volumes.unmountVolume({
      mountpoint: this.paths(pool).mountpoint,
      ...(signal ? { signal } : {}),
    });
  }

  async destroyPool(pool: string, signal?: AbortSignal): Promise<void> {
    const p = this.paths(pool);
    await this.#o.volumes.deleteVolume({
      image: p.image,
      mountpoint: p.mountpoint,
      ...(signal ? { signal } : {}),
    });
    this.#pools.delete(pool);
  }

  async openTenant(
    pool: string,
    spec: InstanceSpec,
    ownerUid: number,
    signal?: AbortSignal,
  ): Promise<string> {
    return this.#of(pool).open(spec, ownerUid, signal);
  }

  async closeTenant(pool: string, name: string): Promise<void> {
    await this.#of(pool).close(name);
  }

  async destroyTenant(pool: string, name: string): Promise<void> {
    await this.#of(pool).destroy(name);
  }
}
