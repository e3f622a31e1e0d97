import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { rejectsWith } from "./conformance.ts";
import {
  parsePurpose,
  parseSealed,
  parseTenantId,
  rootKeyIdOf,
  sealWith,
  TenantRecordSchema,
  unsealWith,
  unwrapKey,
  type WrapContext,
  wrapKey,
} from "./format.ts";

const kek = randomBytes(32);
const ctx: WrapContext = {
  kind: "volume",
  owner: "tnt_a",
  keyId: "00112233445566aa",
  version: 1,
  wrappingKeyId: "aabbccddeeff0011",
  wrappingVersion: 1,
};
const run = async (fn: () => unknown) => fn();

test("a wrapped key unwraps only in exactly its context (owner, kind, version, wrapping key version)", async () => {
  const key = randomBytes(64);
  const w = wrapKey(kek, key, ctx);
  assert.equal(w.length, 4 + 12 + 16 + 64);
  assert.ok(!w.includes(key.subarray(0, 16)));
  assert.deepEqual(unwrapKey(kek, w, ctx, "here"), key);
  for (const other of [
    { owner: "tnt_b" },
    { version: 2 },
    { wrappingVersion: 2 },
    { keyId: "00112233445566ab" },
  ]) {
    await rejectsWith(
      run(() => unwrapKey(kek, w, { ...ctx, ...other }, "here")),
      "store_corrupt",
      /does not authenticate/,
    );
  }
  await rejectsWith(
    run(() => unwrapKey(kek, w.subarray(0, 50), ctx, "here")),
    "truncated",
    /50 of 96 bytes/,
  );
  await rejectsWith(
    run(() => unwrapKey(kek, Buffer.concat([Buffer.from("XXXX"), w.subarray(4)]), ctx, "here")),
    "unknown_format",
  );
  assert.throws(() => wrapKey(kek, randomBytes(32), ctx), /must be 64 bytes/);
});

test("sealed values carry key id, version and length; the header is authenticated", async () => {
  const key = randomBytes(32);
  const sealed = sealWith(key, { id: "0011223344556677", version: 3 }, Buffer.from("hi there"), "tnt_a", "p");
  const v = parseSealed(sealed);
  assert.equal(v.keyId, "0011223344556677");
  assert.equal(v.version, 3);
  assert.equal(unsealWith(key, v, "tnt_a", "p").toString(), "hi there");
  const relabelled = Buffer.from(sealed);
  relabelled.writeUInt32BE(4, 12);
  await rejectsWith(
    run(() => unsealWith(key, parseSealed(relabelled), "tnt_a", "p")),
    "not_authentic",
  );
  await rejectsWith(
    run(() => parseSealed(Buffer.concat([sealed, Buffer.from("x")]))),
    "unknown_format",
    /too long/,
  );
  await rejectsWith(
    run(() => parseSealed(sealed.subarray(0, sealed.length - 1))),
    "truncated",
  );
  await rejectsWith(
    run(() => parseSealed(Buffer.from("CKS1........................................"))),
    "unknown_format",
    /format 1/,
  );
});

test("ids and purposes that could reach a path or a header are refused", async () => {
  assert.equal(parseTenantId("tnt_0123abcd"), "tnt_0123abcd");
  for (const bad of ["", "../x", "a/b", "@starter", "a\0b", "x".repeat(81), 5, null]) {
    await rejectsWith(
      run(() => parseTenantId(bad)),
      "invalid_input",
    );
  }
  assert.equal(parsePurpose("gateway-token"), "gateway-token");
  for (const bad of ["", "a b", "a\0", "é"])
    await rejectsWith(
      run(() => parsePurpose(bad)),
      "invalid_input",
    );
});

test("the root key id is stable and does not reveal the key", () => {
  const k = Buffer.alloc(32, 5);
  assert.equal(rootKeyIdOf(k), rootKeyIdOf(Buffer.alloc(32, 5)));
  assert.notEqual(rootKeyIdOf(k), rootKeyIdOf(Buffer.alloc(32, 6)));
  assert.match(rootKeyIdOf(k), /^[0-9a-f]{16}$/);
});

test("store records are strict: unknown fields and a Starter tenant with its own KEK are corruption", () => {
  const dk = {
    id: "0011223344556677",
    version: 1,
    kekId: "0011223344556677",
    kekVersion: 1,
    wrapped: "AAAA",
    createdAt: "t",
  };
  const rec = {
    format: 1,
    tenantId: "tnt_a",
    tier: "starter",
    createdAt: "t",
    kek: null,
    retiredKeks: [],
    volumeKey: dk,
    secretsKeys: [dk],
  };
  assert.ok(TenantRecordSchema.safeParse(rec).success);
  assert.ok(!TenantRecordSchema.safeParse({ ...rec, extra: 1 }).success);
  const kek = {
    id: "0011223344556677",
    version: 1,
    rootKeyId: "0011223344556677",
    wrapped: "AAAA",
    createdAt: "t",
  };
  assert.ok(!TenantRecordSchema.safeParse({ ...rec, kek }).success);
  assert.ok(TenantRecordSchema.safeParse({ ...rec, tier: "premium", kek }).success);
});
