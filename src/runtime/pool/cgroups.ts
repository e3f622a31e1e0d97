import { existsSync } from "node:fs";
import { mkdir, readFile, realpath, rmdir, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ClawkeepError } from "../../core/errors.ts";
import { execFile } from "../../lib/exec.ts";

/**
 * Per-tenant cgroups inside a pool (cgroup v1, the layout of this kind of host): one child
 * cgroup per tenant under the pool container's cgroup, in the memory, pids and cpu controllers,
 * and in cpuacct where it is a hierarchy of its own (its CPU time: how the CPU guard tells a
 * tenant spinning at its quota from a short burst).
 * The driver creates it with the tenant's limits, `runc exec --cgroup` puts the gateway in it
 * before its first instruction (no window in which it runs unbounded), and the driver kills what
 * is in it and removes it. A tenant cannot leave it: no cgroup filesystem inside the pool.
 *
 * cgroup v2 hosts need a different layout (no processes in the pool's own cgroup once its
 * children have controllers: the pool's PID 1 would have to sit in a leaf of its own); not done.
 */
export interface TenantLimits {
  memoryBytes: number;
  /** CPU quota in cores. */
  cpus: number;
  pids: number;
}

export const CGROUP_ROOT = "/sys/fs/cgroup";
const LEAF_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;
const PART_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const CFS_PERIOD = 100_000;

export class CgroupError extends ClawkeepError {}

type Controller = "memory" | "pids" | "cpu" | "cpuacct";

/** The files to write, in order, for one tenant's limits. Pure. */
export function renderTenantLimits(l: TenantLimits): {
  memory: Array<[string, string]>;
  pids: Array<[string, string]>;
  cpu: Array<[string, string]>;
} {
  if (!Number.isSafeInteger(l.memoryBytes) || l.memoryBytes < 16 * 1024 * 1024)
    throw new CgroupError("invalid_request", `memory limit ${l.memoryBytes} is below 16 MiB or not whole`);
  if (!Number.isInteger(l.pids) || l.pids < 8)
    throw new CgroupError("invalid_request", `pids limit ${l.pids} is below 8`);
  return {
    // memsw (memory + swap) must never be below the memory limit: set memory first when lowering.
    memory: [
      ["memory.limit_in_bytes", String(l.memoryBytes)],
      ["memory.memsw.limit_in_bytes", String(l.memoryBytes)],
    ],
    pids: [["pids.max", String(l.pids)]],
    cpu: renderCpuLimit(l.cpus),
  };
}

/** The cpu controller's files for a quota of `cpus` cores, in order. Pure. */
export function renderCpuLimit(cpus: number): Array<[string, string]> {
  if (!(cpus > 0) || cpus > 1024)
    throw new CgroupError("invalid_request", `cpu quota ${cpus} is out of range`);
  return [
    ["cpu.cfs_period_us", String(CFS_PERIOD)],
    ["cpu.cfs_quota_us", String(Math.round(cpus * CFS_PERIOD))],
  ];
}

/** Detects the cgroup layout: "v1" (hybrid or legacy, what the pool driver supports) or "v2". */
export async function cgroupVersion(): Promise<"v1" | "v2"> {
  const fs = (await execFile(["stat", "-f", "-c", "%T", CGROUP_ROOT]).catch(() => "")).trim();
  return fs === "cgroup2fs" ? "v2" : "v1";
}

/**
 * The cgroups of one tenant in one pool: `<root>/<controller>/<parent>/<pool>/<leaf>` for
 * memory, pids and cpu. `parent` and `pool` are the pool container's cgroupsPath parts.
 */
export class TenantCgroup {
  readonly #parts: string[];
  readonly #leaf: string;
  readonly #root: string;
  #controllers: Promise<Controller[]> | undefined;

  constructor(opts: { parent: string; pool: string; leaf: string; root?: string }) {
    for (const p of [opts.parent, opts.pool]) {
      if (!PART_RE.test(p))
        throw new CgroupError("invalid_request", `bad cgroup path part ${JSON.stringify(p)}`);
    }
    if (!LEAF_RE.test(opts.leaf))
      throw new CgroupError("invalid_request", `bad cgroup name ${JSON.stringify(opts.leaf)}`);
    this.#parts = [opts.parent, opts.pool];
    this.#leaf = opts.leaf;
    this.#root = opts.root ?? CGROUP_ROOT;
  }

  get leaf(): string {
    return this.#leaf;
  }

  /** Host directory of the tenant's cgroup in a controller. */
  dir(controller: Controller): string {
    return join(this.#root, controller, ...this.#parts, this.#leaf);
  }

  /** The pool's own cgroup directory in a controller. */
  poolDir(controller: Controller): string {
    return join(this.#root, controller, ...this.#parts);
  }

  /**
   * The controllers the tenant has a cgroup in: memory, pids, cpu, and cpuacct where it is
   * mounted apart from cpu (where the two share a hierarchy, the cpu cgroup counts CPU time).
   */
  controllers(): Promise<Controller[]> {
    this.#controllers ??= (async () => {
      const real = (c: string) => realpath(join(this.#root, c)).catch(() => undefined);
      const [cpu, acct] = await Promise.all([real("cpu"), real("cpuacct")]);
      const base: Controller[] = ["memory", "pids", "cpu"];
      return acct !== undefined && acct !== cpu ? [...base, "cpuacct"] : base;
    })();
    return this.#controllers;
  }

  /**
   * `runc exec` arguments that start a process in this cgroup. The key is the mount's own name
   * ("cpu" here, "cpu,cpuacct" where the two share a hierarchy).
   */
  async runcArgs(): Promise<string[]> {
    const cpuKey = basename(await realpath(join(this.#root, "cpu")).catch(() => join(this.#root, "cpu")));
    return (await this.controllers()).flatMap((c) => [
      "--cgroup",
      `${c === "cpu" ? cpuKey : c}:${this.#leaf}`,
    ]);
  }

  /** Creates (or updates) the cgroups with the limits. The pool's cgroup must exist. */
  async ensure(limits: TenantLimits): Promise<void> {
    const w = renderTenantLimits(limits);
    for (const c of await this.controllers()) {
      if (!existsSync(this.poolDir(c)))
        throw new CgroupError(
          "runtime_failed",
          `the pool's cgroup ${this.poolDir(c)} does not exist: is the pool running?`,
        );
      await mkdir(this.dir(c), { recursive: true });
    }
    // Lowering: memory first, then memsw; raising: memsw first. Try one order, then the other.
    const mem = this.dir("memory");
    const write = async (file: string, value: string) => writeFile(join(mem, file), value);
    const hasMemsw = existsSync(join(mem, "memory.memsw.limit_in_bytes"));
    const [m, sw] = w.memory;
    try {
      await write(m![0], m![1]);
      if (hasMemsw) await write(sw![0], sw![1]);
    } catch {
      if (hasMemsw) await write(sw![0], sw![1]);
      await write(m![0], m![1]);
    }
    for (const [f, v] of w.pids) await writeFile(join(this.dir("pids"), f), v);
    for (const [f, v] of w.cpu) await writeFile(join(this.dir("cpu"), f), v);
  }

  /**
   * Sets only the CPU quota (cores per CFS period), e.g. from the start quota down to the plan's
   * once the gateway is ready. The cgroup must exist (ensure()).
   */
  async setCpu(cpus: number): Promise<void> {
    for (const [f, v] of renderCpuLimit(cpus)) await writeFile(join(this.dir("cpu"), f), v);
  }

  /** Pids of every process in the tenant's cgroup (memory controller; a tenant cannot leave it). */
  async pids(): Promise<number[]> {
    const out = new Set<number>();
    for (const c of ["memory", "pids"] as const) {
      const text = await readFile(join(this.dir(c), "cgroup.procs"), "utf8").catch(() => "");
      for (const l of text.split("\n")) if (/^\d+$/.test(l)) out.add(Number(l));
    }
    return [...out];
  }

  /** Sends a signal to every process in the cgroup, waits up to waitMs for it to empty; returns how many are left. */
  async kill(sig: NodeJS.Signals, waitMs: number): Promise<number> {
    let pids = await this.pids();
    const deadline = Date.now() + waitMs;
    for (;;) {
      for (const pid of pids) {
        try {
          process.kill(pid, sig);
        } catch {
          // gone already
        }
      }
      if (pids.length === 0 || Date.now() >= deadline) return pids.length;
      await sleep(100);
      pids = await this.pids();
    }
  }

  /** Facts for status and tests: the memory limit, use and peak (since the last reset), the OOM kills. */
  async memoryFacts(): Promise<
    { limitBytes: number; usageBytes: number; maxUsageBytes: number; oomKills: number } | undefined
  > {
    const mem = this.dir("memory");
    try {
      const [limit, usage, max, oom] = await Promise.all(
        [
          "memory.limit_in_bytes",
          "memory.usage_in_bytes",
          "memory.max_usage_in_bytes",
          "memory.oom_control",
        ].map((f) => readFile(join(mem, f), "utf8")),
      );
      return {
        limitBytes: Number(limit!.trim()),
        usageBytes: Number(usage!.trim()),
        maxUsageBytes: Number(max!.trim()),
        oomKills: Number(/oom_kill (\d+)/.exec(oom!)?.[1] ?? 0),
      };
    } catch {
      return undefined;
    }
  }

  /** Kills what is left and removes the cgroups. Absent is fine. */
  async remove(): Promise<void> {
    const left = await this.kill("SIGKILL", 5000);
    if (left > 0)
      throw new CgroupError("runtime_failed", `${left} processes in ${this.dir("memory")} survived SIGKILL`);
    for (const c of await this.controllers()) {
      for (let i = 0; ; i++) {
        try {
          await rmdir(this.dir(c));
          break;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === "ENOENT") break;
          // A process that just died can keep the cgroup busy for a moment.
          if (code !== "EBUSY" || i >= 20)
            throw new CgroupError("runtime_failed", `cannot remove ${this.dir(c)}`, { cause: err });
          await sleep(100);
        }
      }
    }
  }
}
