import assert from "node:assert/strict";
import { test } from "node:test";
import { cidrContains, classifyAddress, formatIp, parseCidr, parseIp, unmapIp } from "./ip.ts";

test("parseIp: IPv4, IPv6 (compressed, bracketed, zone id, dotted tail); rejects names and junk", () => {
  assert.deepEqual(Array.from(parseIp("1.2.3.4")!.bytes), [1, 2, 3, 4]);
  assert.equal(formatIp(parseIp("2001:DB8:0:0:0:0:0:1")!), "2001:db8::1");
  assert.equal(formatIp(parseIp("[::1]")!), "::1");
  assert.equal(formatIp(parseIp("fe80::1%eth0")!), "fe80::1");
  assert.equal(formatIp(parseIp("::ffff:127.0.0.1")!), "::ffff:7f00:1");
  assert.equal(formatIp(parseIp("::1.2.3.4")!), "::102:304");
  assert.equal(formatIp(parseIp("1:2:3:4:5:6:7:8")!), "1:2:3:4:5:6:7:8");
  assert.equal(formatIp(parseIp("1:0:0:2:0:0:0:3")!), "1:0:0:2::3");
  assert.equal(formatIp(parseIp("::")!), "::");
  for (const bad of ["example.com", "1.2.3", "1.2.3.256", "01.2.3.4x", "::g", "1::2::3", "", "[1.2.3.4]x"]) {
    assert.equal(parseIp(bad), null, bad);
  }
});

test("unmapIp: IPv4-mapped IPv6 in both spellings becomes the IPv4 address", () => {
  assert.equal(formatIp(unmapIp(parseIp("::ffff:169.254.169.254")!)), "169.254.169.254");
  assert.equal(formatIp(unmapIp(parseIp("::ffff:7f00:1")!)), "127.0.0.1");
  assert.equal(formatIp(unmapIp(parseIp("::fffe:7f00:1")!)), "::fffe:7f00:1");
});

test("parseCidr and cidrContains, including prefixes that split a byte", () => {
  const c = parseCidr("100.64.0.0/10")!;
  assert.ok(cidrContains(c, parseIp("100.127.255.255")!));
  assert.ok(!cidrContains(c, parseIp("100.128.0.0")!));
  assert.ok(!cidrContains(c, parseIp("::ffff:100.64.0.1")!), "families never mix");
  assert.equal(parseCidr("10.0.0.0/33"), null);
  assert.equal(parseCidr("10.0.0.0/x"), null);
  assert.equal(parseCidr("nope/8"), null);
  assert.equal(parseCidr("1.2.3.4")!.prefix, 32);
  assert.ok(cidrContains(parseCidr("::/0")!, parseIp("2001:db8::1")!));
});

test("classifyAddress refuses every non-public range, with a reason", () => {
  const cases: Array<[string, string]> = [
    ["127.0.0.1", "loopback"],
    ["127.255.0.9", "loopback"],
    ["10.1.2.3", "private"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["192.168.1.1", "private"],
    ["169.254.169.254", "cloud-metadata"],
    ["169.254.1.1", "link-local"],
    ["100.64.0.1", "cgnat"],
    ["100.127.255.254", "cgnat"],
    ["224.0.0.251", "multicast"],
    ["239.255.255.250", "multicast"],
    ["0.0.0.0", "unspecified"],
    ["255.255.255.255", "reserved"],
    ["198.18.0.1", "benchmarking"],
    ["198.19.255.1", "benchmarking"],
    ["192.0.2.7", "documentation"],
    ["::1", "loopback"],
    ["::", "unspecified"],
    ["fd00::1", "unique-local"],
    ["fc00::1", "unique-local"],
    ["fe80::1", "link-local"],
    ["fe80::1%eth0", "link-local"],
    ["ff02::1", "multicast"],
    ["::ffff:127.0.0.1", "loopback"],
    ["::ffff:7f00:1", "loopback"],
    ["::ffff:10.0.0.1", "private"],
    ["::ffff:169.254.169.254", "cloud-metadata"],
    ["::127.0.0.1", "ipv4-compatible"],
    ["64:ff9b::7f00:1", "nat64"],
    ["2002:7f00:1::1", "6to4"],
    ["2001:0:4136:e378::1", "teredo"],
    ["2001:db8::1", "documentation"],
    ["4000::1", "not-global-unicast"],
    ["not-an-ip", "not-an-ip-address"],
  ];
  for (const [addr, reason] of cases) {
    const v = classifyAddress(addr);
    assert.equal(v.ok, false, `${addr} must be refused`);
    if (!v.ok) assert.equal(v.reason, reason, addr);
  }
});

test("classifyAddress lets public addresses through, IPv4-mapped ones as IPv4", () => {
  for (const addr of ["1.1.1.1", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "2a00:1450::1"]) {
    assert.equal(classifyAddress(addr).ok, true, addr);
  }
  const mapped = classifyAddress("::ffff:1.1.1.1");
  assert.equal(mapped.ok, true);
  assert.equal(mapped.address, "1.1.1.1");
});

test("a permit range overrides the refusal for exactly the range it covers", () => {
  const permit = [parseCidr("198.19.200.0/24")!];
  const v = classifyAddress("198.19.200.7", permit);
  assert.equal(v.ok, true);
  if (v.ok) assert.equal(v.permittedBy, "198.19.200.0/24");
  assert.equal(classifyAddress("198.19.201.7", permit).ok, false);
  assert.equal(classifyAddress("127.0.0.1", permit).ok, false);
  assert.equal(classifyAddress("::ffff:198.19.200.7", permit).ok, true);
});
