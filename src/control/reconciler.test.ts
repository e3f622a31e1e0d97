import assert from "node:assert/strict";
import { test } from "node:test";
import { Secret } from "../core/secret.ts";
import { probe } from "../openclaw/probe.ts";
import { FakeDriver } from "../runtime/fake/driver.ts";
import { openDatabase } from "../store/db.ts";
import { TenantStore } from "../store/tenants.ts";
import { eventually, makeControlPlane } from "../testing/harness.ts";

async function withPlane(
  opts: Parameters<typeof makeControlPlane>[0],
  fn: (cp: ReturnType<typeof makeControlPlane>) => Promise<void>,
) {
  const cp = makeControlPlane(opts);
  try {
    await fn(cp);
  } finally {
    await cp.reconciler.stop();
    await (cp.driver as FakeDriver).closeAll();
    await cp.kms.close();
  }
}

test("sign-up makes the tenant's key tree, its token sealed under it (control: a tenant never signed up has none)", async () => {
  await withPlane({}, async (cp) => {
    const { tenant } = await cp.tenants.create({ name: "keyed", tier: "premium" });
    assert.deepEqual(cp.kms.callsOf("createTenantKeys"), [tenant.id]);
    const info = await cp.kms.describeTenant(tenant.id);
    assert.equal(info.tier, "premium");
    assert.equal(info.kek.scope, "tenant");
    await assert.rejects(cp.kms.describeTenant("tnt_never"), /has no keys/);
    assert.equal((await cp.kms.getVolumeKey(tenant.id)).length, 64);
  });
});

test("deleting a tenant destroys its keys in the key service; its neighbour's stay (control: before the delete they open)", async () => {
  await withPlane({}, async (cp) => {
    const { tenant } = await cp.tenants.create({ name: "doomed", tier: "starter" });
    const { tenant: other } = await cp.tenants.create({ name: "stays", tier: "starter" });
    await cp.reconciler.start();
    await eventually(() => cp.store.get("doomed")?.actual === "running", 5000, "doomed running");
    assert.equal(
      (await cp.kms.getVolumeKey(tenant.id)).length,
      64,
      "control: the keys open before the delete",
    );
    cp.tenants.delete({ kind: "operator" }, "doomed");
    await eventually(() => cp.store.get("doomed") === undefined, 5000, "doomed deleted");
    assert.deepEqual(cp.kms.callsOf("destroyTenant"), [tenant.id]);
    await assert.rejects(cp.kms.getVolumeKey(tenant.id), /destroyed/);
    assert.equal((await cp.kms.getVolumeKey(other.id)).length, 64, "the neighbour's keys are untouched");
  });
});

test("a new tenant is created, started and marked running once its gateway is ready", async () => {
  await withPlane({}, async (cp) => {
    const { tenant, gatewayToken } = await cp.tenants.create({ name: "alice", tier: "starter" });
    await cp.reconciler.start();
    await eventually(() => cp.store.get("alice")?.actual === "running", 5000, "alice running");
    const d = cp.driver as FakeDriver;
    assert.equal(d.count("start", "alice"), 1);
    assert.equal(d.instances.get("alice")!.token, gatewayToken, "the gateway got the unsealed token");
    const types = cp.store.events(tenant.id).map((e) => e.type);
    assert.deepEqual(types, ["created", "ready"]);
  });
});

test("starts are admitted one at a time", async () => {
  const d = new FakeDriver();
  let running = 0;
  let peak = 0;
  const orig = d.start.bind(d);
  d.start = async (spec, secrets) => {
    running++;
    peak = Math.max(peak, running);
    await new Promise((r) => setTimeout(r, 80));
    const s = await orig(spec, secrets);
    running--;
    return s;
  };
  await withPlane({ driver: d }, async (cp) => {
    for (const n of ["a1", "a2", "a3", "a4"]) await cp.tenants.create({ name: n, tier: "starter" });
    await cp.reconciler.start();
    await eventually(() => cp.store.list().every((t) => t.actual === "running"), 8000, "all running");
    assert.equal(peak, 1, "never two starts at once");
  });
  // Control: with concurrency 4 they do overlap, so the assertion above can fail.
  const d2 = new FakeDriver();
  let r2 = 0;
  let p2 = 0;
  const o2 = d2.start.bind(d2);
  d2.start = async (spec, secrets) => {
    r2++;
    p2 = Math.max(p2, r2);
    await new Promise((r) => setTimeout(r, 80));
    const s = await o2(spec, secrets);
    r2--;
    return s;
  };
  await withPlane({ driver: d2, startConcurrency: 4 }, async (cp) => {
    for (const n of ["b1", "b2", "b3", "b4"]) await cp.tenants.create({ name: n, tier: "starter" });
    await cp.reconciler.start();
    await eventually(() => cp.store.list().every((t) => t.actual === "running"), 8000, "all running");
    assert.ok(p2 > 1);
  });
});

test("a failed first start is retried; after the last attempt the tenant is failed with the reason", async () => {
  const d = new FakeDriver();
  d.failNext("start", new Error("state lease heartbeat did not become ready"));
  await withPlane({ driver: d, startAttempts: 2 }, async (cp) => {
    const { tenant } = await cp.tenants.create({ name: "retry", tier: "starter" });
    await cp.reconciler.start();
    await eventually(() => cp.store.get("retry")?.actual === "running", 5000, "retry running");
    assert.equal(d.count("start", "retry"), 2);
    assert.ok(
      cp.store.events(tenant.id).some((e) => e.type === "start_failed" && /heartbeat/.test(e.message)),
    );
  });

  const d2 = new FakeDriver();
  d2.neverReady.add("stuck");
  await withPlane({ driver: d2, startAttempts: 2, readyTimeoutMs: 300 }, async (cp) => {
    await cp.tenants.create({ name: "stuck", tier: "starter" });
    await cp.reconciler.start();
    const t = await eventually(
      () => {
        const x = cp.store.get("stuck");
        return x?.actual === "failed" ? x : undefined;
      },
      5000,
      "stuck failed",
    );
    assert.match(t.reason!, /did not become ready after 2 attempts/);
    assert.equal(d2.count("start", "stuck"), 2);
    assert.equal((await d2.status("stuck")).state, "created", "the half-started gateway was stopped");
    // A failed tenant is not retried forever; the operator's restart tries again.
    const before = d2.count("start", "stuck");
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(d2.count("start", "stuck"), before);
    d2.neverReady.delete("stuck");
    cp.tenants.setDesired({ kind: "operator" }, "stuck", "restart");
    await eventually(() => cp.store.get("stuck")?.actual === "running", 5000, "stuck running after restart");
  });
});

test("a gateway that dies is restarted, with a crash event", async () => {
  await withPlane({}, async (cp) => {
    const { tenant } = await cp.tenants.create({ name: "crashy", tier: "starter" });
    await cp.reconciler.start();
    await eventually(() => cp.store.get("crashy")?.actual === "running");
    const d = cp.driver as FakeDriver;
    const pid = d.instances.get("crashy")!.pid;
    await d.crash("crashy");
    await eventually(
      () => d.instances.get("crashy")!.pid !== pid && cp.store.get("crashy")?.actual === "running",
      5000,
      "restart",
    );
    assert.ok(cp.store.events(tenant.id).some((e) => e.type === "crashed"));
    assert.equal(d.count("start", "crashy"), 2);
  });
});

test("a restarted control plane adopts running gateways without starting them again, and stops orphans", async () => {
  const d = new FakeDriver();
  const store = new TenantStore(openDatabase(":memory:"));
  const first = makeControlPlane({ driver: d, store });
  await first.tenants.create({ name: "keep", tier: "premium" });
  await first.reconciler.start();
  await eventually(() => store.get("keep")?.actual === "running");
  await first.reconciler.stop();
  // An instance no tenant owns (a leftover of a crashed delete), still running.
  const orphanSpec = {
    ...first.specs(store.get("keep")!),
    name: "orphan",
    tenantId: "tnt_x",
    slot: 9,
  };
  await d.create(orphanSpec);
  await d.start(orphanSpec, { gatewayToken: new Secret("x"), llmApiKey: new Secret("y") });
  const starts = d.count("start");
  const pid = d.instances.get("keep")!.pid;

  const second = makeControlPlane({ driver: d, store });
  try {
    await second.reconciler.start();
    await second.reconciler.idle();
    assert.equal(d.count("start"), starts, "no new start");
    assert.equal(d.instances.get("keep")!.pid, pid, "the same process");
    assert.equal((await d.status("orphan")).state, "created", "the orphan is stopped");
    assert.equal(d.instances.has("orphan"), true, "but its data is kept");
    assert.ok(store.events(store.get("keep")!.id).some((e) => e.type === "adopted"));
  } finally {
    await second.reconciler.stop();
    await d.closeAll();
  }
});

test("an expired trial suspends the instance and keeps its data; subscribing brings it back", async () => {
  let now = Date.UTC(2026, 10, 1);
  await withPlane({ clock: () => now }, async (cp) => {
    await cp.tenants.create({ name: "trial", tier: "starter" });
    await cp.reconciler.start();
    await eventually(() => cp.store.get("trial")?.actual === "running");
    const d = cp.driver as FakeDriver;
    now += 8 * 86_400_000;
    cp.reconciler.kick();
    const t = await eventually(
      () => {
        const x = cp.store.get("trial");
        return x?.actual === "suspended" ? x : undefined;
      },
      5000,
      "suspended",
    );
    assert.match(t.reason!, /trial ended/);
    assert.equal((await d.status("trial")).state, "created", "stopped, not deleted");
    assert.equal(d.count("delete", "trial"), 0);
    cp.tenants.setDesired({ kind: "operator" }, "trial", "subscribe");
    await eventually(() => cp.store.get("trial")?.actual === "running", 5000, "running after subscribe");
  });
});

test("deleting a tenant while its start is under way aborts the start and deletes it", async () => {
  const d = new FakeDriver();
  d.neverReady.add("slow");
  await withPlane({ driver: d, readyTimeoutMs: 60_000 }, async (cp) => {
    await cp.tenants.create({ name: "slow", tier: "starter" });
    await cp.reconciler.start();
    await eventually(() => d.count("start", "slow") === 1);
    cp.tenants.delete({ kind: "operator" }, "slow");
    await eventually(() => cp.store.get("slow") === undefined, 5000, "deleted");
    assert.equal(d.instances.has("slow"), false);
  });
});

test("a running instance that reports a missing part is repaired by start(), its gateway kept; a whole one is left alone", async () => {
  const d = new FakeDriver();
  const missing = new Set<string>();
  const status = d.status.bind(d);
  d.status = async (name) => {
    const st = await status(name);
    return missing.has(name) && st.state === "running"
      ? { ...st, repair: "the model server is not running" }
      : st;
  };
  const start = d.start.bind(d);
  d.start = async (spec, secrets) => {
    missing.delete(spec.name);
    return start(spec, secrets);
  };
  await withPlane({ driver: d }, async (cp) => {
    const { tenant } = await cp.tenants.create({ name: "ent", tier: "enterprise" });
    await cp.reconciler.start();
    await eventually(() => cp.store.get("ent")?.actual === "running", 5000, "ent running");
    const pid = (await d.status("ent")).pid;
    // Control: a whole instance gets no second start, however many passes go by.
    for (let i = 0; i < 3; i++) {
      cp.reconciler.kick();
      await cp.reconciler.idle();
    }
    assert.equal(d.count("start", "ent"), 1);
    missing.add("ent");
    cp.reconciler.kick();
    await eventually(() => !missing.has("ent"), 5000, "repair");
    await cp.reconciler.idle();
    assert.equal(d.count("start", "ent"), 2);
    assert.equal((await d.status("ent")).pid, pid, "the running gateway was kept");
    assert.ok(cp.store.events(tenant.id).some((e) => e.type === "repaired"));
  });
});

/** A fake driver with settle() (the start-quota hand-back), recording what it saw. */
function settlingDriver() {
  const d = new FakeDriver();
  const seen: Array<{ name: string; ready: boolean }> = [];
  let failures = 0;
  const driver = Object.assign(d, {
    failSettle(n: number) {
      failures = n;
    },
    async settle(spec: { name: string }) {
      const st = await d.status(spec.name);
      const ready = st.url ? (await probe(st.url)).ok : false;
      seen.push({ name: spec.name, ready });
      if (failures > 0) {
        failures--;
        throw new Error("injected settle failure");
      }
    },
  });
  return { driver, seen };
}

test("a started gateway is settled to its steady quota once ready, before it counts as running", async () => {
  const { driver: d, seen } = settlingDriver();
  let runningAtSettle: string | undefined;
  const settle = d.settle.bind(d);
  await withPlane({ driver: d }, async (cp) => {
    d.settle = async (spec) => {
      runningAtSettle = cp.store.get(spec.name)?.actual;
      return settle(spec);
    };
    await cp.tenants.create({ name: "quota", tier: "starter" });
    await cp.reconciler.start();
    await eventually(() => cp.store.get("quota")?.actual === "running", 5000, "running");
    assert.deepEqual(seen, [{ name: "quota", ready: true }], "settled once, after /readyz answered");
    assert.equal(runningAtSettle, "starting", "settled before it was marked running");
    // Control: a pass over a running tenant settles nothing again.
    cp.reconciler.kick();
    await cp.reconciler.idle();
    assert.equal(seen.length, 1);
  });
});

test("a gateway that cannot be settled is not kept: the start attempt fails and is retried", async () => {
  const { driver: d, seen } = settlingDriver();
  d.failSettle(1);
  await withPlane({ driver: d, startAttempts: 2 }, async (cp) => {
    const { tenant } = await cp.tenants.create({ name: "capfail", tier: "starter" });
    await cp.reconciler.start();
    await eventually(() => cp.store.get("capfail")?.actual === "running", 5000, "running");
    assert.equal(d.count("start", "capfail"), 2);
    assert.equal(d.count("stop", "capfail"), 1, "the unsettled gateway was stopped");
    assert.equal(seen.length, 2);
    assert.ok(cp.store.events(tenant.id).some((e) => e.type === "start_failed" && /settle/.test(e.message)));
  });
});

test("a restarted control plane settles the running gateways it adopts", async () => {
  const { driver: d, seen } = settlingDriver();
  const store = new TenantStore(openDatabase(":memory:"));
  const first = makeControlPlane({ driver: d, store });
  await first.tenants.create({ name: "adopted", tier: "premium" });
  await first.reconciler.start();
  await eventually(() => store.get("adopted")?.actual === "running");
  await first.reconciler.stop();
  assert.equal(seen.length, 1);
  const second = makeControlPlane({ driver: d, store });
  try {
    await second.reconciler.start();
    await second.reconciler.idle();
    assert.equal(seen.length, 2, "settled again on adoption (idempotent)");
    assert.equal(d.count("start", "adopted"), 1, "not started again");
  } finally {
    await second.reconciler.stop();
    await d.closeAll();
  }
});

test("the operator's restart of a running tenant stops its gateway and the reconciler starts a new one (control: re-marking it pending alone keeps the same process)", async () => {
  await withPlane({}, async (cp) => {
    await cp.tenants.create({ name: "again", tier: "starter" });
    await cp.reconciler.start();
    await eventually(() => cp.store.get("again")?.actual === "running", 5000, "again running");
    const d = cp.driver as FakeDriver;
    const first = (await d.status("again")).pid;
    assert.ok(first);

    // Control: what restart did before, marking the tenant pending, starts nothing new.
    cp.tenants.setDesired({ kind: "operator" }, "again", "restart");
    await cp.reconciler.idle();
    await eventually(() => cp.store.get("again")?.actual === "running", 5000, "again running");
    assert.equal((await d.status("again")).pid, first, "the same process: nothing was restarted");

    const stops = d.count("stop", "again");
    const res = await cp.adminApi.request("/v1/tenants/again/restart", { method: "POST" });
    assert.equal(res.status, 200, await res.clone().text());
    await eventually(() => cp.store.get("again")?.actual === "running", 5000, "again running after restart");
    assert.equal(d.count("stop", "again"), stops + 1, "the running gateway was stopped");
    assert.notEqual((await d.status("again")).pid, first, "a new gateway process");
    assert.ok(cp.store.events(cp.store.get("again")!.id).some((e) => e.type === "restart"));
    // A tenant cannot restart itself through the public API (operator only).
    const token = (await cp.tenants.create({ name: "self", tier: "starter" })).apiToken;
    const own = await cp.publicApi.request("/v1/tenants/self/restart", {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
    });
    assert.ok(own.status === 403 || own.status === 404, `public restart: ${own.status}`);
  });
});
