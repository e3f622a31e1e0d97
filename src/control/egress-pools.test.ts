import assert from "node:assert/strict";
import { test } from "node:test";
import { createLogger } from "../lib/log.ts";
import { EgressAllowStore } from "../store/egress.ts";
import { makeControlPlane } from "../testing/harness.ts";
import { createApi } from "./api.ts";
import { EgressAllowService } from "./egress-allow.ts";
import { PoolService } from "./pools.ts";
import type { EgressReader, EgressView } from "./tenants.ts";

/** The egress proxy's admin client as the API sees it, answering from a table. */
class FakeEgress implements EgressReader {
  readonly asked: string[] = [];
  async counters(tenant: string) {
    this.asked.push(tenant);
    return { allowed: tenant === "eg-a" ? 2 : 0, denied: 1, bytesUp: 10, bytesDown: 20, active: 0 };
  }
  async recentLog(tenant: string, limit: number) {
    return Array.from({ length: Math.min(limit, 3) }, (_, i) => ({
      time: new Date(i).toISOString(),
      method: "CONNECT",
      host: `${tenant}.example`,
      port: 443,
      verdict: "allow" as const,
      reason: "allowlisted",
      bytesUp: 1,
      bytesDown: 2,
    }));
  }
}

const signUp = async (api: ReturnType<typeof createApi>, name: string, tier: string) =>
  (await (
    await api.request("/v1/tenants", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name, tier }),
    })
  ).json()) as { apiToken: string };

test("a tenant reads its own egress counters and log through the API, and nobody else's", async () => {
  const egress = new FakeEgress();
  const cp = makeControlPlane({ egress });
  try {
    const a = await signUp(cp.publicApi, "eg-a", "starter");
    const b = await signUp(cp.publicApi, "eg-b", "enterprise");
    const get = (path: string, token: string) =>
      cp.publicApi.request(path, { headers: { authorization: `Bearer ${token}` } });
    const res = await get("/v1/tenants/eg-a/egress?limit=2", a.apiToken);
    assert.equal(res.status, 200);
    const view = (await res.json()) as EgressView;
    assert.equal(view.mode, "per tenant");
    assert.equal(view.counters.allowed, 2);
    assert.equal(view.log.length, 2);
    assert.ok(view.log.every((e) => e.host === "eg-a.example"));
    const gapped = (await (await get("/v1/tenants/eg-b/egress", b.apiToken)).json()) as EgressView;
    assert.equal(gapped.mode, "none", "Enterprise is air-gapped");
    // Another tenant's token: not found, and the proxy is never even asked.
    const before = egress.asked.length;
    assert.equal((await get("/v1/tenants/eg-b/egress", a.apiToken)).status, 404);
    assert.equal(egress.asked.length, before);
    assert.equal((await cp.publicApi.request("/v1/tenants/eg-a/egress")).status, 401);
    assert.equal((await get("/v1/tenants/eg-a/egress?limit=0", a.apiToken)).status, 400);
    assert.equal((await get("/v1/tenants/eg-a/egress?limit=5000", a.apiToken)).status, 400);
  } finally {
    await cp.reconciler.stop();
  }
});

test("without an egress proxy (sandbox off) the egress route says so instead of inventing numbers", async () => {
  const cp = makeControlPlane();
  try {
    const a = await signUp(cp.publicApi, "noeg", "starter");
    const res = await cp.publicApi.request("/v1/tenants/noeg/egress", {
      headers: { authorization: `Bearer ${a.apiToken}` },
    });
    assert.equal(res.status, 503);
    const j = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(j.error.code, "runtime_unavailable");
    assert.match(j.error.message, /no egress proxy/);
  } finally {
    await cp.reconciler.stop();
  }
});

test("pools are the operator's only: the public API has no pool routes; without pools the admin API says why", async () => {
  const cp = makeControlPlane();
  const log = createLogger("silent");
  const pools = new PoolService({
    pools: () => null,
    tenants: cp.tenants,
    reconciler: cp.reconciler,
    specs: cp.specs,
    store: cp.store,
  });
  const admin = createApi({ mode: "admin", tenants: cp.tenants, pools, log });
  const pub = createApi({ mode: "public", tenants: cp.tenants, pools, log });
  try {
    const t = await signUp(pub, "pooled", "starter");
    const auth = { authorization: `Bearer ${t.apiToken}` };
    assert.equal((await pub.request("/v1/pools", { headers: auth })).status, 404);
    const moveBody = { method: "POST", headers: { "content-type": "application/json" } };
    const move = {
      ...moveBody,
      headers: { ...moveBody.headers, ...auth },
      body: JSON.stringify({ tenant: "pooled" }),
    };
    assert.equal((await pub.request("/v1/pools/moves", move)).status, 404);
    const res = await admin.request("/v1/pools");
    assert.equal(res.status, 503);
    assert.match(((await res.json()) as { error: { message: string } }).error.message, /no Starter pools/);
    // Bad input is refused before anything happens.
    for (const body of [{ tenant: "../x" }, { tenant: "a", to: "../pool" }, { tenant: "a", extra: 1 }]) {
      const r = await admin.request("/v1/pools/moves", { ...moveBody, body: JSON.stringify(body) });
      assert.equal(r.status, 400, JSON.stringify(body));
    }
  } finally {
    await cp.reconciler.stop();
  }
});

test("egress allowlists: a tenant sets its own, bad entries change nothing, Enterprise has none, the operator's apply to all", async () => {
  const cp = makeControlPlane();
  const log = createLogger("silent");
  let pushes = 0;
  const allow = new EgressAllowService({
    store: new EgressAllowStore(cp.store.db),
    tenantStore: cp.store,
    tenants: cp.tenants,
    settingsAllow: ["from-settings.example"],
    onChange: () => {
      pushes++;
    },
  });
  const pub = createApi({ mode: "public", tenants: cp.tenants, egressAllow: allow, log });
  const admin = createApi({ mode: "admin", tenants: cp.tenants, egressAllow: allow, log });
  try {
    const a = await signUp(pub, "al-a", "starter");
    const b = await signUp(pub, "al-b", "premium");
    const e = await signUp(pub, "al-e", "enterprise");
    const put = (api: typeof pub, path: string, hosts: unknown, token?: string) =>
      api.request(path, {
        method: "PUT",
        headers: {
          "content-type": "application/json",
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: JSON.stringify({ hosts }),
      });
    const ok = await put(
      pub,
      "/v1/tenants/al-a/egress/allow",
      ["API.Example.com", "*.cdn.example.org", "api.example.com"],
      a.apiToken,
    );
    assert.equal(ok.status, 200, await ok.clone().text());
    const view = (await ok.json()) as { own: string[]; operator: string[]; defaults: string[] };
    assert.deepEqual(view.own, ["*.cdn.example.org", "api.example.com"], "normalized, deduplicated");
    assert.deepEqual(view.operator, ["from-settings.example"]);
    assert.ok(view.defaults.includes("api.openai.com"));
    assert.equal(pushes, 1, "the proxy's policy was pushed");
    assert.deepEqual(allow.tenantPatterns("al-a"), ["*.cdn.example.org", "api.example.com"]);
    assert.deepEqual(allow.tenantPatterns("al-b"), [], "only al-a's");

    // Refused, and nothing changes: bad patterns, too many, another tenant's list, an air-gapped tenant.
    for (const hosts of [
      ["*.com"],
      ["a b"],
      ["http://x.example/"],
      Array.from({ length: 101 }, (_, i) => `h${i}.example`),
    ]) {
      const r = await put(pub, "/v1/tenants/al-a/egress/allow", hosts, a.apiToken);
      assert.equal(r.status, 400, JSON.stringify(hosts).slice(0, 60));
    }
    assert.equal((await put(pub, "/v1/tenants/al-a/egress/allow", ["x.example"], b.apiToken)).status, 404);
    const gapped = await put(pub, "/v1/tenants/al-e/egress/allow", ["x.example"], e.apiToken);
    assert.equal(gapped.status, 400);
    assert.match(await gapped.text(), /air-gapped/);
    assert.deepEqual(allow.tenantPatterns("al-a"), ["*.cdn.example.org", "api.example.com"]);
    assert.deepEqual(allow.tenantPatterns("al-e"), []);
    assert.equal(pushes, 1, "no push for a refused change");

    // The operator's additions: admin only.
    assert.equal(
      (await pub.request("/v1/egress/allow", { headers: { authorization: `Bearer ${a.apiToken}` } })).status,
      404,
    );
    const op = await put(admin, "/v1/egress/allow", ["ops.example.net"]);
    assert.equal(op.status, 200);
    assert.deepEqual(allow.operatorPatterns(), ["from-settings.example", "ops.example.net"]);
    assert.equal(pushes, 2);
    // The tenant's list is gone with the tenant.
    const id = cp.store.get("al-a")!.id;
    const rows = new EgressAllowStore(cp.store.db);
    assert.equal(rows.tenant(id).length, 2);
    cp.store.remove(id);
    assert.deepEqual(rows.tenant(id), []);
  } finally {
    await cp.reconciler.stop();
  }
});
