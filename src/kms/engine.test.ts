import assert from "node:assert/strict";
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { keyServiceConformance, rejectsWith } from "./conformance.ts";
import { KmsEngine } from "./engine.ts";
import { KmsError } from "./errors.ts";
import { FakeKeyService } from "./fake.ts";
import { ensureTenantKeys, isTenantKeyService } from "./index.ts";
import { LocalKeyService } from "./local.ts";

const dirs: string[] = [];
async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "ck-kms-engine-"));
  dirs.push(d);
  return d;
}
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** A new store with premium keys for each of `tenants`, closed again; returns its directory. */
async function storeWith(...tenants: string[]): Promise<string> {
  const dir = join(await tmp(), "store");
  const e = await KmsEngine.open({ dir });
  for (const t of tenants) await e.createTenantKeys(t, "premium");
  await e.close();
  return dir;
}

/** Every file under dir with its bytes, to prove "nothing was overwritten". */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const p = join(e.parentPath, e.name);
    if (p.endsWith("audit.log") || p.endsWith("kms.lock")) continue;
    out.set(p, (await readFile(p)).toString("hex"));
  }
  return out;
}

describe("in-process engine", () => {
  let engine: KmsEngine;
  before(async () => {
    engine = await KmsEngine.open({ dir: join(await tmp(), "store") });
  });
  after(() => engine.close());
  keyServiceConformance("engine", () => engine);
});

test("the store is 0700, the root key 0400, and only wrapped keys are written", async () => {
  const dir = join(await tmp(), "store");
  const e = await KmsEngine.open({ dir });
  try {
    await e.createTenantKeys("tnt_x", "premium");
    const v = await e.getVolumeKey("tnt_x");
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    assert.equal((await stat(join(dir, "root.key"))).mode & 0o777, 0o400);
    assert.equal((await stat(join(dir, "tenants", "tnt_x.json"))).mode & 0o777, 0o600);
    const rec = await readFile(join(dir, "tenants", "tnt_x.json"));
    assert.ok(!rec.includes(v) && !rec.includes(v.toString("base64")) && !rec.includes(v.toString("hex")));
  } finally {
    await e.close();
  }
});

test("a wrong root key is refused by name and nothing is overwritten", async () => {
  const base = await tmp();
  const dir = join(base, "store");
  const e = await KmsEngine.open({ dir });
  await e.createTenantKeys("tnt_a", "premium");
  await e.createTenantKeys("tnt_s", "starter");
  await e.close();
  const before = await snapshot(dir);
  const wrong = join(base, "other.key");
  await writeFile(wrong, Buffer.alloc(32, 9), { mode: 0o400 });
  await rejectsWith(
    KmsEngine.open({ dir, rootKeyPath: wrong }),
    "root_key_wrong",
    /wrong root key: .* initialised with root key [0-9a-f]{16}/,
  );
  assert.deepEqual(await snapshot(dir), before);
  const e2 = await KmsEngine.open({ dir });
  assert.equal((await e2.getVolumeKey("tnt_a")).length, 64, "the right key still opens the store");
  await e2.close();
});

test("a missing root key is named; for an initialised store it is never re-created", async () => {
  const base = await tmp();
  const dir = join(base, "store");
  await rejectsWith(
    KmsEngine.open({ dir, rootKeyPath: join(base, "nope.key") }),
    "root_key_missing",
    /given by the operator/,
  );
  const e = await KmsEngine.open({ dir: join(base, "s2") });
  await e.createTenantKeys("tnt_a", "premium");
  await e.close();
  await rm(join(base, "s2", "root.key"), { force: true });
  const before = await snapshot(join(base, "s2"));
  await rejectsWith(
    KmsEngine.open({ dir: join(base, "s2") }),
    "root_key_missing",
    /was initialised .*nothing was created/,
  );
  assert.deepEqual(await snapshot(join(base, "s2")), before);
  await assert.rejects(stat(join(base, "s2", "root.key")), /ENOENT/);
});

test("an operator-supplied root key must be private and 32 bytes", async () => {
  const base = await tmp();
  const key = join(base, "root.key");
  await writeFile(key, Buffer.alloc(32, 1), { mode: 0o644 });
  await chmod(key, 0o644);
  await rejectsWith(
    KmsEngine.open({ dir: join(base, "s"), rootKeyPath: key }),
    "root_key_invalid",
    /readable by group or others/,
  );
  await chmod(key, 0o600);
  await writeFile(key, Buffer.alloc(5));
  await rejectsWith(
    KmsEngine.open({ dir: join(base, "s"), rootKeyPath: key }),
    "root_key_invalid",
    /must hold 32 bytes/,
  );
  assert.equal((await readFile(key)).length, 5, "a bad key file is never overwritten");
  await writeFile(key, Buffer.alloc(32, 3));
  const e = await KmsEngine.open({ dir: join(base, "s"), rootKeyPath: key });
  await e.createTenantKeys("tnt_a", "premium");
  await e.close();
  await assert.rejects(
    stat(join(base, "s", "root.key")),
    /ENOENT/,
    "no root key is created in the store when one is supplied",
  );
});

test("corrupted, truncated and stale store entries are named; nothing is overwritten; other tenants work", async () => {
  const dir = join(await tmp(), "store");
  let e = await KmsEngine.open({ dir });
  for (const t of ["tnt_a", "tnt_b", "tnt_c", "tnt_d"]) await e.createTenantKeys(t, "premium");
  await e.createTenantKeys("tnt_s", "starter");
  const vd = await e.getVolumeKey("tnt_d");
  await e.close();
  const path = (t: string) => join(dir, "tenants", `${t}.json`);

  await writeFile(path("tnt_a"), "{ not json");
  const rec = JSON.parse(await readFile(path("tnt_b"), "utf8"));
  rec.volumeKey.wrapped = rec.volumeKey.wrapped.slice(0, 40);
  await writeFile(path("tnt_b"), JSON.stringify(rec));
  const recC = JSON.parse(await readFile(path("tnt_c"), "utf8"));
  recC.volumeKey.kekVersion = 5;
  await writeFile(path("tnt_c"), JSON.stringify(recC));
  const s = JSON.parse(await readFile(path("tnt_s"), "utf8"));
  const flipped = Buffer.from(s.volumeKey.wrapped, "base64");
  flipped[40]! ^= 1;
  s.volumeKey.wrapped = flipped.toString("base64");
  await writeFile(path("tnt_s"), JSON.stringify(s));
  const before = await snapshot(dir);

  e = await KmsEngine.open({ dir });
  try {
    await rejectsWith(
      e.getVolumeKey("tnt_a"),
      "store_corrupt",
      /tenants\/tnt_a\.json is corrupted: it is not valid JSON/,
    );
    await rejectsWith(e.createTenantKeys("tnt_a", "premium"), "store_corrupt", /tnt_a\.json/);
    await rejectsWith(
      e.getVolumeKey("tnt_b"),
      "truncated",
      /volume key .*tnt_b\.json is truncated \(30 of 96 bytes\)/,
    );
    await rejectsWith(e.getVolumeKey("tnt_c"), "wrong_key_version", /names KEK [0-9a-f]{16} version 5/);
    await rejectsWith(e.getVolumeKey("tnt_s"), "store_corrupt", /does not authenticate/);
    assert.deepEqual(await e.getVolumeKey("tnt_d"), vd);
    assert.deepEqual(await snapshot(dir), before, "failed calls overwrite nothing");
  } finally {
    await e.close();
  }
});

test("a tenant entry copied over another tenant's does not unwrap", async () => {
  const dir = await storeWith("tnt_a", "tnt_b");
  const a = JSON.parse(await readFile(join(dir, "tenants", "tnt_a.json"), "utf8"));
  await writeFile(join(dir, "tenants", "tnt_b.json"), JSON.stringify({ ...a, tenantId: "tnt_b" }));
  const e = await KmsEngine.open({ dir });
  try {
    await rejectsWith(e.getVolumeKey("tnt_b"), "store_corrupt", /does not authenticate/);
  } finally {
    await e.close();
  }
});

test("start-up removes temporary files and finishes an interrupted destroy", async () => {
  const dir = await storeWith("tnt_a", "tnt_b");
  await writeFile(join(dir, "tenants", "tnt_c.json.123.abcd.tmp"), "partial");
  await writeFile(
    join(dir, "destroyed", "tnt_b.json"),
    JSON.stringify({ format: 1, tenantId: "tnt_b", destroyedAt: "then" }),
  );
  const e = await KmsEngine.open({ dir });
  try {
    assert.deepEqual((await readdir(join(dir, "tenants"))).sort(), ["tnt_a.json"]);
    assert.equal(e.recovered.length, 2);
    await rejectsWith(e.getVolumeKey("tnt_b"), "tenant_destroyed");
    assert.equal((await e.getVolumeKey("tnt_a")).length, 64);
  } finally {
    await e.close();
  }
});

test("one service per store: a second open while the first holds it is refused", async () => {
  const dir = join(await tmp(), "store");
  const e = await KmsEngine.open({ dir });
  try {
    // The lock names this very process, so fake a live other holder: pid 1 with its real start time.
    const init = JSON.parse(await readFile(join(dir, "kms.lock"), "utf8"));
    const stat1 = (await readFile("/proc/1/stat", "utf8")).split(") ")[1]!.split(" ");
    await writeFile(join(dir, "kms.lock"), JSON.stringify({ pid: 1, startTicks: Number(stat1[19]) }));
    await rejectsWith(KmsEngine.open({ dir }), "already_running", /pid 1/);
    await writeFile(join(dir, "kms.lock"), JSON.stringify(init));
  } finally {
    await e.close();
  }
});

test("values sealed by the in-process LocalKeyService (CKS1) open with the same root key, until the tenant is destroyed", async () => {
  const dir = join(await tmp(), "store");
  const local = await LocalKeyService.open(dir);
  const legacy = await local.seal(Buffer.from("old token"), {
    tenantId: "tnt_old",
    purpose: "gateway-token",
  });
  await local.close();
  const e = await KmsEngine.open({ dir });
  try {
    assert.equal(
      (await e.unseal(legacy, { tenantId: "tnt_old", purpose: "gateway-token" })).toString(),
      "old token",
    );
    await rejectsWith(e.unseal(legacy, { tenantId: "tnt_other", purpose: "gateway-token" }), "not_authentic");
    await e.destroyTenant("tnt_old");
    await rejectsWith(
      e.unseal(legacy, { tenantId: "tnt_old", purpose: "gateway-token" }),
      "tenant_destroyed",
    );
  } finally {
    await e.close();
  }
});

describe("fake key service", () => {
  let fake: FakeKeyService;
  before(async () => {
    fake = await FakeKeyService.create();
  });
  after(() => fake.close());
  keyServiceConformance("fake", () => fake);

  test("fake: records calls and fails the calls a test asks it to", async () => {
    fake.failNext("createTenantKeys", new KmsError("injected", undefined, "unavailable"));
    await rejectsWith(fake.createTenantKeys("tnt_f", "premium"), "unavailable", /injected/);
    await fake.createTenantKeys("tnt_f", "premium");
    assert.deepEqual(fake.calls.slice(-2), [
      { op: "createTenantKeys", tenantId: "tnt_f" },
      { op: "createTenantKeys", tenantId: "tnt_f" },
    ]);
  });
});

test("ensureTenantKeys creates a tree where the service has one and is a no-op for LocalKeyService", async () => {
  const dir = await tmp();
  const local = new LocalKeyService(Buffer.alloc(32, 1));
  assert.equal(await ensureTenantKeys(local, "tnt_l", "premium"), null);
  const e = await KmsEngine.open({ dir: join(dir, "store") });
  try {
    assert.equal((await ensureTenantKeys(e, "tnt_l", "premium"))?.tier, "premium");
    assert.equal(isTenantKeyService(e), true);
    assert.equal(isTenantKeyService(local), false);
  } finally {
    await e.close();
  }
});
