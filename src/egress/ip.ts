import { isIPv4, isIPv6 } from "node:net";

/**
 * IP address parsing and the anti-SSRF classification. Pure: no I/O.
 *
 * Every address the proxy might connect to goes through `classifyAddress`. An address is refused
 * when it falls in a range that is not the public internet (loopback, RFC 1918, link-local and
 * cloud metadata, CGNAT, multicast, unspecified, reserved, documentation, benchmarking, IPv6 ULA,
 * link-local, site-local, transition prefixes that embed an IPv4 address) or, for IPv6, anywhere
 * outside global unicast 2000::/3. IPv4-mapped IPv6 (::ffff:a.b.c.d) is judged as the IPv4
 * address it carries and is connected to in its IPv4 form.
 */

/** An address as bytes: 4 for IPv4, 16 for IPv6. */
export interface ParsedIp {
  family: 4 | 6;
  bytes: Uint8Array;
}

export interface Cidr {
  family: 4 | 6;
  bytes: Uint8Array;
  prefix: number;
  /** As written, for messages. */
  text: string;
}

function parseIpv4Bytes(s: string): Uint8Array | null {
  if (!isIPv4(s)) return null;
  const parts = s.split(".").map((p) => Number(p));
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) return null;
  return Uint8Array.from(parts);
}

function parseIpv6Bytes(input: string): Uint8Array | null {
  // A zone id (fe80::1%eth0) names an interface; the address itself decides the verdict.
  const s = input.split("%")[0] ?? "";
  if (!isIPv6(s)) return null;
  const out = new Uint8Array(16);
  let head = s;
  let tailV4: Uint8Array | null = null;
  const lastColon = s.lastIndexOf(":");
  if (s.slice(lastColon + 1).includes(".")) {
    tailV4 = parseIpv4Bytes(s.slice(lastColon + 1));
    if (!tailV4) return null;
    // Keep the colon(s) before the dotted quad so "::1.2.3.4" still holds its "::".
    head = s.slice(0, lastColon + 1);
    if (head.endsWith(":") && !head.endsWith("::")) head = head.slice(0, -1);
  }
  const groupsAvailable = tailV4 ? 6 : 8;
  const halves = head.split("::");
  if (halves.length > 2) return null;
  const toGroups = (h: string): number[] => (h === "" ? [] : h.split(":").map((g) => Number.parseInt(g, 16)));
  const left = toGroups(halves[0] ?? "");
  const right = halves.length === 2 ? toGroups(halves[1] ?? "") : [];
  if (halves.length === 1 && left.length !== groupsAvailable) return null;
  if (left.length + right.length > groupsAvailable) return null;
  const groups = [
    ...left,
    ...new Array<number>(groupsAvailable - left.length - right.length).fill(0),
    ...right,
  ];
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i] ?? 0;
    if (!Number.isInteger(g) || g < 0 || g > 0xffff) return null;
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  }
  if (tailV4) out.set(tailV4, 12);
  return out;
}

/** Parses an IPv4 or IPv6 literal (IPv6 may be bracketed or carry a zone id). Null when it is not one. */
export function parseIp(input: string): ParsedIp | null {
  const s = input.startsWith("[") && input.endsWith("]") ? input.slice(1, -1) : input;
  const v4 = parseIpv4Bytes(s);
  if (v4) return { family: 4, bytes: v4 };
  const v6 = parseIpv6Bytes(s);
  if (v6) return { family: 6, bytes: v6 };
  return null;
}

export function isIpLiteral(input: string): boolean {
  return parseIp(input) !== null;
}

/** Canonical text of an address: dotted quad, or RFC 5952 IPv6 (lower case, longest zero run as ::). */
export function formatIp(ip: ParsedIp): string {
  if (ip.family === 4) return Array.from(ip.bytes).join(".");
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((ip.bytes[i] ?? 0) << 8) | (ip.bytes[i + 1] ?? 0));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}

/** When `ip` is IPv4-mapped IPv6 (::ffff:a.b.c.d), the IPv4 address it carries; otherwise `ip`. */
export function unmapIp(ip: ParsedIp): ParsedIp {
  if (ip.family !== 6) return ip;
  for (let i = 0; i < 10; i++) if (ip.bytes[i] !== 0) return ip;
  if (ip.bytes[10] !== 0xff || ip.bytes[11] !== 0xff) return ip;
  return { family: 4, bytes: ip.bytes.slice(12) };
}

/** Parses "a.b.c.d/n" or "x::/n". A bare address is a single-address range. Null when malformed. */
export function parseCidr(text: string): Cidr | null {
  const [addr, prefixText, ...rest] = text.trim().split("/");
  if (addr === undefined || rest.length > 0) return null;
  const ip = parseIp(addr);
  if (!ip || addr.includes("%")) return null;
  const max = ip.family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (!/^\d+$/.test(prefixText ?? String(max)) || !Number.isInteger(prefix) || prefix < 0 || prefix > max) {
    return null;
  }
  return { family: ip.family, bytes: ip.bytes, prefix, text: text.trim() };
}

export function cidrContains(cidr: Cidr, ip: ParsedIp): boolean {
  if (cidr.family !== ip.family) return false;
  const full = Math.floor(cidr.prefix / 8);
  for (let i = 0; i < full; i++) if (cidr.bytes[i] !== ip.bytes[i]) return false;
  const bits = cidr.prefix % 8;
  if (bits === 0) return true;
  const mask = (0xff << (8 - bits)) & 0xff;
  return ((cidr.bytes[full] ?? 0) & mask) === ((ip.bytes[full] ?? 0) & mask);
}

function cidr(text: string): Cidr {
  const c = parseCidr(text);
  if (!c) throw new Error(`bad built-in range ${text}`);
  return c;
}

/** Ranges the proxy never connects to, most specific first (the first match names the reason). */
export const FORBIDDEN_RANGES: ReadonlyArray<{ range: Cidr; reason: string }> = [
  // IPv4
  { range: cidr("169.254.169.254/32"), reason: "cloud-metadata" },
  { range: cidr("0.0.0.0/8"), reason: "unspecified" },
  { range: cidr("10.0.0.0/8"), reason: "private" },
  { range: cidr("100.64.0.0/10"), reason: "cgnat" },
  { range: cidr("127.0.0.0/8"), reason: "loopback" },
  { range: cidr("169.254.0.0/16"), reason: "link-local" },
  { range: cidr("172.16.0.0/12"), reason: "private" },
  { range: cidr("192.0.0.0/24"), reason: "special-use" },
  { range: cidr("192.0.2.0/24"), reason: "documentation" },
  { range: cidr("192.88.99.0/24"), reason: "special-use" },
  { range: cidr("192.168.0.0/16"), reason: "private" },
  { range: cidr("198.18.0.0/15"), reason: "benchmarking" },
  { range: cidr("198.51.100.0/24"), reason: "documentation" },
  { range: cidr("203.0.113.0/24"), reason: "documentation" },
  { range: cidr("224.0.0.0/4"), reason: "multicast" },
  { range: cidr("240.0.0.0/4"), reason: "reserved" },
  // IPv6 (IPv4-mapped addresses are judged as IPv4 before this list is consulted)
  { range: cidr("::/128"), reason: "unspecified" },
  { range: cidr("::1/128"), reason: "loopback" },
  { range: cidr("::/96"), reason: "ipv4-compatible" },
  { range: cidr("64:ff9b::/96"), reason: "nat64" },
  { range: cidr("64:ff9b:1::/48"), reason: "nat64" },
  { range: cidr("100::/64"), reason: "discard" },
  { range: cidr("2001::/32"), reason: "teredo" },
  { range: cidr("2001:2::/48"), reason: "benchmarking" },
  { range: cidr("2001:10::/28"), reason: "special-use" },
  { range: cidr("2001:20::/28"), reason: "special-use" },
  { range: cidr("2001:db8::/32"), reason: "documentation" },
  { range: cidr("2002::/16"), reason: "6to4" },
  { range: cidr("3fff::/20"), reason: "documentation" },
  { range: cidr("fc00::/7"), reason: "unique-local" },
  { range: cidr("fe80::/10"), reason: "link-local" },
  { range: cidr("fec0::/10"), reason: "site-local" },
  { range: cidr("ff00::/8"), reason: "multicast" },
];

const GLOBAL_UNICAST_V6 = cidr("2000::/3");

export type AddressVerdict =
  | { ok: true; address: string; family: 4 | 6; permittedBy?: string }
  | { ok: false; address: string; reason: string };

/**
 * Decides whether the proxy may connect to `address`. `permit` lists ranges an operator (in
 * practice: a test) lets through although they are forbidden; it overrides only the ranges it
 * covers. The returned `address` is the canonical form to connect to (IPv4 for mapped addresses).
 */
export function classifyAddress(address: string, permit: readonly Cidr[] = []): AddressVerdict {
  const parsed = parseIp(address);
  if (!parsed) return { ok: false, address, reason: "not-an-ip-address" };
  const ip = unmapIp(parsed);
  const canonical = formatIp(ip);
  const permittedBy = permit.find((p) => cidrContains(p, ip));
  if (permittedBy) return { ok: true, address: canonical, family: ip.family, permittedBy: permittedBy.text };
  for (const { range, reason } of FORBIDDEN_RANGES) {
    if (cidrContains(range, ip)) return { ok: false, address: canonical, reason };
  }
  if (ip.family === 6 && !cidrContains(GLOBAL_UNICAST_V6, ip)) {
    return { ok: false, address: canonical, reason: "not-global-unicast" };
  }
  return { ok: true, address: canonical, family: ip.family };
}
