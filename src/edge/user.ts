import { execFile } from "../lib/exec.ts";
import { EdgeError } from "./errors.ts";

const USER_RE = /^[a-z_][a-z0-9_-]{0,31}$/;

export interface SystemUser {
  name: string;
  uid: number;
  gid: number;
  /** True when this call created it. */
  created: boolean;
}

async function lookup(name: string, signal?: AbortSignal): Promise<SystemUser | null> {
  const line = await execFile(["getent", "passwd", name], signal ? { signal } : {}).catch(() => null);
  const f = line?.trim().split(":");
  if (!f || f.length < 4 || f[0] !== name) return null;
  return { name, uid: Number(f[2]), gid: Number(f[3]), created: false };
}

/**
 * The system user nginx workers run as (so later network rules can let only that uid reach tenant
 * ports). Created with `useradd --system` (own group, no home, no login shell) when missing.
 * Refuses root or any uid 0 account.
 */
export async function ensureSystemUser(name: string, signal?: AbortSignal): Promise<SystemUser> {
  if (!USER_RE.test(name))
    throw new EdgeError(`edge user name ${JSON.stringify(name)} is not a valid user name`);
  let user = await lookup(name, signal);
  if (!user) {
    await execFile(
      [
        "useradd",
        "--system",
        "--user-group",
        "--no-create-home",
        "--home-dir",
        "/nonexistent",
        "--shell",
        "/usr/sbin/nologin",
        "--comment",
        "clawkeep edge (nginx workers)",
        name,
      ],
      signal ? { signal } : {},
    ).catch((err: unknown) => {
      throw new EdgeError(`could not create the edge user ${name} (useradd; run as root)`, { cause: err });
    });
    user = await lookup(name, signal);
    if (!user) throw new EdgeError(`useradd reported success but user ${name} does not exist`);
    user.created = true;
  }
  if (user.uid === 0 || user.gid === 0)
    throw new EdgeError(`edge user ${name} has uid or gid 0; use an unprivileged user`);
  return user;
}
