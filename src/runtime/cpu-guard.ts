import { existsSync } from "node:fs";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";

/**
 * Noisy-neighbour guard: a tenant that spins at its CPU quota is demoted to the idle scheduling
 * class (cgroup `cpu.idle`) until it calms down, and the operator hears of it (tenant events). A
 * quota bounds how much CPU a tenant gets on average, not when; the idle class lets every other
 * tenant's runnable work go first. What it buys a neighbour's tail latency is measured by
 * bench/sandbox.ts and has not been steady on a 2-core VM: B's /healthz p99 with A demoted was
 * 0.47-1.35x of A idle in one session's runs and 1.76-2.0x in the next (the no-hog control row
 * itself 1.08-1.46x); B's p50 is unchanged in every run.
 *
 * Signal: the cgroup's own throttling (cpu.stat nr_throttled / nr_periods). A tenant throttled in
 * at least `spinShare` of its periods over the last `spinSamples` intervals has been using all of
 * its quota for that long: demoted. A demoted tenant that was throttled in under `calmShare` of its
 * periods (or ran in none) over `calmSamples` intervals is restored. Start bursts are settled
 * before they could count: a starting gateway runs with the start quota and is rarely throttled.
 *
 * Where `cpu.idle` is missing (kernels before 5.15), the tenant's weight is lowered instead
 * (cpu.shares 2 on cgroup v1, cpu.weight 1 on v2), which helps less.
 */
export interface CpuGuardTarget {
  tenant: string;
  /** The tenant's cgroup directory in the cpu controller. */
  dir: string;
}

export interface CpuGuardPolicy {
  spinSamples: number;
  spinShare: number;
  calmSamples: number;
  calmShare: number;
}

export const DEFAULT_CPU_GUARD_POLICY: CpuGuardPolicy = {
  spinSamples: 5,
  spinShare: 0.5,
  calmSamples: 10,
  calmShare: 0.05,
};

/** One interval's counts: CFS periods the cgroup ran in, and how many of them ended throttled. */
export interface CpuInterval {
  periods: number;
  throttled: number;
}

/**
 * The verdict on a tenant from its latest intervals (newest last). Pure.
 * "demote" and "restore" are changes; "keep" leaves it as it is.
 */
export function judge(
  history: readonly CpuInterval[],
  demoted: boolean,
  p: CpuGuardPolicy,
): "demote" | "restore" | "keep" {
  const last = (n: number) => (history.length >= n ? history.slice(-n) : undefined);
  if (!demoted) {
    const w = last(p.spinSamples);
    if (!w) return "keep";
    // Every interval must have run (a tenant idle for a while is not spinning) ...
    if (w.some((i) => i.periods === 0)) return "keep";
    const periods = w.reduce((s, i) => s + i.periods, 0);
    const throttled = w.reduce((s, i) => s + i.throttled, 0);
    return throttled / periods >= p.spinShare ? "demote" : "keep";
  }
  const w = last(p.calmSamples);
  if (!w) return "keep";
  const periods = w.reduce((s, i) => s + i.periods, 0);
  const throttled = w.reduce((s, i) => s + i.throttled, 0);
  return periods === 0 || throttled / periods < p.calmShare ? "restore" : "keep";
}

/** nr_periods and nr_throttled from a cpu.stat file (cgroup v1 and v2 name them alike). Pure. */
export function parseCpuStat(text: string): { periods: number; throttled: number } | undefined {
  const get = (k: string) => {
    const m = new RegExp(`^${k} (\\d+)$`, "m").exec(text);
    return m ? Number(m[1]) : undefined;
  };
  const periods = get("nr_periods");
  const throttled = get("nr_throttled");
  return periods === undefined || throttled === undefined ? undefined : { periods, throttled };
}

/** The cpu controller's root: /sys/fs/cgroup/cpu on cgroup v1, /sys/fs/cgroup on v2. */
export function cpuControllerRoot(cgroupRoot = "/sys/fs/cgroup"): string {
  return existsSync(join(cgroupRoot, "cgroup.controllers")) ? cgroupRoot : join(cgroupRoot, "cpu");
}

/**
 * The tenants' cpu cgroups as the drivers lay them out: `<parent>/<tenant>` for dedicated
 * containers (cgroupsPath `/<parent>/<name>`), `<poolsParent>/<pool>/t-<tenant>` for Starter pools.
 * Missing directories are no tenants.
 */
export async function scanTenantCgroups(opts: {
  cpuRoot: string;
  containersParent?: string;
  poolsParent?: string;
}): Promise<CpuGuardTarget[]> {
  const dirs = async (d: string) =>
    (await readdir(d, { withFileTypes: true }).catch(() => []))
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
  const out: CpuGuardTarget[] = [];
  if (opts.containersParent) {
    const base = join(opts.cpuRoot, opts.containersParent);
    for (const n of await dirs(base)) out.push({ tenant: n, dir: join(base, n) });
  }
  if (opts.poolsParent) {
    const base = join(opts.cpuRoot, opts.poolsParent);
    for (const pool of await dirs(base))
      for (const n of await dirs(join(base, pool)))
        if (n.startsWith("t-")) out.push({ tenant: n.slice(2), dir: join(base, pool, n) });
  }
  return out;
}

interface Tracked {
  dir: string;
  last: { periods: number; throttled: number } | undefined;
  history: CpuInterval[];
  demoted: boolean;
}

export class CpuGuard {
  readonly #targets: () => Promise<CpuGuardTarget[]>;
  readonly #intervalMs: number;
  readonly #policy: CpuGuardPolicy;
  readonly #log: Logger | undefined;
  readonly #onChange: ((tenant: string, demoted: boolean, why: string) => void) | undefined;
  readonly #tracked = new Map<string, Tracked>();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(opts: {
    targets: () => Promise<CpuGuardTarget[]>;
    intervalMs?: number;
    policy?: Partial<CpuGuardPolicy>;
    log?: Logger;
    onChange?: (tenant: string, demoted: boolean, why: string) => void;
  }) {
    this.#targets = opts.targets;
    this.#intervalMs = opts.intervalMs ?? 1000;
    this.#policy = { ...DEFAULT_CPU_GUARD_POLICY, ...opts.policy };
    this.#log = opts.log;
    this.#onChange = opts.onChange;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => {
      if (this.#running) return;
      this.#running = this.tick()
        .catch((err: unknown) => this.#log?.warn({ err: (err as Error).message }, "cpu guard: tick failed"))
        .finally(() => {
          this.#running = undefined;
        });
    }, this.#intervalMs);
    this.#timer.unref();
  }

  /** Stops sampling. Demoted tenants stay demoted (a restarted guard finds them and judges them again). */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  /** Tenants now in the idle class. */
  demoted(): string[] {
    return [...this.#tracked].filter(([, t]) => t.demoted).map(([n]) => n);
  }

  /** One sample of every tenant, and the changes it calls for. */
  async tick(): Promise<void> {
    const targets = await this.#targets();
    const seen = new Set<string>();
    for (const { tenant, dir } of targets) {
      seen.add(tenant);
      let t = this.#tracked.get(tenant);
      if (!t || t.dir !== dir) {
        t = { dir, last: undefined, history: [], demoted: await isDemoted(dir) };
        this.#tracked.set(tenant, t);
      }
      const now = parseCpuStat(await readFile(join(dir, "cpu.stat"), "utf8").catch(() => ""));
      if (!now) continue;
      if (t.last) {
        t.history.push({
          periods: Math.max(0, now.periods - t.last.periods),
          throttled: Math.max(0, now.throttled - t.last.throttled),
        });
        const keep = Math.max(this.#policy.spinSamples, this.#policy.calmSamples);
        if (t.history.length > keep) t.history.splice(0, t.history.length - keep);
      }
      t.last = now;
      const verdict = judge(t.history, t.demoted, this.#policy);
      if (verdict === "keep") continue;
      const demote = verdict === "demote";
      try {
        await setIdle(dir, demote);
      } catch (err) {
        this.#tracked.delete(tenant);
        // The cgroup went away under us (the tenant stopped): forget it. Anything else is said.
        if (existsSync(dir))
          this.#log?.error(
            { tenant, dir, err: (err as Error).message },
            "cpu guard: cannot change the CPU class",
          );
        continue;
      }
      t.demoted = demote;
      t.history = [];
      const why = demote
        ? `throttled in ≥ ${Math.round(this.#policy.spinShare * 100)} % of its CPU periods for ${this.#policy.spinSamples} intervals: spinning at its quota`
        : `calm for ${this.#policy.calmSamples} intervals`;
      this.#log?.warn(
        { tenant, demoted: demote, why },
        demote ? "tenant demoted to idle CPU class" : "tenant CPU class restored",
      );
      this.#onChange?.(tenant, demote, why);
    }
    for (const n of [...this.#tracked.keys()]) if (!seen.has(n)) this.#tracked.delete(n);
  }
}

async function isDemoted(dir: string): Promise<boolean> {
  const idle = await readFile(join(dir, "cpu.idle"), "utf8").catch(() => undefined);
  if (idle !== undefined) return idle.trim() === "1";
  const shares = await readFile(join(dir, "cpu.shares"), "utf8").catch(() => undefined);
  if (shares !== undefined) return Number(shares.trim()) <= 2;
  const weight = await readFile(join(dir, "cpu.weight"), "utf8").catch(() => undefined);
  return weight !== undefined && Number(weight.trim()) <= 1;
}

/** Puts a cgroup in the idle class (or back); the lowest weight where cpu.idle is missing. */
export async function setIdle(dir: string, idle: boolean): Promise<void> {
  if (existsSync(join(dir, "cpu.idle"))) return writeFile(join(dir, "cpu.idle"), idle ? "1" : "0");
  if (existsSync(join(dir, "cpu.shares"))) return writeFile(join(dir, "cpu.shares"), idle ? "2" : "1024");
  if (existsSync(join(dir, "cpu.weight"))) return writeFile(join(dir, "cpu.weight"), idle ? "1" : "100");
  throw new Error(`${dir}: no cpu.idle, cpu.shares or cpu.weight`);
}
