import assert from "node:assert/strict";
import { test } from "node:test";
import { execFile } from "../../../lib/exec.ts";
import {
  bridgeMac,
  DEFAULT_NETWORK,
  ensureBridge,
  hostIf,
  type NetworkConfig,
  removeBridge,
  renderRuleset,
  routeInTenantRange,
  tenantAddress,
} from "./network.ts";

const tenants = [
  { name: "a", slot: 0, airGapped: false },
  { name: "c", slot: 2, airGapped: true },
];

test("addresses and names come from the slot and stay inside the tenants' /16", () => {
  assert.equal(tenantAddress(DEFAULT_NETWORK, 0), "198.19.0.10");
  assert.equal(tenantAddress(DEFAULT_NETWORK, 300), "198.19.1.54");
  assert.equal(hostIf(7), "ckv7");
  assert.throws(() => tenantAddress(DEFAULT_NETWORK, -1), /out of range/);
});

test("the ruleset: anti-spoofing per port, air-gapped set, proxy-only input, gateway ports for allowed uids only", () => {
  const r = renderRuleset({ ...DEFAULT_NETWORK, allowedUids: [0, 999] }, tenants);
  assert.match(r, /iifname "ckv0" ether type ip ip saddr != 198\.19\.0\.10 counter drop/);
  assert.match(r, /set airgapped \{ type ipv4_addr; elements = \{ 198\.19\.0\.12 \}; \}/);
  assert.match(r, /ip saddr @tenants ip daddr 198\.19\.0\.1 tcp dport 3128 ct state new counter accept/);
  assert.match(r, /tcp dport 18789 meta skuid \{ 0, 999 \}/);
  // The tenant-to-tenant drop names only this ruleset's ports: other bridges are not affected.
  assert.match(r, /iifname \{ "ckv0", "ckv2" \} oifname \{ "ckv0", "ckv2" \} counter drop/);
  assert.doesNotMatch(r, /ckv\*/);
  // Established replies are accepted before the air-gap drop (the edge's connections work).
  assert.ok(r.indexOf("ct state established,related accept") < r.indexOf("@airgapped counter drop"));
});

test("each veth's traffic is counted before any verdict: answers from its gateway to the host apart from everything else", () => {
  const r = renderRuleset(DEFAULT_NETWORK, tenants);
  assert.match(r, /counter ckv2_gateway \{\}\n {2}counter ckv2_other \{\}/);
  const tally = r.slice(r.indexOf("chain tally"), r.indexOf("chain prerouting"));
  const c2 = tally.split("\n").filter((l) => l.includes('"ckv2"'));
  assert.equal(c2.length, 3, tally);
  // Answers from its gateway port to the host (and the edge's) address, then ARP about them, then all else.
  assert.match(
    c2[0]!,
    /^ {4}iifname "ckv2" ether type ip ip daddr (\{ )?198\.19\.0\.1\b.* tcp sport 18789 counter name "ckv2_gateway" return$/,
  );
  assert.match(c2[1]!, /^ {4}iifname "ckv2" ether type arp arp daddr ip (\{ )?198\.19\.0\.1\b.* return$/);
  assert.equal(c2[2], '    iifname "ckv2" counter name "ckv2_other" return');
  // Counted first: the jump comes before the anti-spoofing drops.
  const pre = r.slice(r.indexOf("chain prerouting"));
  assert.ok(pre.indexOf("jump tally") < pre.indexOf("counter drop"));
  assert.doesNotMatch(renderRuleset(DEFAULT_NETWORK, []), /jump tally|counter ckv/);
});

test("bad settings are refused before anything reaches nft", () => {
  assert.throws(() => renderRuleset({ ...DEFAULT_NETWORK, bridge: "br;rm" }, []), /bridge name/);
  assert.throws(() => renderRuleset({ ...DEFAULT_NETWORK, table: "x y" }, []), /table name/);
  assert.throws(() => renderRuleset({ ...DEFAULT_NETWORK, prefix16: "10.0.0" }, []), /prefix/);
});

test("nft accepts the rendered ruleset (check mode)", {
  skip: process.getuid?.() !== 0 ? "needs root for nft -c" : false,
}, async () => {
  await execFile(["nft", "-c", "-f", "-"], { input: renderRuleset(DEFAULT_NETWORK, tenants) });
  await execFile(["nft", "-c", "-f", "-"], { input: renderRuleset(DEFAULT_NETWORK, []) });
});

test("a route is in the tenants' range when it is inside the /16 and at least as specific", () => {
  const c = { ...DEFAULT_NETWORK, prefix16: "10.77" };
  for (const dst of ["10.77.0.0/16", "10.77.3.0/24", "10.77.0.9"]) assert.ok(routeInTenantRange(c, dst), dst);
  for (const dst of ["default", "10.0.0.0/8", "10.78.0.0/16", "110.77.0.0/16", "fd00::/64"])
    assert.ok(!routeInTenantRange(c, dst), dst);
});

test("the bridge refuses a tenants' range another interface already routes (it would swallow the replies)", {
  skip: process.getuid?.() !== 0 ? "needs root to add interfaces" : false,
}, async () => {
  const c: NetworkConfig = {
    ...DEFAULT_NETWORK,
    bridge: "ckrbr0",
    prefix16: "10.77",
    table: "clawkeep_rtest",
  };
  const other = "ckr-other0";
  const cleanup = async () => {
    await execFile(["ip", "link", "del", other]).catch(() => "");
    await removeBridge(c).catch(() => {});
  };
  await cleanup();
  try {
    // Another interface on the same /16, as a bench or a killed test run could leave behind.
    await execFile(["ip", "link", "add", other, "type", "bridge"]);
    await execFile(["ip", "addr", "add", "10.77.0.1/16", "dev", other]);
    await execFile(["ip", "link", "set", other, "up"]);
    await assert.rejects(ensureBridge(c), (err: Error & { code?: string }) => {
      assert.equal(err.code, "conflict");
      assert.match(err.message, /10\.77\.0\.0\/16 is already routed to ckr-other0/);
      return true;
    });
    // Control: with that interface gone the same bridge comes up, and again (idempotent).
    await execFile(["ip", "link", "del", other]);
    await ensureBridge(c);
    await ensureBridge(c);
    const addrs = await execFile(["ip", "-4", "-o", "addr", "show", "dev", c.bridge]);
    assert.match(addrs, /10\.77\.0\.1\/16/);
  } finally {
    await cleanup();
  }
});

test("the bridge keeps its own MAC address when a port leaves (tenants' ARP entries for the host stay true); a bridge without one follows its ports", {
  skip: process.getuid?.() !== 0 ? "needs root to add interfaces" : false,
}, async () => {
  const c: NetworkConfig = {
    ...DEFAULT_NETWORK,
    bridge: "ckmbr0",
    prefix16: "10.76",
    table: "clawkeep_mtest",
  };
  const plain = "ckm-plain0";
  const mac = async (dev: string) =>
    /link\/ether ([0-9a-f:]+)/.exec(await execFile(["ip", "-o", "link", "show", "dev", dev]))?.[1];
  // A port whose MAC sorts below any bridge's, joined and removed as a tenant's veth is.
  const withLowPort = async (bridge: string, fn: () => Promise<void>) => {
    await execFile([
      "ip",
      "link",
      "add",
      "ckm-p0",
      "address",
      "00:00:5e:00:53:01",
      "type",
      "veth",
      "peer",
      "name",
      "ckm-p1",
    ]);
    await execFile(["ip", "link", "set", "ckm-p0", "master", bridge]);
    await fn();
    await execFile(["ip", "link", "del", "ckm-p0"]);
  };
  const cleanup = async () => {
    for (const l of ["ckm-p0", plain]) await execFile(["ip", "link", "del", l]).catch(() => "");
    await removeBridge(c).catch(() => {});
  };
  await cleanup();
  try {
    assert.match(bridgeMac("ckbr0"), /^02(:[0-9a-f]{2}){5}$/, "locally administered, unicast");
    assert.equal(bridgeMac("ckbr0"), bridgeMac("ckbr0"), "the same across restarts");
    assert.notEqual(bridgeMac("ckbr0"), bridgeMac(c.bridge));
    await ensureBridge(c);
    assert.equal(await mac(c.bridge), bridgeMac(c.bridge));
    await withLowPort(c.bridge, async () => assert.equal(await mac(c.bridge), bridgeMac(c.bridge)));
    assert.equal(await mac(c.bridge), bridgeMac(c.bridge), "unchanged after the port left");
    // Control: a bridge without an address of its own takes the low port's, and loses it with it.
    await execFile(["ip", "link", "add", plain, "type", "bridge"]);
    let during: string | undefined;
    await withLowPort(plain, async () => {
      during = await mac(plain);
    });
    assert.equal(during, "00:00:5e:00:53:01");
    assert.notEqual(await mac(plain), during, "the plain bridge's address changed when the port left");
  } finally {
    await cleanup();
  }
});
