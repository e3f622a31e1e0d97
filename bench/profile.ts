/**
 * Profiling helpers for the benchmarks: where the host's CPU went during a window (the gateway
 * being started, the control plane and its helper processes, everything else on the machine), and
 * whether a cgroup's CPU quota throttled it. Reads /proc and cgroup v1 files only; changes nothing.
 */
import { chown, mkdir, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { InstancePaths } from "../src/openclaw/config.ts";

/** Linux x86_64 USER_HZ. */
const TICK_MS = 10;

interface ProcSample {
  ppid: number;
  uid: number;
  startTicks: number;
  /** utime + stime + cutime + cstime, in ms. */
  cpuMs: number;
  /** stime + cstime (kernel), in ms. */
  sysMs: number;
  /** Minor page faults, own and reaped children's. */
  minflt: number;
}

export interface CpuSnapshot {
  at: number;
  /** Busy CPU time of the whole host (all cores), ms. */
  hostBusyMs: number;
  procs: Map<number, ProcSample>;
}

async function hostBusyMs(): Promise<number> {
  const line = (await readFile("/proc/stat", "utf8")).split("\n", 1)[0]!;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  const busy = f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!;
  return busy * TICK_MS;
}

async function procSample(pid: string): Promise<ProcSample | undefined> {
  try {
    const [stat, status] = await Promise.all([
      readFile(`/proc/${pid}/stat`, "utf8"),
      readFile(`/proc/${pid}/status`, "utf8"),
    ]);
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? -1);
    const n = (i: number) => Number(rest[i]);
    // fields after comm: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14) ... starttime(19)
    return {
      ppid: n(1),
      uid,
      startTicks: n(19),
      cpuMs: (n(11) + n(12) + n(13) + n(14)) * TICK_MS,
      sysMs: (n(12) + n(14)) * TICK_MS,
      minflt: n(7) + n(8),
    };
  } catch {
    return undefined;
  }
}

/** Every process's CPU time so far, and the host's. */
export async function cpuSnapshot(): Promise<CpuSnapshot> {
  const procs = new Map<number, ProcSample>();
  const entries = (await readdir("/proc")).filter((e) => /^\d+$/.test(e));
  await Promise.all(
    entries.map(async (e) => {
      const s = await procSample(e);
      if (s) procs.set(Number(e), s);
    }),
  );
  return { at: performance.now(), hostBusyMs: await hostBusyMs(), procs };
}

export interface CpuSplit {
  wallMs: number;
  /** Average busy cores of the whole host over the window. */
  hostCores: number;
  /** CPU-ms of the processes of `gatewayUids` (the gateway and its reaped children). */
  gatewayMs: number;
  /** The part of gatewayMs spent in the kernel. */
  gatewaySysMs: number;
  /** Minor page faults of the gateway's processes (how much code and data it touched). */
  gatewayMinflt: number;
  /** CPU-ms of this process and its descendants (KMS, egress proxy, runc, nft, ...), gateways excluded. */
  controlMs: number;
  /** The rest of the host's busy time: other work on the machine, kernel threads (fscrypt, I/O). */
  otherMs: number;
}

/**
 * Splits the CPU time between two snapshots: the gateway (by uid), this process with everything
 * it started (by parentage, gateways excluded), and everything else. Processes that began and
 * ended inside the window count only where a live parent reaped them.
 */
export function splitCpu(a: CpuSnapshot, b: CpuSnapshot, gatewayUids: number[]): CpuSplit {
  const delta = (pid: number, s: ProcSample, k: "cpuMs" | "sysMs" | "minflt" = "cpuMs") => {
    const old = a.procs.get(pid);
    return old && old.startTicks === s.startTicks ? s[k] - old[k] : s[k];
  };
  const gw = new Set(gatewayUids);
  const mine = new Set<number>([process.pid]);
  // Descendants of this process (parents appear before children often, not always: iterate).
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, s] of b.procs) {
      if (!mine.has(pid) && mine.has(s.ppid) && !gw.has(s.uid)) {
        mine.add(pid);
        grew = true;
      }
    }
  }
  let gatewayMs = 0;
  let gatewaySysMs = 0;
  let gatewayMinflt = 0;
  let controlMs = 0;
  for (const [pid, s] of b.procs) {
    if (gw.has(s.uid)) {
      gatewayMs += delta(pid, s);
      gatewaySysMs += delta(pid, s, "sysMs");
      gatewayMinflt += delta(pid, s, "minflt");
    } else if (mine.has(pid)) controlMs += delta(pid, s);
  }
  const wallMs = b.at - a.at;
  const busy = b.hostBusyMs - a.hostBusyMs;
  return {
    wallMs,
    hostCores: busy / wallMs,
    gatewayMs,
    gatewaySysMs,
    gatewayMinflt,
    controlMs,
    otherMs: Math.max(0, busy - gatewayMs - controlMs),
  };
}

export function formatSplit(s: CpuSplit): string {
  const sec = (ms: number) => (ms / 1000).toFixed(1);
  return `cpu-s gateway ${sec(s.gatewayMs)} (kernel ${sec(s.gatewaySysMs)}), control plane ${sec(s.controlMs)}, other ${sec(s.otherMs)} (host ${s.hostCores.toFixed(2)} cores busy)`;
}

/** The cgroup v1 cpu controller's throttling counters of the cgroup `pid` is in, if any. */
export async function cpuThrottling(
  pid: number,
): Promise<{ cgroup: string; periods: number; throttled: number; throttledMs: number } | undefined> {
  try {
    const line = (await readFile(`/proc/${pid}/cgroup`, "utf8"))
      .split("\n")
      .find((l) => /^\d+:(cpu|cpu,cpuacct|cpuacct,cpu):/.test(l));
    if (!line) return undefined;
    const path = line.slice(line.indexOf(":", line.indexOf(":") + 1) + 1);
    const mount = line.split(":")[1]!;
    const text = await readFile(`/sys/fs/cgroup/${mount}${path}/cpu.stat`, "utf8");
    const v = (k: string) => Number(new RegExp(`^${k} (\\d+)`, "m").exec(text)?.[1] ?? 0);
    return {
      cgroup: path,
      periods: v("nr_periods"),
      throttled: v("nr_throttled"),
      throttledMs: v("throttled_time") / 1e6,
    };
  } catch {
    return undefined;
  }
}

/** Named moments since a start, in ms. */
export class Timeline {
  readonly t0 = performance.now();
  readonly marks = new Map<string, number>();

  /** Records the first time `name` happens. */
  mark(name: string, at = performance.now()): void {
    if (!this.marks.has(name)) this.marks.set(name, at - this.t0);
  }

  format(order: string[]): string {
    return order
      .filter((n) => this.marks.has(n))
      .map((n) => `${n} ${(this.marks.get(n)! / 1000).toFixed(2)}`)
      .join(", ");
  }
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

/**
 * A bare gateway's directories under `dir` (state, home, tmp, workspace; 0700, owned by `uid`) and
 * the paths its config names, as the benchmarks' bare `openclaw gateway run` starts use them.
 */
export async function bareGatewayDirs(dir: string, uid: number): Promise<InstancePaths> {
  const paths = {
    stateDir: join(dir, "state"),
    home: join(dir, "home"),
    tmpDir: join(dir, "tmp"),
    workspaceDir: join(dir, "workspace"),
    configPath: join(dir, "state", "openclaw.json"),
    logFile: join(dir, "state", "logs", "openclaw.log"),
  };
  for (const d of [dir, paths.stateDir, paths.home, paths.tmpDir, paths.workspaceDir]) {
    await mkdir(d, { recursive: true, mode: 0o700 });
    await chown(d, uid, uid);
  }
  return paths;
}
