import assert from "node:assert/strict";
import { test } from "node:test";
import { planFor } from "../core/plans.ts";
import type { Tenant } from "../core/tenant.ts";
import { instanceSpecFor, instanceSpecs } from "./instance-spec.ts";

const tenant = (name: string, tier: Tenant["tier"], slot: number): Tenant => ({
  id: `tnt_${name}`,
  name,
  tier,
  slot,
  createdAt: 0,
  trialEndsAt: 0,
  subscription: "trial",
  desired: "running",
  actual: "pending",
  reason: null,
  updatedAt: 0,
});
const llm = { baseUrl: "http://127.0.0.1:9/v1", model: "m" };

test("a tenant's spec: its id, name, tier, slot and plan, the platform's provider without its key", () => {
  const withKey = { ...llm, apiKey: "provider-key" };
  const s = instanceSpecFor(tenant("alice", "enterprise", 7), { llm: withKey });
  assert.deepEqual(s, {
    tenantId: "tnt_alice",
    name: "alice",
    tier: "enterprise",
    slot: 7,
    plan: planFor("enterprise"),
    llm,
  });
  assert.equal(JSON.stringify(s).includes("provider-key"), false, "the key never rides in a spec");
});

test("the public origin is in the spec only when the edge gives one", () => {
  const specs = instanceSpecs({
    llm,
    publicOrigin: (name) => (name === "alice" ? "https://alice.example.com" : undefined),
  });
  assert.equal(specs(tenant("alice", "starter", 1)).publicOrigin, "https://alice.example.com");
  assert.equal(
    "publicOrigin" in specs(tenant("bob", "starter", 2)),
    false,
    "control: no edge origin, no key",
  );
  assert.deepEqual(
    specs(tenant("alice", "premium", 3)),
    instanceSpecFor(tenant("alice", "premium", 3), {
      llm,
      publicOrigin: () => "https://alice.example.com",
    }),
  );
});
