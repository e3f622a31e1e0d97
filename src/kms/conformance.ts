import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { KmsError, type KmsFailure } from "./errors.ts";
import type { TenantKeyService } from "./service.types.ts";
import type { KeyService } from "./types.ts";

/** Asserts that `p` rejects with a KmsError of this reason (and, optionally, a message matching `re`). */
export async function rejectsWith(p: Promise<unknown>, reason: KmsFailure, re?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof KmsError, `expected a KmsError, got ${String(err)}`);
    assert.equal(err.reason, reason, `expected reason ${reason}, got ${err.reason}: ${err.message}`);
    assert.equal(err.code, "kms_failed");
    if (re) assert.match(err.message, re);
    return true;
  });
}

/**
 * The behaviour every KeyService promises (types.ts), as one suite: sealed values open only for
 * their tenant and purpose, bad input gives the failure's reason, and after destroyTenant the
 * tenant's values never open again while other tenants' do. LocalKeyService runs it as it is;
 * every TenantKeyService runs it through keyServiceConformance, with `provision` making each
 * tenant's key tree first.
 */
export function sealingConformance(
  label: string,
  svc: () => KeyService,
  provision: (tenantId: string) => Promise<void> = async () => {},
): void {
  const id = (what: string) => `tnt_${what}_${randomBytes(4).toString("hex")}`;
  const ctx = (tenantId: string) => ({ tenantId, purpose: "gateway-token" });

  test(`${label}: a sealed value opens for its tenant and purpose only`, async () => {
    const k = svc();
    const [a, b] = [id("sa"), id("sb")];
    await provision(a);
    await provision(b);
    const secret = Buffer.from(`secret-${randomBytes(8).toString("hex")}`);
    const sealed = await k.seal(secret, ctx(a));
    assert.ok(!sealed.includes(secret), "the sealed form does not contain the plaintext");
    assert.deepEqual(await k.unseal(sealed, ctx(a)), secret);
    await rejectsWith(k.unseal(sealed, { ...ctx(a), purpose: "other" }), "not_authentic");
    await assert.rejects(k.unseal(sealed, ctx(b)), KmsError, "another tenant cannot open it");
    assert.deepEqual(await k.unseal(await k.seal(Buffer.alloc(0), ctx(a)), ctx(a)), Buffer.alloc(0));
  });

  test(`${label}: truncated and tampered values are refused with their reason`, async () => {
    const k = svc();
    const t = id("st");
    await provision(t);
    const sealed = await k.seal(Buffer.from("hello world"), ctx(t));
    await rejectsWith(k.unseal(sealed.subarray(0, 10), ctx(t)), "truncated");
    const tampered = Buffer.from(sealed);
    tampered[tampered.length - 1]! ^= 1;
    await rejectsWith(k.unseal(tampered, ctx(t)), "not_authentic");
    await rejectsWith(
      k.unseal(Buffer.from("XXXX0000000000000000000000000000000000000000000000"), ctx(t)),
      "unknown_format",
    );
  });

  test(`${label}: after destroyTenant the tenant's values never open and nothing is sealed for it; others are untouched`, async () => {
    const k = svc();
    const [gone, kept] = [id("sd"), id("sk")];
    await provision(gone);
    await provision(kept);
    const sealedGone = await k.seal(Buffer.from("gone"), ctx(gone));
    const sealedKept = await k.seal(Buffer.from("kept"), ctx(kept));
    // Control: before the destroy the value opens.
    assert.equal((await k.unseal(sealedGone, ctx(gone))).toString(), "gone");
    await k.destroyTenant(gone);
    await k.destroyTenant(gone);
    await k.destroyTenant(id("never"));
    await rejectsWith(k.unseal(sealedGone, ctx(gone)), "tenant_destroyed");
    await rejectsWith(k.seal(Buffer.from("x"), ctx(gone)), "tenant_destroyed");
    assert.equal((await k.unseal(sealedKept, ctx(kept))).toString(), "kept");
  });
}

/**
 * The behaviour every TenantKeyService promises (service.types.ts), as one suite, the sealing
 * rules included: the in-process engine, the fake and the client talking to the real service
 * process all run it. `svc()` returns the
 * implementation under test, set up before the suite's tests run.
 */
export function keyServiceConformance(label: string, svc: () => TenantKeyService): void {
  sealingConformance(label, svc, async (tenantId) => {
    await svc().createTenantKeys(tenantId, "premium");
  });
  const id = (what: string) => `tnt_${what}_${randomBytes(4).toString("hex")}`;
  const ctx = (tenantId: string) => ({ tenantId, purpose: "gateway-token" });

  test(`${label}: a value sealed under one tenant's key does not open with another's`, async () => {
    const k = svc();
    const a = id("a");
    const b = id("b");
    await k.createTenantKeys(a, "premium");
    await k.createTenantKeys(b, "premium");
    const sealed = await k.seal(Buffer.from("for a"), ctx(a));
    assert.equal((await k.unseal(sealed, ctx(a))).toString(), "for a");
    await rejectsWith(k.unseal(sealed, ctx(b)), "wrong_key_version", /does not hold/);
  });

  test(`${label}: createTenantKeys is idempotent; another kind of KEK for the same tenant is refused`, async () => {
    const k = svc();
    const t = id("idem");
    const first = await k.createTenantKeys(t, "premium");
    assert.equal(first.kek.scope, "tenant");
    assert.deepEqual(await k.createTenantKeys(t, "premium"), first);
    assert.equal(
      (await k.createTenantKeys(t, "enterprise")).tier,
      "enterprise",
      "premium <-> enterprise keeps the keys",
    );
    await rejectsWith(k.createTenantKeys(t, "starter"), "tier_conflict");
    assert.equal((await k.describeTenant(t)).kek.id, first.kek.id);
  });

  test(`${label}: volume keys are 64 bytes, stable, distinct per tenant; Starter tenants share the Starter KEK`, async () => {
    const k = svc();
    const [p, s1, s2] = [id("p"), id("s1"), id("s2")];
    const ip = await k.createTenantKeys(p, "enterprise");
    const i1 = await k.createTenantKeys(s1, "starter");
    const i2 = await k.createTenantKeys(s2, "starter");
    assert.equal(i1.kek.scope, "starter");
    assert.equal(i1.kek.id, i2.kek.id, "one shared Starter KEK");
    assert.notEqual(ip.kek.id, i1.kek.id);
    const v1 = await k.getVolumeKey(s1);
    const v2 = await k.getVolumeKey(s2);
    const vp = await k.getVolumeKey(p);
    assert.equal(v1.length, 64);
    assert.deepEqual(await k.getVolumeKey(s1), v1);
    assert.notDeepEqual(v1, v2);
    assert.notDeepEqual(v1, vp);
  });

  test(`${label}: rotating a KEK keeps volume keys and sealed values; Starter rotation re-wraps every Starter tenant`, async () => {
    const k = svc();
    const [p, s] = [id("rp"), id("rs")];
    await k.createTenantKeys(p, "premium");
    await k.createTenantKeys(s, "starter");
    const vp = await k.getVolumeKey(p);
    const vs = await k.getVolumeKey(s);
    const sp = await k.seal(Buffer.from("premium secret"), ctx(p));
    const ss = await k.seal(Buffer.from("starter secret"), ctx(s));
    const before = await k.describeTenant(p);
    const after = await k.rotateKek(p);
    assert.equal(after.kek.version, before.kek.version + 1);
    assert.notEqual(after.kek.id, before.kek.id);
    assert.deepEqual(after.volumeKey, before.volumeKey);
    assert.deepEqual(await k.getVolumeKey(p), vp, "the volume key is unchanged (data untouched)");
    assert.equal((await k.unseal(sp, ctx(p))).toString(), "premium secret", "old sealed values still unseal");
    await rejectsWith(k.rotateKek(s), "shared_kek");
    const sBefore = await k.describeTenant(s);
    const rot = await k.rotateStarterKek();
    assert.ok(rot.rewrapped >= 1);
    const sAfter = await k.describeTenant(s);
    assert.equal(sAfter.kek.id, rot.kek.id);
    assert.ok(sAfter.kek.version > sBefore.kek.version);
    assert.deepEqual(await k.getVolumeKey(s), vs);
    assert.equal((await k.unseal(ss, ctx(s))).toString(), "starter secret");
  });

  test(`${label}: destroyTenant shreds the tenant's keys: nothing unwraps them; other tenants are untouched`, async () => {
    const k = svc();
    const [p, s, other] = [id("dp"), id("ds"), id("do")];
    await k.createTenantKeys(p, "premium");
    await k.createTenantKeys(s, "starter");
    await k.createTenantKeys(other, "starter");
    const sealedP = await k.seal(Buffer.from("x"), ctx(p));
    const vOther = await k.getVolumeKey(other);
    await k.destroyTenant(p);
    await k.destroyTenant(s);
    await k.destroyTenant(p);
    await k.destroyTenant(id("never"));
    await rejectsWith(k.getVolumeKey(p), "tenant_destroyed");
    await rejectsWith(k.unseal(sealedP, ctx(p)), "tenant_destroyed");
    await rejectsWith(k.seal(Buffer.from("x"), ctx(s)), "tenant_destroyed");
    await rejectsWith(k.createTenantKeys(p, "premium"), "tenant_destroyed");
    assert.deepEqual(
      await k.getVolumeKey(other),
      vOther,
      "destroying a Starter tenant leaves the shared KEK",
    );
  });

  test(`${label}: bad input gives a clear error naming which`, async () => {
    const k = svc();
    const t = id("bad");
    await k.createTenantKeys(t, "premium");
    const sealed = await k.seal(Buffer.from("hello world"), ctx(t));
    await rejectsWith(k.unseal(sealed.subarray(0, sealed.length - 3), ctx(t)), "truncated", /truncated/);
    const otherVersion = Buffer.from(sealed);
    otherVersion.writeUInt32BE(7, 12);
    await rejectsWith(k.unseal(otherVersion, ctx(t)), "wrong_key_version", /version 7/);
    await rejectsWith(k.getVolumeKey(id("nokeys")), "unknown_tenant");
    await rejectsWith(k.seal(Buffer.from("x"), ctx(id("nokeys"))), "unknown_tenant");
    await rejectsWith(k.getVolumeKey("../etc"), "invalid_input");
    await rejectsWith(k.seal(Buffer.from("x"), { tenantId: t, purpose: "a/b" }), "invalid_input");
    await rejectsWith(k.createTenantKeys(id("tier"), "gold" as "starter"), "invalid_input");
  });

  test(`${label}: every call is audited, failures included, with key ids and never key material`, async () => {
    const k = svc();
    const t = id("aud");
    const info = await k.createTenantKeys(t, "premium");
    const v = await k.getVolumeKey(t);
    await k.getVolumeKey(`${t}x`).catch(() => {});
    const entries = await k.audit({ tenant: t });
    const ops = entries.map((e) => `${e.op}:${e.ok}`);
    assert.deepEqual(ops, ["createTenantKeys:true", "getVolumeKey:true"]);
    assert.equal(entries[0]!.keyId, info.kek.id);
    assert.equal(entries[1]!.keyId, info.volumeKey.id);
    const failed = (await k.audit({ tenant: `${t}x` }))[0]!;
    assert.equal(failed.ok, false);
    assert.match(failed.error ?? "", /has no keys/);
    const text = JSON.stringify(await k.audit());
    assert.ok(!text.includes(v.toString("hex")) && !text.includes(v.toString("base64")));
  });
}
