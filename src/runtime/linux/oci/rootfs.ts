import { chmod, mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** A user (and its group of the same name and id) of a container's /etc/passwd and /etc/group. */
export interface RootfsUser {
  name: string;
  uid: number;
  /** The passwd comment field. */
  gecos: string;
  home: string;
}

export interface RootfsInput {
  /**
   * Absolute paths inside the container to make (0755) beside the skeleton's own directories:
   * mount points of its binds and volumes.
   */
  mountPoints: readonly string[];
  /** Users between root and nobody, in order. */
  users: readonly RootfsUser[];
  /**
   * Files to write, absolute paths inside the container. `append` makes an empty file where none
   * is, keeping one that is there (a file bind needs a file to mount on).
   */
  files?: ReadonlyArray<{ path: string; content: string; mode?: number; append?: boolean }>;
}

/**
 * Writes the skeleton root filesystem of a container without an image at `rootfs` (made if
 * missing) and returns it: /usr, /etc/ssl, /proc, /dev, /sys, /tmp (1777: runc gives a tmpfs the
 * mode of the directory it is mounted on), /run and the given mount points; bin, lib, lib64 and
 * sbin as links into /usr; /etc/passwd and /etc/group with root, the given users and nobody;
 * /etc/hosts with localhost only; nsswitch from files. No resolv.conf: tenants get no DNS, the
 * egress proxy resolves names. Idempotent: existing directories and links are kept, the /etc
 * files are rewritten.
 */
export async function writeRootfs(rootfs: string, input: RootfsInput): Promise<string> {
  for (const d of ["usr", "etc/ssl", "proc", "dev", "sys", "tmp", "run", ...input.mountPoints.map(inside)]) {
    await mkdir(join(rootfs, d), { recursive: true, mode: 0o755 });
  }
  for (const f of input.files ?? []) {
    await writeFile(join(rootfs, inside(f.path)), f.content, {
      ...(f.append ? { flag: "a" } : {}),
      ...(f.mode !== undefined ? { mode: f.mode } : {}),
    });
  }
  await chmod(join(rootfs, "tmp"), 0o1777);
  for (const [link, target] of [
    ["bin", "usr/bin"],
    ["lib", "usr/lib"],
    ["lib64", "usr/lib64"],
    ["sbin", "usr/sbin"],
  ] as const) {
    await symlink(target, join(rootfs, link)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== "EEXIST") throw e;
    });
  }
  const users = input.users
    .map((u) => `${u.name}:x:${u.uid}:${u.uid}:${u.gecos}:${u.home}:/usr/sbin/nologin\n`)
    .join("");
  await writeFile(
    join(rootfs, "etc/passwd"),
    `root:x:0:0:root:/root:/usr/sbin/nologin\n${users}nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`,
  );
  const groups = input.users.map((u) => `${u.name}:x:${u.uid}:\n`).join("");
  await writeFile(join(rootfs, "etc/group"), `root:x:0:\n${groups}nogroup:x:65534:\n`);
  await writeFile(join(rootfs, "etc/hosts"), "127.0.0.1 localhost\n::1 localhost\n");
  await writeFile(join(rootfs, "etc/nsswitch.conf"), "passwd: files\ngroup: files\nhosts: files\n");
  return rootfs;
}

/** An absolute path inside the container, relative to its root; refuses anything else. */
function inside(p: string): string {
  if (!p.startsWith("/") || p.split("/").includes(".."))
    throw new Error(`rootfs path ${JSON.stringify(p)} is not an absolute path without '..'`);
  return p.slice(1);
}
