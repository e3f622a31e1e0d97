import assert from "node:assert/strict";
import { after } from "node:test";
import { planFor } from "../../core/plans.ts";
import { driverConformance } from "../conformance.ts";
import { FakeDriver } from "./driver.ts";

const shared = new FakeDriver();
after(() => shared.closeAll());
driverConformance({
  label: "fake driver",
  driver: () => shared,
  fresh: () => shared,
  specs: (["starter", "premium", "enterprise"] as const).map((tier, slot) => ({
    tier,
    slot,
    plan: planFor(tier),
  })),
  llm: () => ({ baseUrl: "http://127.0.0.1:9/v1", model: "m" }),
  // Its pids are not host pids: a crash is its own crash().
  kill: async (pid) => {
    const name = shared.nameOfPid(pid);
    assert.ok(name, `no fake gateway has pid ${pid}`);
    await shared.crash(name);
  },
});
