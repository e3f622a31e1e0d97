import assert from "node:assert/strict";
import { test } from "node:test";
import { useTempDir } from "../../../testing/temp-dir.ts";
import {
  DirectoryLockedError,
  decodeGetPolicyExArg,
  decodeKeyStatus,
  encodeAddKeyArg,
  encodeGetPolicyExArg,
  encodePolicyV2,
  encodeRemoveKeyArg,
  FS_IOC,
  Fscrypt,
  FscryptError,
  FscryptUnsupportedError,
  type IoctlFn,
  isOurPolicy,
  KeyMismatchError,
  keyIdentifier,
  parseKeyIdentifier,
} from "./fscrypt.ts";

const key = Buffer.from(Array.from({ length: 64 }, (_, i) => i));
/** What kernel 6.18 returned from FS_IOC_ADD_ENCRYPTION_KEY for the key 00 01 .. 3f. */
const KERNEL_IDENTIFIER = "8699c2c53707405da5aba5ae4d8583c0";

const tmp = useTempDir("clawkeep-fscrypt-unit-");

test("ioctl numbers equal those of <linux/fscrypt.h> (x86-64, compiled with gcc)", () => {
  assert.equal(FS_IOC.SET_ENCRYPTION_POLICY, 0x800c6613);
  assert.equal(FS_IOC.GET_ENCRYPTION_POLICY_EX, 0xc0096616);
  assert.equal(FS_IOC.ADD_ENCRYPTION_KEY, 0xc0506617);
  assert.equal(FS_IOC.REMOVE_ENCRYPTION_KEY, 0xc0406618);
  assert.equal(FS_IOC.REMOVE_ENCRYPTION_KEY_ALL_USERS, 0xc0406619);
  assert.equal(FS_IOC.GET_ENCRYPTION_KEY_STATUS, 0xc080661a);
});

test("the key identifier is the kernel's HKDF-SHA512 (known answer from the kernel)", () => {
  assert.equal(keyIdentifier(key).toString("hex"), KERNEL_IDENTIFIER);
  const other = Buffer.from(key);
  other[0] = 0xff;
  assert.notEqual(keyIdentifier(other).toString("hex"), KERNEL_IDENTIFIER);
});

test("keys must be 64 bytes and not constant; identifiers 32 hex digits", () => {
  assert.throws(() => keyIdentifier(Buffer.alloc(32, 1)), /exactly 64 bytes, got 32/);
  assert.throws(() => keyIdentifier(Buffer.alloc(64, 7)), /all equal/);
  assert.throws(() => parseKeyIdentifier("XYZ"), /32 lower-case hex digits/);
  assert.throws(() => parseKeyIdentifier(KERNEL_IDENTIFIER.toUpperCase()), /lower-case/);
  assert.deepEqual(parseKeyIdentifier(KERNEL_IDENTIFIER), Buffer.from(KERNEL_IDENTIFIER, "hex"));
});

test("struct layouts: policy v2, get-policy-ex, add-key, remove-key, key status", () => {
  const id = Buffer.from(KERNEL_IDENTIFIER, "hex");
  const p = encodePolicyV2(id);
  assert.equal(p.length, 24);
  assert.deepEqual([...p.subarray(0, 8)], [2, 1, 4, 3, 0, 0, 0, 0]);
  assert.deepEqual(p.subarray(8), id);

  const ex = encodeGetPolicyExArg();
  assert.equal(ex.length, 32);
  assert.equal(ex.readBigUInt64LE(0), 24n);
  p.copy(ex, 8);
  const decoded = decodeGetPolicyExArg(ex);
  assert.deepEqual(decoded, {
    version: 2,
    contentsMode: 1,
    filenamesMode: 4,
    flags: 3,
    keyIdentifier: KERNEL_IDENTIFIER,
  });
  assert.ok(isOurPolicy(decoded, KERNEL_IDENTIFIER));
  assert.ok(!isOurPolicy({ ...decoded, flags: 0 }, KERNEL_IDENTIFIER));
  assert.ok(!isOurPolicy(decoded, "0".repeat(32)));

  const v1 = Buffer.alloc(32);
  v1.writeBigUInt64LE(12n, 0);
  Buffer.from([0, 1, 4, 0, 1, 2, 3, 4, 5, 6, 7, 8]).copy(v1, 8);
  assert.equal(decodeGetPolicyExArg(v1).version, 1);
  assert.equal(decodeGetPolicyExArg(v1).keyIdentifier, "0102030405060708");
  const bad = Buffer.alloc(32);
  bad.writeBigUInt64LE(24n, 0);
  bad[8] = 9;
  assert.throws(() => decodeGetPolicyExArg(bad), /unknown version 9/);

  const add = encodeAddKeyArg(key);
  assert.equal(add.length, 80 + 64);
  assert.equal(add.readUInt32LE(0), 2); // FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER
  assert.equal(add.readUInt32LE(40), 64); // raw_size
  assert.deepEqual(add.subarray(80), key);

  const rem = encodeRemoveKeyArg(id);
  assert.equal(rem.length, 64);
  assert.equal(rem.readUInt32LE(0), 2);
  assert.deepEqual(rem.subarray(8, 24), id);
  assert.throws(() => encodeRemoveKeyArg(Buffer.alloc(8)), /16 bytes, got 8/);

  const st = Buffer.alloc(128);
  for (const [n, s] of [
    [1, "absent"],
    [2, "present"],
    [3, "incompletely-removed"],
  ] as const) {
    st.writeUInt32LE(n, 64);
    assert.equal(decodeKeyStatus(st), s);
  }
  st.writeUInt32LE(7, 64);
  assert.throws(() => decodeKeyStatus(st), /unknown fscrypt key status 7/);
});

/** A fake ioctl answering by request number; records every call and the buffer it got. */
function fakeIoctl(answers: Partial<Record<number, (arg: Buffer) => number>>) {
  const calls: { request: number; arg: Buffer; copy: Buffer }[] = [];
  const fn: IoctlFn = (_fd, request, arg) => {
    const answer = answers[request];
    calls.push({ request, arg, copy: Buffer.from(arg) });
    return answer ? answer(arg) : -25; // ENOTTY
  };
  return { fn, calls };
}

/** An Fscrypt whose ioctl answers `request` with `answer` (and every other with ENOTTY). */
const answering = (request: number, answer: (arg: Buffer) => number) =>
  new Fscrypt({ ioctl: fakeIoctl({ [request]: answer }).fn });
/** An ioctl answer that writes `value` (u32, little-endian) at `offset` of the argument and succeeds. */
const writesU32 = (value: number, offset: number) => (arg: Buffer) => {
  arg.writeUInt32LE(value, offset);
  return 0;
};

test("getPolicy: ENODATA means not encrypted; ENOTTY/EOPNOTSUPP mean unsupported, said in words", async () => {
  const none = answering(FS_IOC.GET_ENCRYPTION_POLICY_EX, () => -61);
  assert.equal(await none.getPolicy(tmp()), null);
  const unsupported = answering(FS_IOC.GET_ENCRYPTION_POLICY_EX, () => -95);
  await assert.rejects(unsupported.getPolicy(tmp()), (err: unknown) => {
    assert.ok(err instanceof FscryptUnsupportedError);
    assert.equal(err.code, "runtime_unavailable");
    assert.match(err.message, /does not support encryption \(EOPNOTSUPP\).*-O encrypt/);
    return true;
  });
  await assert.rejects(none.getPolicy(`${tmp()}/missing`), /cannot open directory .*missing: ENOENT/);
});

test("addKey hands the key over in the ioctl argument and zeroes that copy afterwards", async () => {
  const id = Buffer.from(KERNEL_IDENTIFIER, "hex");
  const fake = fakeIoctl({
    [FS_IOC.ADD_ENCRYPTION_KEY]: (arg) => {
      id.copy(arg, 8);
      return 0;
    },
  });
  const got = await new Fscrypt({ ioctl: fake.fn }).addKey(tmp(), key);
  assert.equal(got.toString("hex"), KERNEL_IDENTIFIER);
  const call = fake.calls[0]!;
  assert.deepEqual(call.copy.subarray(80), key, "the kernel saw the key");
  assert.ok(
    call.arg.every((b) => b === 0),
    "the argument buffer is zeroed after the call",
  );
  assert.deepEqual(key.subarray(0, 4), Buffer.from([0, 1, 2, 3]), "the caller's key is left to the caller");

  const denied = answering(FS_IOC.ADD_ENCRYPTION_KEY, () => -13);
  await assert.rejects(denied.addKey(tmp(), key), /needs CAP_SYS_ADMIN/);
});

test("setPolicy explains the kernel's refusals", async () => {
  const id = Buffer.from(KERNEL_IDENTIFIER, "hex");
  const cases: [number, RegExp][] = [
    [-39, /not empty: fscrypt encrypts only empty directories.*ENOTEMPTY/],
    [-17, /already has another encryption policy.*EEXIST/],
    [-126, /key has not been added.*ENOKEY/],
  ];
  for (const [rc, re] of cases) {
    const f = new Fscrypt({ ioctl: fakeIoctl({ [FS_IOC.SET_ENCRYPTION_POLICY]: () => rc }).fn });
    await assert.rejects(f.setPolicy(tmp(), id), (err: unknown) => {
      assert.ok(err instanceof FscryptError);
      assert.match(err.message, re);
      return true;
    });
  }
  const fake = fakeIoctl({ [FS_IOC.SET_ENCRYPTION_POLICY]: () => 0 });
  await new Fscrypt({ ioctl: fake.fn }).setPolicy(tmp(), id);
  assert.deepEqual(fake.calls[0]!.copy, encodePolicyV2(id));
});

test("removeKey: ENOKEY is already locked, FILES_BUSY is reported; key status decoded", async () => {
  const id = Buffer.from(KERNEL_IDENTIFIER, "hex");
  const remove = FS_IOC.REMOVE_ENCRYPTION_KEY_ALL_USERS;
  assert.equal(await answering(remove, () => -126).removeKey(tmp(), id), "already-locked");
  assert.equal(await answering(remove, writesU32(1, 40)).removeKey(tmp(), id), "files-busy");
  assert.equal(await answering(remove, () => 0).removeKey(tmp(), id), "locked");
  const status = answering(FS_IOC.GET_ENCRYPTION_KEY_STATUS, writesU32(2, 64));
  assert.equal(await status.keyStatus(tmp(), id), "present");
});

test("errors name the state in words and carry stable codes", () => {
  const locked = new DirectoryLockedError("/v/data");
  assert.equal(locked.code, "conflict");
  assert.match(locked.message, /locked: it is encrypted and its key is not added.*ENOKEY/);
  const mismatch = new KeyMismatchError("/v/data", "a".repeat(32), "b".repeat(32));
  assert.equal(mismatch.code, "forbidden");
  assert.match(mismatch.message, /not the key of this directory/);
});
