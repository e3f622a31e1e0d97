import { chmod, chown, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { parseTenantName } from "../../core/tenant.ts";
import { VolumeNotMountedError } from "../linux/volume/errors.ts";
import type { LocalVolumes } from "../linux/volume/volume.ts";
import type { InstanceSpec } from "../types.ts";
import type { TenantVolumes } from "./types.ts";

export interface StarterPoolVolumesOptions {
  volumes: LocalVolumes;
  /** The shared pool image and where it is mounted. */
  image: string;
  mountpoint: string;
  sizeBytes: number;
  /**
   * The tenant's own 64-byte volume key (wrapped under the shared Starter KEK in the key
   * service). Zeroed as soon as the kernel has it.
   */
  volumeKey: (spec: InstanceSpec, signal?: AbortSignal) => Promise<Buffer>;
}

/**
 * Starter: one shared, encrypted pool volume; each tenant's directory on it is 0700 under the
 * tenant's uid and carries its own fscrypt policy with its own key. Sharing the volume is what
 * Starter promises; a key per directory means deleting a tenant (destroying its key in the key
 * service) shreds its data, and locking one tenant leaves the others readable.
 */
export class StarterPoolVolumes implements TenantVolumes {
  readonly #o: StarterPoolVolumesOptions;

  constructor(opts: StarterPoolVolumesOptions) {
    this.#o = opts;
  }

  /** Parent of the tenants' directories (unencrypted, root-owned, 0711). */
  get tenantsDir(): string {
    return join(this.#o.mountpoint, "tenants");
  }

  dirOf(name: string): string {
    return join(this.tenantsDir, parseTenantName(name));
  }

  async #mount(signal?: AbortSignal): Promise<void> {
    const v = this.#o.volumes;
    const s = signal ? { signal } : {};
    await v.createVolume({ image: this.#o.image, sizeBytes: this.#o.sizeBytes, ...s });
    await v.mountVolume({ image: this.#o.image, mountpoint: this.#o.mountpoint, ...s });
    await chmod(this.#o.mountpoint, 0o711);
    await mkdir(this.tenantsDir, { recursive: true, mode: 0o711 });
    await chmod(this.tenantsDir, 0o711);
  }

  async open(spec: InstanceSpec, ownerUid: number, signal?: AbortSignal): Promise<string> {
    await this.#mount(signal);
    const dir = this.dirOf(spec.name);
    const key = await this.#o.volumeKey(spec, signal);
    try {
      await this.#o.volumes.unlockDir({
        mountpoint: this.#o.mountpoint,
        dir,
        key,
        mode: 0o700,
        ...(signal ? { signal } : {}),
      });
    } finally {
      key.fill(0);
    }
    await chown(dir, ownerUid, ownerUid);
    await chmod(dir, 0o700);
    return dir;
  }

  async close(name: string): Promise<void> {
    const policy = await this.#o.volumes
      .policyOf({ mountpoint: this.#o.mountpoint, dir: this.dirOf(name) })
      .catch(() => null);
    if (policy)
      await this.#o.volumes.lockDir({ mountpoint: this.#o.mountpoint, keyIdentifier: policy.keyIdentifier });
  }

  async destroy(name: string): Promise<void> {
    await this.close(name).catch(() => {});
    await this.#o.volumes
      .removeTenantDir({ mountpoint: this.#o.mountpoint, parent: this.tenantsDir, name })
      .catch((err: unknown) => {
        // Not mounted: nothing of the tenant can be on it.
        if (!(err instanceof VolumeNotMountedError)) throw err;
      });
  }

  /** Unmounts the pool (every tenant directory on it gets locked). For shutdown and tests. */
  async unmount(): Promise<void> {
    await this.#o.volumes.unmountVolume({ mountpoint: this.#o.mountpoint });
  }
}
