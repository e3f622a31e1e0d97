import { readFile } from "node:fs/promises";
import { lockedOptionsOf, type MountEntry, mountOf, parseMountinfo } from "./mountinfo.ts";

/** This process's mount table (/proc/self/mountinfo); later entries are mounted on top of earlier ones. */
export async function readMounts(): Promise<MountEntry[]> {
  return parseMountinfo(await readFile("/proc/self/mountinfo", "utf8"));
}

/** Whether something is mounted at exactly `mountpoint`. */
export async function isMountPoint(mountpoint: string): Promise<boolean> {
  return (await readMounts()).some((m) => m.mountpoint === mountpoint);
}

/**
 * Options a bind of `path` into a user-namespaced container must repeat from the mount it lies
 * on: in a user namespace the kernel locks a mount's noexec and atime flags, and runc's remount of
 * the bind fails with EPERM unless it keeps them (encrypted volumes are noexec,noatime).
 */
export async function lockedBindOptions(path: string): Promise<string[]> {
  return lockedOptionsOf(mountOf(await readMounts(), path));
}
