/** /proc/self/mountinfo as data (pure); mounts.ts reads it. */

export interface MountEntry {
  mountpoint: string;
  fstype: string;
  source: string;
  options: string;
}

/** Undoes the octal escapes (\040 for space, ...) of /proc/self/mountinfo. */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/** Parses /proc/self/mountinfo (see proc(5)); later entries are mounted on top of earlier ones. */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    const fields = line.split(" ");
    const sep = fields.indexOf("-", 6);
    if (sep < 0 || fields.length < sep + 3) continue;
    out.push({
      mountpoint: unescapeMountField(fields[4] ?? ""),
      options: fields[5] ?? "",
      fstype: fields[sep + 1] ?? "",
      source: unescapeMountField(fields[sep + 2] ?? ""),
    });
  }
  return out;
}

/**
 * The mount `path` lies on: the longest mount point above it (or equal); of mounts on one point,
 * the last (the top one). Undefined when none (only with a table without "/").
 */
export function mountOf(mounts: readonly MountEntry[], path: string): MountEntry | undefined {
  const under = (mp: string) => path === mp || path.startsWith(mp === "/" ? "/" : `${mp}/`);
  let here: MountEntry | undefined;
  for (const m of mounts)
    if (under(m.mountpoint) && m.mountpoint.length >= (here?.mountpoint.length ?? 0)) here = m;
  return here;
}

/**
 * Options a bind of a path on `mount` into a user-namespaced container must repeat: in a user
 * namespace the kernel locks a mount's noexec and atime flags, and runc's remount of the bind
 * fails with EPERM unless it keeps them (encrypted volumes are noexec,noatime).
 */
export function lockedOptionsOf(mount: MountEntry | undefined): string[] {
  const opts = new Set((mount?.options ?? "").split(","));
  const keep = ["noatime", "nodiratime", "strictatime"].filter((o) => opts.has(o));
  return opts.has("noexec") ? ["noexec", ...keep] : keep;
}
