import { readFile } from "node:fs/promises";
import { parseMountinfo } from "./volume.ts";

/**
 * Options a bind of `path` into a user-namespaced container must repeat from the mount it lies
 * on: in a user namespace the kernel locks a mount's noexec and atime flags, and runc's remount of
 * the bind fails with EPERM unless it keeps them (encrypted volumes are noexec,noatime).
 */
export async function lockedBindOptions(path: string): Promise<string[]> {
  const mounts = parseMountinfo(await readFile("/proc/self/mountinfo", "utf8"));
  const under = (mp: string) => path === mp || path.startsWith(mp === "/" ? "/" : `${mp}/`);
  let here: (typeof mounts)[number] | undefined;
  // The longest mount point wins; of mounts on one point, the last (the top one).
  for (const m of mounts)
    if (under(m.mountpoint) && m.mountpoint.length >= (here?.mountpoint.length ?? 0)) here = m;
  const opts = new Set((here?.options ?? "").split(","));
  const keep = ["noatime", "nodiratime", "strictatime"].filter((o) => opts.has(o));
  return opts.has("noexec") ? ["noexec", ...keep] : keep;
}
