import assert from "node:assert/strict";
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { sealingConformance } from "./conformance.ts";
import { LocalKeyService, loadOrCreateRootKey } from "./local.ts";

const shared = new LocalKeyService(Buffer.alloc(32, 9));

const ctx = { tenantId: "tnt_a", purpose: "gateway-token" };

test("seal then unseal returns the plaintext; the sealed form does not contain it", async () => {
  const k = new LocalKeyService(Buffer.alloc(32, 7));
  const sealed = await k.seal(Buffer.from("top-secret-token"), ctx);
  assert.ok(!sealed.includes(Buffer.from("top-secret-token")));
  assert.equal((await k.unseal(sealed, ctx)).toString(), "top-secret-token");
});

test("a value sealed for one tenant or purpose does not open for another", async () => {
  const k = new LocalKeyService(Buffer.alloc(32, 7));
  const sealed = await k.seal(Buffer.from("x"), ctx);
  await assert.rejects(k.unseal(sealed, { ...ctx, tenantId: "tnt_b" }), /does not authenticate/);
  await assert.rejects(k.unseal(sealed, { ...ctx, purpose: "other" }), /does not authenticate/);
});

test("truncated, tampered, unknown-format and other-key values give clear errors", async () => {
  const k = new LocalKeyService(Buffer.alloc(32, 7));
  const sealed = await k.seal(Buffer.from("hello"), ctx);
  await assert.rejects(k.unseal(sealed.subarray(0, 20), ctx), /truncated/);
  const tampered = Buffer.from(sealed);
  tampered[tampered.length - 1]! ^= 1;
  await assert.rejects(k.unseal(tampered, ctx), /does not authenticate/);
  const wrongMagic = Buffer.from(sealed);
  wrongMagic[0] = 0;
  await assert.rejects(k.unseal(wrongMagic, ctx), /unknown format version/);
  const other = new LocalKeyService(Buffer.alloc(32, 8));
  await assert.rejects(
    other.unseal(sealed, ctx),
    /names key [0-9a-f]{16}, which this key service does not hold/,
  );
});

test("the root key file is created 0400 once and reused; a readable one is refused", async () => {
  const dir = await mkdtemp(join(tmpdir(), "ck-kms-"));
  try {
    const a = await loadOrCreateRootKey(dir);
    const st = await stat(join(dir, "root.key"));
    assert.equal(st.mode & 0o777, 0o400);
    assert.deepEqual(await loadOrCreateRootKey(dir), a);
    await chmod(join(dir, "root.key"), 0o644);
    await assert.rejects(loadOrCreateRootKey(dir), /readable by group or others/);
    await chmod(join(dir, "root.key"), 0o600);
    await writeFile(join(dir, "root.key"), Buffer.alloc(5));
    await assert.rejects(loadOrCreateRootKey(dir), /must hold 32 bytes/);
    assert.equal((await readFile(join(dir, "root.key"))).length, 5, "a bad key file is never overwritten");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// The KeyService rules every implementation keeps (conformance.ts), this one included.
sealingConformance("local key service", () => shared);
