import assert from "node:assert/strict";
import { test } from "node:test";
import { PLATFORM_LLM_HOST, tenantFacingLlm } from "./platform-upstream.ts";

test("a provider on the host's loopback is offered to tenants as a platform upstream of the proxy", () => {
  const r = tenantFacingLlm({ baseUrl: "http://127.0.0.1:41234/v1", apiKey: "k", model: "m" });
  assert.equal(r.llm.baseUrl, `http://${PLATFORM_LLM_HOST}:41234/v1`);
  assert.equal(r.llm.apiKey, "k");
  assert.deepEqual(r.upstream, {
    host: PLATFORM_LLM_HOST,
    port: 41234,
    address: "127.0.0.1",
    targetPort: 41234,
  });
  assert.deepEqual(tenantFacingLlm({ baseUrl: "http://localhost/v1", model: "m" }).upstream, {
    host: PLATFORM_LLM_HOST,
    port: 80,
    address: "127.0.0.1",
    targetPort: 80,
  });
  assert.equal(tenantFacingLlm({ baseUrl: "http://[::1]:9000/v1", model: "m" }).upstream?.address, "::1");
});

test("any other provider is left alone: tenants reach it through the proxy's allowlist", () => {
  for (const baseUrl of [
    "https://api.openai.com/v1",
    "http://10.0.0.5:8000/v1",
    "https://127.0.0.1:8443/v1",
    "not a url",
  ]) {
    const r = tenantFacingLlm({ baseUrl, model: "m" });
    assert.equal(r.llm.baseUrl, baseUrl);
    assert.equal(r.upstream, undefined, baseUrl);
  }
});
