import { constants as fsc } from "node:fs";
import { type FileHandle, lstat, open, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pidsOfUid, signal as sendSignal } from "../../lib/procfs.ts";
import type { OciRuntime } from "../linux/oci/runtime.ts";
import { PoolError } from "./layout.ts";

/** A tenant's gateway process inside its pool: its process spec, its start by `runc exec -d`, its end. */

const LOG_ROTATE_BYTES = 5 * 1024 * 1024;

/** The OCI process (runc exec --process) of a tenant's gateway: its uid, no capabilities, no_new_privs. */
export function gatewayProcessSpec(uid: number, args: string[], env: Record<string, string>, cwd: string) {
  for (const k of Object.keys(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k))
      throw new PoolError("invalid_request", `bad environment name ${k}`);
  }
  return {
    terminal: false,
    user: { uid, gid: uid, additionalGids: [] },
    args,
    env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    cwd,
    capabilities: { bounding: [], effective: [], permitted: [], inheritable: [], ambient: [] },
    noNewPrivileges: true,
    oomScoreAdj: 500,
  };
}

/**
 * SIGKILL to every process of host uid `uid`, again until none is left or `waitMs` passed;
 * returns how many are left.
 */
export async function killUid(uid: number, waitMs: number): Promise<number> {
  let pids = await pidsOfUid(uid);
  const deadline = Date.now() + waitMs;
  while (pids.length > 0) {
    for (const p of pids) sendSignal(p, "SIGKILL");
    if (Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, 100));
    pids = await pidsOfUid(uid);
  }
  return pids.length;
}

/**
 * Opens the gateway's log (`gateway.log` in the tenant's directory) for appending, root-owned
 * 0600, after rotating it past 5 MiB. The tenant owns the directory: a link it put in the log's
 * place is never followed (runtime_failed).
 */
export async function openGatewayLog(dir: string): Promise<{ out: FileHandle; logPath: string }> {
  const logPath = join(dir, "gateway.log");
  const st = await lstat(logPath).catch(() => undefined);
  if (st && st.size > LOG_ROTATE_BYTES) await rename(logPath, `${logPath}.1`);
  const out = await open(logPath, fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o600).catch(
    (err: NodeJS.ErrnoException) => {
      throw err.code === "ELOOP"
        ? new PoolError("runtime_failed", `${logPath} is a symlink: refusing to follow it; remove it`)
        : err;
    },
  );
  return { out, logPath };
}

export interface GatewayLaunch {
  /** The pool's container. */
  container: string;
  /** The pool's bundle directory (on the secrets tmpfs): the process and pid files go there. */
  bundle: string;
  name: string;
  /** Container uid of the tenant. */
  uid: number;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  /** runc exec's cgroup arguments (the tenant's child cgroup). */
  cgroupArgs: string[];
  /** The gateway's log, open for appending. */
  out: { fd: number; logPath: string };
}

/**
 * Starts a tenant's gateway in its pool (`runc exec -d --process <file>`) and returns its host
 * pid. The process file holds the gateway's secrets (its environment): on the tmpfs only, 0600,
 * gone as soon as runc has read it (or failed to). Never on a command line.
 */
export async function spawnGateway(oci: OciRuntime, g: GatewayLaunch): Promise<number> {
  const processFile = join(g.bundle, `${g.name}.process.json`);
  const pidFile = join(g.bundle, `${g.name}.pid`);
  try {
    await writeFile(processFile, JSON.stringify(gatewayProcessSpec(g.uid, g.args, g.env, g.cwd)), {
      mode: 0o600,
    });
    await rm(pidFile, { force: true });
    await oci.runLogged(
      ["exec", "-d", "--process", processFile, "--pid-file", pidFile, ...g.cgroupArgs, g.container],
      g.out,
    );
  } finally {
    await rm(processFile, { force: true });
  }
  const pid = Number((await readFile(pidFile, "utf8")).trim());
  await rm(pidFile, { force: true });
  return pid;
}
