import { existsSync } from "node:fs";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { basename, dirname, join, relative } from "node:path";
import type { Logger } from "pino";

/**
 * Noisy-neighbour guard: a tenant that spins at its CPU quota is demoted to the idle scheduling
 * class (cgroup `cpu.idle`) until it calms down, and the operator hears of it (tenant events). A
 * quota bounds how much CPU a tenant gets on average, not when; the idle class lets every other
 * tenant's runnable work go first.
 *
 * A demoted dedicated container also gets its plan's CPUs back (up to the host's: `quotas`), the
 * quota it starts with. In the idle class that is only CPU no one else wants, and it keeps the
 * tenant from being throttled: a quota in the idle class still runs the tenant in bursts on every
 * core at the start of each CFS period and stops it for the rest, and the neighbour's wake-ups in
 * that rhythm are what it paid. Measured on a 2-core VM (bench/sandbox.ts, B's /healthz p99 with A
 * spinning vs A idle, median of paired blocks): A demoted at its plan's 2 cores 1.01 and 1.06 in
 * two runs; demoted but held at 1 core 2.5 in both; not demoted 4.7.
 *
 * Signal: the cgroup's own throttling (cpu.stat nr_throttled / nr_periods). A tenant throttled in
 * at least `spinShare` of its periods over the last `spinSamples` intervals, and (where its CPU
 * time can be read) using at least `spinUse` of its steady quota on average over them, has been
 * spinning at its quota for that long: demoted. The CPU-time floor keeps a gateway's own short
 * bursts out (an idle OpenClaw gateway runs 1-3 s at up to 90 % of a core every ~100 s; with
 * more threads than its quota, a burst is throttled in most of its periods). A demoted tenant is
 * restored once calm for `calmSamples` intervals: with its quota lifted, when it used under
 * `calmUse` of its steady quota (its CPU time, cpuacct.usage or cpu.stat usage_usec; where that
 * cannot be read it is not lifted); otherwise, when it was throttled in under `calmShare` of its
 * periods. Start bursts are settled before they could count: a starting gateway runs with the
 * start quota and is rarely throttled.
 *
 * Where `cpu.idle` is missing (kernels before 5.15), the tenant's weight is lowered instead
 * (cpu.shares 2 on cgroup v1, cpu.weight 1 on v2), which helps less.
 */
export interface CpuGuardTarget {
  tenant: string;
  /** A dedicated container's cgroup, or a Starter pool tenant's. */
  kind: "container" | "pool";
  /** The tenant's cgroup directory in the cpu controller. */
  dir: string;
  /** cgroup v1: its directory in the cpuacct controller (v2 counts CPU time in cpu.stat). */
  cpuacctDir?: string;
}

/** A tenant's CPU quotas, in cores: its steady one, and the one it gets while demoted. */
export interface CpuQuotas {
  steady: number;
  demoted: number;
}

export interface CpuGuardPolicy {
  spinSamples: number;
  spinShare: number;
  calmSamples: number;
  calmShare: number;
  /** Where its CPU time is readable, a tenant spins only when it used at least this share of its steady quota. */
  spinUse: number;
  /** With its quota lifted, a demoted tenant is calm below this share of its steady quota. */
  calmUse: number;
}

export const DEFAULT_CPU_GUARD_POLICY: CpuGuardPolicy = {
  spinSamples: 5,
  spinShare: 0.5,
  calmSamples: 10,
  calmShare: 0.05,
  spinUse: 0.75,
  calmUse: 0.25,
};

/**
 * One interval's counts: CFS periods the cgroup ran in, how many of them ended throttled, and the
 * cores it used on average (where its CPU time is readable).
 */
export interface CpuInterval {
  periods: number;
  throttled: number;
  cores?: number;
}

/** What a window of intervals adds up to: the share of its periods that ended throttled, and the cores it used on average (where every interval has its CPU time). */
export interface CpuWindow {
  intervals: number;
  /** Every interval ran in at least one CFS period. */
  ranThroughout: boolean;
  throttledShare: number;
  cores: number | undefined;
}

export function summarize(w: readonly CpuInterval[]): CpuWindow {
  const periods = w.reduce((s, i) => s + i.periods, 0);
  const throttled = w.reduce((s, i) => s + i.throttled, 0);
  const cores = w.every((i) => i.cores !== undefined)
    ? w.reduce((s, i) => s + i.cores!, 0) / w.length
    : undefined;
  return {
    intervals: w.length,
    ranThroughout: w.every((i) => i.periods > 0),
    throttledShare: periods === 0 ? 0 : throttled / periods,
    cores: w.length === 0 ? undefined : cores,
  };
}

/**
 * The verdict on a tenant from its latest intervals (newest last). Pure.
 * "demote" and "restore" are changes; "keep" leaves it as it is. `quota`: the tenant's steady
 * quota (cores) where the guard knows it, and whether a demotion lifted it, in which case the
 * tenant is calm by its CPU time, not by throttling.
 */
export function judge(
  history: readonly CpuInterval[],
  demoted: boolean,
  p: CpuGuardPolicy,
  quota?: { steady: number; lifted: boolean },
): "demote" | "restore" | "keep" {
  const last = (n: number) => (history.length >= n ? summarize(history.slice(-n)) : undefined);
  if (!demoted) {
    const w = last(p.spinSamples);
    // Every interval must have run (a tenant idle for a while is not spinning) ...
    if (!w?.ranThroughout || w.throttledShare < p.spinShare) return "keep";
    // ... and, where its CPU time tells, at its quota on average: not a burst.
    if (quota && w.cores !== undefined && w.cores < p.spinUse * quota.steady) return "keep";
    return "demote";
  }
  const w = last(p.calmSamples);
  if (!w) return "keep";
  if (quota?.lifted) {
    // Without its CPU time it stays demoted: never restored on a guess.
    if (w.cores === undefined) return "keep";
    return w.cores < p.calmUse * quota.steady ? "restore" : "keep";
  }
  return w.throttledShare < p.calmShare ? "restore" : "keep";
}

/**
 * nr_periods and nr_throttled from a cpu.stat file (cgroup v1 and v2 name them alike), and on v2
 * the CPU time (usage_usec, as µs). Pure.
 */
export function parseCpuStat(
  text: string,
): { periods: number; throttled: number; usageUs?: number } | undefined {
  const get = (k: string) => {
    const m = new RegExp(`^${k} (\\d+)$`, "m").exec(text);
    return m ? Number(m[1]) : undefined;
  };
  const periods = get("nr_periods");
  const throttled = get("nr_throttled");
  const usageUs = get("usage_usec");
  if (periods === undefined || throttled === undefined) return undefined;
  return usageUs === undefined ? { periods, throttled } : { periods, throttled, usageUs };
}

/** The cpu controller's root: /sys/fs/cgroup/cpu on cgroup v1, /sys/fs/cgroup on v2. */
export function cpuControllerRoot(cgroupRoot = "/sys/fs/cgroup"): string {
  return existsSync(join(cgroupRoot, "cgroup.controllers")) ? cgroupRoot : join(cgroupRoot, "cpu");
}

/**
 * The tenants' cpu cgroups as the drivers lay them out: `<parent>/<tenant>` for dedicated
 * containers (cgroupsPath `/<parent>/<name>`), `<poolsParent>/<pool>/t-<tenant>` for Starter pools.
 * Missing directories are no tenants. On cgroup v1 (a `cpu` root) each target also names its
 * directory in the sibling `cpuacct` controller.
 */
export async function scanTenantCgroups(opts: {
  cpuRoot: string;
  containersParent?: string;
  poolsParent?: string;
}): Promise<CpuGuardTarget[]> {
  const acctRoot = basename(opts.cpuRoot) === "cpu" ? join(dirname(opts.cpuRoot), "cpuacct") : undefined;
  const target = (tenant: string, kind: CpuGuardTarget["kind"], dir: string): CpuGuardTarget =>
    acctRoot
      ? { tenant, kind, dir, cpuacctDir: join(acctRoot, relative(opts.cpuRoot, dir)) }
      : { tenant, kind, dir };
  const dirs = async (d: string) =>
    (await readdir(d, { withFileTypes: true }).catch(() => []))
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
  const out: CpuGuardTarget[] = [];
  if (opts.containersParent) {
    const base = join(opts.cpuRoot, opts.containersParent);
    for (const n of await dirs(base)) out.push(target(n, "container", join(base, n)));
  }
  if (opts.poolsParent) {
    const base = join(opts.cpuRoot, opts.poolsParent);
    for (const pool of await dirs(base))
      for (const n of await dirs(join(base, pool)))
        if (n.startsWith("t-")) out.push(target(n.slice(2), "pool", join(base, pool, n)));
  }
  return out;
}

interface Tracked {
  dir: string;
  last: { periods: number; throttled: number; usageNs: number | undefined; at: number } | undefined;
  history: CpuInterval[];
  demoted: boolean;
}

export class CpuGuard {
  readonly #targets: () => Promise<CpuGuardTarget[]>;
  readonly #intervalMs: number;
  readonly #policy: CpuGuardPolicy;
  readonly #log: Logger | undefined;
  readonly #onChange: ((tenant: string, demoted: boolean, why: string) => void) | undefined;
  readonly #quotas: ((t: CpuGuardTarget) => CpuQuotas | undefined) | undefined;
  readonly #now: () => number;
  readonly #tracked = new Map<string, Tracked>();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(opts: {
    targets: () => Promise<CpuGuardTarget[]>;
    intervalMs?: number;
    policy?: Partial<CpuGuardPolicy>;
    log?: Logger;
    onChange?: (tenant: string, demoted: boolean, why: string) => void;
    /** A tenant's quotas where demotion changes its quota (none: only its class changes). */
    quotas?: (t: CpuGuardTarget) => CpuQuotas | undefined;
    /** Milliseconds, for the cores a tenant used between ticks (tests pass their own). */
    now?: () => number;
  }) {
    this.#quotas = opts.quotas;
    this.#now = opts.now ?? (() => performance.now());
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
    for (const target of targets) {
      const { tenant, dir } = target;
      seen.add(tenant);
      let t = this.#tracked.get(tenant);
      if (!t || t.dir !== dir) {
        t = { dir, last: undefined, history: [], demoted: await isDemoted(dir) };
        this.#tracked.set(tenant, t);
      }
      const stat = parseCpuStat(await readFile(join(dir, "cpu.stat"), "utf8").catch(() => ""));
      if (!stat) continue;
      const now = { ...stat, usageNs: await usageNs(target, stat.usageUs), at: this.#now() };
      if (t.last) {
        const interval: CpuInterval = {
          periods: Math.max(0, now.periods - t.last.periods),
          throttled: Math.max(0, now.throttled - t.last.throttled),
        };
        if (now.usageNs !== undefined && t.last.usageNs !== undefined && now.at > t.last.at)
          interval.cores = Math.max(0, now.usageNs - t.last.usageNs) / 1e6 / (now.at - t.last.at);
        t.history.push(interval);
        const keep = Math.max(this.#policy.spinSamples, this.#policy.calmSamples);
        if (t.history.length > keep) t.history.splice(0, t.history.length - keep);
      }
      t.last = now;
      const q = this.#quotas?.(target);
      const liftable = q !== undefined && q.demoted !== q.steady;
      // Lifted only where its CPU time is readable: unthrottled, that is how its calm is told.
      const lifts = liftable && now.usageNs !== undefined;
      const quota = q && { steady: q.steady, lifted: lifts };
      const verdict = judge(t.history, t.demoted, this.#policy, quota);
      if (verdict === "keep") continue;
      const window = summarize(
        t.history.slice(-(verdict === "demote" ? this.#policy.spinSamples : this.#policy.calmSamples)),
      );
      const demote = verdict === "demote";
      try {
        // Never a moment with the lifted quota outside the idle class: class first on the way
        // down, quota first on the way back.
        if (demote) {
          await setIdle(dir, true);
          if (lifts) await setQuota(dir, q.demoted);
        } else {
          if (liftable) await setQuota(dir, q.steady);
          await setIdle(dir, false);
        }
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
      const used = window.cores === undefined ? "" : `, ${window.cores.toFixed(2)} cores on average`;
      const why = demote
        ? `throttled in ${Math.round(window.throttledShare * 100)} % of its CPU periods over ${window.intervals} intervals${used}: spinning at its quota${lifts ? ` (idle class, at ${q.demoted} cores: only CPU no one else wants)` : ""}`
        : `calm for ${window.intervals} intervals (throttled in ${Math.round(window.throttledShare * 100)} % of its periods${used})`;
      this.#log?.warn(
        { tenant, demoted: demote, why },
        demote ? "tenant demoted to idle CPU class" : "tenant CPU class restored",
      );
      this.#onChange?.(tenant, demote, why);
    }
    for (const n of [...this.#tracked.keys()]) if (!seen.has(n)) this.#tracked.delete(n);
  }
}

/** A cgroup's CPU time in ns: cpu.stat's usage_usec on v2, cpuacct.usage on v1; undefined if neither. */
async function usageNs(t: CpuGuardTarget, usageUs: number | undefined): Promise<number | undefined> {
  if (usageUs !== undefined) return usageUs * 1000;
  if (!t.cpuacctDir) return undefined;
  const text = await readFile(join(t.cpuacctDir, "cpuacct.usage"), "utf8").catch(() => "");
  return /^\d+\s*$/.test(text) ? Number(text) : undefined;
}

/** Sets a cgroup's CPU quota (cores) in its current CFS period: cpu.max on v2, cpu.cfs_quota_us on v1. */
export async function setQuota(dir: string, cores: number): Promise<void> {
  const max = await readFile(join(dir, "cpu.max"), "utf8").catch(() => undefined);
  if (max !== undefined) {
    const period = Number(max.trim().split(/\s+/)[1] ?? 100_000);
    return writeFile(join(dir, "cpu.max"), `${Math.round(cores * period)} ${period}`);
  }
  const period = Number((await readFile(join(dir, "cpu.cfs_period_us"), "utf8")).trim());
  return writeFile(join(dir, "cpu.cfs_quota_us"), String(Math.round(cores * period)));
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
