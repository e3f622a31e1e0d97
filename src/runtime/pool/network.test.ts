import assert from "node:assert/strict";
import { test } from "node:test";
import { DEFAULT_NETWORK, tenantAddress } from "../linux/net/network.ts";
import { renderBridgeRuleset, renderPoolNetns } from "./network.ts";

const c = { ...DEFAULT_NETWORK, allowedUids: [0, 209990] };

test("a pool's extra addresses join the tenants set and its veth's anti-spoofing, nowhere else", () => {
  const text = renderBridgeRuleset(c, [
    { name: "pool-0", slot: 100, airGapped: false, extraAddresses: ["198.19.0.20", "198.19.0.21"] },
  ]);
  const pool = tenantAddress(c, 100);
  assert.match(
    text,
    new RegExp(`set tenants \\{ type ipv4_addr; elements = \\{ ${pool}, 198.19.0.20, 198.19.0.21 \\}`),
  );
  assert.match(
    text,
    new RegExp(
      `iifname "ckv100" ether type ip ip saddr != \\{ ${pool}, 198.19.0.20, 198.19.0.21 \\} counter drop`,
    ),
  );
  assert.match(
    text,
    /iifname "ckv100" ether type arp arp saddr ip != \{ [^}]*198\.19\.0\.21 \} counter drop/,
  );
  assert.match(text, /set airgapped \{ type ipv4_addr; \}/);
  assert.throws(
    () => renderBridgeRuleset(c, [{ name: "p", slot: 1, airGapped: false, extraAddresses: ["1.2.3"] }]),
    /bad IPv4/,
  );
});

test("inside a pool: DNAT per tenant address, SNAT per uid, a guard on each tenant's port range", () => {
  const text = renderPoolNetns({
    publicPort: 18789,
    tenants: [
      { address: "198.19.0.20", uid: 10000, port: 19000, portSpan: 200 },
      { address: "198.19.0.21", uid: 10001, port: 19200, portSpan: 200 },
    ],
  });
  assert.match(text, /ip daddr 198\.19\.0\.20 tcp dport 18789 counter dnat ip to 198\.19\.0\.20:19000/);
  assert.match(text, /ip daddr 198\.19\.0\.21 tcp dport 18789 counter dnat ip to 198\.19\.0\.21:19200/);
  assert.match(text, /oifname "eth0" meta skuid 10001 counter snat ip to 198\.19\.0\.21/);
  assert.match(text, /tcp dport 19000-19199 meta skuid != 10000 ct state new counter reject/);
  assert.match(text, /tcp dport 19200-19399 meta skuid != 10001 ct state new counter reject/);
  assert.match(
    text,
    /iifname "eth0" ct status dnat ct state new counter accept\n\s+iifname "eth0" counter drop/,
  );
  assert.match(renderPoolNetns({ publicPort: 18789, tenants: [] }), /# no tenants/);
});

test("pool ruleset input is checked: overlapping ranges, the public port in a range, bad values", () => {
  const t = { address: "198.19.0.20", uid: 10000, port: 19000, portSpan: 200 };
  assert.throws(
    () => renderPoolNetns({ publicPort: 18789, tenants: [t, { ...t, address: "198.19.0.21", port: 19100 }] }),
    /belongs to two tenants/,
  );
  assert.throws(() => renderPoolNetns({ publicPort: 19050, tenants: [t] }), /public port/);
  assert.throws(() => renderPoolNetns({ publicPort: 18789, tenants: [{ ...t, uid: 0 }] }), /bad uid/);
  assert.throws(() => renderPoolNetns({ publicPort: 18789, tenants: [{ ...t, port: 65500 }] }), /past 65535/);
  assert.throws(
    () => renderPoolNetns({ publicPort: 18789, tenants: [{ ...t, address: "x; flush ruleset" }] }),
    /bad IPv4/,
  );
});
