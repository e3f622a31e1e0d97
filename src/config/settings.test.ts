import assert from "node:assert/strict";
import { test } from "node:test";
import { DEFAULT_BYOK_BASE_URLS, loadSettings, normalizeBaseUrl } from "./settings.ts";

test("the CPU guard is on by default and can be turned off; anything else is refused by name", () => {
  assert.equal(loadSettings({}).cpuGuard, true);
  assert.equal(loadSettings({ CLAWKEEP_CPU_GUARD: "on" }).cpuGuard, true);
  assert.equal(loadSettings({ CLAWKEEP_CPU_GUARD: "off" }).cpuGuard, false);
  for (const bad of ["yes", "0", "OFF"])
    assert.throws(() => loadSettings({ CLAWKEEP_CPU_GUARD: bad }), /CLAWKEEP_CPU_GUARD must be on or off/);
});

test("settings name the variable that is wrong", () => {
  assert.throws(() => loadSettings({ CLAWKEEP_TENANT_NET_PREFIX: "10.0.0" }), /CLAWKEEP_TENANT_NET_PREFIX/);
  assert.throws(() => loadSettings({ CLAWKEEP_STARTER_POOLS_MAX: "0" }), /CLAWKEEP_STARTER_POOLS_MAX/);
  assert.throws(() => loadSettings({ CLAWKEEP_SANDBOX: "maybe" }), /CLAWKEEP_SANDBOX must be auto or off/);
});

test("the relay's port and the base URLs allowed for a tenant's own key: defaults, a list, none; a bad entry is refused by name", () => {
  const d = loadSettings({});
  assert.equal(d.relay.port, 4180);
  assert.deepEqual(d.relay.byokAllow, [...DEFAULT_BYOK_BASE_URLS]);
  assert.ok(d.relay.byokAllow.includes("https://api.openai.com/v1"));
  assert.equal(loadSettings({ CLAWKEEP_RELAY_PORT: "5000" }).relay.port, 5000);
  assert.throws(() => loadSettings({ CLAWKEEP_RELAY_PORT: "70000" }), /CLAWKEEP_RELAY_PORT/);
  assert.deepEqual(
    loadSettings({ CLAWKEEP_LLM_BYOK_ALLOW: "https://API.example.com/v1/, http://10.0.0.5:8000/v1" }).relay
      .byokAllow,
    ["https://api.example.com/v1", "http://10.0.0.5:8000/v1"],
  );
  assert.deepEqual(loadSettings({ CLAWKEEP_LLM_BYOK_ALLOW: "none" }).relay.byokAllow, []);
  for (const bad of ["ftp://x/v1", "https://user:pw@x/v1", "https://x/v1?key=1", "not a url"])
    assert.throws(() => loadSettings({ CLAWKEEP_LLM_BYOK_ALLOW: bad }), /CLAWKEEP_LLM_BYOK_ALLOW/);
  assert.equal(normalizeBaseUrl("https://api.openai.com/v1/"), "https://api.openai.com/v1");
  assert.equal(normalizeBaseUrl("https://api.openai.com/v1#x"), null);
});
