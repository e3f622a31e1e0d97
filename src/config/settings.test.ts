import assert from "node:assert/strict";
import { test } from "node:test";
import { loadSettings } from "./settings.ts";

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
