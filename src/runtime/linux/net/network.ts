import { createHash } from "node:crypto";
import { ClawkeepError } from "../../../core/errors.ts";
import { execFile } from "../../../lib/exec.ts";

/**
 * The tenants' network: one host bridge, one network namespace + veth per tenant, addresses from a
 * range that exists only inside the namespaces clawkeep creates, and one nftables ruleset for all
 * of them, rendered as text and applied in one atomic `nft -f` transaction.
 *
 * What the ruleset promises:
 * - no tenant-to-tenant traffic, bridged or routed;
 * - anti-spoofing: a tenant's veth accepts only its own IPv4 source (and ARP for it), no IPv6;
 * - a tenant may reach only the egress proxy port on the host's bridge address; air-gapped
 *   (Enterprise) tenants may not even reach that;
 * - only the listed uids (the edge's, and root for the control plane's health probes) may open
 *   connections to a tenant's gateway port; nothing else goes in or out.
 */
export interface TenantNet {
  name: string;
  slot: number;
  airGapped: boolean;
  /** Addresses besides tenantAddress(slot) the member's veth may send from (a Starter pool's tenants). */
  extraAddresses?: readonly string[];
}

const IPV4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function checkIpv4(a: string): string {
  const m = IPV4_RE.exec(a);
  if (!m || m.slice(1).some((x) => Number(x) > 255)) {
    throw new ClawkeepError("invalid_request", `bad IPv4 address ${JSON.stringify(a)}`);
  }
  return a;
}

function addressesOf(c: NetworkConfig, t: TenantNet): string[] {
  return [tenantAddress(c, t.slot), ...(t.extraAddresses ?? []).map(checkIpv4)];
}

export interface NetworkConfig {
  bridge: string;
  /** First two octets of the /16 the tenants live in, e.g. "198.19". */
  prefix16: string;
  egressPort: number;
  gatewayPort: number;
  /** uids allowed to connect to tenants' gateway ports. */
  allowedUids: number[];
  /** nftables table name (in the inet and bridge families). */
  table: string;
}

export const DEFAULT_NETWORK: NetworkConfig = {
  bridge: "ckbr0",
  prefix16: "198.19",
  egressPort: 3128,
  gatewayPort: 18789,
  allowedUids: [0],
  table: "clawkeep",
};

const IFNAME_RE = /^[a-z][a-z0-9-]{0,14}$/;
const PREFIX_RE = /^(\d{1,3})\.(\d{1,3})$/;
export const MAX_NET_SLOTS = 65_000;

function checkConfig(c: NetworkConfig): void {
  if (!IFNAME_RE.test(c.bridge))
    throw new ClawkeepError("invalid_request", `bad bridge name ${JSON.stringify(c.bridge)}`);
  if (!/^[a-z][a-z0-9_]{0,30}$/.test(c.table))
    throw new ClawkeepError("invalid_request", `bad nft table name ${JSON.stringify(c.table)}`);
  const m = PREFIX_RE.exec(c.prefix16);
  if (!m || Number(m[1]) > 255 || Number(m[2]) > 255) {
    throw new ClawkeepError("invalid_request", `bad address prefix ${JSON.stringify(c.prefix16)}`);
  }
  for (const p of [c.egressPort, c.gatewayPort]) {
    if (!Number.isInteger(p) || p < 1 || p > 65535)
      throw new ClawkeepError("invalid_request", `bad port ${p}`);
  }
  for (const u of c.allowedUids) {
    if (!Number.isInteger(u) || u < 0) throw new ClawkeepError("invalid_request", `bad uid ${u}`);
  }
}

function checkSlot(slot: number): void {
  if (!Number.isInteger(slot) || slot < 0 || slot >= MAX_NET_SLOTS) {
    throw new ClawkeepError("invalid_request", `network slot ${slot} is out of range`);
  }
}

export function hostAddress(c: NetworkConfig): string {
  return `${c.prefix16}.0.1`;
}

/**
 * The edge's own source address on the bridge (nginx proxy_bind): gateways trust only it as their
 * proxy, so the control plane's direct connections (from hostAddress) are never taken for
 * proxied traffic that lost its client address.
 */
export function edgeAddress(c: NetworkConfig): string {
  return `${c.prefix16}.0.2`;
}

/** A tenant's address: slot 0 is .0.10, counting up through the /16. */
export function tenantAddress(c: NetworkConfig, slot: number): string {
  checkSlot(slot);
  const n = 10 + slot;
  return `${c.prefix16}.${n >> 8}.${n & 255}`;
}

/** Host-side veth of a tenant (the tenant side is eth0 inside its namespace). */
export function hostIf(slot: number): string {
  checkSlot(slot);
  return `ckv${slot}`;
}

export function netnsName(slot: number): string {
  checkSlot(slot);
  return `ck-${slot}`;
}

/**
 * The whole ruleset, replacing any earlier clawkeep tables in one transaction. Pure.
 *
 * Besides its verdicts it counts what each member's veth sends, before any verdict, in two named
 * counters of the bridge table (applying the ruleset again starts them from zero):
 * - `ckv<slot>_gateway`: IPv4 from its gateway port to the host's or the edge's address (answers
 *   to the control plane and the edge);
 * - `ckv<slot>_other`: everything else it sends except ARP about those addresses: connections
 *   to the egress proxy, probes, anything at all to another address. An air-gapped tenant's
 *   stays at zero while it serves chats.
 */
export function renderRuleset(c: NetworkConfig, tenants: readonly TenantNet[]): string {
  checkConfig(c);
  const br = JSON.stringify(c.bridge);
  const host = hostAddress(c);
  const edge = edgeAddress(c);
  const all = tenants.flatMap((t) => addressesOf(c, t));
  const gapped = tenants.filter((t) => t.airGapped).flatMap((t) => addressesOf(c, t));
  const elements = (xs: string[]) => (xs.length ? ` elements = { ${xs.join(", ")} };` : "");
  const one = (xs: string[]) => (xs.length === 1 ? xs[0]! : `{ ${xs.join(", ")} }`);
  // Tenant-to-tenant drop names this ruleset's own ports, so rulesets of other bridges (another
  // clawkeep, a test) never touch each other's traffic.
  const ports = tenants.map((t) => JSON.stringify(hostIf(t.slot))).join(", ");
  const spoof = tenants
    .map((t) => {
      const ifn = JSON.stringify(hostIf(t.slot));
      const ips = one(addressesOf(c, t));
      return [
        `    iifname ${ifn} ether type != { ip, arp } counter drop`,
        `    iifname ${ifn} ether type ip ip saddr != ${ips} counter drop`,
        `    iifname ${ifn} ether type arp arp saddr ip != ${ips} counter drop`,
      ].join("\n");
    })
    .join("\n");
  const counters = tenants
    .map((t) => `  counter ${hostIf(t.slot)}_gateway {}\n  counter ${hostIf(t.slot)}_other {}`)
    .join("\n");
  const tally = tenants
    .map((t) => {
      const ifn = JSON.stringify(hostIf(t.slot));
      return [
        `    iifname ${ifn} ether type ip ip daddr { ${host}, ${edge} } tcp sport ${c.gatewayPort} counter name "${hostIf(t.slot)}_gateway" return`,
        `    iifname ${ifn} ether type arp arp daddr ip { ${host}, ${edge} } return`,
        `    iifname ${ifn} counter name "${hostIf(t.slot)}_other" return`,
      ].join("\n");
    })
    .join("\n");
  return `# clawkeep tenant network: rendered by clawkeep, applied atomically; do not edit.
table inet ${c.table} {}
delete table inet ${c.table}
table inet ${c.table} {
  set tenants { type ipv4_addr;${elements(all)} }
  set airgapped { type ipv4_addr;${elements(gapped)} }
  chain input {
    type filter hook input priority filter; policy accept;
    iifname ${br} ct state established,related accept
    iifname ${br} ip saddr @airgapped counter drop
    iifname ${br} ip saddr @tenants ip daddr ${host} tcp dport ${c.egressPort} ct state new counter accept
    iifname ${br} counter drop
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname ${br} counter drop
    oifname ${br} counter drop
  }
  chain output {
    type filter hook output priority filter; policy accept;
    oifname ${br} ct state established,related accept
    oifname ${br} ip daddr @tenants tcp dport ${c.gatewayPort} meta skuid { ${c.allowedUids.join(", ")} } ct state new counter accept
    oifname ${br} counter drop
  }
}
table bridge ${c.table} {}
delete table bridge ${c.table}
table bridge ${c.table} {
${counters ? `${counters}\n` : ""}  chain tally {
${tally || "    # no tenants"}
  }
  chain prerouting {
    type filter hook prerouting priority -200; policy accept;
${ports ? `    iifname { ${ports} } jump tally\n` : ""}${spoof || "    # no tenants"}
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
${ports ? `    iifname { ${ports} } oifname { ${ports} } counter drop` : "    # no tenants"}
  }
}
`;
}

export async function applyRuleset(text: string, signal?: AbortSignal): Promise<void> {
  await execFile(["nft", "-f", "-"], { input: text, ...(signal ? { signal } : {}) });
}

/** Removes clawkeep's tables. Idempotent. */
export async function removeRuleset(c: NetworkConfig): Promise<void> {
  checkConfig(c);
  await applyRuleset(
    `table inet ${c.table} {}\ndelete table inet ${c.table}\ntable bridge ${c.table} {}\ndelete table bridge ${c.table}\n`,
  );
}

async function linkExists(name: string): Promise<boolean> {
  try {
    await execFile(["ip", "link", "show", "dev", name]);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether an IPv4 route destination ("a.b.c.d/len", or a bare address for a /32) lies inside the
 * tenants' /16: as specific as it or more, so the kernel would pick it over the bridge's own route.
 */
export function routeInTenantRange(c: NetworkConfig, dst: string): boolean {
  const [addr, len] = dst.split("/");
  const m = IPV4_RE.exec(addr ?? "");
  if (!m) return false;
  const bits = len === undefined ? 32 : Number(len);
  return bits >= 16 && `${m[1]}.${m[2]}` === c.prefix16;
}

/**
 * Refuses a tenants' range that something else on the host already routes (another bridge on the
 * same /16, a test network left behind by a killed run): replies to the tenants would leave by the
 * other interface and every connection would time out in silence. Says which interface has it.
 */
export async function checkRangeFree(c: NetworkConfig): Promise<void> {
  checkConfig(c);
  const routes = JSON.parse(await execFile(["ip", "-j", "-4", "route", "show", "table", "all"])) as Array<{
    dst?: string;
    dev?: string;
  }>;
  const clash = routes.find((r) => r.dev && r.dev !== c.bridge && r.dst && routeInTenantRange(c, r.dst));
  if (clash) {
    throw new ClawkeepError(
      "conflict",
      `the tenants' range ${c.prefix16}.0.0/16 is already routed to ${clash.dev} (${clash.dst}), not to ${c.bridge}: remove that interface or choose another CLAWKEEP_TENANT_NET_PREFIX`,
    );
  }
}

/**
 * Creates the host bridge with the host's address in the tenants' range. Idempotent. Refuses a
 * range another interface already has (checkRangeFree).
 */
/**
 * The bridge's own MAC address: locally administered, unicast, derived from its name, so it is the
 * same across control plane restarts. Without one of its own a Linux bridge takes the lowest MAC
 * of its ports, and changes it when that port leaves: every tenant's ARP entry for the host then
 * points nowhere, and their new connections to the egress proxy (and so the LLM relay) hang until
 * it expires (seen: a Premium tenant's delete cut a Starter neighbour off for more than 10 s). Pure.
 */
export function bridgeMac(bridge: string): string {
  const h = createHash("sha256").update(`clawkeep-bridge:${bridge}`).digest();
  const bytes = [0x02, h[0]!, h[1]!, h[2]!, h[3]!, h[4]!];
  return bytes.map((b) => b.toString(16).padStart(2, "0")).join(":");
}

export async function ensureBridge(c: NetworkConfig): Promise<void> {
  checkConfig(c);
  await checkRangeFree(c);
  if (!(await linkExists(c.bridge))) {
    await execFile(["ip", "link", "add", c.bridge, "type", "bridge"]);
  }
  // Set even on a bridge that exists (an earlier version's): once set, it no longer follows its ports.
  await execFile(["ip", "link", "set", c.bridge, "address", bridgeMac(c.bridge)]);
  await execFile(["ip", "addr", "replace", `${hostAddress(c)}/16`, "dev", c.bridge]);
  await execFile(["ip", "addr", "replace", `${edgeAddress(c)}/16`, "dev", c.bridge]);
  await execFile(["ip", "link", "set", c.bridge, "up"]);
}

export async function removeBridge(c: NetworkConfig): Promise<void> {
  checkConfig(c);
  if (await linkExists(c.bridge)) await execFile(["ip", "link", "del", c.bridge]);
}

/**
 * Wires a tenant's network namespace (the one its container created, found through `pid`) to the
 * bridge: names it ck-<slot> in /var/run/netns, adds a veth pair, gives eth0 the tenant's address.
 * No default route: the only thing on the tenant's link that answers is the egress proxy.
 */
export async function attachTenant(
  c: NetworkConfig,
  slot: number,
  pid: number,
): Promise<{ address: string; netns: string }> {
  checkConfig(c);
  if (!Number.isInteger(pid) || pid <= 1) throw new ClawkeepError("invalid_request", `bad pid ${pid}`);
  const ns = netnsName(slot);
  const ifn = hostIf(slot);
  const address = tenantAddress(c, slot);
  await detachTenant(slot);
  await execFile(["ip", "netns", "attach", ns, String(pid)]);
  try {
    await execFile(["ip", "link", "add", ifn, "type", "veth", "peer", "name", "eth0", "netns", ns]);
    await execFile(["ip", "link", "set", ifn, "master", c.bridge, "up"]);
    await execFile(["ip", "-n", ns, "-batch", "-"], {
      input: [`addr add ${address}/16 dev eth0`, "link set eth0 up", "link set lo up"].join("\n"),
    });
    await execFile([
      "ip",
      "netns",
      "exec",
      ns,
      "sysctl",
      "-q",
      "-w",
      "net.ipv6.conf.all.disable_ipv6=1",
    ]).catch(() => {});
  } catch (err) {
    await detachTenant(slot);
    throw err;
  }
  return { address, netns: ns };
}

/** Removes the tenant's veth and its netns name. Idempotent. */
export async function detachTenant(slot: number): Promise<void> {
  const ifn = hostIf(slot);
  if (await linkExists(ifn)) await execFile(["ip", "link", "del", ifn]).catch(() => {});
  await execFile(["ip", "netns", "delete", netnsName(slot)]).catch(() => {});
}
