import { ValidationError } from "../../../core/errors.ts";

/** ext4 images of the volume layer: sizes, the mkfs and mount commands, the superblock (pure). */

export const MIN_VOLUME_BYTES = 16 * 1024 * 1024;
export const MAX_VOLUME_BYTES = 16 * 1024 ** 4;
const MIB = 1024 * 1024;

/** ext4's flag for the 'encrypt' feature in s_feature_incompat. */
const EXT4_FEATURE_INCOMPAT_ENCRYPT = 0x10000;
const EXT4_MAGIC = 0xef53;

export function checkSize(sizeBytes: unknown): number {
  if (
    typeof sizeBytes !== "number" ||
    !Number.isSafeInteger(sizeBytes) ||
    sizeBytes < MIN_VOLUME_BYTES ||
    sizeBytes > MAX_VOLUME_BYTES ||
    sizeBytes % MIB !== 0
  ) {
    throw new ValidationError(
      "invalid_request",
      `volume size must be a whole number of MiB between ${MIN_VOLUME_BYTES / MIB} MiB and ${MAX_VOLUME_BYTES / MIB} MiB, got ${String(sizeBytes)}`,
      { details: { field: "sizeBytes" } },
    );
  }
  return sizeBytes;
}

/** The command that makes an fscrypt-capable ext4 filesystem in an image file. */
export function mkfsArgv(image: string, opts: { encrypt?: boolean } = {}): string[] {
  return [
    "mkfs.ext4",
    "-q",
    "-F",
    "-m",
    "0",
    "-b",
    "4096",
    ...(opts.encrypt === false ? [] : ["-O", "encrypt"]),
    "-E",
    "nodiscard",
    image,
  ];
}

/** Mount options of every tenant volume. noexec is fine: the gateway's node runs from a separate runtime. */
export const MOUNT_OPTIONS = "nosuid,nodev,noexec,noatime";

export function mountArgv(loopDevice: string, mountpoint: string): string[] {
  return ["mount", "-t", "ext4", "-o", MOUNT_OPTIONS, loopDevice, mountpoint];
}

export interface Ext4Facts {
  ext4: boolean;
  encrypt: boolean;
  blockSize: number;
  sizeBytes: number;
}

/** Reads the facts we need from the first 2 KiB of an ext4 image (the superblock is at 1024). */
export function parseExt4Superblock(head: Buffer): Ext4Facts {
  if (head.length < 2048) return { ext4: false, encrypt: false, blockSize: 0, sizeBytes: 0 };
  const sb = head.subarray(1024);
  const ext4 = sb.readUInt16LE(0x38) === EXT4_MAGIC;
  const blockSize = 1024 << sb.readUInt32LE(0x18);
  const blocks = sb.readUInt32LE(0x04) + (sb.readUInt32LE(0x150) * 2 ** 32 || 0);
  const incompat = sb.readUInt32LE(0x60);
  return {
    ext4,
    encrypt: ext4 && (incompat & EXT4_FEATURE_INCOMPAT_ENCRYPT) !== 0,
    blockSize: ext4 ? blockSize : 0,
    sizeBytes: ext4 ? blocks * blockSize : 0,
  };
}
