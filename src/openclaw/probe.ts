import { ClawkeepError } from "../core/errors.ts";

export type ProbeResult = { ok: true } | { ok: false; reason: string };

/** One GET of a gateway health path; never throws. */
export async function probe(url: string, path = "/readyz", timeoutMs = 2000): Promise<ProbeResult> {
  try {
    const res = await fetch(new URL(path, url), { signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel();
    return res.status === 200 ? { ok: true } : { ok: false, reason: `${path} answered ${res.status}` };
  } catch (err) {
    return { ok: false, reason: `${path}: ${(err as Error).message}` };
  }
}

/**
 * Polls `/readyz` until it answers 200. Gives up early when `alive()` says the process is gone,
 * when the timeout passes, or when the signal aborts.
 */
export async function waitReady(
  url: string,
  opts: { timeoutMs: number; signal?: AbortSignal; alive?: () => Promise<boolean>; intervalMs?: number },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  let last = "not probed yet";
  while (Date.now() < deadline) {
    opts.signal?.throwIfAborted();
    const r = await probe(url);
    if (r.ok) return;
    last = r.reason;
    if (opts.alive && !(await opts.alive())) {
      throw new ClawkeepError("runtime_failed", `gateway exited before it was ready (last probe: ${last})`);
    }
    await new Promise((res) => setTimeout(res, opts.intervalMs ?? 100));
  }
  throw new ClawkeepError(
    "runtime_failed",
    `gateway not ready after ${Math.round(opts.timeoutMs / 1000)} s (last probe: ${last})`,
  );
}
