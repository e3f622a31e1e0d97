import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { ClawkeepError } from "../../../core/errors.ts";
import { ExecError, execFile } from "../../../lib/exec.ts";

/** runc works on hybrid (v1) cgroups; crun needs a cgroup v2 host. */
export type OciRuntimeName = "runc" | "crun";

/** Picks the OCI runtime this host can run: crun on a cgroup v2 host that has it, else runc, else crun. */
export async function detectOciRuntime(): Promise<OciRuntimeName> {
  const has = async (bin: string) =>
    execFile([bin, "--version"])
      .then(() => true)
      .catch(() => false);
  const fsType = (await execFile(["stat", "-f", "-c", "%T", "/sys/fs/cgroup"]).catch(() => "")).trim();
  if (fsType === "cgroup2fs" && (await has("crun"))) return "crun";
  if (await has("runc")) return "runc";
  if (await has("crun")) return "crun";
  throw new ClawkeepError(
    "runtime_unavailable",
    "no OCI runtime: install runc (hybrid cgroups) or crun (cgroup v2)",
  );
}

/** A container as the OCI runtime sees it. */
export interface OciContainerState {
  state: "absent" | "created" | "running" | "stopped";
  /** The init's pid as the runtime recorded it (alive or not); null when absent or none. */
  pid: number | null;
  /** When the container was created (RFC 3339), as the runtime says; null when absent. */
  created: string | null;
}

const PF_EXITING = 0x4;

/**
 * Whether a container's init is alive: not gone, not a zombie, not exiting. An init that dies
 * stays in exit until every process of its pid namespace is reaped (processes started with
 * `runc exec -d` are reaped by the host's init, which may take a moment); runc still calls it
 * running meanwhile.
 */
export async function initAlive(pid: number | null | undefined): Promise<boolean> {
  if (!pid) return false;
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return !/^[ZX]/.test(rest[0] ?? "") && (Number(rest[6]) & PF_EXITING) === 0;
  } catch {
    return false;
  }
}

/** Waits until `/proc/<pid>` is gone; false when `timeoutMs` passed (or `signal` aborted) first. */
export async function waitGone(pid: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (existsSync(`/proc/${pid}`)) {
    if (Date.now() > deadline || signal?.aborted) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
  return true;
}

/**
 * One OCI runtime binary (runc or crun) over one state directory (`--root`, on the driver's
 * secrets tmpfs). Every call is an argument array; failures throw ExecError with the command,
 * exit code and output, except where a method says it ignores them.
 */
export class OciRuntime {
  constructor(
    readonly bin: OciRuntimeName,
    readonly root: string,
  ) {}

  /** The argv prefix of every call (`<bin> --root <root>`), for wrappers that run it themselves. */
  argv(args: readonly string[] = []): string[] {
    return [this.bin, "--root", this.root, ...args];
  }

  /** Runs `<bin> --root <root> ...args` and returns its stdout. */
  run(args: readonly string[], signal?: AbortSignal): Promise<string> {
    return execFile(this.argv(args), signal ? { signal } : {});
  }

  /**
   * Runs `argv` in a running container as `user` ("uid:gid"), in `cwd` when given, with `extra`
   * exec options before the container id (a cgroup to join), and returns its stdout.
   */
  exec(
    id: string,
    argv: readonly string[],
    opts: { user: string; cwd?: string; extra?: readonly string[]; signal?: AbortSignal },
  ): Promise<string> {
    const cwd = opts.cwd === undefined ? [] : ["--cwd", opts.cwd];
    return this.run(["exec", "--user", opts.user, ...cwd, ...(opts.extra ?? []), id, ...argv], opts.signal);
  }

  /**
   * The runtime's view of a container. A container the runtime does not know, or a state
   * directory that does not exist yet, is `absent`; any status but created and running is
   * `stopped`.
   */
  async state(id: string): Promise<OciContainerState> {
    try {
      const s = JSON.parse(await this.run(["state", id])) as { status: string; pid: number; created: string };
      const st = s.status === "running" || s.status === "created" ? s.status : "stopped";
      return { state: st, pid: s.pid || null, created: s.created ?? null };
    } catch (err) {
      if (err instanceof ExecError && (/not exist/.test(err.stderr + err.stdout) || !existsSync(this.root)))
        return { state: "absent", pid: null, created: null };
      throw err;
    }
  }

  /**
   * Runs a runtime command whose output goes to an open log (`fd`, the file at `logPath`): the
   * container's own stdout and stderr follow it for `create` and `exec -d`. Throws
   * ClawkeepError("runtime_failed") naming `what` (default: the subcommand) and the log when it
   * exits non-zero.
   */
  async runLogged(
    args: readonly string[],
    out: { fd: number; logPath: string },
    what = args[0],
  ): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const child = spawn(this.bin, ["--root", this.root, ...args], { stdio: ["ignore", out.fd, out.fd] });
      child.once("error", reject);
      child.once("exit", (code) =>
        code === 0
          ? resolve()
          : reject(
              new ClawkeepError(
                "runtime_failed",
                `${this.bin} ${what} exited with ${code}; see ${out.logPath}`,
              ),
            ),
      );
    });
  }

  /**
   * Creates container `id` from `bundle` (its config.json), its init's pid written to
   * `<bundle>/pid` and its output to the log; returns the init's pid. Not started yet. When the
   * pid cannot be read back, the container is deleted again.
   */
  async create(id: string, bundle: string, out: { fd: number; logPath: string }): Promise<number> {
    const pidFile = `${bundle}/pid`;
    await this.runLogged(["create", "--bundle", bundle, "--pid-file", pidFile, id], out, `create ${id}`);
    try {
      return Number((await readFile(pidFile, "utf8")).trim());
    } catch (err) {
      await this.remove(id);
      throw err;
    }
  }

  /** Starts a created container (runs its process). */
  async start(id: string, signal?: AbortSignal): Promise<void> {
    await this.run(["start", id], signal);
  }

  /** Sets the container's CPU quota (`quotaUs` per `periodUs`). */
  async updateCpu(id: string, periodUs: number, quotaUs: number, signal?: AbortSignal): Promise<void> {
    await this.run(
      ["update", "--cpu-period", String(periodUs), "--cpu-quota", String(Math.round(quotaUs)), id],
      signal,
    );
  }

  /**
   * Stops a container and removes it: TERM to its init, up to `graceMs` for it to leave the
   * running state (or until `signal` aborts), then `destroy`. An absent container is fine.
   */
  async stop(id: string, opts: { graceMs: number; signal?: AbortSignal }): Promise<void> {
    const cur = await this.state(id);
    if (cur.state === "running") {
      await this.run(["kill", id, "TERM"]).catch(() => {});
      const deadline = Date.now() + opts.graceMs;
      while ((await this.state(id)).state === "running" && Date.now() < deadline && !opts.signal?.aborted) {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    if (cur.state !== "absent") await this.destroy(id);
  }

  /**
   * Removes a container whatever its state: KILL to every process in it (`kill --all`), then, when
   * `initPid` is given, up to `waitMs` (default 30 s) for that init to be gone, then
   * `delete --force`. Errors of kill and delete are ignored (the container may be gone already).
   * `requireGone`: an init still there after the wait throws (runtime_failed) and the container
   * is not deleted: a new container must not take the name while the old init lives.
   */
  async destroy(
    id: string,
    opts: { initPid?: number | null; waitMs?: number; requireGone?: boolean; signal?: AbortSignal } = {},
  ): Promise<void> {
    await this.run(["kill", "--all", id, "KILL"]).catch(() => {});
    if (opts.initPid) {
      const waitMs = opts.waitMs ?? 30_000;
      const gone = await waitGone(opts.initPid, waitMs, opts.signal);
      if (!gone && opts.requireGone)
        throw new ClawkeepError(
          "runtime_failed",
          `the old init of ${id} (pid ${opts.initPid}) has not exited after ${waitMs / 1000} s; is something holding its processes?`,
        );
    }
    await this.remove(id);
  }

  /** `delete --force`; errors ignored (an absent container is fine). */
  async remove(id: string): Promise<void> {
    await this.run(["delete", "--force", id]).catch(() => {});
  }
}
