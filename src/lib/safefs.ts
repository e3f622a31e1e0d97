import { constants } from "node:fs";
import { mkdir, open, rename, rm } from "node:fs/promises";
import { ClawkeepError } from "../core/errors.ts";

/**
 * File operations root performs inside directories a tenant owns. A tenant can plant symlinks
 * there; these never follow one (O_NOFOLLOW), so root never chowns, writes or reads a file
 * outside the tenant's directory on the tenant's behalf.
 */
const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, O_WRONLY, O_CREAT, O_EXCL, O_APPEND } = constants;

function refuse(path: string, err: unknown): never {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ELOOP" || code === "ENOTDIR") {
    throw new ClawkeepError(
      "runtime_failed",
      `${path} is a symlink or not a directory: refusing to follow it`,
      {
        cause: err,
      },
    );
  }
  throw err;
}

/**
 * mkdir (one level: its parent must exist and have been checked the same way), then chown and
 * chmod the directory itself, refusing a symlink in its place.
 */
export async function ownDir(path: string, uid: number, gid: number, mode: number): Promise<void> {
  await mkdir(path, { mode }).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== "EEXIST") throw e;
  });
  const fh = await open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW).catch((e) => refuse(path, e));
  try {
    await fh.chown(uid, gid);
    await fh.chmod(mode);
  } finally {
    await fh.close();
  }
}

/** Writes a whole file by creating a fresh temporary one beside it (never an existing one) and renaming. */
export async function writeFileNoFollow(
  path: string,
  data: string | Buffer,
  mode: number,
  owner?: number,
): Promise<void> {
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  await rm(tmp, { force: true });
  const fh = await open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
  try {
    await fh.writeFile(data);
    await fh.chmod(mode);
    if (owner !== undefined) await fh.chown(owner, owner);
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}

/** Opens a log for appending, refusing a symlink in its place. */
export function openAppendNoFollow(path: string, mode = 0o600) {
  return open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, mode).catch((e) => refuse(path, e));
}

/** Opens a file for reading, refusing a symlink. */
export function openReadNoFollow(path: string) {
  return open(path, O_RDONLY | O_NOFOLLOW);
}
