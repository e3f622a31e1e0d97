import { execFile } from "../src/lib/exec.ts";

/**
 * Keeps the benchmarks' host-process gateways (a bare `openclaw gateway run`, the host-process
 * driver's) off every network but loopback, as the sandboxed tenants are (they reach only the
 * egress proxy, which refuses what is not allowed): an nftables table of the benchmark's own
 * rejects (TCP reset, ICMP unreachable, so nothing waits for a timeout) whatever the given uids
 * send anywhere but `lo`. OpenClaw calls out at start (plugin feed) and starts fine without.
 * Returns the function that removes the table.
 */
export async function blockEgress(
  table: string,
  uids: { first: number; last: number },
): Promise<() => Promise<void>> {
  if (!/^[a-z][a-z0-9_]{0,30}$/.test(table)) throw new Error(`bad table name ${table}`);
  for (const u of [uids.first, uids.last])
    if (!Number.isInteger(u) || u < 1000) throw new Error(`uid ${u} is not a tenant's`);
  const range = `${uids.first}-${uids.last}`;
  const ruleset = `table inet ${table} {
  chain out {
    type filter hook output priority 0; policy accept;
    meta skuid ${range} oifname != "lo" meta l4proto tcp reject with tcp reset
    meta skuid ${range} oifname != "lo" reject with icmpx type admin-prohibited
  }
}
`;
  await execFile(["nft", "delete", "table", "inet", table]).catch(() => "");
  await execFile(["nft", "-f", "-"], { input: ruleset });
  return async () => {
    await execFile(["nft", "delete", "table", "inet", table]).catch(() => "");
  };
}
