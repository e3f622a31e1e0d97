import { ClawkeepError } from "../core/errors.ts";

export type ProbeResult = { ok: true } | { ok: false; reason: string };

/**
 * One GET of a gateway health path; never throws. Redirects are not followed: the gateway is the
 * tenant's, and the control plane probes as root from the host's namespace, so a redirect it
 * followed would make the platform fetch whatever the tenant names (a 3xx is "not ready").
 */
export async function probe(url: string, path = "/readyz", timeoutMs = 2000): Promise<ProbeResult> {
  try {
    const res = await fetch(new URL(path, url), {
      signal: AbortSignal.timeout(timeoutMs),
      redirect: "manual",
    });
    await res.body?.cancel();
    return res.status === 200 ? { ok: true } : { ok: false, reason: `${path} answered ${res.status}` };
  } catch (err) {
    return { ok: false, reason: `${path}: ${(err as Error).message}` };
  }
}

/**
 * Polls `/readyz` every `intervalMs` (default 100) until it answers 200. Gives up early when
 * `alive()` says the process is gone, when the timeout passes, or when the signal aborts.
 * `alive()` is asked at most every `aliveEveryMs` (default 1000) and only after a failed probe:
 * a start takes ~15-30 s, and a driver's status (a runc call, /proc reads) on every probe costs
 * the starting gateway CPU for nothing.
 */
export async function waitReady(
  url: string,
  opts: {
    timeoutMs: number;
    signal?: AbortSignal;
    alive?: () => Promise<boolean>;
    intervalMs?: number;
    aliveEveryMs?: number;
  },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  const aliveEvery = opts.aliveEveryMs ?? 1000;
  let aliveAt = Date.now();
  let last = "not probed yet";
  while (Date.now() < deadline) {
    opts.signal?.throwIfAborted();
    const r = await probe(url);
    if (r.ok) return;
    last = r.reason;
    if (opts.alive && Date.now() - aliveAt >= aliveEvery) {
      aliveAt = Date.now();
      if (!(await opts.alive()))
        throw new ClawkeepError("runtime_failed", `gateway exited before it was ready (last probe: ${last})`);
    }
    await new Promise((res) => setTimeout(res, opts.intervalMs ?? 100));
  }
  throw new ClawkeepError(
    "runtime_failed",
    `gateway not ready after ${Math.round(opts.timeoutMs / 1000)} s (last probe: ${last})`,
  );
}
