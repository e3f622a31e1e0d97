import { chmod, chown } from "node:fs/promises";
import { join } from "node:path";
import { parseTenantName } from "../../core/tenant.ts";
import { isMountPoint } from "../linux/volume/mounts.ts";
import type { LocalVolumes } from "../linux/volume/volume.ts";
import type { InstanceSpec } from "../types.ts";
import type { TenantVolumes } from "./types.ts";

export interface EncryptedTenantVolumesOptions {
  volumes: LocalVolumes;
  /**
   * The tenant's 64-byte fscrypt volume key, unwrapped by the key service. Called on every
   * open; the buffer is zeroed as soon as the kernel has it.
   */
  volumeKey: (spec: InstanceSpec, signal?: AbortSignal) => Promise<Buffer>;
  /** Preallocate each image (see CreateVolumeInput.preallocate). */
  preallocate?: boolean;
}

/**
 * TenantVolumes for dedicated tenants (Premium, Enterprise): one encrypted image per tenant,
 * `<imagesRoot>/<name>.img` of the plan's volumeBytes, mounted at `<mountsRoot>/<name>`, data in
 * `<mountsRoot>/<name>/data` (0700, owned by the tenant's uid) under the tenant's own key.
 * close() locks the key and unmounts; the key identifier is read back from the directory's
 * policy, so nothing needs remembering across restarts.
 */
export class EncryptedTenantVolumes implements TenantVolumes {
  readonly #o: EncryptedTenantVolumesOptions;

  constructor(opts: EncryptedTenantVolumesOptions) {
    this.#o = opts;
  }

  paths(name: string): { image: string; mountpoint: string; data: string } {
    const n = parseTenantName(name);
    const mountpoint = join(this.#o.volumes.mountsRoot, n);
    return {
      image: join(this.#o.volumes.imagesRoot, `${n}.img`),
      mountpoint,
      data: join(mountpoint, "data"),
    };
  }

  async open(spec: InstanceSpec, ownerUid: number, signal?: AbortSignal): Promise<string> {
    const p = this.paths(spec.name);
    const v = this.#o.volumes;
    await v.createVolume({
      image: p.image,
      sizeBytes: spec.plan.volumeBytes,
      ...(this.#o.preallocate ? { preallocate: true } : {}),
      ...(signal ? { signal } : {}),
    });
    await v.mountVolume({ image: p.image, mountpoint: p.mountpoint, ...(signal ? { signal } : {}) });
    const key = await this.#o.volumeKey(spec, signal);
    try {
      await v.unlockDir({ mountpoint: p.mountpoint, dir: p.data, key });
    } finally {
      key.fill(0);
    }
    await chown(p.data, ownerUid, ownerUid);
    await chmod(p.data, 0o700);
    return p.data;
  }

  async close(name: string, signal?: AbortSignal): Promise<void> {
    const p = this.paths(name);
    const keyIdentifiers = await this.#keysOf(p);
    await this.#o.volumes.closeVolume({
      mountpoint: p.mountpoint,
      keyIdentifiers,
      ...(signal ? { signal } : {}),
    });
  }

  async destroy(name: string, signal?: AbortSignal): Promise<void> {
    await this.close(name, signal);
    const p = this.paths(name);
    await this.#o.volumes.deleteVolume({
      image: p.image,
      mountpoint: p.mountpoint,
      ...(signal ? { signal } : {}),
    });
  }

  async #keysOf(p: { mountpoint: string; data: string }): Promise<string[]> {
    if (!(await isMountPoint(p.mountpoint))) return [];
    const policy = await this.#o.volumes.policyOf({ mountpoint: p.mountpoint, dir: p.data });
    return policy ? [policy.keyIdentifier] : [];
  }
}
