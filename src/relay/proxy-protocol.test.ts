import assert from "node:assert/strict";
import { test } from "node:test";
import { parseProxyLine } from "./proxy-protocol.ts";

test("PROXY v1: TCP4 and TCP6 lines give the source; UNKNOWN gives none", () => {
  assert.deepEqual(parseProxyLine("PROXY TCP4 10.216.0.5 127.0.0.1 51234 4180"), {
    kind: "proxied",
    source: "10.216.0.5",
    sourcePort: 51234,
  });
  assert.deepEqual(parseProxyLine("PROXY TCP6 fd00::0005 ::1 1 4180"), {
    kind: "proxied",
    source: "fd00::5",
    sourcePort: 1,
  });
  assert.deepEqual(
    parseProxyLine("PROXY TCP6 ::ffff:10.0.0.1 ::1 1 4180"),
    {
      kind: "proxied",
      source: "10.0.0.1",
      sourcePort: 1,
    },
    "IPv4-mapped IPv6 is judged as its IPv4 address",
  );
  assert.deepEqual(parseProxyLine("PROXY UNKNOWN"), { kind: "unknown" });
  assert.deepEqual(parseProxyLine("PROXY UNKNOWN ffff:: ffff:: 1 2"), { kind: "unknown" });
});

test("PROXY v1: every malformed line is refused", () => {
  for (const bad of [
    "",
    "PROXY",
    "PROXY TCP4",
    "PROXY TCP4 10.0.0.1 127.0.0.1 1",
    "PROXY TCP4 10.0.0.1 127.0.0.1 1 2 3",
    "PROXY TCP5 10.0.0.1 127.0.0.1 1 2",
    "PROXY TCP4 fd00::1 127.0.0.1 1 2",
    "PROXY TCP6 10.0.0.1 ::1 1 2",
    "PROXY TCP4 10.0.0.256 127.0.0.1 1 2",
    "PROXY TCP4 10.0.0.1 127.0.0.1 65536 2",
    "PROXY TCP4 10.0.0.1 127.0.0.1 01 2",
    "PROXY TCP4 10.0.0.1 127.0.0.1 -1 2",
    "PROXY  TCP4 10.0.0.1 127.0.0.1 1 2",
    "proxy TCP4 10.0.0.1 127.0.0.1 1 2",
    "GET / HTTP/1.1",
  ]) {
    assert.equal(parseProxyLine(bad), null, JSON.stringify(bad));
  }
});
