import { hkdfSync } from "node:crypto";
import { closeSync, constants as fsc, fstatSync, openSync } from "node:fs";
import { arch, constants as osc } from "node:os";
import { ClawkeepError } from "../../../core/errors.ts";

/**
 * fscrypt (the kernel's native file encryption) driven directly through its ioctls, with raw
 * 64-byte keys handed over from memory: no key file, no command-line argument, no environment
 * variable. The ioctls are called through the koffi FFI (libc `ioctl`), so nothing is compiled at
 * run time.
 *
 * What fscrypt is and is not: it encrypts file contents and names at rest, so a stolen disk, an
 * image copied off the host or a locked (key removed) directory reveals nothing. It is NOT access
 * control: while a directory is unlocked every process that the usual permission checks let in
 * (and always host root) reads it in plaintext. Keep it locked whenever its tenant does not run,
 * and rely on uids, namespaces and modes for isolation between running tenants.
 *
 * Policy used everywhere: v2, AES-256-XTS contents, AES-256-CTS names, padding of names to 32
 * bytes. The key identifier is the kernel's HKDF-SHA512 of the key; it names the key without
 * revealing it and is what the directory's policy records.
 */

export const FSCRYPT_KEY_SIZE = 64;
export const FSCRYPT_KEY_IDENTIFIER_SIZE = 16;
export const FSCRYPT_POLICY_V2 = 2;
export const FSCRYPT_MODE_AES_256_XTS = 1;
export const FSCRYPT_MODE_AES_256_CTS = 4;
export const FSCRYPT_POLICY_FLAGS_PAD_32 = 0x03;
const FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER = 2;
const FSCRYPT_KEY_REMOVAL_STATUS_FLAG_FILES_BUSY = 0x1;
const FSCRYPT_KEY_STATUS_ABSENT = 1;
const FSCRYPT_KEY_STATUS_PRESENT = 2;
const FSCRYPT_KEY_STATUS_INCOMPLETELY_REMOVED = 3;

// Sizes of the kernel structs in <linux/fscrypt.h>.
const POLICY_V1_SIZE = 12;
const POLICY_V2_SIZE = 24;
const KEY_SPEC_SIZE = 40;
const ADD_KEY_ARG_SIZE = 80; // without the trailing raw[] key bytes
const REMOVE_KEY_ARG_SIZE = 64;
const KEY_STATUS_ARG_SIZE = 128;
const GET_POLICY_EX_ARG_SIZE = 8 + POLICY_V2_SIZE;

/** Linux ioctl request number (asm-generic layout: x86, x86-64, arm, arm64, riscv). */
export function ioc(dir: "none" | "r" | "w" | "rw", type: string, nr: number, size: number): number {
  const d = { none: 0, w: 1, r: 2, rw: 3 }[dir];
  // >>> 0 keeps it an unsigned 32-bit value (bit 31 is set for read ioctls).
  return ((d << 30) | (size << 16) | (type.charCodeAt(0) << 8) | nr) >>> 0;
}

export const FS_IOC = {
  SET_ENCRYPTION_POLICY: ioc("r", "f", 19, POLICY_V1_SIZE),
  GET_ENCRYPTION_POLICY_EX: ioc("rw", "f", 22, 9),
  ADD_ENCRYPTION_KEY: ioc("rw", "f", 23, ADD_KEY_ARG_SIZE),
  REMOVE_ENCRYPTION_KEY: ioc("rw", "f", 24, REMOVE_KEY_ARG_SIZE),
  REMOVE_ENCRYPTION_KEY_ALL_USERS: ioc("rw", "f", 25, REMOVE_KEY_ARG_SIZE),
  GET_ENCRYPTION_KEY_STATUS: ioc("rw", "f", 26, KEY_STATUS_ARG_SIZE),
} as const;

/** errno values used below; ENOKEY and EKEYREJECTED are not in Node's os.constants.errno. */
const E = {
  ENOENT: osc.errno.ENOENT,
  EPERM: osc.errno.EPERM,
  EACCES: osc.errno.EACCES,
  EEXIST: osc.errno.EEXIST,
  EINVAL: osc.errno.EINVAL,
  ENOTTY: osc.errno.ENOTTY,
  EOPNOTSUPP: osc.errno.EOPNOTSUPP,
  ENOTDIR: osc.errno.ENOTDIR,
  ENOTEMPTY: osc.errno.ENOTEMPTY,
  ENODATA: osc.errno.ENODATA,
  EOVERFLOW: osc.errno.EOVERFLOW,
  ENOPKG: 65,
  ENOKEY: 126,
  EKEYREJECTED: 129,
} as const;

function errnoName(errno: number): string {
  for (const [name, value] of Object.entries(E)) if (value === errno) return name;
  for (const [name, value] of Object.entries(osc.errno)) if (value === errno) return name;
  return `errno ${errno}`;
}

// ---------------------------------------------------------------------------------------------
// Errors

/** An fscrypt operation failed; the message says which, on what, and what the kernel answered. */
export class FscryptError extends ClawkeepError {
  constructor(
    message: string,
    readonly errno?: number,
    code: "runtime_failed" | "runtime_unavailable" | "forbidden" | "conflict" = "runtime_failed",
  ) {
    super(code, message, errno === undefined ? {} : { details: { errno: errnoName(errno) } });
  }
}

/** The kernel, the filesystem or this machine cannot do fscrypt v2 (feature off, no FFI). */
export class FscryptUnsupportedError extends FscryptError {
  constructor(message: string, errno?: number) {
    super(message, errno, "runtime_unavailable");
  }
}

/** The directory is encrypted with another key than the one given. */
export class KeyMismatchError extends FscryptError {
  constructor(dir: string, expected: string, given: string) {
    super(
      `${dir} is encrypted with the key whose identifier is ${expected}, but the key given has identifier ` +
        `${given}: this is not the key of this directory (a wrong tenant or a rotated key?)`,
      undefined,
      "forbidden",
    );
  }
}

/** The directory is encrypted and its key is not in the kernel (the ENOKEY state). */
export class DirectoryLockedError extends FscryptError {
  constructor(path: string) {
    super(
      `${path} is locked: it is encrypted and its key is not added to the filesystem, so its names are ` +
        "ciphertext and its files cannot be opened or created (ENOKEY); unlock it with its key first",
      E.ENOKEY,
      "conflict",
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Pure: key identifiers and struct layouts

/**
 * The identifier the kernel computes for a v2 key: HKDF-SHA512 with an empty salt over the key,
 * info "fscrypt\0" followed by context byte 1 (HKDF_CONTEXT_KEY_IDENTIFIER), 16 bytes.
 */
export function keyIdentifier(key: Buffer): Buffer {
  assertKey(key);
  const info = Buffer.from([...Buffer.from("fscrypt\0", "latin1"), 1]);
  return Buffer.from(hkdfSync("sha512", key, Buffer.alloc(0), info, FSCRYPT_KEY_IDENTIFIER_SIZE));
}

export function assertKey(key: Buffer): void {
  if (!Buffer.isBuffer(key) || key.length !== FSCRYPT_KEY_SIZE) {
    throw new FscryptError(
      `an fscrypt key must be exactly ${FSCRYPT_KEY_SIZE} bytes, got ${Buffer.isBuffer(key) ? key.length : typeof key}`,
    );
  }
  if (key.every((b) => b === key[0])) {
    throw new FscryptError("refusing an fscrypt key whose bytes are all equal: it is not a real key");
  }
}

/** Parses a key identifier written as 32 hex digits. */
export function parseKeyIdentifier(hex: string): Buffer {
  if (typeof hex !== "string" || !/^[0-9a-f]{32}$/.test(hex)) {
    throw new FscryptError(`a key identifier is 32 lower-case hex digits, got ${JSON.stringify(hex)}`);
  }
  return Buffer.from(hex, "hex");
}

function keySpec(buf: Buffer, identifier: Buffer): void {
  if (identifier.length !== FSCRYPT_KEY_IDENTIFIER_SIZE) {
    throw new FscryptError(
      `a key identifier is ${FSCRYPT_KEY_IDENTIFIER_SIZE} bytes, got ${identifier.length}`,
    );
  }
  buf.writeUInt32LE(FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER, 0);
  identifier.copy(buf, 8);
}

/** struct fscrypt_policy_v2 for our fixed algorithms. */
export function encodePolicyV2(identifier: Buffer): Buffer {
  if (identifier.length !== FSCRYPT_KEY_IDENTIFIER_SIZE) {
    throw new FscryptError(
      `a key identifier is ${FSCRYPT_KEY_IDENTIFIER_SIZE} bytes, got ${identifier.length}`,
    );
  }
  const b = Buffer.alloc(POLICY_V2_SIZE);
  b[0] = FSCRYPT_POLICY_V2;
  b[1] = FSCRYPT_MODE_AES_256_XTS;
  b[2] = FSCRYPT_MODE_AES_256_CTS;
  b[3] = FSCRYPT_POLICY_FLAGS_PAD_32;
  identifier.copy(b, 8);
  return b;
}

export interface FscryptPolicy {
  version: number;
  contentsMode: number;
  filenamesMode: number;
  flags: number;
  /** Hex: 32 digits for v2, 16 for v1. */
  keyIdentifier: string;
}

/** The argument of FS_IOC_GET_ENCRYPTION_POLICY_EX, sized for a v2 policy. */
export function encodeGetPolicyExArg(): Buffer {
  const b = Buffer.alloc(GET_POLICY_EX_ARG_SIZE);
  b.writeBigUInt64LE(BigInt(POLICY_V2_SIZE), 0);
  return b;
}

export function decodeGetPolicyExArg(b: Buffer): FscryptPolicy {
  const size = Number(b.readBigUInt64LE(0));
  const p = b.subarray(8);
  const version = p[0] ?? -1;
  if (version === FSCRYPT_POLICY_V2 && size === POLICY_V2_SIZE) {
    return {
      version,
      contentsMode: p[1]!,
      filenamesMode: p[2]!,
      flags: p[3]!,
      keyIdentifier: p.subarray(8, 8 + FSCRYPT_KEY_IDENTIFIER_SIZE).toString("hex"),
    };
  }
  if (version === 0 && size === POLICY_V1_SIZE) {
    return {
      version: 1,
      contentsMode: p[1]!,
      filenamesMode: p[2]!,
      flags: p[3]!,
      keyIdentifier: p.subarray(4, 12).toString("hex"),
    };
  }
  throw new FscryptError(
    `the kernel returned an fscrypt policy of unknown version ${version} (size ${size})`,
  );
}

/** Whether a policy is exactly the one this module sets, for the given identifier. */
export function isOurPolicy(p: FscryptPolicy, identifierHex: string): boolean {
  return (
    p.version === FSCRYPT_POLICY_V2 &&
    p.contentsMode === FSCRYPT_MODE_AES_256_XTS &&
    p.filenamesMode === FSCRYPT_MODE_AES_256_CTS &&
    p.flags === FSCRYPT_POLICY_FLAGS_PAD_32 &&
    p.keyIdentifier === identifierHex
  );
}

/** struct fscrypt_add_key_arg followed by the raw key. Holds the key: zero it after use. */
export function encodeAddKeyArg(key: Buffer): Buffer {
  assertKey(key);
  const b = Buffer.alloc(ADD_KEY_ARG_SIZE + key.length);
  b.writeUInt32LE(FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER, 0); // the kernel fills in the identifier
  b.writeUInt32LE(key.length, KEY_SPEC_SIZE); // raw_size
  key.copy(b, ADD_KEY_ARG_SIZE);
  return b;
}

export function decodeAddKeyIdentifier(b: Buffer): Buffer {
  return Buffer.from(b.subarray(8, 8 + FSCRYPT_KEY_IDENTIFIER_SIZE));
}

export function encodeRemoveKeyArg(identifier: Buffer): Buffer {
  const b = Buffer.alloc(REMOVE_KEY_ARG_SIZE);
  keySpec(b, identifier);
  return b;
}

export function decodeRemoveKeyFlags(b: Buffer): { filesBusy: boolean; otherUsers: boolean } {
  const flags = b.readUInt32LE(KEY_SPEC_SIZE);
  return {
    filesBusy: (flags & FSCRYPT_KEY_REMOVAL_STATUS_FLAG_FILES_BUSY) !== 0,
    otherUsers: (flags & 2) !== 0,
  };
}

export function encodeKeyStatusArg(identifier: Buffer): Buffer {
  const b = Buffer.alloc(KEY_STATUS_ARG_SIZE);
  keySpec(b, identifier);
  return b;
}

/**
 * - present: the key is added; the directories it protects are readable.
 * - absent: locked; names are ciphertext and files cannot be opened (ENOKEY).
 * - incompletely-removed: the key was removed while files were open; those stay readable until
 *   closed, nothing new can be opened. Removing the key again once they are closed finishes it.
 */
export type KeyStatus = "present" | "absent" | "incompletely-removed";

export function decodeKeyStatus(b: Buffer): KeyStatus {
  const status = b.readUInt32LE(64);
  if (status === FSCRYPT_KEY_STATUS_PRESENT) return "present";
  if (status === FSCRYPT_KEY_STATUS_ABSENT) return "absent";
  if (status === FSCRYPT_KEY_STATUS_INCOMPLETELY_REMOVED) return "incompletely-removed";
  throw new FscryptError(`the kernel returned an unknown fscrypt key status ${status}`);
}

// ---------------------------------------------------------------------------------------------
// The system boundary

/** Calls ioctl(fd, request, arg) and returns 0 or -errno. `arg` is read and written in place. */
export type IoctlFn = (fd: number, request: number, arg: Buffer) => number;

let defaultIoctl: IoctlFn | undefined;

/** libc ioctl through koffi, loaded on first use. */
async function loadKoffiIoctl(): Promise<IoctlFn> {
  if (defaultIoctl) return defaultIoctl;
  if (process.platform !== "linux" || !["x64", "arm64", "arm", "riscv64", "ia32"].includes(arch())) {
    throw new FscryptUnsupportedError(
      `fscrypt ioctls are implemented for Linux on x86/arm/riscv, not ${arch()}`,
    );
  }
  let koffi: typeof import("koffi").default;
  try {
    koffi = (await import("koffi")).default;
  } catch (err) {
    throw new FscryptUnsupportedError(`the koffi FFI module could not be loaded: ${(err as Error).message}`);
  }
  const libc = koffi.load("libc.so.6");
  // ioctl is variadic in C: declare it so, and pass the pointer as a typed variadic argument.
  const ioctl = libc.func("int ioctl(int fd, unsigned long request, ...)");
  defaultIoctl = (fd, request, arg) => {
    const rc = ioctl(fd, request, "void *", arg) as number;
    return rc === -1 ? -koffi.errno() : rc;
  };
  return defaultIoctl;
}

export interface FscryptOptions {
  /** Replaces the real ioctl (tests inject errors with it). */
  ioctl?: IoctlFn;
}

/**
 * The fscrypt ioctls on real paths. Key operations act on the whole filesystem that `mountpoint`
 * belongs to (keys live in the filesystem's keyring, not the process's); policy operations act
 * on one directory. Unmounting a filesystem wipes its keyring.
 */
export class Fscrypt {
  readonly #ioctl: IoctlFn | undefined;

  constructor(opts: FscryptOptions = {}) {
    this.#ioctl = opts.ioctl;
  }

  async #sys(): Promise<IoctlFn> {
    return this.#ioctl ?? (await loadKoffiIoctl());
  }

  /** Opens a directory without following a final symlink; runs `fn` on its fd; closes it. */
  async #withDir<T>(path: string, fn: (fd: number, ioctl: IoctlFn) => T): Promise<T> {
    const ioctl = await this.#sys();
    let fd: number;
    try {
      fd = openSync(path, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new FscryptError(`cannot open directory ${path}: ${e.code ?? e.message}`, undefined);
    }
    try {
      if (!fstatSync(fd).isDirectory()) throw new FscryptError(`${path} is not a directory`);
      return fn(fd, ioctl);
    } finally {
      closeSync(fd);
    }
  }

  /** The directory's encryption policy, or null when it has none (it is not encrypted). */
  async getPolicy(dir: string): Promise<FscryptPolicy | null> {
    return this.#withDir(dir, (fd, ioctl) => {
      const arg = encodeGetPolicyExArg();
      const rc = ioctl(fd, FS_IOC.GET_ENCRYPTION_POLICY_EX, arg);
      if (rc === 0) return decodeGetPolicyExArg(arg);
      const errno = -rc;
      if (errno === E.ENODATA) return null;
      if (errno === E.ENOTTY || errno === E.EOPNOTSUPP) {
        throw new FscryptUnsupportedError(
          `the filesystem of ${dir} does not support encryption (${errnoName(errno)}); ext4 needs the ` +
            "'encrypt' feature (mkfs.ext4 -O encrypt) and a kernel with CONFIG_FS_ENCRYPTION",
          errno,
        );
      }
      if (errno === E.EOVERFLOW)
        throw new FscryptError(`${dir} has an fscrypt policy newer than this code knows`);
      throw new FscryptError(`reading the encryption policy of ${dir} failed: ${errnoName(errno)}`, errno);
    });
  }

  /**
   * Sets our v2 policy on an empty directory. The key must have been added to the filesystem
   * first. Setting the same policy again is not an error; any other existing policy is.
   */
  async setPolicy(dir: string, identifier: Buffer): Promise<void> {
    const policy = encodePolicyV2(identifier);
    await this.#withDir(dir, (fd, ioctl) => {
      const rc = ioctl(fd, FS_IOC.SET_ENCRYPTION_POLICY, policy);
      if (rc === 0) return;
      const errno = -rc;
      const why: Record<number, string> = {
        [E.ENOTEMPTY]:
          "it is not empty: fscrypt encrypts only empty directories; move its contents out or use a new directory",
        [E.EEXIST]: "it already has another encryption policy (another key or algorithms)",
        [E.ENOKEY]: "the key has not been added to its filesystem (add it before setting the policy)",
        [E.EACCES]: "the caller does not own the directory",
        [E.EINVAL]: "the kernel rejected the policy (unsupported algorithm or flags?)",
        [E.ENOTDIR]: "it is not a directory",
        [E.ENOPKG]: "the kernel lacks the crypto algorithm AES-256-XTS or AES-256-CTS",
      };
      if (errno === E.ENOTTY || errno === E.EOPNOTSUPP) {
        throw new FscryptUnsupportedError(
          `the filesystem of ${dir} does not support encryption (${errnoName(errno)}); ext4 needs -O encrypt`,
          errno,
        );
      }
      throw new FscryptError(
        `cannot encrypt ${dir}: ${why[errno] ?? "the kernel refused"} (${errnoName(errno)})`,
        errno,
      );
    });
  }

  /**
   * Adds a raw 64-byte key to the keyring of the filesystem that `mountpoint` is on, straight
   * from memory, and returns the identifier the kernel computed. The argument buffer that held
   * a copy of the key is zeroed before returning; the caller zeroes its own `key`. Adding a key
   * that is already present is not an error.
   */
  async addKey(mountpoint: string, key: Buffer): Promise<Buffer> {
    const arg = encodeAddKeyArg(key);
    try {
      return await this.#withDir(mountpoint, (fd, ioctl) => {
        const rc = ioctl(fd, FS_IOC.ADD_ENCRYPTION_KEY, arg);
        if (rc === 0) return decodeAddKeyIdentifier(arg);
        const errno = -rc;
        if (errno === E.ENOTTY || errno === E.EOPNOTSUPP) {
          throw new FscryptUnsupportedError(
            `the filesystem at ${mountpoint} does not support encryption keys (${errnoName(errno)}): ` +
              "it needs the ext4 'encrypt' feature and a kernel with CONFIG_FS_ENCRYPTION (5.4 or later)",
            errno,
          );
        }
        if (errno === E.EACCES || errno === E.EPERM) {
          throw new FscryptError(
            `adding an fscrypt key at ${mountpoint} needs CAP_SYS_ADMIN (run as root)`,
            errno,
          );
        }
        throw new FscryptError(`adding an fscrypt key at ${mountpoint} failed: ${errnoName(errno)}`, errno);
      });
    } finally {
      arg.fill(0);
    }
  }

  /**
   * Removes a key for all users: the directories it protects lock, their cached plaintext names
   * and pages are dropped, and the key's secret is wiped from kernel memory. `files-busy` means
   * some files were still open: they stay readable until closed; call again afterwards.
   * Removing a key that is not there gives `already-locked`.
   */
  async removeKey(
    mountpoint: string,
    identifier: Buffer,
  ): Promise<"locked" | "files-busy" | "already-locked"> {
    const arg = encodeRemoveKeyArg(identifier);
    return this.#withDir(mountpoint, (fd, ioctl) => {
      const rc = ioctl(fd, FS_IOC.REMOVE_ENCRYPTION_KEY_ALL_USERS, arg);
      if (rc === 0) return decodeRemoveKeyFlags(arg).filesBusy ? "files-busy" : "locked";
      const errno = -rc;
      if (errno === E.ENOKEY) return "already-locked";
      if (errno === E.ENOTTY || errno === E.EOPNOTSUPP) {
        throw new FscryptUnsupportedError(
          `the filesystem at ${mountpoint} does not support encryption keys (${errnoName(errno)})`,
          errno,
        );
      }
      throw new FscryptError(
        `removing fscrypt key ${identifier.toString("hex")} failed: ${errnoName(errno)}`,
        errno,
      );
    });
  }

  /** Whether the key is in the filesystem's keyring. */
  async keyStatus(mountpoint: string, identifier: Buffer): Promise<KeyStatus> {
    const arg = encodeKeyStatusArg(identifier);
    return this.#withDir(mountpoint, (fd, ioctl) => {
      const rc = ioctl(fd, FS_IOC.GET_ENCRYPTION_KEY_STATUS, arg);
      if (rc === 0) return decodeKeyStatus(arg);
      const errno = -rc;
      if (errno === E.ENOTTY || errno === E.EOPNOTSUPP) {
        throw new FscryptUnsupportedError(
          `the filesystem at ${mountpoint} does not support encryption keys (${errnoName(errno)})`,
          errno,
        );
      }
      throw new FscryptError(
        `reading the status of fscrypt key ${identifier.toString("hex")} failed: ${errnoName(errno)}`,
        errno,
      );
    });
  }
}
