import assert from "node:assert/strict";
import { after, test } from "node:test";
import type { FakeDriver } from "../runtime/fake/driver.ts";
import { makeControlPlane } from "../testing/harness.ts";

const cp = makeControlPlane();
after(async () => {
  await cp.reconciler.stop();
  await (cp.driver as FakeDriver).closeAll();
});

const post = (app: typeof cp.publicApi, path: string, body: unknown, headers: Record<string, string> = {}) =>
  app.request(path, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });

const count = () => (cp.store.db.prepare("SELECT count(*) n FROM tenants").get() as { n: number }).n;
const secrets = () => (cp.store.db.prepare("SELECT count(*) n FROM tenant_secrets").get() as { n: number }).n;

test("bad sign-ups get a 400 with a stable code, and nothing is created", async () => {
  const cases: Array<[unknown, string]> = [
    [{ name: "../x", tier: "starter" }, "invalid_name"],
    [{ name: "A", tier: "starter" }, "invalid_name"],
    [{ name: "x".repeat(41), tier: "starter" }, "invalid_name"],
    [{ name: "a;rm", tier: "starter" }, "invalid_name"],
    [{ name: "", tier: "starter" }, "invalid_name"],
    [{ tier: "starter" }, "invalid_name"],
    [{ name: "ok", tier: "gold" }, "unknown_tier"],
    [{ name: "ok", tier: "starter", admin: true }, "unknown_field"],
    ["{not json", "malformed_json"],
    [[1, 2], "invalid_request"],
  ];
  for (const [body, code] of cases) {
    const res = await post(cp.publicApi, "/v1/tenants", body);
    assert.equal(res.status, 400, `${JSON.stringify(body)} -> ${res.status}`);
    const j = (await res.json()) as { error: { code: string; message: string; retryable: boolean } };
    assert.equal(j.error.code, code, `${JSON.stringify(body)}: ${j.error.message}`);
    assert.equal(j.error.retryable, false);
    assert.ok(j.error.message.length > 0);
  }
  assert.equal(count(), 0);
  assert.equal(secrets(), 0);
  assert.equal((cp.driver as FakeDriver).count("create"), 0);
});

test("sign-up returns the tenant, its API token and gateway token once; a duplicate name is 409", async () => {
  const res = await post(cp.publicApi, "/v1/tenants", { name: "alice", tier: "starter" });
  assert.equal(res.status, 201);
  const j = (await res.json()) as {
    tenant: { name: string; tier: string; trial: { daysLeft: number; subscription: string } };
    apiToken: string;
    gateway: { url: string; token: string };
  };
  assert.equal(j.tenant.name, "alice");
  assert.equal(j.tenant.trial.daysLeft, 7);
  assert.equal(j.tenant.trial.subscription, "trial");
  assert.match(j.apiToken, /^ckt_/);
  assert.ok(j.gateway.token.length >= 32);
  // Neither token is stored in plaintext anywhere in the database.
  const dump =
    JSON.stringify(cp.store.db.prepare("SELECT * FROM tenants").all()) +
    cp.store.db
      .prepare("SELECT sealed FROM tenant_secrets")
      .all()
      .map((r) => (r as { sealed: Buffer }).sealed.toString("latin1"))
      .join() +
    JSON.stringify(cp.store.db.prepare("SELECT * FROM api_tokens").all());
  assert.ok(!dump.includes(j.gateway.token));
  assert.ok(!dump.includes(j.apiToken));

  const dup = await post(cp.publicApi, "/v1/tenants", { name: "alice", tier: "premium" });
  assert.equal(dup.status, 409);
  assert.equal(((await dup.json()) as { error: { code: string } }).error.code, "name_taken");
  assert.equal(count(), 1);
});

test("tenant endpoints need the tenant's own API token; another tenant's token sees nothing", async () => {
  const a = (await (await post(cp.publicApi, "/v1/tenants", { name: "tok-a", tier: "starter" })).json()) as {
    apiToken: string;
  };
  const b = (await (await post(cp.publicApi, "/v1/tenants", { name: "tok-b", tier: "premium" })).json()) as {
    apiToken: string;
  };
  const get = (path: string, token?: string) =>
    cp.publicApi.request(path, token ? { headers: { authorization: `Bearer ${token}` } } : {});

  assert.equal((await get("/v1/tenants/tok-a")).status, 401);
  assert.equal((await get("/v1/tenants/tok-a", "ckt_wrong")).status, 401);
  assert.equal((await get("/v1/tenants/tok-a", a.apiToken)).status, 200);
  // Control: b's token works for b; it gets 404 (not 403) for a, so names are not disclosed.
  assert.equal((await get("/v1/tenants/tok-b", b.apiToken)).status, 200);
  assert.equal((await get("/v1/tenants/tok-a", b.apiToken)).status, 404);
  assert.equal((await get("/v1/tenants/tok-a/instance", b.apiToken)).status, 404);
  const del = await cp.publicApi.request("/v1/tenants/tok-a", {
    method: "DELETE",
    headers: { authorization: `Bearer ${b.apiToken}` },
  });
  assert.equal(del.status, 404);
  // The public API has no tenant list at all.
  assert.notEqual((await get("/v1/tenants", a.apiToken)).status, 200);
});

test("API tokens: create shows the value once, list never shows values, revoke stops it working", async () => {
  const a = (await (await post(cp.publicApi, "/v1/tenants", { name: "tokens", tier: "starter" })).json()) as {
    apiToken: string;
  };
  const auth = { authorization: `Bearer ${a.apiToken}` };
  const created = (await (
    await post(cp.publicApi, "/v1/tenants/tokens/tokens", { label: "ci" }, auth)
  ).json()) as {
    token: { id: string };
    value: string;
  };
  assert.match(created.value, /^ckt_/);
  const list = await (await cp.publicApi.request("/v1/tenants/tokens/tokens", { headers: auth })).text();
  assert.ok(list.includes(created.token.id) && !list.includes(created.value) && !list.includes(a.apiToken));
  const h2 = { authorization: `Bearer ${created.value}` };
  assert.equal((await cp.publicApi.request("/v1/tenants/tokens", { headers: h2 })).status, 200);
  const rev = await cp.publicApi.request(`/v1/tenants/tokens/tokens/${created.token.id}`, {
    method: "DELETE",
    headers: auth,
  });
  assert.equal(rev.status, 204);
  assert.equal((await cp.publicApi.request("/v1/tenants/tokens", { headers: h2 })).status, 401);
});

test("the operator API lists every tenant and acts on any; the public one has no such routes", async () => {
  const list = (await (await cp.adminApi.request("/v1/tenants")).json()) as { tenants: { name: string }[] };
  assert.ok(list.tenants.some((t) => t.name === "alice"));
  const s = await cp.adminApi.request("/v1/tenants/alice/suspend", { method: "POST" });
  assert.equal(s.status, 200);
  assert.equal(((await s.json()) as { desired: string }).desired, "suspended");
  const a = (await (
    await post(cp.publicApi, "/v1/tenants", { name: "nosuspend", tier: "starter" })
  ).json()) as { apiToken: string };
  const r = await cp.publicApi.request("/v1/tenants/nosuspend/suspend", {
    method: "POST",
    headers: { authorization: `Bearer ${a.apiToken}` },
  });
  assert.equal(r.status, 404);
  assert.equal((await cp.adminApi.request("/v1/tenants/nobody")).status, 404);
  assert.equal((await cp.adminApi.request("/v1/tenants/..%2Fx")).status, 400);
});

test("the OpenAPI document describes the routes and the error codes", async () => {
  const doc = (await (await cp.publicApi.request("/v1/openapi.json")).json()) as {
    paths: Record<string, unknown>;
    components: { schemas: Record<string, unknown> };
  };
  for (const p of [
    "/v1/tenants",
    "/v1/tenants/{name}",
    "/v1/tenants/{name}/instance",
    "/v1/tenants/{name}/tokens",
  ]) {
    assert.ok(p in doc.paths, p);
  }
  assert.ok("Error" in doc.components.schemas && "CreateTenant" in doc.components.schemas);
  const admin = (await (await cp.adminApi.request("/v1/openapi.json")).json()) as {
    paths: Record<string, unknown>;
  };
  assert.ok("/v1/tenants/{name}/{action}" in admin.paths);
  assert.ok(!("/v1/tenants/{name}/{action}" in doc.paths));
});

test("deleting a tenant through the API removes it once the instance is gone", async () => {
  const a = (await (await post(cp.publicApi, "/v1/tenants", { name: "bye", tier: "starter" })).json()) as {
    apiToken: string;
  };
  await cp.reconciler.start();
  const res = await cp.publicApi.request("/v1/tenants/bye", {
    method: "DELETE",
    headers: { authorization: `Bearer ${a.apiToken}` },
  });
  assert.equal(res.status, 202);
  const deadline = Date.now() + 5000;
  while (cp.store.get("bye") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(cp.store.get("bye"), undefined);
  assert.equal((cp.driver as FakeDriver).instances.has("bye"), false);
});

test("request bodies over 64 KiB are refused with 413 payload_too_large and create nothing; a body under the limit is read", async () => {
  const before = count();
  const padding = (bytes: number) => ({ name: "big", tier: "starter", pad: "x".repeat(bytes) });
  const big = await post(cp.publicApi, "/v1/tenants", padding(100 * 1024));
  assert.equal(big.status, 413);
  const body = (await big.json()) as { error: { code: string; details: { limitBytes: number } } };
  assert.equal(body.error.code, "payload_too_large");
  assert.equal(body.error.details.limitBytes, 64 * 1024);
  // With its length declared, it is refused the same way (before a byte of it is read).
  const declared = await cp.publicApi.request("/v1/tenants", {
    method: "POST",
    headers: { "content-type": "application/json", "content-length": String(10 * 1024 * 1024) },
    body: JSON.stringify(padding(10)),
  });
  assert.equal(declared.status, 413);
  // Control: the same shape under the limit is read and judged on its content (an unknown field).
  const small = await post(cp.publicApi, "/v1/tenants", padding(60 * 1024));
  assert.equal(small.status, 400);
  assert.equal(((await small.json()) as { error: { code: string } }).error.code, "unknown_field");
  assert.equal(count(), before, "nothing was created");
  // The operator API has the same limit.
  assert.equal((await post(cp.adminApi, "/v1/tenants", padding(100 * 1024))).status, 413);
});
