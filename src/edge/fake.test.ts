import assert from "node:assert/strict";
import { test } from "node:test";
import { edgeConformance } from "./conformance.ts";
import { FakeEdge } from "./fake.ts";

const fake = new FakeEdge();
edgeConformance({
  label: "fake edge",
  edge: () => fake,
  // The fake keeps its state in the object, as one edge process would.
  fresh: () => fake,
  upstream: () => "http://127.0.0.1:20000",
});

test("fake edge: records calls and fails the calls a test asks it to, keeping the previous routes", async () => {
  const e = new FakeEdge();
  await e.start();
  await e.setRoutes([{ tenant: "alice", upstream: "http://127.0.0.1:20000" }]);
  e.failNext("setRoutes");
  await assert.rejects(e.setRoutes([{ tenant: "bob", upstream: "http://127.0.0.1:20001" }]), /injected/);
  assert.deepEqual((await e.status()).tenants, ["alice"], "a failed change keeps the previous routes");
  assert.deepEqual(
    e.calls.map((c) => c.method),
    ["start", "setRoutes", "setRoutes"],
  );
});
