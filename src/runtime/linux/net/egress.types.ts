/**
 * Tells the egress proxy which tenant sits behind which address and what it may reach: the
 * drivers' handle on the proxy. The composition root (runtime/sandbox.ts) implements it over the
 * running proxy; NetworkMembers calls it whenever the bridge's members change.
 */
export interface EgressRegistry {
  /** The proxy URL tenants are given (HTTPS_PROXY), or null when none runs. */
  readonly proxyUrl: string | null;
  setTenants(tenants: Array<{ tenant: string; address: string; airGapped: boolean }>): Promise<void>;
}
