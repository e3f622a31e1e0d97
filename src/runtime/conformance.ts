import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { planFor } from "../core/plans.ts";
import { Secret } from "../core/secret.ts";
import { waitReady } from "../openclaw/probe.ts";
import type { InstanceSpec, RuntimeDriver } from "./types.ts";

/**
 * The behaviour every runtime driver promises (see types.ts), as one suite each driver runs:
 * idempotent create/start/stop/delete, no second copy, adoption by a fresh driver object,
 * nothing left after delete. `fresh()` returns a new driver object over the same substrate.
 */
export function driverConformance(opts: {
  label: string;
  driver: () => RuntimeDriver;
  fresh: () => RuntimeDriver;
  llm: () => { baseUrl: string; model: string };
  slot?: number;
  readyTimeoutMs?: number;
  /** Extra checks that nothing of the instance is left on the substrate. */
  leftovers?: (name: string) => Promise<string[]>;
}) {
  const name = `conf-${randomBytes(3).toString("hex")}`;
  const spec = (): InstanceSpec => ({
    tenantId: `tnt_${name}`,
    name,
    tier: "starter",
    slot: opts.slot ?? 0,
    plan: planFor("starter"),
    llm: opts.llm(),
  });
  const secrets = { gatewayToken: new Secret(randomBytes(16).toString("hex")), llmApiKey: new Secret("k") };

  test(`${opts.label}: an unknown instance is absent, and stop/delete of it succeed`, async () => {
    const d = opts.driver();
    assert.equal((await d.status(name)).state, "absent");
    await d.stop(name);
    await d.delete(name);
    assert.equal((await d.status(name)).state, "absent");
  });

  test(`${opts.label}: bad names never reach the substrate`, async () => {
    const d = opts.driver();
    for (const bad of ["../x", "A", "a;rm", "", "x".repeat(41)]) {
      await assert.rejects(d.create({ ...spec(), name: bad }), /tenant name/);
    }
  });

  test(`${opts.label}: lifecycle is idempotent and never runs two copies`, async () => {
    const d = opts.driver();
    try {
      assert.equal((await d.create(spec())).state, "created");
      assert.equal((await d.create(spec())).state, "created");
      const s1 = await d.start(spec(), secrets);
      assert.equal(s1.state, "running");
      assert.ok(s1.url);
      await waitReady(s1.url!, { timeoutMs: opts.readyTimeoutMs ?? 10_000 });
      const s2 = await d.start(spec(), secrets);
      assert.equal(s2.pid, s1.pid, "a second start keeps the running process");

      const adopted = opts.fresh();
      const seen = await adopted.status(name);
      assert.equal(seen.state, "running", "a fresh driver object sees the running instance");
      assert.equal(seen.pid, s1.pid);
      assert.equal(
        (await adopted.start(spec(), secrets)).pid,
        s1.pid,
        "a fresh driver does not start a second copy",
      );
      assert.ok((await adopted.list()).some((i) => i.name === name && i.state === "running"));

      await adopted.stop(name);
      assert.equal((await d.status(name)).state, "created");
      await adopted.stop(name);
      await d.delete(name);
      await d.delete(name);
      assert.equal((await d.status(name)).state, "absent");
      assert.ok(!(await d.list()).some((i) => i.name === name));
      if (opts.leftovers) assert.deepEqual(await opts.leftovers(name), []);
    } finally {
      await d.delete(name).catch(() => {});
    }
  });
}
