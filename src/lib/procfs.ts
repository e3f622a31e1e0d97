import { readdir, readFile } from "node:fs/promises";

/** Facts about one process read from /proc; undefined when it does not exist (or is a zombie). */
export interface ProcInfo {
  pid: number;
  /** Start time in clock ticks since boot: with the pid it names one process for good. */
  startTicks: number;
  uid: number;
  state: string;
}

export async function procInfo(pid: number): Promise<ProcInfo | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // comm may contain spaces and parentheses: fields start after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const state = rest[0] ?? "?";
    const startTicks = Number(rest[19]);
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const uidLine = /^Uid:\s+(\d+)/m.exec(status);
    if (state === "Z" || state === "X") return undefined;
    return { pid, startTicks, uid: Number(uidLine?.[1] ?? -1), state };
  } catch {
    return undefined;
  }
}

/** Pids of every live process whose real uid is `uid`. */
export async function pidsOfUid(uid: number): Promise<number[]> {
  const out: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = await readFile(`/proc/${entry}/status`, "utf8");
      const m = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status);
      const st = /^State:\s+(\S)/m.exec(status)?.[1];
      if (m && (Number(m[1]) === uid || Number(m[2]) === uid) && st !== "Z") out.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return out;
}

export function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}
