import assert from "node:assert/strict";
import { mkdir, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { ExecError } from "../../../lib/exec.ts";
import { useTempDir } from "../../../testing/temp-dir.ts";
import { VolumeConflictError, VolumeError, VolumePathError } from "./errors.ts";
import { checkSize, MOUNT_OPTIONS, mkfsArgv, mountArgv, parseExt4Superblock } from "./ext4.ts";
import { parseMountinfo } from "./mountinfo.ts";
import { checkPathUnder } from "./paths.ts";
import { LocalVolumes } from "./volume.ts";

const tmp = useTempDir("clawkeep-volume-unit-");

test("paths must be absolute, normalised, free of NUL/control characters and strictly under the root", () => {
  const r = "/srv/vols";
  assert.equal(checkPathUnder(r, "/srv/vols/a.img", "image"), "/srv/vols/a.img");
  assert.equal(checkPathUnder(`${r}/`, "/srv/vols/t/a.img", "image"), "/srv/vols/t/a.img");
  const bad: [unknown, RegExp][] = [
    ["", /required/],
    [undefined, /required/],
    ["a.img", /not absolute/],
    ["/srv/vols/../etc/passwd", /not normalised/],
    ["/srv/vols/./a", /not normalised/],
    ["/srv/vols//a", /not normalised/],
    ["/srv/vols/a/", /not normalised/],
    ["/srv/vols/a\0b", /NUL or control/],
    ["/srv/vols/a\nb", /NUL or control/],
    ["/srv/vols", /not under \/srv\/vols/],
    ["/srv/volsx/a", /not under/],
    ["/etc/passwd", /not under/],
  ];
  for (const [p, re] of bad) {
    assert.throws(
      () => checkPathUnder(r, p, "image"),
      (err: unknown) =>
        err instanceof VolumePathError && err.code === "invalid_request" && re.test(err.message),
      String(p),
    );
  }
});

test("sizes are whole MiB between 16 MiB and 16 TiB", () => {
  assert.equal(checkSize(16 * 1024 * 1024), 16 * 1024 * 1024);
  for (const s of [0, -1, 1.5, 15 * 1024 * 1024, 16 * 1024 * 1024 + 1, 2 ** 60, "64M", Number.NaN]) {
    assert.throws(() => checkSize(s), /whole number of MiB/, String(s));
  }
});

test("mkfs makes an encrypt-capable ext4 with no reserved blocks; mounts are nosuid,nodev,noexec", () => {
  assert.equal(
    mkfsArgv("/i/a.img").join(" "),
    "mkfs.ext4 -q -F -m 0 -b 4096 -O encrypt -E nodiscard /i/a.img",
  );
  assert.ok(!mkfsArgv("/i/a.img", { encrypt: false }).includes("encrypt"));
  for (const o of ["nosuid", "nodev", "noexec"]) assert.ok(MOUNT_OPTIONS.split(",").includes(o));
  assert.deepEqual(mountArgv("/dev/loop3", "/m/a"), [
    "mount",
    "-t",
    "ext4",
    "-o",
    MOUNT_OPTIONS,
    "/dev/loop3",
    "/m/a",
  ]);
});

test("mountinfo: fields after the separator, octal escapes undone", () => {
  const text = [
    "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw",
    "95 22 7:3 / /srv/mnt/with\\040space rw,nosuid,nodev,noexec,noatime shared:50 - ext4 /dev/loop3 rw",
    "96 22 0:50 / /proc rw master:2 unbindable - proc proc rw",
    "",
  ].join("\n");
  assert.deepEqual(parseMountinfo(text), [
    { mountpoint: "/", options: "rw,relatime", fstype: "ext4", source: "/dev/vda" },
    {
      mountpoint: "/srv/mnt/with space",
      options: "rw,nosuid,nodev,noexec,noatime",
      fstype: "ext4",
      source: "/dev/loop3",
    },
    { mountpoint: "/proc", options: "rw", fstype: "proc", source: "proc" },
  ]);
});

test("ext4 superblock: magic, encrypt feature, size", () => {
  const head = Buffer.alloc(2048);
  assert.equal(parseExt4Superblock(head).ext4, false);
  assert.equal(parseExt4Superblock(Buffer.alloc(100)).ext4, false);
  head.writeUInt32LE(4096, 1024 + 0x04); // blocks
  head.writeUInt32LE(2, 1024 + 0x18); // 1024 << 2 = 4096-byte blocks
  head.writeUInt16LE(0xef53, 1024 + 0x38);
  assert.deepEqual(parseExt4Superblock(head), {
    ext4: true,
    encrypt: false,
    blockSize: 4096,
    sizeBytes: 16 * 1024 * 1024,
  });
  head.writeUInt32LE(0x10000 | 0x2, 1024 + 0x60);
  assert.equal(parseExt4Superblock(head).encrypt, true);
});

/** An exec that records calls; `fail` decides which command fails. */
function fakeExec(fail: (argv: readonly string[]) => boolean) {
  const calls: string[][] = [];
  const exec = async (argv: readonly string[]) => {
    calls.push([...argv]);
    if (fail(argv)) throw new ExecError(argv, 1, "", `${argv[0]}: injected failure`);
    return "";
  };
  return { exec, calls };
}

test("a failed create removes the partial image and leaves nothing in the directory", async () => {
  const imagesRoot = join(tmp(), "images-a");
  const f = fakeExec((argv) => argv[0] === "mkfs.ext4");
  const vols = new LocalVolumes({ imagesRoot, mountsRoot: join(tmp(), "mnt-a"), exec: f.exec });
  const image = join(imagesRoot, "t1", "vol.img");
  await assert.rejects(vols.createVolume({ image, sizeBytes: 16 * 1024 * 1024 }), (err: unknown) => {
    assert.ok(err instanceof VolumeError);
    assert.match(err.message, /making the filesystem of .*vol\.img failed: mkfs\.ext4 exited with 1/);
    return true;
  });
  assert.equal(f.calls.length, 1);
  assert.equal(f.calls[0]![0], "mkfs.ext4");
  assert.match(f.calls[0]!.at(-1)!, /\.vol\.img\.partial-[0-9a-f]{12}$/, "mkfs ran on a temporary name");
  assert.deepEqual(await readdir(join(imagesRoot, "t1")), []);

  // Control: when mkfs succeeds the image lands under its final name.
  const ok = new LocalVolumes({
    imagesRoot,
    mountsRoot: join(tmp(), "mnt-a"),
    exec: fakeExec(() => false).exec,
  });
  const made = join(imagesRoot, "t1", "ok.img");
  // (The fake mkfs writes nothing: what matters here is the name the image lands under.)
  assert.deepEqual(await ok.createVolume({ image: made, sizeBytes: 16 * 1024 * 1024 }), {
    created: true,
    sizeBytes: 16 * 1024 * 1024,
  });
  assert.deepEqual(await readdir(join(imagesRoot, "t1")), ["ok.img"]);
});

test("an aborted create stops and removes the partial image", async () => {
  const imagesRoot = join(tmp(), "images-b");
  const ac = new AbortController();
  const exec = async (argv: readonly string[]) => {
    ac.abort();
    throw new ExecError(argv, null, "", "", new Error("aborted"));
  };
  const vols = new LocalVolumes({ imagesRoot, mountsRoot: join(tmp(), "mnt-b"), exec });
  await assert.rejects(
    vols.createVolume({ image: join(imagesRoot, "v.img"), sizeBytes: 16 * 1024 * 1024, signal: ac.signal }),
    /aborted/,
  );
  assert.deepEqual(await readdir(imagesRoot), []);
});

test("an existing file that is not an encrypt-capable ext4 image is never overwritten", async () => {
  const imagesRoot = join(tmp(), "images-c");
  await mkdir(imagesRoot, { recursive: true });
  const f = fakeExec(() => false);
  const vols = new LocalVolumes({ imagesRoot, mountsRoot: join(tmp(), "mnt-c"), exec: f.exec });
  const image = join(imagesRoot, "precious.img");
  await writeFile(image, "not a filesystem, keep me");
  await assert.rejects(vols.createVolume({ image, sizeBytes: 16 * 1024 * 1024 }), VolumeConflictError);
  assert.equal(await readFile(image, "utf8"), "not a filesystem, keep me");
  assert.equal(f.calls.length, 0);
});

test("a symlink inside the root cannot lead a path outside it", async () => {
  const imagesRoot = join(tmp(), "images-d");
  const outside = join(tmp(), "outside");
  await mkdir(imagesRoot, { recursive: true });
  await mkdir(outside, { recursive: true });
  await symlink(outside, join(imagesRoot, "escape"));
  const f = fakeExec(() => false);
  const vols = new LocalVolumes({ imagesRoot, mountsRoot: join(tmp(), "mnt-d"), exec: f.exec });
  await assert.rejects(
    vols.createVolume({ image: join(imagesRoot, "escape", "v.img"), sizeBytes: 16 * 1024 * 1024 }),
    (err: unknown) =>
      err instanceof VolumePathError && /leads outside .* through a symlink/.test(err.message),
  );
  assert.deepEqual(await readdir(outside), []);
  assert.equal(f.calls.length, 0);
  // Control: a path in a real subdirectory is accepted.
  await vols.createVolume({ image: join(imagesRoot, "sub", "v.img"), sizeBytes: 16 * 1024 * 1024 });
  assert.deepEqual(await readdir(join(imagesRoot, "sub")), ["v.img"]);
});

test("roots must be absolute and not /", () => {
  assert.throws(() => new LocalVolumes({ imagesRoot: "rel", mountsRoot: "/m" }), VolumePathError);
  assert.throws(() => new LocalVolumes({ imagesRoot: "/", mountsRoot: "/m" }), VolumePathError);
  assert.throws(() => new LocalVolumes({ imagesRoot: "/i/../x", mountsRoot: "/m" }), VolumePathError);
});
