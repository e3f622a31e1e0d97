import assert from "node:assert/strict";
import { lstat, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { openAppendNoFollow, ownDir, writeFileNoFollow } from "./safefs.ts";
import { tailFile } from "./tail.ts";

let dir = "";
let outside = "";
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "ck-safefs-"));
  outside = join(dir, "outside");
  await mkdir(outside);
  await writeFile(join(outside, "secret"), "root's secret\n");
});
after(() => rm(dir, { recursive: true, force: true }));

test("ownDir refuses a symlink planted where a directory should be; a real directory is owned", async () => {
  const planted = join(dir, "state");
  await symlink(outside, planted);
  await assert.rejects(ownDir(planted, 1234, 1234, 0o700), /symlink/);
  assert.notEqual((await stat(outside)).uid, 1234, "the link's target was not chowned");
  const real = join(dir, "home");
  await ownDir(real, process.getuid?.() ?? 0, process.getgid?.() ?? 0, 0o700);
  assert.equal((await stat(real)).mode & 0o777, 0o700, "control: a real directory gets its mode");
});

test("writeFileNoFollow replaces a planted symlink instead of writing through it", async () => {
  const cfg = join(dir, "openclaw.json");
  await symlink(join(outside, "secret"), cfg);
  await writeFileNoFollow(cfg, "{}\n", 0o444);
  assert.equal(
    await readFile(join(outside, "secret"), "utf8"),
    "root's secret\n",
    "the link's target is untouched",
  );
  assert.ok((await lstat(cfg)).isFile());
  assert.equal(await readFile(cfg, "utf8"), "{}\n");
});

test("logs: appending to or reading a planted symlink is refused; a real log works (control)", async () => {
  const log = join(dir, "gateway.log");
  await symlink(join(outside, "secret"), log);
  await assert.rejects(openAppendNoFollow(log), /symlink/);
  assert.equal(await tailFile(log), "", "root does not read the link's target");
  await rm(log);
  const fh = await openAppendNoFollow(log);
  await fh.write("line 1\nline 2\n");
  await fh.close();
  assert.equal(await tailFile(log, 1), "line 2");
});
