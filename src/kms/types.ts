/**
 * The key-service contract. Callers seal and unseal small secrets (gateway tokens, provider
 * keys) bound to a tenant and a purpose; they never see a key. The local implementation reads a
 * root key file; a later one talks to the isolated key service process. Callers do not change.
 */
export interface SealContext {
  tenantId: string;
  /** What the secret is for, e.g. "gateway-token". Bound into the ciphertext. */
  purpose: string;
}

export interface KeyService {
  /** Encrypts with AES-256-GCM; the result names the key that sealed it. */
  seal(plaintext: Buffer, ctx: SealContext): Promise<Buffer>;
  /**
   * Decrypts a value sealed for exactly this context. Throws KmsError (code kms_failed) when the
   * data is truncated, was sealed for another tenant or purpose, or names an unknown key.
   */
  unseal(sealed: Buffer, ctx: SealContext): Promise<Buffer>;
  /** Forgets everything the service holds for a tenant; sealed values for it become undecryptable. */
  destroyTenant(tenantId: string): Promise<void>;
  close(): Promise<void>;
}
