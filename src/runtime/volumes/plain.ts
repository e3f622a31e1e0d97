import { chown, mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { parseTenantName } from "../../core/tenant.ts";
import type { InstanceSpec } from "../types.ts";
import type { TenantVolumes } from "./types.ts";

/**
 * Tenant data in plain host directories (0700, owned by the tenant's mapped uid). No size limit
 * and no encryption: for hosts without fscrypt and for tests of the container itself.
 */
export class PlainVolumes implements TenantVolumes {
  constructor(private readonly root: string) {}

  async open(spec: InstanceSpec, ownerUid: number): Promise<string> {
    await mkdir(this.root, { recursive: true, mode: 0o711 });
    const dir = join(this.root, parseTenantName(spec.name));
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chown(dir, ownerUid, ownerUid);
    return dir;
  }

  async close(): Promise<void> {}

  async destroy(name: string): Promise<void> {
    await rm(join(this.root, parseTenantName(name)), { recursive: true, force: true });
  }
}
