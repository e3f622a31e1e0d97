import assert from "node:assert/strict";
import { test } from "node:test";
import { ValidationError } from "../core/errors.ts";
import type { EdgeController } from "./types.ts";

export interface EdgeConformanceOptions {
  label: string;
  /** The edge under test; the suite starts it and leaves it running with its last routes. */
  edge: () => EdgeController;
  /** A new object over the same edge (same state directory): a restarted control plane. */
  fresh: () => EdgeController;
  /** A TCP upstream the routes may point at (http://<host>:<port>). */
  upstream: () => string;
}

/**
 * The behaviour every EdgeController promises (types.ts), as one suite each edge runs: start is
 * idempotent and a fresh object adopts the running edge; setRoutes replaces the whole set and a
 * set that fails validation (bad or reserved name, a name twice, a unix socket or non-TCP
 * upstream) throws and leaves the served set and its generation as they were; stop is
 * idempotent and start serves the saved routes again; tenantUrl names the tenant under the
 * edge's domain. The tests share one edge, in order.
 */
export function edgeConformance(opts: EdgeConformanceOptions): void {
  const tenantsOf = async (e: EdgeController) => [...(await e.status()).tenants].sort();

  test(`${opts.label}: start is idempotent, and a fresh object adopts the running edge`, async () => {
    const e = opts.edge();
    await e.start();
    const first = await e.status();
    assert.equal(first.running, true);
    assert.ok(first.pid, "a running edge reports its pid");
    await e.start();
    assert.equal((await e.status()).pid, first.pid, "a second start keeps the running edge");
    const again = opts.fresh();
    await again.start();
    assert.equal((await again.status()).pid, first.pid, "a fresh object adopts, never a second copy");
  });

  test(`${opts.label}: setRoutes replaces the whole set, each change a new generation`, async () => {
    const e = opts.edge();
    const up = opts.upstream();
    await e.setRoutes([
      { tenant: "conf-a", upstream: up },
      { tenant: "conf-b", upstream: up },
    ]);
    assert.deepEqual(await tenantsOf(e), ["conf-a", "conf-b"]);
    const g1 = (await e.status()).generation;
    assert.ok(g1, "a running edge reports its generation");
    await e.setRoutes([{ tenant: "conf-b", upstream: up }]);
    assert.deepEqual(await tenantsOf(e), ["conf-b"], "conf-a is gone: the set is replaced, not merged");
    assert.notEqual((await e.status()).generation, g1);
  });

  test(`${opts.label}: a set that fails validation throws and leaves the served set and generation`, async () => {
    const e = opts.edge();
    const up = opts.upstream();
    const before = await e.status();
    const bad: Array<[string, { tenant: string; upstream: string }[]]> = [
      ["a bad tenant name", [{ tenant: "Bad_Name", upstream: up }]],
      ["a path in the name", [{ tenant: "../x", upstream: up }]],
      ["a reserved label", [{ tenant: "api", upstream: up }]],
      [
        "a tenant twice",
        [
          { tenant: "conf-c", upstream: up },
          { tenant: "conf-c", upstream: up },
        ],
      ],
      ["a unix socket upstream", [{ tenant: "conf-c", upstream: "unix:/run/clawkeep/admin.sock" }]],
      ["an upstream that is not http://host:port", [{ tenant: "conf-c", upstream: "https://x.example:1" }]],
    ];
    for (const [what, routes] of bad) {
      await assert.rejects(e.setRoutes(routes), ValidationError, `${what} is refused`);
      const now = await e.status();
      assert.deepEqual([...now.tenants].sort(), [...before.tenants].sort(), `${what}: the served set stays`);
      assert.equal(now.generation, before.generation, `${what}: no new config`);
    }
    // Control: the same call with a valid set goes through.
    await e.setRoutes([
      ...before.tenants.map((tenant) => ({ tenant, upstream: up })),
      { tenant: "conf-c", upstream: up },
    ]);
    assert.deepEqual(await tenantsOf(e), [...before.tenants, "conf-c"].sort());
  });

  test(`${opts.label}: tenantUrl is https://<tenant>.<domain>[:port]/, and a tenant with no blocks has no events`, async () => {
    const e = opts.edge();
    const { domain } = await e.status();
    assert.match(
      e.tenantUrl("conf-b"),
      new RegExp(`^https://conf-b\\.${domain.replaceAll(".", "\\.")}(:\\d+)?/$`),
    );
    assert.deepEqual(await e.blockedEvents("conf-b"), []);
  });

  test(`${opts.label}: stop is idempotent; start again serves the saved routes`, async () => {
    const e = opts.edge();
    const served = await tenantsOf(e);
    await e.stop();
    await e.stop();
    assert.equal((await e.status()).running, false);
    await e.start();
    const st = await e.status();
    assert.equal(st.running, true);
    assert.deepEqual([...st.tenants].sort(), served);
  });
}
