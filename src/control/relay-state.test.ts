import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, test } from "node:test";
import { LLM_PLANS } from "../core/plans.ts";
import { newTenant, type Tenant, type Tier } from "../core/tenant.ts";
import { FakeKeyService } from "../kms/fake.ts";
import { ensureTenantKeys } from "../kms/index.ts";
import type { KeyService } from "../kms/types.ts";
import type { RelayUpstream } from "../relay/types.ts";
import { openDatabase } from "../store/db.ts";
import { LlmStore } from "../store/llm.ts";
import { TenantStore } from "../store/tenants.ts";
import { newVirtualKey, OWN_KEY_PURPOSE, sealFor, VIRTUAL_KEY_PURPOSE } from "./llm-keys.ts";
import { KeyHashCache, relayStateFor, relayStateSource, upstreamApiFor, utcDay } from "./relay-state.ts";

const NOW = Date.UTC(2030, 1, 10, 8); // 10 February 2030
const kms = await FakeKeyService.create();
after(() => kms.close());

const UPSTREAMS: RelayUpstream[] = [
  {
    id: "main",
    baseUrl: "http://127.0.0.1:9100/v1",
    apiKey: "sk-operator-main",
    api: "openai",
    models: ["m1", "m2"],
  },
  {
    id: "spare",
    baseUrl: "http://127.0.0.1:9101/v1",
    apiKey: "sk-operator-spare",
    api: "openai",
    models: ["m2", "m3"],
  },
];

/** A fresh store with tenants made as sign-up makes them (key tree, sealed virtual key). */
async function world() {
  const store = new TenantStore(openDatabase(":memory:"));
  const llm = new LlmStore(store.db);
  const keys = new Map<string, string>();
  let slot = 0;
  const add = async (
    name: string,
    tier: Tier,
    extra: Partial<Tenant> = {},
    withKey = true,
  ): Promise<Tenant> => {
    const t = {
      ...newTenant({ id: `tnt_${name}`, name, tier, slot: slot++, now: NOW - 3600_000 }),
      ...extra,
    };
    store.insert(t);
    await ensureTenantKeys(kms, t.id, tier);
    if (withKey) {
      const key = newVirtualKey();
      keys.set(t.id, key);
      store.putSecret(t.id, VIRTUAL_KEY_PURPOSE, await sealFor(kms, t.id, VIRTUAL_KEY_PURPOSE, key), NOW);
    }
    return t;
  };
  const state = (o: { hashes?: KeyHashCache; now?: number } = {}) =>
    relayStateFor({
      store,
      llm,
      kms,
      addresses: (t) => [`198.19.1.${t.slot + 10}`],
      upstreams: UPSTREAMS,
      now: o.now ?? NOW,
      ...(o.hashes ? { hashes: o.hashes } : {}),
    });
  return { store, llm, keys, add, state };
}

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

test("every tenant that should run on a relayed plan is in the state with its key's hash, addresses, models, limits and usage; never the key itself", async () => {
  const w = await world();
  const trial = await w.add("trial", "starter");
  await w.add("paid", "premium", { subscription: "active" });
  w.llm.addUsage([
    { tenantId: trial.id, day: "2030-02-10", model: "m1", inputTokens: 100, outputTokens: 50, requests: 3 },
    { tenantId: trial.id, day: "2030-02-01", model: "m2", inputTokens: 1000, outputTokens: 0, requests: 1 },
    { tenantId: trial.id, day: "2030-01-31", model: "m1", inputTokens: 99999, outputTokens: 0, requests: 1 },
  ]);
  const state = await w.state();
  assert.deepEqual(
    state.tenants.map((t) => t.name),
    ["paid", "trial"],
  );
  const t = state.tenants.find((x) => x.name === "trial")!;
  assert.equal(t.tenantId, trial.id);
  assert.equal(t.keyHash, sha256(w.keys.get(trial.id)!));
  assert.deepEqual(t.addresses, ["198.19.1.10"]);
  assert.deepEqual(t.models, [
    { id: "m1", upstream: "main" },
    { id: "m2", upstream: "main" },
    { id: "m3", upstream: "spare" },
  ]);
  assert.deepEqual(t.limits, LLM_PLANS.trial.limits, "on trial: the trial's budget");
  assert.deepEqual(t.used, { day: "2030-02-10", dayTokens: 150, month: "2030-02", monthTokens: 1150 });
  assert.equal(t.own, undefined);
  const p = state.tenants.find((x) => x.name === "paid")!;
  assert.deepEqual(p.limits, LLM_PLANS.premium.limits, "subscribed: its tier's");
  assert.deepEqual(p.used, { day: "2030-02-10", dayTokens: 0, month: "2030-02", monthTokens: 0 });
  assert.deepEqual(state.upstreams, UPSTREAMS);
  const json = JSON.stringify(state);
  for (const key of w.keys.values()) assert.ok(!json.includes(key), "the state holds hashes, not keys");
});

test("left out: Enterprise (air-gapped), suspended, expired trials, deleted, and tenants without a key yet (control: the same tenant in good standing is in)", async () => {
  const w = await world();
  await w.add("ok", "starter");
  await w.add("ent", "enterprise", { subscription: "active" });
  await w.add("susp", "starter", { desired: "suspended" });
  await w.add("expired", "starter", { trialEndsAt: NOW - 1 });
  await w.add("gone", "premium", { desired: "deleted" });
  await w.add("nokey", "premium", {}, false);
  assert.deepEqual(
    (await w.state()).tenants.map((t) => t.name),
    ["ok"],
  );
  w.store.setSubscription("tnt_expired", "active", NOW);
  w.store.setDesired("tnt_susp", "running", NOW);
  assert.deepEqual(
    (await w.state()).tenants.map((t) => t.name),
    ["expired", "ok", "susp"],
  );
});

test("an own provider serves every model of the tenant with its own key, its token budgets lifted; others keep the platform's", async () => {
  const w = await world();
  const a = await w.add("byok", "starter");
  await w.add("plain", "starter");
  w.llm.setOwnProvider(a.id, { baseUrl: "https://api.anthropic.com/v1", model: "claude-x", updatedAt: NOW });
  w.store.putSecret(a.id, OWN_KEY_PURPOSE, await sealFor(kms, a.id, OWN_KEY_PURPOSE, "sk-ant-own"), NOW);
  const state = await w.state();
  const t = state.tenants.find((x) => x.name === "byok")!;
  assert.deepEqual(t.own, {
    id: "own:byok",
    baseUrl: "https://api.anthropic.com/v1",
    apiKey: "sk-ant-own",
    api: "anthropic",
    models: ["claude-x"],
  });
  assert.deepEqual(
    t.models.map((m) => `${m.id}@${m.upstream}`),
    ["m1@own:byok", "m2@own:byok", "m3@own:byok", "claude-x@own:byok"],
  );
  assert.deepEqual(t.limits, {
    tokensPerDay: null,
    tokensPerMonth: null,
    requestsPerMinute: LLM_PLANS.trial.limits.requestsPerMinute,
  });
  const plain = state.tenants.find((x) => x.name === "plain")!;
  assert.equal(plain.own, undefined);
  assert.deepEqual(plain.limits, LLM_PLANS.trial.limits);
  assert.ok(!JSON.stringify(state.upstreams).includes("sk-ant-own"), "the own key is only in its tenant");
  assert.equal(upstreamApiFor("https://api.openai.com/v1"), "openai");
});

test("the hash cache unseals a key once until it changes (a rotation); a key service failure rejects, a tenant deleted meanwhile is left out", async () => {
  const w = await world();
  const a = await w.add("cached", "starter");
  const hashes = new KeyHashCache();
  const unseals = () => kms.callsOf("unseal").filter((id) => id === a.id).length;
  const first = await w.state({ hashes });
  const n = unseals();
  const again = await w.state({ hashes });
  assert.equal(unseals(), n, "nothing unsealed the second time");
  assert.equal(again.tenants[0]?.keyHash, first.tenants[0]?.keyHash);
  const rotated = newVirtualKey();
  w.store.putSecret(a.id, VIRTUAL_KEY_PURPOSE, await sealFor(kms, a.id, VIRTUAL_KEY_PURPOSE, rotated), NOW);
  assert.equal((await w.state({ hashes })).tenants[0]?.keyHash, sha256(rotated));
  assert.equal(unseals(), n + 1);

  kms.failNext("unseal", new Error("key service down"));
  await assert.rejects(w.state(), /key service down/);
  // A tenant deleted while the state is built: its keys are destroyed (unseal fails), it is left out.
  await w.add("vanishing", "starter");
  const deleting: KeyService = {
    seal: (p, ctx) => kms.seal(p, ctx),
    unseal: async (sealed, ctx) => {
      if (ctx.tenantId !== "tnt_vanishing") return kms.unseal(sealed, ctx);
      w.store.remove(ctx.tenantId);
      throw new Error("keys destroyed");
    },
    destroyTenant: (id) => kms.destroyTenant(id),
    close: async () => {},
  };
  const s = await relayStateFor({
    store: w.store,
    llm: w.llm,
    kms: deleting,
    addresses: () => [],
    upstreams: [],
    now: NOW,
  });
  assert.deepEqual(
    s.tenants.map((t) => t.name),
    ["cached"],
  );
});

test("relayStateSource builds at the clock's now", async () => {
  const w = await world();
  await w.add("src", "starter");
  const source = relayStateSource({
    store: w.store,
    llm: w.llm,
    kms,
    addresses: () => ["127.0.0.1"],
    upstreams: UPSTREAMS,
    clock: () => NOW + 86_400_000,
  });
  const s = await source();
  assert.equal(s.tenants[0]?.used.day, utcDay(NOW + 86_400_000));
  assert.deepEqual(s.tenants[0]?.addresses, ["127.0.0.1"]);
});
