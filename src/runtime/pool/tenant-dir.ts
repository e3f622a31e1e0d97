import { constants as fsc } from "node:fs";
import { type FileHandle, mkdir, open, rename, rm } from "node:fs/promises";
import { PoolError } from "./layout.ts";

/**
 * A tenant's directory in its pool, as root fills it: root works inside a tree the tenant owns, so
 * every step refuses to follow a symlink the tenant may have planted (a followed link would let
 * root chown or write a host file).
 */

const fdPath = (h: FileHandle, name = "") => `/proc/self/fd/${h.fd}${name ? `/${name}` : ""}`;

/** Opens a directory, refusing a symlink in its last component. */
async function openDirNoFollow(path: string): Promise<FileHandle> {
  try {
    return await open(path, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ELOOP" || code === "ENOTDIR")
      throw new PoolError("runtime_failed", `${path} is not a directory (a symlink?): refusing to follow it`);
    throw err;
  }
}

/** `name` under the opened directory `parent`: made if missing, a real directory, 0700 the owner's. */
async function ensureTenantDir(parent: FileHandle, name: string, owner: number): Promise<FileHandle> {
  await mkdir(fdPath(parent, name), { mode: 0o700 }).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== "EEXIST") throw e;
  });
  const h = await openDirNoFollow(fdPath(parent, name));
  await h.chown(owner, owner);
  await h.chmod(0o700);
  return h;
}

/** Writes a root-owned read-only file into the opened directory, atomically, never through a link. */
async function writeRootFile(dir: FileHandle, name: string, text: string): Promise<void> {
  const tmp = fdPath(dir, `${name}.tmp`);
  await rm(tmp, { force: true });
  const fh = await open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o444);
  try {
    await fh.writeFile(text);
    await fh.chown(0, 0);
    await fh.chmod(0o444);
  } finally {
    await fh.close();
  }
  await rename(tmp, fdPath(dir, name));
}

/**
 * Fills the tenant's directory `dir`: state/, state/logs/, home/, tmp/ and workspace/ (0700, the
 * tenant's host uid `owner`), and `state/openclaw.json` (the platform's file: root-owned and
 * read-only to the gateway, OPENCLAW_CONFIG_READONLY). Never follows a link.
 */
export async function writeTenantTree(dir: string, owner: number, openclawConfig: string): Promise<void> {
  const top = await openDirNoFollow(dir);
  const handles: FileHandle[] = [top];
  try {
    const state = await ensureTenantDir(top, "state", owner);
    handles.push(state);
    handles.push(await ensureTenantDir(state, "logs", owner));
    for (const sub of ["home", "tmp", "workspace"]) handles.push(await ensureTenantDir(top, sub, owner));
    await writeRootFile(state, "openclaw.json", openclawConfig);
  } finally {
    for (const h of handles) await h.close();
  }
}
