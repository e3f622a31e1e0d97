import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { chmod, mkdir, mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { planFor } from "../core/plans.ts";
import { createLogger } from "../lib/log.ts";
import { buildTinyModel } from "../llm/gguf/tiny-model.ts";
import { ModelServerError } from "../llm/model-server/errors.ts";
import { FakeDriver } from "../runtime/fake/driver.ts";
import type { InstanceStatus } from "../runtime/types.ts";
import { ModelStore } from "../store/models.ts";
import { makeControlPlane } from "../testing/harness.ts";
import { createApi } from "./api.ts";
import { localModelResolver, ModelService, registerSettingsModel } from "./models.ts";

/** The fake driver, plus what a container driver reports for an Enterprise tenant whose model failed. */
class ModelReportingDriver extends FakeDriver {
  readonly modelDetails = new Map<string, Record<string, string>>();
  override async status(name: string): Promise<InstanceStatus> {
    const st = await super.status(name);
    return { ...st, details: { ...st.details, ...this.modelDetails.get(name) } };
  }
}

const driver = new ModelReportingDriver();
const cp = makeControlPlane({ driver });
const models = new ModelService({ models: new ModelStore(cp.store.db), tenants: cp.store });
const admin = createApi({ mode: "admin", tenants: cp.tenants, models, log: createLogger("silent") });
const publicApi = createApi({ mode: "public", tenants: cp.tenants, models, log: createLogger("silent") });

const dir = await mkdtemp(join(tmpdir(), "clawkeep-models-api-"));
await chmod(dir, 0o755); // the sandbox's model server must be able to reach the files
after(async () => {
  await cp.reconciler.stop();
  await driver.closeAll();
  await rm(dir, { recursive: true, force: true });
});
const tiny = buildTinyModel();
const tinySha = createHash("sha256").update(tiny).digest("hex");
const goodPath = join(dir, "tiny.gguf");
await writeFile(goodPath, tiny, { mode: 0o644 });

const call = (app: typeof admin, method: string, path: string, body?: unknown) =>
  app.request(path, {
    method,
    ...(body === undefined
      ? {}
      : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
  });
type ErrorJson = { error: { code: string; message: string; details?: Record<string, unknown> } };
const rows = () => (cp.store.db.prepare("SELECT count(*) n FROM models").get() as { n: number }).n;

test("registering a missing, corrupt, mis-pinned or unreadable file is refused with a 400 naming the fault; nothing is stored", async () => {
  const junk = join(dir, "junk.gguf");
  await writeFile(junk, "not a model at all", { mode: 0o644 });
  const truncated = join(dir, "truncated.gguf");
  await writeFile(truncated, tiny.subarray(0, tiny.length >> 1), { mode: 0o644 });
  const secret = join(dir, "secret.gguf");
  await writeFile(secret, tiny, { mode: 0o600 });
  const cases: Array<[Record<string, unknown>, RegExp, string | undefined]> = [
    [{ id: "gone", path: join(dir, "gone.gguf") }, /gone\.gguf does not exist/, "model_missing"],
    [{ id: "junk", path: junk }, /junk\.gguf is not a GGUF model/, "model_corrupt"],
    [{ id: "half", path: truncated }, /truncated\.gguf/, "model_corrupt"],
    [
      { id: "pinned", path: goodPath, sha256: "0".repeat(64) },
      /tiny\.gguf has SHA-256 [0-9a-f]{64}, expected 0{64}/,
      "model_corrupt",
    ],
    [{ id: "sized", path: goodPath, size: tiny.length + 1 }, /bytes, expected/, "model_corrupt"],
    [{ id: "secret", path: secret }, /cannot be read inside tenant sandboxes \(mode 0600\)/, "model_missing"],
    [{ id: "rel", path: "models/tiny.gguf" }, /path: an absolute path/, undefined],
    [{ id: "Bad Id", path: goodPath }, /^id: /, undefined],
    [{ id: "x", path: goodPath, sha256: "xyz" }, /sha256: 64 hex digits/, undefined],
  ];
  for (const [body, message, reason] of cases) {
    const res = await call(admin, "POST", "/v1/models", body);
    const j = (await res.json()) as ErrorJson;
    assert.equal(res.status, 400, `${JSON.stringify(body)}: ${JSON.stringify(j)}`);
    assert.equal(j.error.code, "invalid_request");
    assert.match(j.error.message, message);
    if (reason) assert.equal(j.error.details?.reason, reason, j.error.message);
  }
  const extra = await call(admin, "POST", "/v1/models", { id: "x", path: goodPath, admin: true });
  assert.equal(((await extra.json()) as ErrorJson).error.code, "unknown_field");
  assert.equal(rows(), 0, "nothing stored");
  // Control: the good file under the same checks is registered.
  const ok = await call(admin, "POST", "/v1/models", { id: "tiny", path: goodPath, sha256: tinySha });
  assert.equal(ok.status, 201, await ok.clone().text());
  assert.equal(rows(), 1);
  await call(admin, "DELETE", "/v1/models/tiny");
  assert.equal(rows(), 0);
});

test("register, list, get, verify, remove; same file again is 200, another file under the id 409", async () => {
  const res = await call(admin, "POST", "/v1/models", { id: "tiny", path: goodPath });
  assert.equal(res.status, 201);
  const m = (await res.json()) as { sha256: string; size: number; status: string; reason: string | null };
  assert.equal(m.sha256, tinySha, "measured when not given");
  assert.equal(m.size, tiny.length);
  assert.equal(m.status, "ready");
  assert.equal((await call(admin, "POST", "/v1/models", { id: "tiny", path: goodPath })).status, 200);
  const other = join(dir, "other.gguf");
  await writeFile(other, buildTinyModel({ seed: 7 }), { mode: 0o644 });
  const conflict = await call(admin, "POST", "/v1/models", { id: "tiny", path: other });
  assert.equal(conflict.status, 409);
  assert.match(((await conflict.json()) as ErrorJson).error.message, /already registered with .*tiny\.gguf/);
  const list = (await (await call(admin, "GET", "/v1/models")).json()) as { models: { id: string }[] };
  assert.deepEqual(
    list.models.map((x) => x.id),
    ["tiny"],
  );
  assert.equal((await call(admin, "GET", "/v1/models/nope")).status, 404);
  const verified = (await (await call(admin, "POST", "/v1/models/tiny/verify")).json()) as { status: string };
  assert.equal(verified.status, "ready");
  assert.equal((await call(admin, "DELETE", "/v1/models/tiny")).status, 204);
  assert.equal((await call(admin, "DELETE", "/v1/models/tiny")).status, 404);
});

test("the public API has no model routes; the operator's does", async () => {
  const created = await call(publicApi, "POST", "/v1/tenants", { name: "pub", tier: "enterprise" });
  const { apiToken } = (await created.json()) as { apiToken: string };
  const auth = { headers: { authorization: `Bearer ${apiToken}` } };
  for (const path of ["/v1/models", "/v1/tenants/pub/model"])
    assert.equal((await publicApi.request(path, auth)).status, 404, path);
  const put = await publicApi.request("/v1/tenants/pub/model", {
    method: "PUT",
    headers: { ...auth.headers, "content-type": "application/json" },
    body: JSON.stringify({ model: null }),
  });
  assert.equal(put.status, 404);
  const doc = (await (await publicApi.request("/v1/openapi.json")).json()) as { paths: object };
  assert.ok(!("/v1/models" in doc.paths));
  // Control: the operator API has them, and documents them.
  assert.equal((await call(admin, "GET", "/v1/models")).status, 200);
  assert.equal((await call(admin, "GET", "/v1/tenants/pub/model")).status, 200);
  const adminDoc = (await (await admin.request("/v1/openapi.json")).json()) as {
    paths: object;
    components: { schemas: object };
  };
  for (const p of ["/v1/models", "/v1/models/{id}", "/v1/models/{id}/verify", "/v1/plans/{tier}/model"])
    assert.ok(p in adminDoc.paths, p);
  assert.ok("RegisterModel" in adminDoc.components.schemas);
});

test("a plan's default and a tenant's override decide the model; one in use cannot be removed", async () => {
  const a = join(dir, "a.gguf");
  const b = join(dir, "b.gguf");
  await writeFile(a, buildTinyModel({ seed: 1 }), { mode: 0o644 });
  await writeFile(b, buildTinyModel({ seed: 2 }), { mode: 0o644 });
  assert.equal((await call(admin, "POST", "/v1/models", { id: "model-a", path: a })).status, 201);
  assert.equal((await call(admin, "POST", "/v1/models", { id: "model-b", path: b })).status, 201);
  await cp.tenants.create({ name: "ent1", tier: "enterprise" });
  await cp.tenants.create({ name: "ent2", tier: "enterprise" });
  await cp.tenants.create({ name: "prem", tier: "premium" });
  const spec = (name: string) => {
    const t = cp.store.get(name)!;
    return { tenantId: t.id, tier: t.tier, plan: planFor(t.tier) };
  };
  const resolve = localModelResolver(models);
  assert.equal(await resolve(spec("ent1")), undefined, "nothing assigned yet");

  const premium = await call(admin, "PUT", "/v1/plans/premium/model", { model: "model-a" });
  assert.equal(premium.status, 400);
  assert.match(((await premium.json()) as ErrorJson).error.message, /premium plan has no local model/);
  assert.equal((await call(admin, "PUT", "/v1/plans/enterprise/model", { model: "nope" })).status, 404);
  assert.equal((await call(admin, "PUT", "/v1/plans/enterprise/model", { model: "model-a" })).status, 200);
  const own = await call(admin, "PUT", "/v1/tenants/ent2/model", { model: "model-b" });
  assert.deepEqual(await own.json(), {
    tenant: "ent2",
    tier: "enterprise",
    model: "model-b",
    effective: "model-b",
  });
  assert.equal((await call(admin, "PUT", "/v1/tenants/prem/model", { model: "model-b" })).status, 400);
  assert.equal((await call(admin, "PUT", "/v1/tenants/nobody/model", { model: "model-b" })).status, 404);

  const r1 = await resolve(spec("ent1"));
  const r2 = await resolve(spec("ent2"));
  assert.equal(r1?.id, "model-a", "the plan's default");
  assert.equal(r1?.path, a);
  assert.match(r1?.sha256 ?? "", /^[0-9a-f]{64}$/, "pinned, so the server checks the file itself");
  assert.equal(r2?.id, "model-b", "the tenant's own");
  assert.equal(await resolve(spec("prem")), undefined, "premium has no local model");

  const list = (await (await call(admin, "GET", "/v1/models")).json()) as {
    models: { id: string; defaultFor: string[]; tenants: string[] }[];
  };
  assert.deepEqual(
    list.models.filter((m) => m.id.startsWith("model-")).map((m) => [m.id, m.defaultFor, m.tenants]),
    [
      ["model-a", ["enterprise"], []],
      ["model-b", [], ["ent2"]],
    ],
  );
  const inUse = await call(admin, "DELETE", "/v1/models/model-b");
  assert.equal(inUse.status, 409);
  assert.match(((await inUse.json()) as ErrorJson).error.message, /in use \(tenant ent2\)/);
  // Clearing the override falls back to the plan's default; then the model can go.
  const cleared = await call(admin, "PUT", "/v1/tenants/ent2/model", { model: null });
  assert.equal(((await cleared.json()) as { effective: string }).effective, "model-a");
  assert.equal((await call(admin, "DELETE", "/v1/models/model-b")).status, 204);
  assert.equal((await resolve(spec("ent2")))?.id, "model-a");
});

test("a model damaged after registration: resolving it fails naming the file, verify records it, the instance status shows it", async () => {
  const path = join(dir, "damaged.gguf");
  await writeFile(path, tiny, { mode: 0o644 });
  assert.equal((await call(admin, "POST", "/v1/models", { id: "damaged", path })).status, 201);
  await cp.tenants.create({ name: "victim", tier: "enterprise" });
  assert.equal((await call(admin, "PUT", "/v1/tenants/victim/model", { model: "damaged" })).status, 200);
  const t = cp.store.get("victim")!;
  const spec = { tenantId: t.id, tier: t.tier, plan: planFor(t.tier) };
  assert.equal((await models.resolve(spec))?.id, "damaged", "control: usable before the damage");

  // Garble bytes in place (as a failing disk or a bad copy would), same size.
  const fh = await open(path, "r+");
  await fh.write(Buffer.alloc(64, 0x5a), 0, 64, tiny.length - 200);
  await fh.close();
  await assert.rejects(models.resolve(spec), (err: unknown) => {
    assert.ok(err instanceof ModelServerError);
    assert.equal(err.reason, "model_corrupt");
    assert.match(
      err.message,
      /^model 'damaged': model file .*damaged\.gguf has SHA-256 [0-9a-f]{64}, expected/,
    );
    return true;
  });
  const listed = (await (await call(admin, "GET", "/v1/models/damaged")).json()) as {
    status: string;
    reason: string;
  };
  assert.equal(listed.status, "corrupt");
  assert.match(listed.reason, /the file is corrupt or was replaced/);

  // What the container driver reports for such a tenant reaches the tenant's own status.
  driver.modelDetails.set("victim", { model: `failed: ${listed.reason}`, modelId: "damaged" });
  const created = (await (
    await call(publicApi, "POST", "/v1/tenants", { name: "bystander", tier: "enterprise" })
  ).json()) as {
    apiToken: string;
  };
  const inst = (await (await call(admin, "GET", "/v1/tenants/victim/instance")).json()) as {
    model: { id: string; state: string; message: string } | null;
  };
  assert.deepEqual(inst.model, { id: "damaged", state: "failed", message: listed.reason });
  // Control: another tenant's status has no model failure, and its API works as before.
  const other = await publicApi.request("/v1/tenants/bystander/instance", {
    headers: { authorization: `Bearer ${created.apiToken}` },
  });
  assert.equal(other.status, 200);
  assert.equal(((await other.json()) as { model: unknown }).model, null);

  // Repaired in place: the next check passes again.
  await writeFile(path, tiny);
  const again = (await (await call(admin, "POST", "/v1/models/damaged/verify")).json()) as { status: string };
  assert.equal(again.status, "ready");
  assert.equal((await models.resolve(spec))?.id, "damaged");
});

test("the settings' model is registered at start-up as the Enterprise default; a bad one does not stop start-up", async () => {
  const cp2 = makeControlPlane();
  const svc = new ModelService({ models: new ModelStore(cp2.store.db), tenants: cp2.store });
  assert.equal(await registerSettingsModel({ enterpriseModel: null }, svc), undefined);
  const path = join(dir, "settings.gguf");
  await writeFile(path, tiny, { mode: 0o644 });
  const settings = { enterpriseModel: { path, id: "local", sha256: tinySha } };
  const m = await registerSettingsModel(settings, svc);
  assert.equal(m?.id, "local");
  assert.deepEqual(m?.defaultFor, ["enterprise"]);
  assert.equal((await registerSettingsModel(settings, svc))?.status, "ready", "idempotent at each start");
  // The operator's own choice of default is kept.
  const chosen = join(dir, "chosen.gguf");
  await writeFile(chosen, buildTinyModel({ seed: 5 }), { mode: 0o644 });
  await svc.register({ id: "chosen", path: chosen });
  svc.setPlanModel("enterprise", "chosen");
  await registerSettingsModel(settings, svc);
  assert.equal(svc.planModel("enterprise"), "chosen");
  // Damaged since: start-up goes on, the fault is recorded on the model.
  await writeFile(path, "garbage now");
  const bad = await registerSettingsModel(settings, svc, createLogger("silent"));
  assert.equal(bad?.status, "corrupt");
  assert.match(bad?.reason ?? "", /settings\.gguf/);
  // A missing file that was never registered: nothing to record, no throw.
  assert.equal(
    await registerSettingsModel({ enterpriseModel: { path: join(dir, "none.gguf"), id: "none" } }, svc),
    undefined,
  );
  // Settings that are wrong (not the file) still stop start-up.
  await assert.rejects(
    registerSettingsModel({ enterpriseModel: { path, id: "Not An Id" } }, svc),
    /model id/,
  );
  await cp2.reconciler.stop();
});

test("migration 2 brings an existing database up with its tenants kept", async () => {
  const { default: Database } = await import("better-sqlite3");
  const { MIGRATIONS, migrate } = await import("../store/db.ts");
  const file = join(dir, "v1.db");
  await mkdir(dir, { recursive: true });
  const db = new Database(file);
  db.exec(MIGRATIONS[0]!);
  db.pragma("user_version = 1");
  db.prepare(
    "INSERT INTO tenants (id, name, tier, slot, created_at, trial_ends_at, subscription, desired, actual, updated_at) VALUES ('t1','old','enterprise',0,0,0,'trial','running','running',0)",
  ).run();
  assert.equal(migrate(db), MIGRATIONS.length);
  assert.equal(db.pragma("user_version", { simple: true }), MIGRATIONS.length);
  assert.equal((db.prepare("SELECT name FROM tenants").get() as { name: string }).name, "old");
  const store = new ModelStore(db);
  assert.deepEqual(store.list(), []);
  // The schema keeps references whole: no assignment to an unknown model, no removal while used.
  db.pragma("foreign_keys = ON");
  assert.throws(() => store.setTenantModel("t1", "ghost"), /FOREIGN KEY/);
  store.insert({
    id: "m",
    path: "/m.gguf",
    size: 1,
    sha256: "a".repeat(64),
    registeredAt: 0,
    verifiedAt: 0,
    status: "ready",
    reason: null,
  });
  store.setTenantModel("t1", "m");
  assert.throws(() => store.remove("m"), /FOREIGN KEY/);
  db.prepare("DELETE FROM tenants WHERE id = 't1'").run();
  assert.equal(store.tenantModel("t1"), undefined, "the choice goes with the tenant");
  assert.equal(store.remove("m"), true);
  db.close();
});
