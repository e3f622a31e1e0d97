import { createHash, randomBytes } from "node:crypto";
import { ClawkeepError } from "../core/errors.ts";
import { Secret } from "../core/secret.ts";
import type { KeyService } from "../kms/types.ts";
import type { TenantStore } from "../store/tenants.ts";

/** The purpose a tenant's relay credential (virtual key) is sealed under. */
export const VIRTUAL_KEY_PURPOSE = "llm-virtual-key";
/** The purpose a tenant's own provider key (bring your own key) is sealed under. */
export const OWN_KEY_PURPOSE = "llm-own-key";

/** A new virtual key: `ckv_` and 32 random bytes, base64url (47 characters). */
export function newVirtualKey(): string {
  return `ckv_${randomBytes(32).toString("base64url")}`;
}

/** The value sealed under the tenant's key for `purpose`; the plaintext buffer is zeroed after. */
export async function sealFor(
  kms: KeyService,
  tenantId: string,
  purpose: string,
  value: string,
): Promise<Buffer> {
  const plain = Buffer.from(value, "utf8");
  try {
    return await kms.seal(plain, { tenantId, purpose });
  } finally {
    plain.fill(0);
  }
}

/** Unseals a tenant's value for `purpose` and hands the plaintext to `use`; the buffer is zeroed after. */
async function withPlaintext<T>(
  kms: KeyService,
  tenantId: string,
  purpose: string,
  sealed: Buffer,
  use: (plain: Buffer) => T,
): Promise<T> {
  const raw = await kms.unseal(sealed, { tenantId, purpose });
  try {
    return use(raw);
  } finally {
    raw.fill(0);
  }
}

/** Unseals a tenant's value for `purpose` as a Secret; the plaintext buffer is zeroed. */
export function unsealSecret(
  kms: KeyService,
  tenantId: string,
  purpose: string,
  sealed: Buffer,
): Promise<Secret> {
  return withPlaintext(kms, tenantId, purpose, sealed, (raw) => new Secret(raw.toString("utf8")));
}

/** The sha256 hex of a sealed value's plaintext (the relay's key hash); the buffer is zeroed. */
export function sealedHash(
  kms: KeyService,
  tenantId: string,
  purpose: string,
  sealed: Buffer,
): Promise<string> {
  return withPlaintext(kms, tenantId, purpose, sealed, (raw) =>
    createHash("sha256").update(raw).digest("hex"),
  );
}

/**
 * The tenant's virtual key, unsealed. A tenant without one (created before the relay) gets one
 * now, sealed and stored: `created` says so, and the caller tells the relay.
 */
export async function virtualKeyFor(
  deps: { store: TenantStore; kms: KeyService; now: number },
  tenant: { id: string; name: string },
): Promise<{ key: Secret; created: boolean }> {
  const sealed = deps.store.getSecret(tenant.id, VIRTUAL_KEY_PURPOSE);
  if (sealed)
    return { key: await unsealSecret(deps.kms, tenant.id, VIRTUAL_KEY_PURPOSE, sealed), created: false };
  const key = newVirtualKey();
  const fresh = await sealFor(deps.kms, tenant.id, VIRTUAL_KEY_PURPOSE, key);
  if (!deps.store.getById(tenant.id))
    throw new ClawkeepError("not_found", `tenant ${tenant.name} was deleted meanwhile`);
  deps.store.putSecret(tenant.id, VIRTUAL_KEY_PURPOSE, fresh, deps.now);
  deps.store.addEvent(tenant.id, "llm_key_created", "LLM relay key made (the tenant had none)", deps.now);
  return { key: new Secret(key), created: true };
}
