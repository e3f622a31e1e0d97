import assert from "node:assert/strict";
import { test } from "node:test";
import { ClawkeepError } from "../core/errors.ts";
import { parseEgressConfig, proxyOptionsFromConfig, renderEgressConfig } from "./config.ts";

const config = {
  listen: { host: "10.88.0.1", port: 3128 },
  adminSocket: "/var/lib/clawkeep/run/egress-admin.sock",
  logFile: "/var/lib/clawkeep/logs/egress.log",
  policy: { tenants: [{ name: "alice", addresses: ["10.88.0.11"] }] },
  idleTimeoutMs: 60_000,
};

test("config renders to JSON text and parses back into proxy options", () => {
  const text = renderEgressConfig(config);
  const parsed = parseEgressConfig(text);
  assert.deepEqual(parsed, config);
  const opts = proxyOptionsFromConfig(parsed);
  assert.deepEqual(opts.listen, config.listen);
  assert.equal(opts.idleTimeoutMs, 60_000);
  assert.equal("testOnlyPermitRanges" in opts, false);
  assert.equal("resolve" in opts, false, "a process always uses the system resolver");
});

test("config rejects unknown keys, relative paths, host names for listen, bad policies and ranges", () => {
  const bad: unknown[] = [
    { ...config, extra: true },
    { ...config, logFile: "egress.log" },
    { ...config, listen: { host: "localhost", port: 3128 } },
    { ...config, listen: { host: "10.88.0.1", port: 70000 } },
    { ...config, policy: { tenants: [{ name: "alice", addresses: ["nope"] }] } },
    { ...config, testOnlyPermitRanges: ["10.0.0.0/99"] },
  ];
  for (const c of bad) {
    assert.throws(
      () => parseEgressConfig(JSON.stringify(c)),
      (e: unknown) => e instanceof ClawkeepError && e.code === "invalid_request",
      JSON.stringify(c),
    );
  }
  assert.throws(
    () => parseEgressConfig("{"),
    (e: unknown) => e instanceof ClawkeepError && e.code === "malformed_json",
  );
});
