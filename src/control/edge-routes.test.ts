import assert from "node:assert/strict";
import { test } from "node:test";
import { FakeEdge } from "../edge/fake.ts";
import type { EdgeRoute } from "../edge/types.ts";
import { createLogger } from "../lib/log.ts";
import { eventually } from "../testing/harness.ts";
import { EdgeRoutes } from "./edge-routes.ts";

const route = (tenant: string, port: number): EdgeRoute => ({ tenant, upstream: `http://127.0.0.1:${port}` });
const setCalls = (e: FakeEdge) => e.calls.filter((c) => c.method === "setRoutes");

test("edge routes: a burst of changes is one update, an unchanged set is not sent again, a failed update is retried on the next change", async () => {
  const edge = new FakeEdge();
  await edge.start();
  let want = [route("a", 20000)];
  const routes = new EdgeRoutes({
    edge: () => edge,
    routes: () => want,
    log: createLogger("silent"),
    debounceMs: 20,
  });
  try {
    for (let i = 0; i < 5; i++) routes.sync();
    await eventually(() => setCalls(edge).length === 1, 2000, "one update");
    assert.deepEqual(edge.routes, want);

    // The same set again: nothing is sent (control: a changed set is).
    routes.sync();
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(setCalls(edge).length, 1);
    want = [route("a", 20000), route("b", 20200)];
    routes.sync();
    await eventually(() => setCalls(edge).length === 2, 2000, "the changed set");
    assert.deepEqual(
      edge.routes.map((r) => r.tenant),
      ["a", "b"],
    );

    // A failed update keeps the edge's routes; the next sync sends the set again.
    edge.failNext("setRoutes");
    want = [route("b", 20200)];
    routes.sync();
    await eventually(() => setCalls(edge).length === 3, 2000, "the failed update");
    assert.deepEqual(
      edge.routes.map((r) => r.tenant),
      ["a", "b"],
      "the edge kept the routes it had",
    );
    routes.sync();
    await eventually(() => setCalls(edge).length === 4, 2000, "the retry");
    assert.deepEqual(
      edge.routes.map((r) => r.tenant),
      ["b"],
    );
  } finally {
    await routes.close();
  }
});

test("edge routes: nothing is sent without an edge, and close() drops a pending update", async () => {
  const edge = new FakeEdge();
  let present: FakeEdge | null = null;
  const routes = new EdgeRoutes({
    edge: () => present,
    routes: () => [route("a", 20000)],
    log: createLogger("silent"),
    debounceMs: 20,
  });
  routes.sync();
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(setCalls(edge).length, 0);
  present = edge;
  routes.sync();
  await routes.close();
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(setCalls(edge).length, 0, "closed before the debounce ran");
});
