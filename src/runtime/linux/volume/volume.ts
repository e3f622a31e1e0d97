import { randomBytes } from "node:crypto";
import { constants as fsc } from "node:fs";
import {
  chmod,
  chown,
  link,
  lstat,
  mkdir,
  open,
  readdir,
  realpath,
  rm,
  rmdir,
  statfs,
} from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ValidationError } from "../../../core/errors.ts";
import { parseTenantName } from "../../../core/tenant.ts";
import { type ExecOptions, execFile } from "../../../lib/exec.ts";
import {
  VolumeBusyError,
  VolumeConflictError,
  VolumeError,
  VolumeNotMountedError,
  VolumePathError,
} from "./errors.ts";
import { checkSize, mkfsArgv, mountArgv, parseExt4Superblock } from "./ext4.ts";
import {
  assertKey,
  DirectoryLockedError,
  Fscrypt,
  FscryptError,
  type FscryptPolicy,
  isOurPolicy,
  KeyMismatchError,
  keyIdentifier,
  parseKeyIdentifier,
} from "./fscrypt.ts";
import { attachLoop, backingFileOf, detachLoop, loopDevicesOf } from "./loop.ts";
import { readMounts } from "./mounts.ts";
import { checkPathUnder, checkRoot, isUnder } from "./paths.ts";

/**
 * Tenant volumes on this host: one ext4 image file per volume, loop-mounted with a hard
 * size limit, whose data directory is encrypted with fscrypt (see fscrypt.ts).
 *
 * - Premium / Enterprise: one image per tenant. `unlockDir` on the tenant's data directory sets
 *   the fscrypt v2 policy with the tenant's own 64-byte volume key. Writes past the image size
 *   fail with ENOSPC for that tenant only.
 * - Starter: one pool image, unlocked with the shared Starter key on its top data directory
 *   (`unlockDir`); each tenant gets its own 0700 subdirectory under its own uid
 *   (`makeTenantDir`), which inherits the policy.
 *
 * Stopping a tenant: `lockDir` (removes the key: names turn to ciphertext, files cannot be
 * opened, the key is wiped from kernel memory), then `unmountVolume` (which would also wipe the
 * filesystem's keyring). fscrypt is NOT access control: while a directory is unlocked, host root
 * and any process the file modes let in read it in plaintext. Isolation between running tenants
 * comes from uids, modes and namespaces; fscrypt protects data at rest and while locked.
 *
 * Every call is idempotent. Every path is validated before it reaches the system: absolute,
 * normalised, no NUL or control characters, strictly under the root the owner configured, and
 * with symlinks resolved before the check. Callers serialise calls for one volume (the
 * reconciler works on one tenant at a time); different volumes may be worked on concurrently.
 * Failures roll back what the call did: a failed create removes the partial image, a failed
 * mount detaches the loop device it attached.
 */

export interface LocalVolumesOptions {
  /** Every image lies under this directory (created 0700 if missing). */
  imagesRoot: string;
  /** Every mount point lies under this directory (created 0711 if missing). */
  mountsRoot: string;
  fscrypt?: Fscrypt;
  /** Replaces execFile (tests inject failures with it). */
  exec?: (argv: readonly string[], opts?: ExecOptions) => Promise<string>;
}

export interface CreateVolumeInput {
  image: string;
  /** Size limit of the filesystem: a multiple of 1 MiB, at least 16 MiB. */
  sizeBytes: number;
  /**
   * Reserve the disk space now (fallocate) instead of a sparse file. Without it, the host's disk
   * can fill up before a tenant reaches its limit when the sum of limits exceeds the disk.
   */
  preallocate?: boolean;
  signal?: AbortSignal;
}

export interface CreateVolumeResult {
  created: boolean;
  /** The image's size: the requested one when created, the existing one otherwise. */
  sizeBytes: number;
}

export interface VolumeUsage {
  sizeBytes: number;
  usedBytes: number;
  /** What a non-root writer can still write (the images are made with no reserved blocks). */
  availableBytes: number;
  inodes: number;
  inodesFree: number;
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** libuv does not know ENOKEY (126): it reports "Unknown system error -126". */
function isEnokey(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.errno === -126 || errnoOf(err) === "ENOKEY";
}

/** Tenant volumes on loop-mounted ext4 images with fscrypt. See the module comment. */
export class LocalVolumes {
  readonly imagesRoot: string;
  readonly mountsRoot: string;
  readonly #fscrypt: Fscrypt;
  readonly #exec: (argv: readonly string[], opts?: ExecOptions) => Promise<string>;

  constructor(opts: LocalVolumesOptions) {
    this.imagesRoot = checkRoot(opts.imagesRoot, "images root");
    this.mountsRoot = checkRoot(opts.mountsRoot, "mounts root");
    this.#fscrypt = opts.fscrypt ?? new Fscrypt();
    this.#exec = opts.exec ?? execFile;
  }

  /**
   * Makes the image: a file of `sizeBytes` (sparse unless `preallocate`) holding an ext4
   * filesystem with the 'encrypt' feature, no reserved blocks, 4 KiB blocks. Built under a
   * temporary name and linked into place, so a crash or failure never leaves a half-made image
   * at `image`; the temporary file is removed on failure. An existing image is kept as it is
   * (its size is reported); an existing file that is not an fscrypt-capable ext4 image is a
   * conflict, never overwritten.
   */
  async createVolume(input: CreateVolumeInput): Promise<CreateVolumeResult> {
    const sizeBytes = checkSize(input.sizeBytes);
    await this.#ensureRoot(this.imagesRoot, 0o700);
    const image = await this.#resolve(this.imagesRoot, input.image, "image");
    input.signal?.throwIfAborted();
    const existing = await this.#inspectImage(image);
    if (existing) return { created: false, sizeBytes: existing.fileSize };

    await mkdir(dirname(image), { recursive: true, mode: 0o700 });
    const tmp = join(dirname(image), `.${basename(image)}.partial-${randomBytes(6).toString("hex")}`);
    try {
      const fh = await open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
      try {
        await fh.truncate(sizeBytes);
      } finally {
        await fh.close();
      }
      if (input.preallocate) {
        await this.#run(
          ["fallocate", "-l", String(sizeBytes), tmp],
          input.signal,
          `reserving ${sizeBytes} bytes for ${image}`,
        );
      }
      await this.#run(mkfsArgv(tmp), input.signal, `making the filesystem of ${image}`);
      input.signal?.throwIfAborted();
      try {
        // link() never replaces: if another caller made the image meanwhile, theirs is kept.
        await link(tmp, image);
      } catch (err) {
        if (errnoOf(err) !== "EEXIST") throw err;
        const other = await this.#inspectImage(image);
        if (!other) throw err;
        return { created: false, sizeBytes: other.fileSize };
      }
      return { created: true, sizeBytes };
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /**
   * Attaches the image to a loop device and mounts it at `mountpoint` (created 0700 if
   * missing) with nosuid,nodev,noexec,noatime. When the image is already mounted there, returns
   * its loop device and changes nothing. Refuses (conflict) when something else is mounted at
   * `mountpoint` or the image is mounted elsewhere: one ext4 filesystem mounted twice through two
   * loop devices would corrupt it. A loop device left attached by a crash is reused. When the
   * mount fails (or is aborted), the loop device is detached again. The filesystem's root is made
   * 0711.
   */
  async mountVolume(input: { image: string; mountpoint: string; signal?: AbortSignal }): Promise<{
    loopDevice: string;
    mounted: boolean;
  }> {
    const image = await this.#resolve(this.imagesRoot, input.image, "image");
    await this.#ensureRoot(this.mountsRoot, 0o711);
    const mountpoint = await this.#resolve(this.mountsRoot, input.mountpoint, "mount point");
    input.signal?.throwIfAborted();
    const facts = await this.#inspectImage(image);
    if (!facts)
      throw new VolumeError(
        "conflict",
        `there is no volume image at ${image}: create it with createVolume first`,
      );

    const mounts = await readMounts();
    const loops = await loopDevicesOf(image);
    const here = mounts.filter((m) => m.mountpoint === mountpoint).at(-1);
    if (here) {
      if (loops.includes(here.source)) return { loopDevice: here.source, mounted: false };
      throw new VolumeConflictError(
        `${mountpoint} already has ${here.source} (${here.fstype}) mounted on it; refusing to mount ${image} over it`,
      );
    }
    for (const loop of loops) {
      const elsewhere = mounts.find((m) => m.source === loop);
      if (elsewhere) {
        throw new VolumeConflictError(
          `${image} is already mounted at ${elsewhere.mountpoint} (through ${loop}); unmount it there first`,
        );
      }
    }

    await mkdir(mountpoint, { recursive: true, mode: 0o700 });
    const reused = loops[0];
    const loopDevice = reused ?? (await attachLoop(this.#exec, image, input.signal));
    try {
      await this.#run(mountArgv(loopDevice, mountpoint), input.signal, `mounting ${image} at ${mountpoint}`);
    } catch (err) {
      await detachLoop(this.#exec, loopDevice).catch((detachErr: unknown) => {
        throw new VolumeError(
          "runtime_failed",
          `mounting ${image} failed and detaching ${loopDevice} afterwards failed too: ${(detachErr as Error).message}`,
          { cause: err },
        );
      });
      throw err;
    }
    // The filesystem's root: others may pass through (a Starter pool's tenants) but not list it.
    await chmod(mountpoint, 0o711);
    return { loopDevice, mounted: true };
  }

  /**
   * Unlocks `dir` (a directory strictly inside the mounted volume, created 0700 root-owned with
   * `mode` if missing) with a raw 64-byte key: adds the key to the filesystem's keyring from
   * memory (`key` is copied into the ioctl argument, which is zeroed afterwards; the caller
   * zeroes `key`). When `dir` has no policy yet and is empty, sets the fscrypt v2 policy
   * (AES-256-XTS / AES-256-CTS / PAD_32) on it; when it has one, checks that it names this key
   * and throws KeyMismatchError, touching nothing, when it does not. A non-empty unencrypted
   * directory is refused: fscrypt cannot encrypt in place. Returns the key identifier (32 hex
   * digits), needed for lockDir. Unlocking an unlocked directory changes nothing.
   */
  async unlockDir(input: {
    mountpoint: string;
    dir: string;
    key: Buffer;
    mode?: number;
    signal?: AbortSignal;
  }): Promise<{
    keyIdentifier: string;
    policyCreated: boolean;
  }> {
    assertKey(input.key);
    const mountpoint = await this.#mounted(input.mountpoint);
    const dir = await this.#resolve(mountpoint, input.dir, "encrypted directory");
    input.signal?.throwIfAborted();
    const expected = keyIdentifier(input.key);
    const expectedHex = expected.toString("hex");

    await this.#mkdirInside(dir, input.mode ?? 0o700);
    const policy = await this.#fscrypt.getPolicy(dir);
    if (policy) {
      if (policy.keyIdentifier !== expectedHex)
        throw new KeyMismatchError(dir, policy.keyIdentifier, expectedHex);
      if (!isOurPolicy(policy, expectedHex)) {
        throw new FscryptError(
          `${dir} is encrypted with this key but other settings (policy v${policy.version}, modes ` +
            `${policy.contentsMode}/${policy.filenamesMode}, flags ${policy.flags}); expected v2, AES-256-XTS/AES-256-CTS, PAD_32`,
        );
      }
      if ((await this.#fscrypt.keyStatus(mountpoint, expected)) !== "present") {
        await this.#addKey(mountpoint, input.key, expectedHex);
      }
      return { keyIdentifier: expectedHex, policyCreated: false };
    }

    const entries = await readdir(dir);
    if (entries.length > 0) {
      throw new FscryptError(
        `${dir} is not encrypted and not empty (${entries.length} entries): fscrypt encrypts only empty ` +
          "directories; move its contents out or use a new directory",
      );
    }
    await this.#addKey(mountpoint, input.key, expectedHex);
    await this.#fscrypt.setPolicy(dir, expected);
    const set = await this.#fscrypt.getPolicy(dir);
    if (!set || !isOurPolicy(set, expectedHex)) {
      throw new FscryptError(`the policy read back from ${dir} after setting it is not the one set`);
    }
    return { keyIdentifier: expectedHex, policyCreated: true };
  }

  /**
   * Locks every directory encrypted with the key: removes the key from the filesystem for all
   * users, which drops the cached plaintext names and pages and wipes the key from kernel
   * memory. `files-busy`: files were still open; they stay readable until closed, nothing new can
   * be opened; stop their processes and call again. Locking a locked directory, or a volume
   * that is not mounted (unmounting wipes the keys), gives `already-locked`.
   */
  async lockDir(input: {
    mountpoint: string;
    keyIdentifier: string;
  }): Promise<"locked" | "files-busy" | "already-locked"> {
    const identifier = parseKeyIdentifier(input.keyIdentifier);
    const mountpoint = await this.#resolve(this.mountsRoot, input.mountpoint, "mount point");
    const mounted = (await readMounts()).some((m) => m.mountpoint === mountpoint);
    if (!mounted) return "already-locked";
    let state = await this.#fscrypt.removeKey(mountpoint, identifier);
    // Writeback or a dying process can hold a file for a moment: retry briefly before calling it busy.
    for (let i = 0; state === "files-busy" && i < 6; i++) {
      await sleep(25 * 2 ** i);
      const again = await this.#fscrypt.removeKey(mountpoint, identifier);
      state = again === "already-locked" ? "locked" : again;
    }
    return state;
  }

  /**
   * Stops a volume's use: locks every given key (see lockDir), then unmounts and detaches it.
   * Throws VolumeBusyError while files are open (the keys are then incompletely removed: open
   * files stay readable, nothing new opens); stop the processes and call again. Idempotent.
   */
  async closeVolume(input: {
    mountpoint: string;
    keyIdentifiers: readonly string[];
    signal?: AbortSignal;
  }): Promise<void> {
    const busy: string[] = [];
    for (const keyIdentifier of input.keyIdentifiers) {
      if ((await this.lockDir({ mountpoint: input.mountpoint, keyIdentifier })) === "files-busy")
        busy.push(keyIdentifier);
    }
    if (busy.length > 0) {
      throw new VolumeBusyError(
        `files encrypted with key ${busy.join(", ")} on ${input.mountpoint} are still open: they stay readable until closed; ` +
          `stop their processes (see: fuser -vm ${input.mountpoint}) and close the volume again`,
      );
    }
    await this.unmountVolume({
      mountpoint: input.mountpoint,
      ...(input.signal ? { signal: input.signal } : {}),
    });
  }

  /** Whether the key is in the mounted volume's keyring ("absent" when not mounted). */
  async keyStatus(input: { mountpoint: string; keyIdentifier: string }) {
    const identifier = parseKeyIdentifier(input.keyIdentifier);
    const mountpoint = await this.#resolve(this.mountsRoot, input.mountpoint, "mount point");
    if (!(await readMounts()).some((m) => m.mountpoint === mountpoint)) return "absent" as const;
    return this.#fscrypt.keyStatus(mountpoint, identifier);
  }

  /**
   * Starter pools: makes `parent/name` (name: a tenant name) a 0700 directory owned by `uid:gid`
   * inside an unlocked encrypted `parent`, so it inherits the parent's policy and key; repairs
   * owner and mode when it exists. Throws DirectoryLockedError when `parent` is locked and
   * FscryptError when `parent` is not encrypted. Returns the directory's path.
   */
  async makeTenantDir(input: {
    mountpoint: string;
    parent: string;
    name: string;
    uid: number;
    gid: number;
  }): Promise<string> {
    const name = parseTenantName(input.name);
    for (const [k, v] of [
      ["uid", input.uid],
      ["gid", input.gid],
    ] as const) {
      if (!Number.isSafeInteger(v) || v <= 0 || v > 0xfffffffe) {
        throw new ValidationError(
          "invalid_request",
          `${k} must be a positive integer that is not root's, got ${v}`,
        );
      }
    }
    const mountpoint = await this.#mounted(input.mountpoint);
    const parent = await this.#resolve(mountpoint, input.parent, "pool data directory");
    const parentPolicy = await this.#fscrypt.getPolicy(parent);
    if (!parentPolicy) {
      throw new FscryptError(
        `${parent} is not encrypted: unlock it with unlockDir before making tenant directories in it`,
      );
    }
    const dir = join(parent, name);
    try {
      await mkdir(dir, { mode: 0o700 });
    } catch (err) {
      if (isEnokey(err)) throw new DirectoryLockedError(parent);
      if (errnoOf(err) !== "EEXIST") throw err;
      const st = await lstat(dir);
      if (!st.isDirectory()) throw new VolumeConflictError(`${dir} exists and is not a directory`);
    }
    await chown(dir, input.uid, input.gid);
    await chmod(dir, 0o700);
    const policy = await this.#fscrypt.getPolicy(dir);
    if (!policy || policy.keyIdentifier !== parentPolicy.keyIdentifier) {
      throw new FscryptError(`${dir} did not inherit the encryption policy of ${parent}`);
    }
    return dir;
  }

  /** Starter pools: removes a tenant's directory and everything in it. Absent is fine; works while locked. */
  async removeTenantDir(input: { mountpoint: string; parent: string; name: string }): Promise<void> {
    const name = parseTenantName(input.name);
    const mountpoint = await this.#mounted(input.mountpoint);
    const parent = await this.#resolve(mountpoint, input.parent, "pool data directory");
    await rm(join(parent, name), { recursive: true, force: true });
  }

  /**
   * Unmounts the volume at `mountpoint` (which wipes its keyring) and detaches its loop device.
   * Not mounted is fine. Throws VolumeBusyError while files on it are open, and a conflict when
   * what is mounted there is not one of our images. The empty mount point directory is kept.
   */
  async unmountVolume(input: { mountpoint: string; signal?: AbortSignal }): Promise<{ unmounted: boolean }> {
    const mountpoint = await this.#resolve(this.mountsRoot, input.mountpoint, "mount point");
    let unmounted = false;
    for (;;) {
      const here = (await readMounts()).filter((m) => m.mountpoint === mountpoint).at(-1);
      if (!here) return { unmounted };
      const backing = here.source.startsWith("/dev/loop") ? await backingFileOf(here.source) : undefined;
      const imagesRoot = await realpath(this.imagesRoot).catch(() => this.imagesRoot);
      if (!backing || !isUnder(imagesRoot, backing.replace(/ \(deleted\)$/, ""))) {
        throw new VolumeConflictError(
          `${mountpoint} has ${here.source} (${here.fstype}) mounted on it, which is not a volume image under ${this.imagesRoot}; not touching it`,
        );
      }
      try {
        // A process walking the tree can hold it for a moment: retry a busy unmount briefly.
        for (let i = 0; ; i++) {
          try {
            await this.#exec(["umount", mountpoint], { signal: input.signal });
            break;
          } catch (err) {
            if (i >= 4 || input.signal?.aborted || !/busy/i.test(String((err as { stderr?: string }).stderr)))
              throw err;
            await sleep(50 * 2 ** i);
          }
        }
      } catch (err) {
        const text = String((err as { stderr?: string }).stderr ?? (err as Error).message);
        if (/busy/i.test(text)) {
          throw new VolumeBusyError(
            `cannot unmount ${mountpoint}: files on it are still open or a process has its working directory there; ` +
              `stop them (see: fuser -vm ${mountpoint}) and try again`,
            err,
          );
        }
        throw err;
      }
      unmounted = true;
      if (!(await readMounts()).some((m) => m.source === here.source))
        await detachLoop(this.#exec, here.source);
    }
  }

  /**
   * Removes the volume for good: unmounts it, detaches every loop device of the image, removes
   * the image file and the (empty) mount point. Absent parts are fine. Refuses when the image
   * is mounted somewhere else than `mountpoint`. The data is gone; with a per-tenant key,
   * destroying the key in the KMS makes any copy of the image unreadable too.
   */
  async deleteVolume(input: { image: string; mountpoint: string; signal?: AbortSignal }): Promise<void> {
    const image = await this.#resolve(this.imagesRoot, input.image, "image");
    const mountpoint = await this.#resolve(this.mountsRoot, input.mountpoint, "mount point");
    await this.unmountVolume({ mountpoint, ...(input.signal ? { signal: input.signal } : {}) });
    const mounts = await readMounts();
    for (const loop of await loopDevicesOf(image)) {
      const at = mounts.find((m) => m.source === loop);
      if (at)
        throw new VolumeConflictError(
          `${image} is still mounted at ${at.mountpoint} (through ${loop}); unmount it there first`,
        );
      await detachLoop(this.#exec, loop);
    }
    await rm(image, { force: true });
    try {
      await rmdir(mountpoint);
    } catch (err) {
      if (errnoOf(err) === "ENOTEMPTY") {
        throw new VolumeConflictError(
          `${mountpoint} is not empty after unmounting: files were written to the directory under the mount; look and remove them`,
        );
      }
      if (errnoOf(err) !== "ENOENT") throw err;
    }
  }

  /** The encryption policy of a directory in the mounted volume; null when it is not encrypted or absent. */
  async policyOf(input: { mountpoint: string; dir: string }): Promise<FscryptPolicy | null> {
    const mountpoint = await this.#mounted(input.mountpoint);
    const dir = await this.#resolve(mountpoint, input.dir, "encrypted directory");
    try {
      await lstat(dir);
    } catch (err) {
      if (errnoOf(err) === "ENOENT") return null;
      throw err;
    }
    return this.#fscrypt.getPolicy(dir);
  }

  /** Size, use and free space of the mounted volume at `mountpoint`. */
  async volumeUsage(mountpointInput: string): Promise<VolumeUsage> {
    const mountpoint = await this.#mounted(mountpointInput);
    const s = await statfs(mountpoint);
    return {
      sizeBytes: s.blocks * s.bsize,
      usedBytes: (s.blocks - s.bfree) * s.bsize,
      availableBytes: s.bavail * s.bsize,
      inodes: s.files,
      inodesFree: s.ffree,
    };
  }

  // -------------------------------------------------------------------------------------------

  /** Validates `p` under `root`, then resolves symlinks in its existing part and checks again. */
  async #resolve(root: string, p: unknown, what: string): Promise<string> {
    const checked = checkPathUnder(root, p, what);
    const realRoot = await realpath(root).catch(() => root);
    let existing = checked;
    const rest: string[] = [];
    for (;;) {
      try {
        const real = await realpath(existing);
        const full = rest.length ? join(real, ...rest.reverse()) : real;
        return checkPathUnder(realRoot, full, what);
      } catch (err) {
        if (err instanceof VolumePathError) {
          throw new VolumePathError(
            `${what} path ${checked} leads outside ${root} through a symlink`,
            checked,
          );
        }
        if (errnoOf(err) !== "ENOENT") throw err;
        rest.push(basename(existing));
        existing = dirname(existing);
      }
    }
  }

  async #mounted(mountpointInput: string): Promise<string> {
    const mountpoint = await this.#resolve(this.mountsRoot, mountpointInput, "mount point");
    const here = (await readMounts()).filter((m) => m.mountpoint === mountpoint).at(-1);
    if (!here) throw new VolumeNotMountedError(mountpoint);
    if (here.fstype !== "ext4")
      throw new VolumeConflictError(`${mountpoint} holds a ${here.fstype} filesystem, not a volume`);
    return mountpoint;
  }

  async #ensureRoot(root: string, mode: number): Promise<void> {
    await mkdir(root, { recursive: true, mode });
  }

  async #mkdirInside(dir: string, mode: number): Promise<void> {
    try {
      await mkdir(dir, { mode });
      await chmod(dir, mode);
    } catch (err) {
      if (isEnokey(err)) throw new DirectoryLockedError(dirname(dir));
      if (errnoOf(err) === "ENOENT")
        throw new VolumeError("invalid_request", `the parent of ${dir} does not exist`);
      if (errnoOf(err) !== "EEXIST") throw err;
      const st = await lstat(dir);
      if (!st.isDirectory()) throw new VolumeConflictError(`${dir} exists and is not a directory`);
    }
  }

  async #addKey(mountpoint: string, key: Buffer, expectedHex: string): Promise<void> {
    const got = (await this.#fscrypt.addKey(mountpoint, key)).toString("hex");
    if (got !== expectedHex) {
      await this.#fscrypt.removeKey(mountpoint, Buffer.from(got, "hex")).catch(() => undefined);
      throw new FscryptError(
        `the kernel named the key ${got}, this code computed ${expectedHex}: refusing to go on`,
      );
    }
  }

  /** Returns the image's facts; undefined when absent; conflict when it is not ours. */
  async #inspectImage(image: string): Promise<{ fileSize: number } | undefined> {
    let st: Awaited<ReturnType<typeof lstat>>;
    try {
      st = await lstat(image);
    } catch (err) {
      if (errnoOf(err) === "ENOENT") return undefined;
      throw err;
    }
    if (!st.isFile())
      throw new VolumeConflictError(`${image} exists and is not a regular file; not touching it`);
    const fh = await open(image, fsc.O_RDONLY | fsc.O_NOFOLLOW);
    let head: Buffer;
    try {
      head = Buffer.alloc(2048);
      const { bytesRead } = await fh.read(head, 0, 2048, 0);
      head = head.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
    const facts = parseExt4Superblock(head);
    if (!facts.ext4)
      throw new VolumeConflictError(`${image} exists and is not an ext4 image; not overwriting it`);
    if (!facts.encrypt) {
      throw new VolumeConflictError(
        `${image} is an ext4 image without the 'encrypt' feature (tune2fs -O encrypt adds it)`,
      );
    }
    return { fileSize: st.size };
  }

  async #run(argv: string[], signal: AbortSignal | undefined, doing: string): Promise<string> {
    try {
      return await this.#exec(argv, signal ? { signal } : {});
    } catch (err) {
      if (signal?.aborted) throw new VolumeError("runtime_failed", `${doing}: aborted`, { cause: err });
      throw new VolumeError("runtime_failed", `${doing} failed: ${(err as Error).message}`, { cause: err });
    }
  }
}
