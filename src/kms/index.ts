/** The key service's public surface, for the control plane and the CLI. */
import type { Tier } from "../core/tenant.ts";
import type { TenantKeyInfo, TenantKeyService } from "./service.types.ts";
import type { KeyService } from "./types.ts";

export { defaultKmsPaths, registerKmsCommands } from "./cli.ts";
export { KmsClient } from "./client.ts";
export { KmsEngine } from "./engine.ts";
export { KmsError, type KmsFailure } from "./errors.ts";
export { FakeKeyService } from "./fake.ts";
export { type KmsServer, serveKms } from "./server.ts";
export type * from "./service.types.ts";
export { type KmsProcess, type KmsProcessOptions, startKmsProcess } from "./supervisor.ts";

/** Whether `k` is a key service with a key tree (the isolated service, its client, the engine, the fake). */
export function isTenantKeyService(k: KeyService): k is TenantKeyService {
  return typeof (k as Partial<TenantKeyService>).createTenantKeys === "function";
}

/**
 * Creates the tenant's key tree when `kms` has one (idempotent), so callers typed as KeyService
 * work with LocalKeyService (no tree: returns null) and with the isolated service alike.
 */
export async function ensureTenantKeys(
  kms: KeyService,
  tenantId: string,
  tier: Tier,
): Promise<TenantKeyInfo | null> {
  return isTenantKeyService(kms) ? kms.createTenantKeys(tenantId, tier) : null;
}
