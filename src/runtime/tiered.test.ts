import assert from "node:assert/strict";
import { test } from "node:test";
import { Secret } from "../core/secret.ts";
import type { Tier } from "../core/tenant.ts";
import { testSpec } from "../testing/specs.ts";
import { FakeDriver } from "./fake/driver.ts";
import { TieredDriver } from "./tiered.ts";
import { type InstanceSpec, type Settles, settles } from "./types.ts";

const spec = (name: string, tier: Tier, slot: number): InstanceSpec =>
  testSpec(name, tier, slot, { baseUrl: "http://127.0.0.1:9/v1", model: "m" });
const secrets = { gatewayToken: new Secret("t".repeat(32)), llmApiKey: new Secret("k") };

/** A fake that, like the container driver, hands a start's extra CPU back in settle(). */
class SettlingFake extends FakeDriver implements Settles {
  readonly settled: string[] = [];
  async settle(s: InstanceSpec): Promise<void> {
    this.settled.push(s.name);
  }
}

test("the tiered driver routes by tier, finds instances by name, and passes settle() to the tier's driver", async () => {
  const pools = new FakeDriver();
  const containers = new SettlingFake();
  const d = new TieredDriver({ starter: pools, premium: containers, enterprise: containers });
  try {
    await d.create(spec("s1", "starter", 1));
    await d.start(spec("s1", "starter", 1), secrets);
    await d.create(spec("p1", "premium", 2));
    await d.start(spec("p1", "premium", 2), secrets);
    assert.equal(pools.count("start", "s1"), 1);
    assert.equal(containers.count("start", "p1"), 1);
    assert.equal((await d.status("p1")).state, "running");
    assert.deepEqual(
      (await d.list()).map((i) => i.name),
      ["p1", "s1"],
    );
    await d.settle(spec("p1", "premium", 2));
    await d.settle(spec("s1", "starter", 1)); // its driver has no settle(): nothing to do
    assert.deepEqual(containers.settled, ["p1"]);
  } finally {
    await pools.closeAll();
    await containers.closeAll();
  }
});

test("settles() tells a driver with the Settles role from one without it", () => {
  assert.equal(settles(new SettlingFake()), true);
  assert.equal(settles(new FakeDriver()), false, "control: the plain fake has no settle()");
  const tiered = new TieredDriver({
    starter: new FakeDriver(),
    premium: new FakeDriver(),
    enterprise: new FakeDriver(),
  });
  assert.equal(settles(tiered), true, "the tiered driver passes settle() on, whatever its drivers");
});
