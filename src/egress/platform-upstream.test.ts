import assert from "node:assert/strict";
import { test } from "node:test";
import { proxyOptionsFromConfig, validateEgressConfig } from "./config.ts";
import { PLATFORM_LLM_HOST, relayUpstream } from "./platform-upstream.ts";

test("the relay is offered to tenants under one name and port, on the host's loopback, with the tenant's address in a PROXY line", () => {
  assert.deepEqual(relayUpstream(4180), {
    host: PLATFORM_LLM_HOST,
    port: 4180,
    address: "127.0.0.1",
    targetPort: 4180,
    proxyProtocol: true,
  });
});

test("the egress config carries the relay upstream's PROXY flag through to the proxy's options", () => {
  const config = validateEgressConfig({
    listen: { host: "198.19.0.1", port: 3128 },
    adminSocket: "/run/clawkeep/egress.sock",
    logFile: "/var/log/clawkeep/egress.jsonl",
    policy: { tenants: [] },
    platformUpstreams: [relayUpstream(4180)],
  });
  assert.equal(proxyOptionsFromConfig(config).platformUpstreams?.[0]?.proxyProtocol, true);
  // Control: an upstream without the flag stays without it.
  const plain = validateEgressConfig({
    ...config,
    platformUpstreams: [{ ...relayUpstream(4180), proxyProtocol: undefined }],
  });
  assert.equal(proxyOptionsFromConfig(plain).platformUpstreams?.[0]?.proxyProtocol, undefined);
});
