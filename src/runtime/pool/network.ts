import { ClawkeepError } from "../../core/errors.ts";
import { execFile } from "../../lib/exec.ts";
import { checkIpv4, type TenantNet } from "../linux/net/network.ts";

/**
 * The network of Starter pools. A pool hangs off the tenants' bridge like a Premium container
 * (its own network namespace, a veth, the pool's address), and carries one more address per
 * tenant: `tenantAddress(slot)` of the tenant's own slot, so a Starter tenant's URL is
 * `http://<its address>:<gatewayPort>` exactly as a Premium tenant's, wherever it is placed.
 *
 * Inside the pool's namespace a small ruleset of its own (renderPoolNetns):
 * - DNAT: `<tenant address>:<gatewayPort>` -> `<tenant address>:<tenant port>` (each gateway
 *   listens on a port of its own inside the pool);
 * - SNAT by uid: what a tenant's uid sends out leaves with the tenant's address, so the egress
 *   proxy (which tells tenants apart by source address) logs, counts and filters per tenant;
 * - input from the bridge only to DNATed gateway connections;
 * - output: a new TCP connection to a tenant's port range from any other uid is reset (one
 *   tenant cannot even reach a neighbour's gateway from inside the pool).
 * `meta skuid` inside the pool's namespace sees the pool's container uids (the namespace is
 * owned by the pool's user namespace).
 */

/**
 * A member of the tenants' bridge: a Premium container (one address) or a pool (several). The
 * one bridge ruleset (network.ts's renderRuleset) renders both.
 */
export type BridgeMember = TenantNet;
export { checkIpv4, renderRuleset as renderBridgeRuleset } from "../linux/net/network.ts";

/** One tenant as the pool's own ruleset sees it. */
export interface PoolTenantNet {
  /** The tenant's own address (tenantAddress of its slot). */
  address: string;
  /** Container uid of the tenant's processes inside the pool. */
  uid: number;
  /** First port of the tenant's range; its gateway listens on it. */
  port: number;
  /** How many ports from `port` on belong to the tenant (OpenClaw derives ports from its own). */
  portSpan: number;
}

export const POOL_NFT_TABLE = "clawkeep_pool";

/** The ruleset inside one pool's network namespace (see the top of this file). Pure. */
export function renderPoolNetns(opts: {
  /** The port the control plane and the edge connect to, on every tenant's address. */
  publicPort: number;
  tenants: readonly PoolTenantNet[];
}): string {
  const ports = new Set<number>();
  for (const t of opts.tenants) {
    checkIpv4(t.address);
    for (const [what, v, max] of [
      ["uid", t.uid, 2 ** 31],
      ["port", t.port, 65535],
      ["port span", t.portSpan, 1000],
    ] as const) {
      if (!Number.isInteger(v) || v < 1 || v > max)
        throw new ClawkeepError("invalid_request", `bad ${what} ${v}`);
    }
    if (t.port + t.portSpan - 1 > 65535)
      throw new ClawkeepError("invalid_request", `port range of ${t.address} ends past 65535`);
    for (let p = t.port; p < t.port + t.portSpan; p++) {
      if (ports.has(p)) throw new ClawkeepError("invalid_request", `port ${p} belongs to two tenants`);
      ports.add(p);
    }
    if (opts.publicPort >= t.port && opts.publicPort < t.port + t.portSpan)
      throw new ClawkeepError(
        "invalid_request",
        `the public port ${opts.publicPort} lies in a tenant's range`,
      );
  }
  const range = (t: PoolTenantNet) =>
    t.portSpan === 1 ? `${t.port}` : `${t.port}-${t.port + t.portSpan - 1}`;
  const dnat = opts.tenants
    .map(
      (t) =>
        `    iifname "eth0" ip daddr ${t.address} tcp dport ${opts.publicPort} counter dnat ip to ${t.address}:${t.port}`,
    )
    .join("\n");
  const snat = opts.tenants
    .map((t) => `    oifname "eth0" meta skuid ${t.uid} counter snat ip to ${t.address}`)
    .join("\n");
  const guard = opts.tenants
    .map((t) => `    tcp dport ${range(t)} meta skuid != ${t.uid} ct state new counter reject with tcp reset`)
    .join("\n");
  return `# clawkeep pool network namespace: rendered by clawkeep, applied atomically; do not edit.
table inet ${POOL_NFT_TABLE} {}
delete table inet ${POOL_NFT_TABLE}
table inet ${POOL_NFT_TABLE} {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
${dnat || "    # no tenants"}
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
${snat || "    # no tenants"}
  }
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "eth0" ct state established,related accept
    iifname "eth0" ct status dnat ct state new counter accept
    iifname "eth0" counter drop
  }
  chain output {
    type filter hook output priority filter; policy accept;
    ct state established,related accept
    tcp dport ${opts.publicPort} oifname "lo" counter reject with tcp reset
${guard || "    # no tenants"}
  }
}
`;
}

/** Applies a pool's own ruleset and addresses inside its named network namespace. */
export async function applyPoolNetns(
  netns: string,
  addresses: readonly string[],
  ruleset: string,
  opts: { bridge: string; signal?: AbortSignal },
): Promise<void> {
  if (!/^[a-z0-9-]{1,32}$/.test(netns)) throw new ClawkeepError("invalid_request", `bad netns name ${netns}`);
  if (!/^[a-z][a-z0-9-]{0,14}$/.test(opts.bridge))
    throw new ClawkeepError("invalid_request", `bad bridge name ${JSON.stringify(opts.bridge)}`);
  const signal = opts.signal;
  const s = signal ? { signal } : {};
  const have = await execFile(["ip", "-n", netns, "-o", "-4", "addr", "show", "dev", "eth0"], s);
  const present = new Set([...have.matchAll(/inet (\d+\.\d+\.\d+\.\d+)\/32/g)].map((m) => m[1]!));
  const want = new Set(addresses.map(checkIpv4));
  const batch = [
    ...[...want].filter((a) => !present.has(a)).map((a) => `addr add ${a}/32 dev eth0`),
    ...[...present].filter((a) => !want.has(a)).map((a) => `addr del ${a}/32 dev eth0`),
  ];
  if (batch.length)
    await execFile(["ip", "-n", netns, "-batch", "-"], { input: `${batch.join("\n")}\n`, ...s });
  // An address that moved here from another pool: the host forgets the old pool's MAC for it.
  for (const a of want) {
    if (!present.has(a))
      await execFile(["ip", "neigh", "flush", "to", a, "dev", opts.bridge], s).catch(() => {});
  }
  await execFile(["ip", "netns", "exec", netns, "nft", "-f", "-"], { input: ruleset, ...s });
}

export { NetworkMembers } from "../linux/net/members.ts";
