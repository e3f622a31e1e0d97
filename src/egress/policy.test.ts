import assert from "node:assert/strict";
import { test } from "node:test";
import { ClawkeepError } from "../core/errors.ts";
import { parseCidr } from "./ip.ts";
import {
  checkResolved,
  checkTarget,
  compilePolicy,
  DEFAULT_ALLOW,
  hostMatches,
  normalizeHost,
  parseHostPattern,
  tenantForSource,
} from "./policy.ts";

const policy = compilePolicy({
  tenants: [
    { name: "alice", addresses: ["10.77.0.11"], allow: ["api.example.org", "*.cdn.example.net"] },
    { name: "bob", addresses: ["10.77.0.12", "fd00::12"] },
    { name: "carol", addresses: ["10.77.0.13"], airGapped: true, allow: ["api.example.org"] },
  ],
  operatorAllow: ["models.operator.test"],
});

test("defaults hold the LLM providers' and chat channels' API hosts", () => {
  for (const h of [
    "api.openai.com",
    "api.anthropic.com",
    "generativelanguage.googleapis.com",
    "api.telegram.org",
  ]) {
    assert.ok(DEFAULT_ALLOW.includes(h), h);
  }
  assert.ok(DEFAULT_ALLOW.includes("*.slack.com"));
  assert.ok(DEFAULT_ALLOW.includes("*.whatsapp.net"));
});

test("normalizeHost: lower case, no trailing dot, canonical IPs; rejects junk", () => {
  assert.equal(normalizeHost("API.OpenAI.com."), "api.openai.com");
  assert.equal(normalizeHost("[::FFFF:127.0.0.1]"), "127.0.0.1");
  assert.equal(normalizeHost("[2001:DB8::1]"), "2001:db8::1");
  for (const bad of [
    "",
    "a..b",
    "-a.com",
    "a b.com",
    "a/b",
    "x".repeat(64),
    "1.2.3",
    "fe80::1%eth0",
    "a.com:443",
  ]) {
    assert.equal(normalizeHost(bad), null, bad);
  }
});

test("host patterns: exact, *.suffix (not the apex), IP literals; broad wildcards refused", () => {
  assert.ok(hostMatches("*.slack.com", "files.slack.com"));
  assert.ok(hostMatches("*.slack.com", "a.b.slack.com"));
  assert.ok(!hostMatches("*.slack.com", "slack.com"));
  assert.ok(!hostMatches("*.slack.com", "evilslack.com"));
  assert.ok(hostMatches("api.openai.com", "api.openai.com"));
  assert.ok(!hostMatches("api.openai.com", "x.api.openai.com"));
  assert.equal(parseHostPattern("*.Example.COM."), "*.example.com");
  assert.equal(parseHostPattern("::ffff:1.2.3.4"), "1.2.3.4");
  for (const bad of ["*", "*.com", "*.1.2.3.4", "a.*.com", "http://x.com", ""]) {
    assert.throws(() => parseHostPattern(bad), ClawkeepError, bad);
  }
});

test("tenants are found by source address (IPv4-mapped too); unknown sources are refused", () => {
  const a = tenantForSource(policy, "::ffff:10.77.0.11");
  assert.ok(!("reason" in a) && a.name === "alice");
  const b = tenantForSource(policy, "fd00:0::12");
  assert.ok(!("reason" in b) && b.name === "bob");
  const u = tenantForSource(policy, "10.77.0.99");
  assert.ok("reason" in u && u.reason === "unknown-source");
});

test("checkTarget: allowlist = defaults + operator + tenant additions; ports; air gap wins", () => {
  const alice = policy.tenants.get("alice")!;
  const bob = policy.tenants.get("bob")!;
  const carol = policy.tenants.get("carol")!;
  assert.equal(checkTarget(alice, policy, "api.openai.com", 443), null);
  assert.equal(checkTarget(alice, policy, "models.operator.test", 443), null);
  assert.equal(checkTarget(alice, policy, "api.example.org", 80), null);
  assert.equal(checkTarget(alice, policy, "img.cdn.example.net", 443), null);
  assert.equal(checkTarget(bob, policy, "api.example.org", 443)?.reason, "not-allowlisted");
  assert.equal(checkTarget(alice, policy, "api.openai.com", 22)?.reason, "port-not-allowed");
  assert.equal(checkTarget(carol, policy, "api.example.org", 443)?.reason, "air-gapped");
  assert.equal(checkTarget(carol, policy, "api.openai.com", 443)?.reason, "air-gapped");
  assert.deepEqual(carol.allow, []);
});

test("includeDefaults:false leaves only operator and tenant additions", () => {
  const p = compilePolicy({ includeDefaults: false, tenants: [{ name: "dan", addresses: ["10.0.0.5"] }] });
  const dan = p.tenants.get("dan")!;
  assert.equal(checkTarget(dan, p, "api.openai.com", 443)?.reason, "not-allowlisted");
});

test("compilePolicy rejects unknown fields, bad names, bad addresses, duplicates", () => {
  const bad: unknown[] = [
    { tenants: [], extra: 1 },
    { tenants: [{ name: "Alice", addresses: [] }] },
    { tenants: [{ name: "a", addresses: ["10.0.0.1/24"] }] },
    { tenants: [{ name: "a", addresses: ["host.example"] }] },
    { tenants: [{ name: "a", addresses: ["10.0.0.1"], allow: ["*.com"] }] },
    { tenants: [{ name: "a", addresses: ["10.0.0.1"], nope: true }] },
    {
      tenants: [
        { name: "a", addresses: ["10.0.0.1"] },
        { name: "a", addresses: ["10.0.0.2"] },
      ],
    },
    {
      tenants: [
        { name: "a", addresses: ["10.0.0.1"] },
        { name: "b", addresses: ["::ffff:10.0.0.1"] },
      ],
    },
    { tenants: [], ports: [0] },
    null,
  ];
  for (const p of bad) {
    assert.throws(
      () => compilePolicy(p),
      (e: unknown) => e instanceof ClawkeepError && e.code === "invalid_request",
      JSON.stringify(p),
    );
  }
});

test("checkResolved: one forbidden answer refuses the name; permitted ranges pass; no answer fails", () => {
  const ok = checkResolved("a.example", ["1.1.1.1", "::ffff:1.0.0.1"], []);
  assert.deepEqual(ok, { ok: true, addresses: ["1.1.1.1", "1.0.0.1"] });
  const mixed = checkResolved("a.example", ["1.1.1.1", "127.0.0.1"], []);
  assert.ok(!mixed.ok && mixed.denial.reason === "forbidden-address" && mixed.address === "127.0.0.1");
  const meta = checkResolved("a.example", ["169.254.169.254"], []);
  assert.ok(!meta.ok && /cloud-metadata/.test(meta.denial.detail));
  const permitted = checkResolved("a.example", ["198.19.200.2"], [parseCidr("198.19.200.0/24")!]);
  assert.ok(permitted.ok);
  const none = checkResolved("a.example", [], []);
  assert.ok(!none.ok && none.denial.reason === "dns-failed");
});
