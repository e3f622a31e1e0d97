import type { Tier } from "../core/tenant.ts";
import type { KeyService, SealContext } from "./types.ts";

/**
 * The isolated key service's contract: KeyService (seal/unseal/destroyTenant/close) plus the
 * tenant key tree. Implemented in process by KmsEngine (engine.ts) and over the unix socket by
 * KmsClient (client.ts); both pass the suite in conformance.ts.
 *
 *   root key (32 bytes, file 0400) -> KEK (one per Premium/Enterprise tenant; one shared Starter KEK)
 *     -> data keys: volume key (64 bytes, fscrypt) and secrets key (32 bytes, AES-256-GCM seal/unseal)
 *
 * Only wrapped keys are stored. Every call is audited (never with key material).
 */
export interface TenantKeyService extends KeyService {
  /**
   * Creates the tenant's key tree. Idempotent: calling it again for the same tier returns the
   * existing keys. Throws KmsError reason `tier_conflict` when the tenant has keys for a tier with
   * another kind of KEK, `tenant_destroyed` when the tenant id was crypto-shredded.
   */
  createTenantKeys(tenantId: string, tier: Tier, opts?: CallOptions): Promise<TenantKeyInfo>;
  /** Key ids and versions of a tenant (no key material). Throws `unknown_tenant` when it has none. */
  describeTenant(tenantId: string, opts?: CallOptions): Promise<TenantKeyInfo>;
  /**
   * The tenant's 64-byte fscrypt volume key, unwrapped. The caller owns the buffer and must zero it
   * (`key.fill(0)`) as soon as the kernel has it.
   */
  getVolumeKey(tenantId: string, opts?: CallOptions): Promise<Buffer>;
  seal(plaintext: Buffer, ctx: SealContext, opts?: CallOptions): Promise<Buffer>;
  unseal(sealed: Buffer, ctx: SealContext, opts?: CallOptions): Promise<Buffer>;
  /**
   * Replaces a Premium/Enterprise tenant's KEK with a new version and re-wraps its data keys; the
   * old KEK is destroyed. Data keys and everything sealed with them are untouched. Throws
   * `shared_kek` for a Starter tenant (use rotateStarterKek).
   */
  rotateKek(tenantId: string, opts?: CallOptions): Promise<TenantKeyInfo>;
  /** Replaces the shared Starter KEK and re-wraps every Starter tenant's data keys under it. */
  rotateStarterKek(opts?: CallOptions): Promise<StarterRotation>;
  /**
   * Crypto-shredding: destroys the tenant's KEK (Premium/Enterprise) and its wrapped data keys,
   * leaving a tombstone. Afterwards nothing can unwrap them: getVolumeKey, seal and unseal fail
   * with `tenant_destroyed`. Idempotent; destroying an unknown tenant is not an error.
   */
  destroyTenant(tenantId: string, opts?: CallOptions): Promise<void>;
  /** The newest audit entries, oldest first. */
  audit(query?: AuditQuery, opts?: CallOptions): Promise<AuditEntry[]>;
}

export interface CallOptions {
  signal?: AbortSignal;
}

export type KekScope = "tenant" | "starter";

export interface TenantKeyInfo {
  tenantId: string;
  tier: Tier;
  /** Which KEK wraps the data keys: the tenant's own, or the shared Starter KEK. */
  kek: { scope: KekScope; id: string; version: number };
  volumeKey: { id: string; version: number };
  /** The secrets key new seals use. */
  secretsKey: { id: string; version: number };
  createdAt: string;
}

export interface StarterRotation {
  kek: { id: string; version: number };
  /** Starter tenants whose data keys were re-wrapped. */
  rewrapped: number;
}

/** Who made a call: the peer's uid and pid (SO_PEERCRED), or "socket" when those are unknown. */
export type AuditCaller = { uid: number; pid: number } | "socket" | "in-process";

/** One line of the append-only audit log. Never holds key material or plaintext. */
export interface AuditEntry {
  time: string;
  caller: AuditCaller;
  tenant: string | null;
  op: string;
  keyId: string | null;
  ok: boolean;
  error?: string;
}

export interface AuditQuery {
  tenant?: string;
  /** At most this many of the newest entries (default 1000). */
  limit?: number;
}

/** What the service says about itself on GET /v1/health. */
export interface KmsHealth {
  ok: true;
  pid: number;
  rootKeyId: string;
  /** Whether callers are identified by SO_PEERCRED (uid/pid) or only by the socket's permissions. */
  peerCredentials: boolean;
}

export interface KmsServeOptions {
  /** The service's own store directory (created 0700). Never the control plane's database directory. */
  dir: string;
  /** The unix socket to listen on (0600), in a directory the service makes 0700. */
  socket: string;
  /** An operator-supplied root key file (0400/0600, 32 bytes). Default: `<dir>/root.key`, created on first init. */
  rootKeyPath?: string;
  /** Default: `<dir>/audit.log`. */
  auditPath?: string;
  /** Uids allowed to call (checked by SO_PEERCRED when available). Default: the service's own uid. */
  allowedUids?: number[];
  signal?: AbortSignal;
}
