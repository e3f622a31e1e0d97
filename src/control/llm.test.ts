import assert from "node:assert/strict";
import { after, test } from "node:test";
import { LLM_PLANS } from "../core/plans.ts";
import type { FakeDriver } from "../runtime/fake/driver.ts";
import type { InstanceSecrets } from "../runtime/types.ts";
import { eventually, makeControlPlane } from "../testing/harness.ts";
import { createApi } from "./api.ts";
import { LlmService } from "./llm.ts";
import { OWN_KEY_PURPOSE, unsealSecret, VIRTUAL_KEY_PURPOSE } from "./llm-keys.ts";
import { relayStateFor } from "./relay-state.ts";

// A clock that runs, from noon UTC on 15 January 2030 (usage days and months are UTC).
const BASE = Date.UTC(2030, 0, 15, 12);
const started = Date.now();
const clock = () => BASE + (Date.now() - started);

// Every start's secrets, by tenant, to see what each gateway was given.
const given = new Map<string, InstanceSecrets[]>();
const cp = makeControlPlane({ clock });
const driver = cp.driver as FakeDriver;
const start = driver.start.bind(driver);
driver.start = (spec, secrets, signal) => {
  given.set(spec.name, [...(given.get(spec.name) ?? []), secrets]);
  return start(spec, secrets, signal);
};
const ALLOW = ["https://api.openai.com/v1", "https://api.anthropic.com/v1"];
let relayTold = 0;
const llm = new LlmService({
  store: cp.store,
  llm: cp.llmStore,
  kms: cp.kms,
  tenants: cp.tenants,
  reconciler: cp.reconciler,
  driver,
  byokAllow: ALLOW,
  onChange: () => {
    relayTold++;
  },
  clock,
});
const publicApi = createApi({ mode: "public", tenants: cp.tenants, llm });
const adminApi = createApi({ mode: "admin", tenants: cp.tenants, llm });
after(async () => {
  await cp.reconciler.stop();
  await driver.closeAll();
  await cp.kms.close();
});

async function signUp(name: string, tier = "starter"): Promise<{ id: string; auth: Record<string, string> }> {
  const { tenant, apiToken } = await cp.tenants.create({ name, tier });
  return { id: tenant.id, auth: { authorization: `Bearer ${apiToken}` } };
}

const call = (
  app: typeof publicApi,
  method: string,
  path: string,
  opts: { auth?: Record<string, string>; body?: unknown } = {},
) =>
  app.request(path, {
    method,
    headers: { ...(opts.body === undefined ? {} : { "content-type": "application/json" }), ...opts.auth },
    ...(opts.body === undefined ? {} : { body: JSON.stringify(opts.body) }),
  });

const virtualKey = async (tenantId: string) => {
  const sealed = cp.store.getSecret(tenantId, VIRTUAL_KEY_PURPOSE);
  assert.ok(sealed, "the tenant has a sealed virtual key");
  return (await unsealSecret(cp.kms, tenantId, VIRTUAL_KEY_PURPOSE, sealed)).reveal();
};
const errorCode = async (res: Response) => ((await res.json()) as { error: { code: string } }).error.code;

test("sign-up seals a ckv_ virtual key with the gateway token, in the same transaction (control: a refused sign-up stores neither)", async () => {
  const a = await signUp("vk-a");
  assert.match(await virtualKey(a.id), /^ckv_[A-Za-z0-9_-]{43}$/);
  const b = await signUp("vk-b");
  assert.notEqual(await virtualKey(a.id), await virtualKey(b.id));
  // Neither key is in the database in plaintext.
  const dump = JSON.stringify(cp.store.db.prepare("SELECT * FROM tenant_secrets").all());
  assert.ok(!dump.includes(await virtualKey(a.id)));

  const full = makeControlPlane({ maxSlots: 1 });
  try {
    await full.tenants.create({ name: "first", tier: "starter" });
    const secrets = () =>
      (full.store.db.prepare("SELECT count(*) n FROM tenant_secrets").get() as { n: number }).n;
    assert.equal(secrets(), 2, "control: a sign-up stores the gateway token and the virtual key");
    await assert.rejects(full.tenants.create({ name: "second", tier: "starter" }), /holds 1 tenants/);
    assert.equal(secrets(), 2, "the refused sign-up left no secret behind");
  } finally {
    await full.kms.close();
  }
});

test("a gateway gets its own virtual key as its only provider key; a tenant made before the relay gets one at its start", async () => {
  const a = await signUp("gw-a");
  const old = await signUp("gw-old");
  cp.store.deleteSecret(old.id, VIRTUAL_KEY_PURPOSE); // as a tenant signed up before this change
  await cp.reconciler.start();
  await eventually(
    () => cp.store.get("gw-a")?.actual === "running" && cp.store.get("gw-old")?.actual === "running",
  );
  assert.equal(given.get("gw-a")?.[0]?.llmApiKey.reveal(), await virtualKey(a.id));
  const oldKey = await virtualKey(old.id);
  assert.match(oldKey, /^ckv_/);
  assert.equal(given.get("gw-old")?.[0]?.llmApiKey.reveal(), oldKey);
  assert.ok(cp.store.events(old.id).some((e) => e.type === "llm_key_created"));
  assert.ok(
    !cp.store.events(a.id).some((e) => e.type === "llm_key_created"),
    "control: a had one from sign-up",
  );
});

test("rotate-key: a new key, the relay told, the running gateway restarted with it; another tenant's token gets 404", async () => {
  const a = await signUp("rot-a");
  const b = await signUp("rot-b");
  await cp.reconciler.start();
  await eventually(() => cp.store.get("rot-a")?.actual === "running");
  const before = await virtualKey(a.id);
  const told = relayTold;

  assert.equal((await call(publicApi, "POST", "/v1/tenants/rot-a/llm/rotate-key")).status, 401);
  assert.equal(
    (await call(publicApi, "POST", "/v1/tenants/rot-a/llm/rotate-key", { auth: b.auth })).status,
    404,
  );
  assert.equal(await virtualKey(a.id), before, "control: the refused calls changed nothing");

  const res = await call(publicApi, "POST", "/v1/tenants/rot-a/llm/rotate-key", { auth: a.auth });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { tenant: "rot-a", restarted: true });
  const after = await virtualKey(a.id);
  assert.notEqual(after, before);
  assert.equal(relayTold, told + 1);
  await eventually(() => driver.count("start", "rot-a") === 2 && cp.store.get("rot-a")?.actual === "running");
  assert.equal(given.get("rot-a")?.[1]?.llmApiKey.reveal(), after, "the new gateway has the new key");
  assert.ok(cp.store.events(a.id).some((e) => e.type === "llm_key_rotated"));

  // The operator may rotate too; an Enterprise tenant has no relay key to rotate.
  assert.equal((await call(adminApi, "POST", "/v1/tenants/rot-b/llm/rotate-key")).status, 200);
  await signUp("rot-ent", "enterprise");
  const ent = await call(adminApi, "POST", "/v1/tenants/rot-ent/llm/rotate-key");
  assert.equal(ent.status, 400);
  assert.match(((await ent.json()) as { error: { message: string } }).error.message, /air-gapped/);
});

test("own key: a base URL off the operator's list is refused by name; an allowed one is sealed, shown without the key, sent to the relay, and removed", async () => {
  const a = await signUp("own-a");
  const b = await signUp("own-b");
  const key = "sk-own-0123456789abcdef";
  const told = relayTold;

  const bad = await call(publicApi, "PUT", "/v1/tenants/own-a/llm", {
    auth: a.auth,
    body: { baseUrl: "https://evil.example/v1", apiKey: key },
  });
  assert.equal(bad.status, 400);
  const badBody = (await bad.json()) as { error: { message: string; details: { allowed: string[] } } };
  assert.match(badBody.error.message, /https:\/\/evil\.example\/v1/);
  assert.deepEqual(badBody.error.details.allowed, ALLOW);
  for (const body of [
    { baseUrl: ALLOW[0], apiKey: key, extra: 1 },
    { baseUrl: ALLOW[0], apiKey: "two words" },
    { baseUrl: ALLOW[0] },
    { baseUrl: ALLOW[0], apiKey: key, model: "bad model" },
  ])
    assert.equal((await call(publicApi, "PUT", "/v1/tenants/own-a/llm", { auth: a.auth, body })).status, 400);
  assert.equal(
    (
      await call(publicApi, "PUT", "/v1/tenants/own-a/llm", {
        auth: b.auth,
        body: { baseUrl: ALLOW[0], apiKey: key },
      })
    ).status,
    404,
  );
  assert.equal(cp.llmStore.ownProvider(a.id), undefined, "control: nothing was set by the refused calls");
  assert.equal(relayTold, told);

  // A trailing slash is the same base URL.
  const ok = await call(publicApi, "PUT", "/v1/tenants/own-a/llm", {
    auth: a.auth,
    body: { baseUrl: `${ALLOW[0]}/`, apiKey: key, model: "gpt-4o-mini" },
  });
  assert.equal(ok.status, 200);
  const text = await ok.text();
  assert.ok(!text.includes(key), "the key is never shown");
  const view = JSON.parse(text) as {
    provider: string;
    own: { baseUrl: string; model: string };
    limits: unknown;
  };
  assert.equal(view.provider, "own");
  assert.deepEqual([view.own.baseUrl, view.own.model], [ALLOW[0], "gpt-4o-mini"]);
  assert.deepEqual(view.limits, { tokensPerDay: null, tokensPerMonth: null, requestsPerMinute: 10 });
  assert.equal(relayTold, told + 1);
  const shown = await (await call(publicApi, "GET", "/v1/tenants/own-a/llm", { auth: a.auth })).text();
  assert.ok(shown.includes(ALLOW[0]!) && !shown.includes(key));
  assert.equal((await call(publicApi, "GET", "/v1/tenants/own-a/llm", { auth: b.auth })).status, 404);
  const dump = cp.store.db
    .prepare("SELECT sealed FROM tenant_secrets")
    .all()
    .map((r) => (r as { sealed: Buffer }).sealed.toString("latin1"))
    .join();
  assert.ok(!dump.includes(key), "sealed, not stored in plaintext");

  // The relay gets it as the tenant's own upstream, for every model; b stays on the platform's.
  const state = await relayStateFor({
    store: cp.store,
    llm: cp.llmStore,
    kms: cp.kms,
    addresses: () => ["198.19.1.10"],
    upstreams: [
      { id: "op", baseUrl: "http://127.0.0.1:9/v1", apiKey: "operator", api: "openai", models: ["m"] },
    ],
    now: clock(),
  });
  const ra = state.tenants.find((t) => t.name === "own-a");
  assert.equal(ra?.own?.apiKey, key);
  assert.deepEqual(ra?.models, [
    { id: "m", upstream: "own:own-a" },
    { id: "gpt-4o-mini", upstream: "own:own-a" },
  ]);
  assert.equal(state.tenants.find((t) => t.name === "own-b")?.own, undefined);

  const del = await call(publicApi, "DELETE", "/v1/tenants/own-a/llm", { auth: a.auth });
  assert.equal(del.status, 200);
  assert.equal(((await del.json()) as { provider: string }).provider, "platform");
  assert.equal(cp.store.getSecret(a.id, OWN_KEY_PURPOSE), undefined);
  assert.equal(relayTold, told + 2);
  assert.equal((await call(publicApi, "DELETE", "/v1/tenants/own-a/llm", { auth: a.auth })).status, 200);
  assert.equal(relayTold, told + 2, "removing none tells nobody");

  await signUp("own-ent", "enterprise");
  assert.equal(
    (await call(adminApi, "PUT", "/v1/tenants/own-ent/llm", { body: { baseUrl: ALLOW[0], apiKey: key } }))
      .status,
    400,
  );
});

test("deleting a tenant crypto-shreds its own key and forgets its usage (control: before, the key opens and the rows are there; a neighbour keeps its own)", async () => {
  const a = await signUp("shred");
  const b = await signUp("shred-nb");
  await call(adminApi, "PUT", "/v1/tenants/shred/llm", {
    body: { baseUrl: ALLOW[1], apiKey: "sk-ant-shred" },
  });
  const sealed = cp.store.getSecret(a.id, OWN_KEY_PURPOSE);
  assert.ok(sealed);
  assert.equal((await unsealSecret(cp.kms, a.id, OWN_KEY_PURPOSE, sealed)).reveal(), "sk-ant-shred");
  const row = { day: "2030-01-15", model: "m", inputTokens: 5, outputTokens: 7, requests: 1 };
  cp.llmStore.addUsage([
    { tenantId: a.id, ...row },
    { tenantId: b.id, ...row },
  ]);
  assert.equal(cp.llmStore.rowCount(a.id), 1);
  await cp.reconciler.start();
  cp.tenants.delete({ kind: "operator" }, "shred");
  await eventually(() => cp.store.get("shred") === undefined, 5000, "shred deleted");
  await assert.rejects(unsealSecret(cp.kms, a.id, OWN_KEY_PURPOSE, sealed));
  assert.equal(cp.llmStore.rowCount(a.id), 0);
  assert.equal(cp.llmStore.ownProvider(a.id), undefined);
  assert.equal(cp.llmStore.rowCount(b.id), 1, "the neighbour's usage stays");
});

test("usage: a tenant reads its own (per day and model, today, this month, its limits), never another's; every tenant's is the operator's", async () => {
  const a = await signUp("use-a");
  const b = await signUp("use-b");
  cp.llmStore.addUsage([
    { tenantId: a.id, day: "2030-01-15", model: "m", inputTokens: 100, outputTokens: 20, requests: 2 },
    { tenantId: a.id, day: "2030-01-15", model: "m", inputTokens: 1, outputTokens: 2, requests: 1 },
    { tenantId: a.id, day: "2030-01-03", model: "m2", inputTokens: 10, outputTokens: 10, requests: 1 },
    { tenantId: a.id, day: "2029-12-31", model: "m", inputTokens: 1000, outputTokens: 0, requests: 1 },
    { tenantId: b.id, day: "2030-01-15", model: "m", inputTokens: 9, outputTokens: 9, requests: 9 },
  ]);
  assert.equal((await call(publicApi, "GET", "/v1/tenants/use-a/usage")).status, 401);
  assert.equal((await call(publicApi, "GET", "/v1/tenants/use-a/usage", { auth: b.auth })).status, 404);
  const res = await call(publicApi, "GET", "/v1/tenants/use-a/usage", { auth: a.auth });
  assert.equal(res.status, 200);
  const u = (await res.json()) as {
    plan: string;
    limits: unknown;
    today: { day: string; tokens: number; requests: number };
    thisMonth: { month: string; tokens: number; inputTokens: number };
    days: Array<{ day: string; model: string; inputTokens: number }>;
  };
  assert.equal(u.plan, "trial");
  assert.deepEqual(u.limits, LLM_PLANS.trial.limits);
  assert.deepEqual([u.today.day, u.today.tokens, u.today.requests], ["2030-01-15", 123, 3]);
  assert.deepEqual([u.thisMonth.month, u.thisMonth.tokens, u.thisMonth.inputTokens], ["2030-01", 143, 111]);
  assert.deepEqual(
    u.days.map((d) => [d.day, d.model, d.inputTokens]),
    [
      ["2029-12-31", "m", 1000],
      ["2030-01-03", "m2", 10],
      ["2030-01-15", "m", 101],
    ],
  );
  const short = (await (
    await call(publicApi, "GET", "/v1/tenants/use-a/usage?days=1", { auth: a.auth })
  ).json()) as {
    days: unknown[];
  };
  assert.equal(short.days.length, 1);
  assert.equal(
    (await call(publicApi, "GET", "/v1/tenants/use-a/usage?days=0", { auth: a.auth })).status,
    400,
  );
  assert.equal((await call(adminApi, "GET", "/v1/tenants/use-a/usage")).status, 200);

  // A subscribed tenant is on its tier's limits.
  await call(adminApi, "POST", "/v1/tenants/use-b/subscribe");
  const ub = (await (await call(publicApi, "GET", "/v1/tenants/use-b/usage", { auth: b.auth })).json()) as {
    plan: string;
    limits: unknown;
  };
  assert.deepEqual([ub.plan, ub.limits], ["starter", LLM_PLANS.starter.limits]);

  const mine = await call(publicApi, "GET", "/v1/usage", { auth: a.auth });
  assert.equal(mine.status, 404, "the public API has no every-tenant usage");
  assert.equal(await errorCode(mine), "not_found");
  const all = (await (await call(adminApi, "GET", "/v1/usage")).json()) as {
    day: string;
    tenants: Array<{ tenant: string; today: { tokens: number } }>;
  };
  assert.equal(all.day, "2030-01-15");
  assert.equal(all.tenants.find((t) => t.tenant === "use-a")?.today.tokens, 123);
  assert.equal(all.tenants.find((t) => t.tenant === "use-b")?.today.tokens, 18);
  assert.throws(
    () => llm.usageAll({ kind: "tenant", tenantId: a.id, tokenId: "tok_x" }),
    /only the operator/,
  );
});

test("the OpenAPI documents describe the LLM routes; every tenant's usage is in the operator's only", async () => {
  const paths = async (app: typeof publicApi) =>
    Object.keys(((await (await app.request("/v1/openapi.json")).json()) as { paths: object }).paths);
  const pub = await paths(publicApi);
  for (const p of ["/v1/tenants/{name}/usage", "/v1/tenants/{name}/llm", "/v1/tenants/{name}/llm/rotate-key"])
    assert.ok(pub.includes(p), p);
  assert.ok(!pub.includes("/v1/usage"));
  assert.ok((await paths(adminApi)).includes("/v1/usage"));
});
