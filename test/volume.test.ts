/**
 * Tenant volumes on the real kernel: loop devices, ext4, mount, fscrypt ioctls. Needs root, loop
 * devices and ext4 encryption; skips loudly, with the reason, where one is missing.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { planFor } from "../src/core/plans.ts";
import { execFile } from "../src/lib/exec.ts";
import { VolumeBusyError, VolumeError } from "../src/runtime/linux/volume/errors.ts";
import { mkfsArgv } from "../src/runtime/linux/volume/ext4.ts";
import { KeyMismatchError } from "../src/runtime/linux/volume/fscrypt.ts";
import { loopDevicesOf } from "../src/runtime/linux/volume/loop.ts";
import { readMounts } from "../src/runtime/linux/volume/mounts.ts";
import { LocalVolumes } from "../src/runtime/linux/volume/volume.ts";
import type { InstanceSpec } from "../src/runtime/types.ts";
import { EncryptedTenantVolumes } from "../src/runtime/volumes/encrypted.ts";
import { volumeSkipReason } from "./fixtures/volumes.ts";

const MiB = 1024 * 1024;
let root = "";
let skipReason: string | undefined;
let vols: LocalVolumes;

before(async () => {
  root = await mkdtemp(join(tmpdir(), "clawkeep-volume-"));
  // Tenant uids must be able to pass through to their own directories (Starter pool test).
  await chmod(root, 0o711);
  skipReason = await volumeSkipReason(root);
  if (skipReason) process.stderr.write(`\n# SKIPPING volume tests: ${skipReason}\n\n`);
  vols = new LocalVolumes({ imagesRoot: join(root, "images"), mountsRoot: join(root, "mnt") });
});

/** Removes whatever the tests left, even after a failure: mounts, loop devices, files. */
after(async () => {
  if (!root) return;
  const mounts = (await readMounts()).filter((m) => m.mountpoint.startsWith(`${root}/`)).reverse();
  for (const m of mounts) {
    process.stderr.write(`# cleanup: unmounting leftover ${m.mountpoint}\n`);
    await execFile(["umount", "-l", m.mountpoint]).catch(() => undefined);
  }
  for (const name of await readdir("/sys/block").catch(() => [] as string[])) {
    const backing = await readFile(`/sys/block/${name}/loop/backing_file`, "utf8").catch(() => "");
    if (backing.startsWith(`${root}/`)) {
      process.stderr.write(`# cleanup: detaching leftover /dev/${name} (${backing.trim()})\n`);
      await execFile(["losetup", "--detach", `/dev/${name}`]).catch(() => undefined);
    }
  }
  await rm(root, { recursive: true, force: true });
});

interface Vol {
  image: string;
  mountpoint: string;
  data: string;
}

let counter = 0;
function vol(label: string): Vol {
  const id = `${label}-${++counter}`;
  const mountpoint = join(root, "mnt", id);
  return { image: join(root, "images", `${id}.img`), mountpoint, data: join(mountpoint, "data") };
}

/** Creates, mounts and unlocks `v`'s data directory with `key` (default: a new random one). */
async function openVolume(v: Vol, key = randomBytes(64), sizeBytes = 32 * MiB) {
  await vols.createVolume({ image: v.image, sizeBytes });
  const { loopDevice } = await vols.mountVolume(v);
  const { keyIdentifier } = await vols.unlockDir({ mountpoint: v.mountpoint, dir: v.data, key });
  return { loopDevice, keyIdentifier, key };
}

/** Asserts nothing of the volume is left: no loop device, no mount, no image, no mount point. */
async function assertGone(v: Vol): Promise<void> {
  const losetup = await execFile(["losetup", "-a"]);
  assert.ok(!losetup.includes(v.image), `losetup -a still lists ${v.image}:\n${losetup}`);
  assert.deepEqual(await loopDevicesOf(v.image), []);
  const mounted = (await readMounts()).filter((m) => m.mountpoint === v.mountpoint);
  assert.deepEqual(mounted, [], `${v.mountpoint} is still mounted`);
  assert.equal(existsSync(v.image), false, `${v.image} still exists`);
  assert.equal(existsSync(v.mountpoint), false, `${v.mountpoint} still exists`);
}

async function mountEntries(mountpoint: string) {
  return (await readMounts()).filter((m) => m.mountpoint === mountpoint);
}

/** Offset of the first occurrence of each needle in the file, or -1. Reads in overlapping chunks. */
async function scan(file: string, needles: Buffer[]): Promise<number[]> {
  const found = needles.map(() => -1);
  const overlap = Math.max(...needles.map((n) => n.length)) - 1;
  const fh = await open(file, "r");
  try {
    const size = (await fh.stat()).size;
    const chunk = Buffer.alloc(8 * MiB);
    let carry = Buffer.alloc(0);
    for (let pos = 0; pos < size; ) {
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, pos);
      if (bytesRead === 0) break;
      const buf = Buffer.concat([carry, chunk.subarray(0, bytesRead)]);
      const base = pos - carry.length;
      needles.forEach((n, i) => {
        if (found[i] !== -1) return;
        const at = buf.indexOf(n);
        if (at >= 0) found[i] = base + at;
      });
      carry = Buffer.from(buf.subarray(Math.max(0, buf.length - overlap)));
      pos += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return found;
}

function isEnokey(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).errno === -126;
}

/**
 * A test on a new volume named after `label` (nothing made yet): skipped, saying why, where
 * volumes cannot be tested here; the volume is deleted afterwards, even when the test fails, and
 * then nothing of it may be left (assertGone).
 */
function volumeTest(title: string, label: string, body: (v: Vol) => Promise<void>): void {
  test(title, async (t) => {
    if (skipReason) return t.skip(skipReason);
    const v = vol(label);
    try {
      await body(v);
    } finally {
      await vols.deleteVolume(v);
    }
    await assertGone(v);
  });
}

volumeTest(
  "locked: names read as ciphertext and opening fails with ENOKEY; with the key they read back",
  "locked",
  async (v) => {
    const { key, keyIdentifier } = await openVolume(v);
    const files: Record<string, string> = {
      "alpha-notes.txt": "the alpha notes",
      "beta-plan.md": "beta plan text",
    };
    for (const [name, body] of Object.entries(files)) await writeFile(join(v.data, name), body);
    await mkdir(join(v.data, "gamma-dir"));
    const written = [...Object.keys(files), "gamma-dir"].sort();
    assert.deepEqual((await readdir(v.data)).sort(), written);

    assert.equal(await vols.lockDir({ mountpoint: v.mountpoint, keyIdentifier }), "locked");
    assert.equal(await vols.keyStatus({ mountpoint: v.mountpoint, keyIdentifier }), "absent");
    const locked = await readdir(v.data);
    assert.equal(locked.length, written.length);
    for (const name of locked) {
      assert.ok(!written.includes(name), `plaintext name ${name} visible while locked`);
      assert.ok(!/alpha|beta|gamma/.test(name), `name ${name} leaks plaintext`);
    }
    for (const name of locked) {
      const st = await stat(join(v.data, name));
      if (st.isDirectory()) continue;
      await assert.rejects(
        readFile(join(v.data, name)),
        isEnokey,
        "open of a locked file must fail with ENOKEY",
      );
    }
    await assert.rejects(
      writeFile(join(v.data, "new-file"), "x"),
      isEnokey,
      "create in a locked dir: ENOKEY",
    );

    // Control: with the key added again the same names and contents are readable.
    const again = await vols.unlockDir({ mountpoint: v.mountpoint, dir: v.data, key });
    assert.deepEqual(again, { keyIdentifier, policyCreated: false });
    assert.deepEqual((await readdir(v.data)).sort(), written);
    for (const [name, body] of Object.entries(files))
      assert.equal(await readFile(join(v.data, name), "utf8"), body);
  },
);

test("key material and plaintext never reach the image; control: a plain ext4 image shows both", async (t) => {
  if (skipReason) return t.skip(skipReason);
  const marker = Buffer.from(`CLAWKEEP-PLAINTEXT-${randomBytes(16).toString("hex")}`);
  const nameMarker = `clawkeep-secret-name-${randomBytes(8).toString("hex")}`;
  const write = async (dir: string) => {
    const fh = await open(join(dir, nameMarker), "w");
    await fh.writeFile(Buffer.concat(Array.from({ length: 2000 }, () => marker)));
    await fh.sync();
    await fh.close();
  };

  const v = vol("scan");
  const key = randomBytes(64);
  try {
    const { keyIdentifier } = await openVolume(v, key);
    await write(v.data);
    assert.equal(await vols.lockDir({ mountpoint: v.mountpoint, keyIdentifier }), "locked");
    assert.deepEqual(await vols.unmountVolume(v), { unmounted: true });
    assert.deepEqual(await loopDevicesOf(v.image), []);
    const needles = [key, Buffer.from(key.toString("hex")), marker, Buffer.from(nameMarker)];
    const hits = await scan(v.image, needles);
    assert.deepEqual(hits, [-1, -1, -1, -1], `found [key, key hex, contents, name] at offsets ${hits}`);
  } finally {
    await vols.deleteVolume(v);
  }
  await assertGone(v);

  // Control: the same scan finds both in an unencrypted ext4 image.
  const plain = join(root, "plain.img");
  const mnt = join(root, "plain-mnt");
  let dev = "";
  try {
    await writeFile(plain, "");
    await execFile(["truncate", "-s", String(32 * MiB), plain]);
    await execFile(mkfsArgv(plain, { encrypt: false }));
    dev = (await execFile(["losetup", "--find", "--show", plain])).trim();
    await mkdir(mnt);
    await execFile(["mount", "-t", "ext4", dev, mnt]);
    await write(mnt);
    await execFile(["umount", mnt]);
    const [contents, name] = await scan(plain, [marker, Buffer.from(nameMarker)]);
    assert.ok(contents !== undefined && contents >= 0, "the control scan must find the plaintext contents");
    assert.ok(name !== undefined && name >= 0, "the control scan must find the plaintext name");
  } finally {
    await execFile(["umount", mnt]).catch(() => undefined);
    if (dev) await execFile(["losetup", "--detach", dev]).catch(() => undefined);
    await rm(plain, { force: true });
    await rm(mnt, { recursive: true, force: true });
  }
});

test("a full volume gives ENOSPC to its tenant alone; the neighbour keeps accepting writes", async (t) => {
  if (skipReason) return t.skip(skipReason);
  const a = vol("full-a");
  const b = vol("full-b");
  try {
    await openVolume(a, randomBytes(64), 16 * MiB);
    await openVolume(b, randomBytes(64), 16 * MiB);
    const block = randomBytes(MiB);
    let error: NodeJS.ErrnoException | undefined;
    let written = 0;
    const fh = await open(join(a.data, "fill"), "w");
    try {
      for (let i = 0; i < 64 && !error; i++) {
        try {
          await fh.write(block);
          written += block.length;
        } catch (err) {
          error = err as NodeJS.ErrnoException;
        }
      }
      if (!error) await fh.sync().catch((err: NodeJS.ErrnoException) => (error = err));
    } finally {
      await fh.close().catch(() => undefined);
    }
    assert.equal(error?.code, "ENOSPC", `expected ENOSPC after ${written} bytes, got ${error?.code}`);
    assert.ok(written <= 16 * MiB, `wrote ${written} bytes into a 16 MiB volume`);
    await assert.rejects(writeFile(join(a.data, "more"), randomBytes(64 * 1024)), { code: "ENOSPC" });
    assert.ok((await vols.volumeUsage(a.mountpoint)).availableBytes < MiB);

    // The neighbour is untouched by its neighbour's full disk.
    await writeFile(join(b.data, "still-fine"), block);
    assert.deepEqual(await readFile(join(b.data, "still-fine")), block);
    const usage = await vols.volumeUsage(b.mountpoint);
    assert.ok(usage.availableBytes > 8 * MiB, `neighbour has ${usage.availableBytes} bytes free`);
  } finally {
    await vols.deleteVolume(a);
    await vols.deleteVolume(b);
  }
  await assertGone(a);
  await assertGone(b);
});

test("every call is idempotent and deleteVolume leaves no loop device, mount or file", async (t) => {
  if (skipReason) return t.skip(skipReason);
  const v = vol("idem");
  const key = randomBytes(64);
  try {
    assert.deepEqual(await vols.createVolume({ image: v.image, sizeBytes: 16 * MiB }), {
      created: true,
      sizeBytes: 16 * MiB,
    });
    const ino = (await stat(v.image)).ino;
    assert.deepEqual(await vols.createVolume({ image: v.image, sizeBytes: 32 * MiB }), {
      created: false,
      sizeBytes: 16 * MiB,
    });
    assert.equal((await stat(v.image)).ino, ino, "an existing image is kept");
    const pre = vol("prealloc");
    try {
      await vols.createVolume({ image: pre.image, sizeBytes: 16 * MiB, preallocate: true });
      assert.ok((await stat(pre.image)).blocks * 512 >= 16 * MiB, "preallocate reserves the disk space");
      assert.ok((await stat(v.image)).blocks * 512 < 16 * MiB, "without it the image is sparse");
    } finally {
      await vols.deleteVolume(pre);
    }

    const m1 = await vols.mountVolume(v);
    const m2 = await vols.mountVolume(v);
    assert.equal(m1.mounted, true);
    assert.deepEqual(m2, { loopDevice: m1.loopDevice, mounted: false });
    const entries = await mountEntries(v.mountpoint);
    assert.equal(entries.length, 1, "mounted once");
    for (const o of ["nosuid", "nodev", "noexec"]) assert.ok(entries[0]!.options.split(",").includes(o), o);
    assert.deepEqual(await loopDevicesOf(v.image), [m1.loopDevice]);

    const u1 = await vols.unlockDir({ mountpoint: v.mountpoint, dir: v.data, key });
    const u2 = await vols.unlockDir({ mountpoint: v.mountpoint, dir: v.data, key });
    assert.equal(u1.policyCreated, true);
    assert.deepEqual(u2, { keyIdentifier: u1.keyIdentifier, policyCreated: false });
    await writeFile(join(v.data, "kept"), "kept across remounts");

    assert.equal(await vols.lockDir({ mountpoint: v.mountpoint, keyIdentifier: u1.keyIdentifier }), "locked");
    assert.equal(
      await vols.lockDir({ mountpoint: v.mountpoint, keyIdentifier: u1.keyIdentifier }),
      "already-locked",
    );

    assert.deepEqual(await vols.unmountVolume(v), { unmounted: true });
    assert.deepEqual(await vols.unmountVolume(v), { unmounted: false });
    assert.deepEqual(await loopDevicesOf(v.image), [], "unmount detaches the loop device");
    assert.equal(
      await vols.lockDir({ mountpoint: v.mountpoint, keyIdentifier: u1.keyIdentifier }),
      "already-locked",
    );

    // Remount: the data is still there and opens with the key only.
    await vols.mountVolume(v);
    await assert.rejects(
      readFile(join(v.data, "kept")),
      (err: unknown) => (err as NodeJS.ErrnoException).code === "ENOENT" || isEnokey(err),
    );
    await vols.unlockDir({ mountpoint: v.mountpoint, dir: v.data, key });
    assert.equal(await readFile(join(v.data, "kept"), "utf8"), "kept across remounts");
  } finally {
    await vols.deleteVolume(v);
  }
  await assertGone(v);
  await vols.deleteVolume(v);
  await assertGone(v);
});

volumeTest("a wrong key is refused, adds nothing, and the directory stays locked", "wrongkey", async (v) => {
  const key = randomBytes(64);
  const wrong = randomBytes(64);
  const { keyIdentifier } = await openVolume(v, key);
  await writeFile(join(v.data, "private.txt"), "private");
  await vols.lockDir({ mountpoint: v.mountpoint, keyIdentifier });
  await assert.rejects(
    vols.unlockDir({ mountpoint: v.mountpoint, dir: v.data, key: wrong }),
    KeyMismatchError,
  );
  const wrongId = (
    await vols.unlockDir({ mountpoint: v.mountpoint, dir: join(v.mountpoint, "other"), key: wrong })
  ).keyIdentifier;
  // The wrong key now sits in the keyring for "other", yet v.data stays locked.
  assert.equal(await vols.keyStatus({ mountpoint: v.mountpoint, keyIdentifier: keyIdentifier }), "absent");
  assert.ok(!(await readdir(v.data)).includes("private.txt"));
  await vols.lockDir({ mountpoint: v.mountpoint, keyIdentifier: wrongId });

  // A non-empty unencrypted directory is refused, never encrypted in place.
  await mkdir(join(v.mountpoint, "plain"));
  await writeFile(join(v.mountpoint, "plain", "f"), "x");
  await assert.rejects(
    vols.unlockDir({ mountpoint: v.mountpoint, dir: join(v.mountpoint, "plain"), key }),
    /not encrypted and not empty/,
  );
  // A directory outside the volume is refused before anything touches it.
  await assert.rejects(vols.unlockDir({ mountpoint: v.mountpoint, dir: root, key }), /is not under/);
});

volumeTest(
  "open files keep the volume busy: lock reports it, unmount and close refuse; after closing all succeed",
  "busy",
  async (v) => {
    const { key, keyIdentifier } = await openVolume(v);
    const fh = await open(join(v.data, "open-file"), "w");
    try {
      assert.equal(await vols.lockDir({ mountpoint: v.mountpoint, keyIdentifier }), "files-busy");
      assert.equal(await vols.keyStatus({ mountpoint: v.mountpoint, keyIdentifier }), "incompletely-removed");
      await assert.rejects(vols.unmountVolume(v), VolumeBusyError);
    } finally {
      await fh.close();
    }
    // Once the file is closed the retry completes the removal (or the kernel already did).
    assert.match(
      await vols.lockDir({ mountpoint: v.mountpoint, keyIdentifier }),
      /^(locked|already-locked)$/,
    );
    assert.equal(await vols.keyStatus({ mountpoint: v.mountpoint, keyIdentifier }), "absent");

    // closeVolume (lock + unmount) is refused while a file is open, and succeeds once it is closed.
    await vols.unlockDir({ mountpoint: v.mountpoint, dir: v.data, key });
    const fh2 = await open(join(v.data, "open-file"), "r");
    try {
      await assert.rejects(
        vols.closeVolume({ mountpoint: v.mountpoint, keyIdentifiers: [keyIdentifier] }),
        VolumeBusyError,
      );
    } finally {
      await fh2.close();
    }
    await vols.closeVolume({ mountpoint: v.mountpoint, keyIdentifiers: [keyIdentifier] });
    assert.deepEqual(await mountEntries(v.mountpoint), []);
    assert.deepEqual(await loopDevicesOf(v.image), []);
    await vols.closeVolume({ mountpoint: v.mountpoint, keyIdentifiers: [keyIdentifier] });
  },
);

volumeTest(
  "noexec: a program on the volume cannot run; control: the same file runs from the host disk",
  "noexec",
  async (v) => {
    const script = "#!/bin/sh\necho ran\n";
    await openVolume(v, randomBytes(64));
    await writeFile(join(v.data, "prog"), script, { mode: 0o755 });
    await assert.rejects(execFile([join(v.data, "prog")]), (err: unknown) =>
      /EACCES/.test(String((err as Error).cause)),
    );
    const control = join(root, "prog");
    await writeFile(control, script, { mode: 0o755 });
    assert.equal((await execFile([control])).trim(), "ran");
  },
);

volumeTest(
  "Starter pool: tenant directories inherit the pool key, 0700 under their own uid",
  "pool",
  async (v) => {
    const uidA = 4_710_001;
    const uidB = 4_710_002;
    const asUid = (uid: number, argv: string[]) =>
      execFile(["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", ...argv]);
    await vols.createVolume({ image: v.image, sizeBytes: 32 * MiB });
    await vols.mountVolume(v);
    const { keyIdentifier } = await vols.unlockDir({
      mountpoint: v.mountpoint,
      dir: v.data,
      key: randomBytes(64),
      mode: 0o711,
    });
    const dirA = await vols.makeTenantDir({
      mountpoint: v.mountpoint,
      parent: v.data,
      name: "alice",
      uid: uidA,
      gid: uidA,
    });
    const dirB = await vols.makeTenantDir({
      mountpoint: v.mountpoint,
      parent: v.data,
      name: "bob",
      uid: uidB,
      gid: uidB,
    });
    assert.equal(
      await vols.makeTenantDir({
        mountpoint: v.mountpoint,
        parent: v.data,
        name: "alice",
        uid: uidA,
        gid: uidA,
      }),
      dirA,
    );
    for (const [dir, uid] of [
      [dirA, uidA],
      [dirB, uidB],
    ] as const) {
      const st = await stat(dir);
      assert.equal(st.mode & 0o777, 0o700);
      assert.equal(st.uid, uid);
    }
    await asUid(uidB, ["sh", "-c", `echo bob-secret > ${dirB}/notes`]);
    // Boundary: alice cannot read bob's directory; control: bob can.
    await assert.rejects(asUid(uidA, ["cat", `${dirB}/notes`]), /Permission denied/);
    await assert.rejects(asUid(uidA, ["ls", dirB]), /Permission denied/);
    assert.equal((await asUid(uidB, ["cat", `${dirB}/notes`])).trim(), "bob-secret");
    await assert.rejects(
      vols.makeTenantDir({ mountpoint: v.mountpoint, parent: v.data, name: "../x", uid: uidA, gid: uidA }),
    );

    // Locking the pool key locks every tenant directory in it.
    assert.equal(await vols.lockDir({ mountpoint: v.mountpoint, keyIdentifier }), "locked");
    assert.ok(!(await readdir(v.data)).includes("bob"));
    await assert.rejects(
      vols.makeTenantDir({ mountpoint: v.mountpoint, parent: v.data, name: "carol", uid: uidA, gid: uidA }),
      /is locked: it is encrypted and its key is not added/,
    );
  },
);

test("rollback: a failed mount detaches its loop device; an aborted create leaves no file", async (t) => {
  if (skipReason) return t.skip(skipReason);
  const v = vol("rollback");
  try {
    await vols.createVolume({ image: v.image, sizeBytes: 16 * MiB });
    // Break the superblock checksum (its last 4 bytes): the kernel refuses to mount it.
    const fh = await open(v.image, "r+");
    try {
      const sum = Buffer.alloc(4);
      await fh.read(sum, 0, 4, 1024 + 0x3fc);
      await fh.write(Buffer.from(sum.map((b) => b ^ 0xff)), 0, 4, 1024 + 0x3fc);
    } finally {
      await fh.close();
    }
    await assert.rejects(
      vols.mountVolume(v),
      (err: unknown) => err instanceof VolumeError && /mounting .* failed/.test(err.message),
    );
    assert.deepEqual(
      await loopDevicesOf(v.image),
      [],
      "the loop device attached for the failed mount is detached",
    );
    assert.deepEqual(await mountEntries(v.mountpoint), []);
  } finally {
    await vols.deleteVolume(v);
  }
  await assertGone(v);

  const ac = new AbortController();
  const aborting = new LocalVolumes({
    imagesRoot: join(root, "images"),
    mountsRoot: join(root, "mnt"),
    exec: (argv, opts) => {
      const run = execFile(argv, opts);
      if (argv[0] === "mkfs.ext4") ac.abort();
      return run;
    },
  });
  const before = await readdir(join(root, "images"));
  await assert.rejects(
    aborting.createVolume({
      image: join(root, "images", "aborted.img"),
      sizeBytes: 64 * MiB,
      signal: ac.signal,
    }),
    /aborted/,
  );
  assert.deepEqual(await readdir(join(root, "images")), before, "no image and no partial file left");
});

test("EncryptedTenantVolumes (the container driver's TenantVolumes): open, close locks and unmounts, destroy", async (t) => {
  if (skipReason) return t.skip(skipReason);
  const key = randomBytes(64);
  const handed: Buffer[] = [];
  const tv = new EncryptedTenantVolumes({
    volumes: vols,
    volumeKey: async () => {
      const copy = Buffer.from(key);
      handed.push(copy);
      return copy;
    },
  });
  const spec: InstanceSpec = {
    tenantId: "tnt_adapt",
    name: "adapt-one",
    tier: "premium",
    slot: 0,
    plan: { ...planFor("premium"), volumeBytes: 16 * MiB },
    llm: { baseUrl: "http://127.0.0.1:9/v1", model: "m" },
  };
  const owner = 4_710_010;
  const p = tv.paths(spec.name);
  try {
    const data = await tv.open(spec, owner);
    assert.equal(data, p.data);
    assert.equal(await tv.open(spec, owner), data, "open is idempotent");
    const st = await stat(data);
    assert.equal(st.uid, owner);
    assert.equal(st.mode & 0o777, 0o700);
    assert.ok(
      handed.every((b) => b.every((x) => x === 0)),
      "every key buffer handed over is zeroed after use",
    );
    await writeFile(join(data, "memory.md"), "tenant memory");
    assert.equal((await vols.volumeUsage(p.mountpoint)).sizeBytes <= 16 * MiB, true);

    await tv.close(spec.name);
    await tv.close(spec.name);
    assert.deepEqual(await mountEntries(p.mountpoint), [], "close unmounts");
    assert.deepEqual(await loopDevicesOf(p.image), [], "close detaches");

    await tv.open(spec, owner);
    assert.equal(await readFile(join(data, "memory.md"), "utf8"), "tenant memory");
  } finally {
    await tv.destroy(spec.name);
    await tv.destroy(spec.name);
  }
  await assertGone({ image: p.image, mountpoint: p.mountpoint, data: p.data });
});
