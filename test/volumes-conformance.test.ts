import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import { execFile } from "../src/lib/exec.ts";
import { readMounts } from "../src/runtime/linux/volume/mounts.ts";
import { LocalVolumes } from "../src/runtime/linux/volume/volume.ts";
import type { InstanceSpec } from "../src/runtime/types.ts";
import { volumesConformance } from "../src/runtime/volumes/conformance.ts";
import { EncryptedTenantVolumes } from "../src/runtime/volumes/encrypted.ts";
import { StarterPoolVolumes } from "../src/runtime/volumes/starter-pool.ts";

/**
 * The TenantVolumes contract's conformance suite against the encrypted implementations, on the
 * real kernel (loop devices, ext4, fscrypt): the dedicated tenants' EncryptedTenantVolumes and
 * the Starter pool's StarterPoolVolumes. PlainVolumes runs the same suite as a unit test.
 */
const skip =
  process.getuid?.() !== 0
    ? "needs root (loop devices, mount, fscrypt ioctls)"
    : !existsSync("/dev/loop-control")
      ? "no loop devices: /dev/loop-control is missing (modprobe loop)"
      : !existsSync("/sys/fs/ext4/features/encryption")
        ? "this kernel's ext4 has no encryption support (CONFIG_FS_ENCRYPTION is off)"
        : undefined;
if (skip) process.stderr.write(`\n# SKIPPING the encrypted volumes conformance suite: ${skip}\n\n`);

const OWNER = 65534;
let root = "";
let vols: LocalVolumes;
let pool: StarterPoolVolumes | undefined;
/** Each tenant's 64-byte key, as the key service would hand it over (a copy each time: callers zero it). */
const keys = new Map<string, Buffer>();
const volumeKey = async (spec: InstanceSpec) => Buffer.from(keys.get(spec.tenantId)!);
const provision = async (spec: InstanceSpec) => {
  keys.set(spec.tenantId, randomBytes(64));
};

before(async () => {
  if (skip) return;
  root = await mkdtemp(join(tmpdir(), "clawkeep-vconf-"));
  await chmod(root, 0o711);
  vols = new LocalVolumes({ imagesRoot: join(root, "images"), mountsRoot: join(root, "mnt") });
  pool = new StarterPoolVolumes({
    volumes: vols,
    image: join(root, "images", "starter-pool.img"),
    mountpoint: join(root, "mnt", "starter-pool"),
    sizeBytes: 64 * 1024 * 1024,
    volumeKey,
  });
});

after(async () => {
  if (skip || !root) return;
  await pool?.unmount().catch(() => {});
  // Whatever a failed test left mounted under root.
  for (const m of (await readMounts()).filter((x) => x.mountpoint.startsWith(`${root}/`)).reverse())
    await execFile(["umount", "-l", m.mountpoint]).catch(() => {});
  await rm(root, { recursive: true, force: true });
});

volumesConformance({
  label: "encrypted tenant volumes (Premium, Enterprise)",
  volumes: () => new EncryptedTenantVolumes({ volumes: vols, volumeKey }),
  tier: "premium",
  ownerUid: OWNER,
  encrypted: true,
  provision,
  ...(skip ? { skip } : {}),
});

volumesConformance({
  label: "Starter pool volumes",
  volumes: () => pool!,
  tier: "starter",
  ownerUid: OWNER,
  encrypted: true,
  provision,
  ...(skip ? { skip } : {}),
});
