import assert from "node:assert/strict";
import { test } from "node:test";
import { ValidationError } from "../core/errors.ts";
import { FakeEdge } from "./fake.ts";
import { loadEdgeSettings } from "./settings.ts";

test("edge settings: defaults, the operator's certificate, and refusals", () => {
  const d = loadEdgeSettings("/var/lib/clawkeep", {});
  assert.equal(d.enabled, true);
  assert.deepEqual(d.options, {
    stateDir: "/var/lib/clawkeep/edge",
    domain: "clawkeep.localhost",
    listen: { host: "127.0.0.1", port: 8443 },
    waf: true,
    user: "clawkeep-edge",
  });
  const o = loadEdgeSettings("/srv/ck", {
    CLAWKEEP_EDGE_LISTEN: "0.0.0.0:443",
    CLAWKEEP_EDGE_DOMAIN: "claw.example.com",
    CLAWKEEP_EDGE_CERT: "/etc/ssl/claw.crt",
    CLAWKEEP_EDGE_KEY: "/etc/ssl/private/claw.key",
    CLAWKEEP_EDGE_WAF: "0",
    CLAWKEEP_EDGE: "off",
  });
  assert.equal(o.enabled, false);
  assert.deepEqual(o.options.tls, { certFile: "/etc/ssl/claw.crt", keyFile: "/etc/ssl/private/claw.key" });
  assert.equal(o.options.waf, false);
  assert.deepEqual(o.options.listen, { host: "0.0.0.0", port: 443 });
  const bad = (env: NodeJS.ProcessEnv) =>
    assert.throws(
      () => loadEdgeSettings("/h", env),
      (e) => e instanceof ValidationError,
    );
  bad({ CLAWKEEP_EDGE_CERT: "/etc/ssl/claw.crt" });
  bad({ CLAWKEEP_EDGE_LISTEN: "example.com:443" });
  bad({ CLAWKEEP_EDGE_DOMAIN: "*.example.com" });
  bad({ CLAWKEEP_EDGE_WAF: "maybe" });
});

test("FakeEdge validates like the real edge, records calls and keeps its routes when a change fails", async () => {
  const e = new FakeEdge();
  await e.start();
  await e.setRoutes([{ tenant: "alice", upstream: "http://127.0.0.1:20000" }]);
  e.failNext("setRoutes");
  await assert.rejects(e.setRoutes([]));
  assert.deepEqual(
    e.routes.map((r) => r.tenant),
    ["alice"],
  );
  await assert.rejects(e.setRoutes([{ tenant: "alice", upstream: "unix:/run/admin.sock" }]), ValidationError);
  assert.deepEqual(
    e.calls.map((c) => c.method),
    ["start", "setRoutes", "setRoutes"],
  );
  assert.equal(e.tenantUrl("alice"), "https://alice.clawkeep.localhost:8443/");
  assert.deepEqual((await e.status()).tenants, ["alice"]);
});
