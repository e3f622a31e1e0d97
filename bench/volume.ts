/**
 * Encrypted tenant volume set-up time, side by side with the alternatives:
 *   mkdir           a plain directory (what the host-process driver does today)
 *   plain image     truncate + mkfs.ext4 (no encryption) + losetup + mount
 *   encrypted       LocalVolumes: createVolume + mountVolume + unlockDir (fscrypt v2)
 * Interleaved rounds, medians, ratios. Needs root, loop devices and ext4 encryption.
 * Run: npx tsx bench/volume.ts [rounds] [sizeMiB]
 */
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, rmdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { execFile } from "../src/lib/exec.ts";
import { mkfsArgv, mountArgv } from "../src/runtime/linux/volume/ext4.ts";
import { readMounts } from "../src/runtime/linux/volume/mounts.ts";
import { LocalVolumes } from "../src/runtime/linux/volume/volume.ts";

const rounds = Number(process.argv[2] ?? 7);
const sizeMiB = Number(process.argv[3] ?? 256);
const deadline = Date.now() + 100_000;

if (process.getuid?.() !== 0) {
  console.log("bench/volume: skipped: needs root (loop devices, mount, fscrypt)");
  process.exit(0);
}

const root = await mkdtemp(join(tmpdir(), "clawkeep-bench-volume-"));
const vols = new LocalVolumes({ imagesRoot: join(root, "images"), mountsRoot: join(root, "mnt") });
const t: Record<string, number[]> = {
  mkdir: [],
  plain: [],
  encrypted: [],
  "encrypted: create": [],
  "encrypted: mount": [],
  "encrypted: unlock": [],
  "encrypted: lock+unmount+delete": [],
};

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const start = performance.now();
  const out = await fn();
  return [performance.now() - start, out];
}

async function plainImage(i: number): Promise<number> {
  const image = join(root, `plain-${i}.img`);
  const mnt = join(root, `plain-mnt-${i}`);
  let dev = "";
  const [ms] = await timed(async () => {
    await writeFile(image, "");
    await execFile(["truncate", "-s", `${sizeMiB}M`, image]);
    await execFile(mkfsArgv(image, { encrypt: false }));
    dev = (await execFile(["losetup", "--find", "--show", image])).trim();
    await mkdir(mnt);
    await execFile(mountArgv(dev, mnt));
  });
  await execFile(["umount", mnt]);
  await execFile(["losetup", "--detach", dev]);
  await rm(image);
  await rmdir(mnt);
  return ms;
}

async function encrypted(i: number): Promise<void> {
  const image = join(root, "images", `enc-${i}.img`);
  const mountpoint = join(root, "mnt", `enc-${i}`);
  const key = randomBytes(64);
  const [c] = await timed(() => vols.createVolume({ image, sizeBytes: sizeMiB * 1024 * 1024 }));
  const [m] = await timed(() => vols.mountVolume({ image, mountpoint }));
  const [u, { keyIdentifier }] = await timed(() =>
    vols.unlockDir({ mountpoint, dir: join(mountpoint, "data"), key }),
  );
  key.fill(0);
  const [d] = await timed(async () => {
    await vols.lockDir({ mountpoint, keyIdentifier });
    await vols.deleteVolume({ image, mountpoint });
  });
  t["encrypted: create"]!.push(c);
  t["encrypted: mount"]!.push(m);
  t["encrypted: unlock"]!.push(u);
  t.encrypted!.push(c + m + u);
  t["encrypted: lock+unmount+delete"]!.push(d);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[Math.floor((s.length - 1) / 2)]! + s[Math.ceil((s.length - 1) / 2)]!) / 2 : Number.NaN;
};

try {
  let done = 0;
  for (let i = 0; i < rounds && Date.now() < deadline; i++, done++) {
    const dir = join(root, `dir-${i}`);
    const [ms] = await timed(() => mkdir(dir, { mode: 0o700 }));
    t.mkdir!.push(ms);
    await rmdir(dir);
    t.plain!.push(await plainImage(i));
    await encrypted(i);
  }
  const med = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, median(v)])) as Record<string, number>;
  console.log(`volume set-up, ${sizeMiB} MiB images, median of ${done} interleaved rounds (ms):`);
  for (const [k, v] of Object.entries(med)) console.log(`  ${k.padEnd(32)} ${v.toFixed(2).padStart(9)}`);
  console.log("ratios:");
  console.log(`  encrypted / mkdir        ${(med.encrypted! / med.mkdir!).toFixed(0)}x`);
  console.log(`  encrypted / plain image  ${(med.encrypted! / med.plain!).toFixed(2)}x`);
  console.log(`  plain image / mkdir      ${(med.plain! / med.mkdir!).toFixed(0)}x`);
} finally {
  // Whatever a failed round left: mounts first, then loop devices, then files.
  const mounts = (await readMounts()).filter((m) => m.mountpoint.startsWith(`${root}/`));
  for (const m of mounts.reverse()) await execFile(["umount", "-l", m.mountpoint]).catch(() => undefined);
  for (const name of await readdir("/sys/block")) {
    const backing = await readFile(`/sys/block/${name}/loop/backing_file`, "utf8").catch(() => "");
    if (backing.startsWith(`${root}/`))
      await execFile(["losetup", "--detach", `/dev/${name}`]).catch(() => undefined);
  }
  await rm(root, { recursive: true, force: true });
}
