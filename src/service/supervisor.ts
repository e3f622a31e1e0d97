import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Logger } from "../lib/log.ts";
import { ServiceError } from "./errors.ts";

/**
 * One way to run a local service as a child process: spawn it (argv array, never a shell string),
 * wait until a readiness probe says it is up, restart it with exponential backoff when it dies
 * (optional), and stop it with SIGTERM, then SIGKILL after a grace period.
 */

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One spawned child, as a readiness probe sees it. */
export interface Child {
  readonly process: ChildProcess;
  readonly pid: number | undefined;
  /**
   * Settles once the child has ended and its stdio is closed (so every stdout line has been
   * delivered first). A child that could not be spawned settles with code and signal null.
   */
  readonly exited: Promise<ExitInfo>;
  /** Whether `exited` has settled. */
  readonly ended: boolean;
  /** The last `lines` lines (default 8) of what it wrote to its output (stderr; stdout too with `stdout: "output"`). */
  tail(lines?: number): string;
  /** Calls `fn` with each line it writes to stdout (only with `stdout: "lines"`). */
  onLine(fn: (line: string) => void): void;
}

export type SupervisorState = "starting" | "running" | "restarting" | "failed" | "stopped";

export interface RestartPolicy {
  /** The first restart waits this long; each further one twice as long, up to `maxMs`. */
  initialMs: number;
  maxMs: number;
  /** A child that lived this long resets the backoff (default 60000). */
  resetAfterMs?: number;
  /** Give up (state "failed") after this many restarts in a row that did not reset (default: never). */
  maxRestarts?: number;
}

export interface SuperviseOptions<T> {
  /** What the process is called in log lines and errors: "key service", "model server". */
  name: string;
  argv: readonly string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /**
   * "pipe" keeps a pipe on the child's stdin that closes when this process dies: a child that
   * exits when its stdin closes (`--exit-with-stdin`) never outlives its supervisor. Default "ignore".
   */
  stdin?: "pipe" | "ignore";
  /** "lines": stdout is read line by line for the probe (Child.onLine); "output": treated as stderr. Default "lines". */
  stdout?: "lines" | "output";
  /** Where the child's output goes besides its tail: our stderr (default), nowhere, or a function. */
  output?: "inherit" | "ignore" | ((chunk: string) => void);
  /** How much output the tail keeps, in characters (default 16384). */
  tailChars?: number;
  /**
   * Resolves once the child is ready, with what the service reports (its listening line, its
   * health); rejects with why not. It must settle when the child exits (race `child.exited`).
   */
  ready: (child: Child, signal: AbortSignal) => Promise<T>;
  /** How long one start may take to become ready (the probe is then aborted). */
  readyTimeoutMs: number;
  /** The error of a start that timed out (default: ServiceError start_failed with the tail). */
  timeoutError?: (ms: number, child: Child) => Error;
  /** The error ready() rejects with once stopped (default: ServiceError stopped). */
  stoppedError?: () => Error;
  /** Restart the child when it dies. Unset: it is not restarted and the supervisor ends with it. */
  restart?: RestartPolicy;
  /** A failed start a restart cannot fix (a corrupt model): no more restarts, state "failed". */
  isFatal?: (err: unknown) => boolean;
  /** SIGTERM, then SIGKILL after this long (default 5000). */
  graceMs?: number;
  /** Called each time a child became ready (the first start included: `restarts` is 0). */
  onReady?: (value: T, info: { pid: number | undefined; restarts: number }) => void;
  /** Called with each restart after the child died, before the backoff wait. */
  onRestart?: (info: ExitInfo & { restarts: number; delayMs: number; tail: string }) => void;
  /** Called once when the supervisor gives up (a fatal start, or too many restarts). */
  onFatal?: (err: Error) => void;
  /** Aborting it stops the child, as stop() does. */
  signal?: AbortSignal;
  log?: Logger;
}

export interface Supervised<T> {
  /** The current child's pid (undefined between a death and the restart). */
  readonly pid: number | undefined;
  /** What the latest ready start reported. */
  readonly value: T;
  readonly state: SupervisorState;
  /** How many times the child was restarted after dying. */
  readonly restarts: number;
  /** Why it failed for good (state "failed"). */
  readonly failure: Error | undefined;
  /**
   * Resolves when the child is ready (at once while running, after the restart while restarting).
   * Rejects with the failure once failed, or with stoppedError() once stopped.
   */
  ready(): Promise<void>;
  /** The current (or last) child's output tail. */
  tail(lines?: number): string;
  /**
   * Settles once supervision has ended (stopped, failed, or without `restart`, the child exited)
   * with the last child's exit.
   */
  readonly exited: Promise<ExitInfo>;
  /** SIGTERM, then SIGKILL after `graceMs`; no restart after. Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * The line a child that listens on TCP prints on stdout once it does (one JSON object): the
 * readiness probes of the egress proxy, the relay (listeningLine()) and the model server wait
 * for it; each service adds its own fields.
 */
export interface ListeningLineBase {
  event: "listening";
  pid: number;
  url: string;
  host: string;
  port: number;
}

/** The repository root: the working directory in which a child's `--import tsx` resolves. */
export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/**
 * The argv that runs the TypeScript entry point `main` (a path) with tsx on `nodePath` (default:
 * this process's node), followed by `args`. Start it with `cwd: REPO_ROOT`, where `tsx` resolves.
 */
export function tsxArgv(main: string, args: readonly string[], nodePath = process.execPath): string[] {
  return [nodePath, "--import", "tsx", main, ...args];
}

/**
 * The readiness probe of a child that prints its ListeningLineBase line on stdout once it
 * listens: resolves with the first stdout line that is JSON with `event: "listening"` (any other
 * line is ignored); rejects with `failed(why, cause)` when the child cannot be spawned or exits
 * before it printed one.
 */
export function listeningLine<T extends ListeningLineBase>(
  c: Child,
  failed: (why: string, cause?: unknown) => Error,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    c.process.once("error", (err) => reject(failed(err.message, err)));
    c.onLine((line) => {
      try {
        const msg = JSON.parse(line) as Partial<ListeningLineBase>;
        if (msg.event === "listening") resolve(msg as T);
      } catch {
        // Not ours: ignore.
      }
    });
    void c.exited.then(({ code }) => reject(failed(`exited with ${code} before it listened`)));
  });
}

/** The child's last `lines` lines of output after a colon and a line break, for an error message; "" when it wrote none. */
export function tailSuffix(c: Child, lines?: number): string {
  const t = c.tail(lines);
  return t ? `:\n${t}` : "";
}

/** What a supervised service's handle reads from its supervisor as it is now. */
export interface SupervisedFields {
  /** The current child's pid (undefined between a death and the restart). */
  readonly pid: number | undefined;
  /** How many times the child was restarted after dying. */
  readonly restarts: number;
  readonly state: SupervisorState;
}

/**
 * Gives `fields` read-only getters that always read `sup` as it is now: pid, restarts and state,
 * and each of `valueKeys` from the latest ready start's value (a restarted child's url or port).
 * Returns `fields` itself, so getters already in it stay live.
 */
export function liveHandle<T, K extends keyof T & string, F extends object>(
  sup: Supervised<T>,
  valueKeys: readonly K[],
  fields: F,
): F & SupervisedFields & { readonly [P in K]: T[P] } {
  const props: PropertyDescriptorMap = {
    pid: { get: () => sup.pid, enumerable: true },
    restarts: { get: () => sup.restarts, enumerable: true },
    state: { get: () => sup.state, enumerable: true },
  };
  for (const k of valueKeys) props[k] = { get: () => sup.value[k], enumerable: true };
  return Object.defineProperties(fields, props) as F & SupervisedFields & { readonly [P in K]: T[P] };
}

/** Waits `ms`, or less when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {}); // Observed through ready(); never an unhandled rejection.
  return { promise, resolve, reject };
}

function spawnChild(o: SuperviseOptions<unknown>): Child {
  const [cmd, ...args] = o.argv;
  if (!cmd) throw new ServiceError("start_failed", `${o.name}: empty command`);
  const proc = spawn(cmd, args, {
    stdio: [o.stdin ?? "ignore", "pipe", "pipe"],
    env: o.env ?? process.env,
    ...(o.cwd ? { cwd: o.cwd } : {}),
  });
  const max = o.tailChars ?? 16_384;
  let tail = "";
  const keep = (d: string) => {
    tail = (tail + d).slice(-max);
    if (typeof o.output === "function") o.output(d);
    else if (o.output !== "ignore") process.stderr.write(d);
  };
  proc.stderr?.setEncoding("utf8").on("data", keep);
  const listeners: Array<(line: string) => void> = [];
  if (o.stdout === "output") proc.stdout?.setEncoding("utf8").on("data", keep);
  else {
    let buf = "";
    proc.stdout?.setEncoding("utf8").on("data", (d: string) => {
      buf += d;
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        for (const fn of listeners) fn(line);
      }
    });
  }
  proc.stdin?.on("error", () => {});
  let ended = false;
  const exited = new Promise<ExitInfo>((resolve) => {
    // "close", not "exit": stdout is fully read by then, so a last line is never missed.
    proc.once("close", (code, signal) => resolve({ code, signal }));
    proc.once("error", () => resolve({ code: null, signal: null }));
  }).then((e) => {
    ended = true;
    return e;
  });
  return {
    process: proc,
    get pid() {
      return proc.pid;
    },
    exited,
    get ended() {
      return ended;
    },
    tail: (lines = 8) => tail.trim().split("\n").slice(-lines).join("\n"),
    onLine: (fn) => {
      listeners.push(fn);
    },
  };
}

/** SIGTERM, then SIGKILL after `graceMs` (0: SIGKILL at once); resolves once it has exited. */
async function kill(c: Child, graceMs: number): Promise<void> {
  const p = c.process;
  if (c.ended) return;
  if (p.exitCode === null && p.signalCode === null) {
    p.kill(graceMs === 0 ? "SIGKILL" : "SIGTERM");
  }
  const t = graceMs === 0 ? undefined : setTimeout(() => p.kill("SIGKILL"), graceMs);
  await c.exited;
  clearTimeout(t);
}

/**
 * Starts `opts.argv` and returns once `opts.ready` resolved. Throws the probe's error (or
 * timeoutError) when the first start fails; the child is killed then. With `restart`, a child
 * that dies is started again after a backoff (`initialMs` doubling to `maxMs`, reset after
 * `resetAfterMs` of life); a restart that fails is killed and retried the same way, unless
 * `isFatal` says it cannot succeed (state "failed", onFatal, no more attempts).
 */
export async function supervise<T>(opts: SuperviseOptions<T>): Promise<Supervised<T>> {
  opts.signal?.throwIfAborted();
  const graceMs = opts.graceMs ?? 5_000;
  const stopper = new AbortController();
  const log = opts.log;
  let child: Child | undefined;
  let last: Child | undefined;
  let value: T;
  let state: SupervisorState = "starting";
  let failure: Error | undefined;
  let restarts = 0;
  let readiness = deferred();
  let stopping: Promise<void> | undefined;
  let started = false;
  /** Rejects whoever waits now, and every later ready() call. */
  const rejectReady = (err: unknown) => {
    readiness.reject(err);
    readiness = deferred();
    readiness.reject(err);
  };
  let markExited!: (e: ExitInfo) => void;
  const exited = new Promise<ExitInfo>((resolve) => {
    markExited = resolve;
  });

  /** Spawns one child and waits for it; rejects (with the child killed) when it is not ready. */
  const startOne = async (): Promise<{ c: Child; v: T }> => {
    const c = spawnChild(opts as SuperviseOptions<unknown>);
    child = c;
    last = c;
    const probeAbort = new AbortController();
    const onStop = () => probeAbort.abort();
    stopper.signal.addEventListener("abort", onStop, { once: true });
    let timer: NodeJS.Timeout | undefined;
    try {
      const v = await Promise.race([
        opts.ready(c, probeAbort.signal),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            probeAbort.abort();
            reject(
              opts.timeoutError?.(opts.readyTimeoutMs, c) ??
                new ServiceError(
                  "start_failed",
                  `${opts.name} was not ready within ${opts.readyTimeoutMs} ms${tailSuffix(c)}`,
                ),
            );
          }, opts.readyTimeoutMs);
        }),
        new Promise<never>((_, reject) => {
          const stopped = () =>
            reject(opts.stoppedError?.() ?? new ServiceError("stopped", `${opts.name} was stopped`));
          if (stopper.signal.aborted) stopped();
          else stopper.signal.addEventListener("abort", stopped, { once: true });
        }),
      ]);
      return { c, v };
    } catch (err) {
      probeAbort.abort();
      await kill(c, 0);
      if (child === c) child = undefined;
      throw err;
    } finally {
      clearTimeout(timer);
      stopper.signal.removeEventListener("abort", onStop);
    }
  };

  const giveUp = (err: Error) => {
    state = "failed";
    failure = err;
    rejectReady(err);
    log?.error({ err: err.message }, `${opts.name} failed; not restarting it`);
    opts.onFatal?.(err);
    markExited({ code: null, signal: null });
  };

  const stop = (g = graceMs): Promise<void> => {
    stopping ??= (async () => {
      stopper.abort();
      if (state !== "failed") state = "stopped";
      rejectReady(opts.stoppedError?.() ?? new ServiceError("stopped", `${opts.name} was stopped`));
      const c = child;
      if (c) await kill(c, g);
      if (started) await exited;
    })();
    return stopping;
  };
  opts.signal?.addEventListener("abort", () => void stop(), { once: true });

  let first: { c: Child; v: T };
  try {
    first = await startOne();
  } catch (err) {
    stopper.abort();
    state = "failed";
    throw err;
  }
  started = true;
  value = first.v;
  state = "running";
  readiness.resolve();
  opts.onReady?.(value, { pid: first.c.pid, restarts: 0 });

  void (async () => {
    let current = first.c;
    let startedAt = Date.now();
    let failures = 0;
    for (;;) {
      const exit = await current.exited;
      if (child === current) child = undefined;
      if (stopper.signal.aborted) return markExited(exit);
      const policy = opts.restart;
      if (!policy) {
        state = "stopped";
        rejectReady(opts.stoppedError?.() ?? new ServiceError("stopped", `${opts.name} exited`));
        return markExited(exit);
      }
      if (Date.now() - startedAt > (policy.resetAfterMs ?? 60_000)) failures = 0;
      if (policy.maxRestarts !== undefined && failures >= policy.maxRestarts) {
        return giveUp(
          new ServiceError(
            "start_failed",
            `${opts.name} died ${failures + 1} times in a row (${exit.signal ?? `status ${exit.code}`})${tailSuffix(current)}`,
          ),
        );
      }
      const delayMs = Math.min(policy.maxMs, policy.initialMs * 2 ** failures);
      failures++;
      restarts++;
      if (state !== "restarting") readiness = deferred();
      state = "restarting";
      log?.warn(
        { code: exit.code, signal: exit.signal, restartInMs: delayMs, restarts, stderr: current.tail(20) },
        `${opts.name} died; restarting it`,
      );
      opts.onRestart?.({ ...exit, restarts, delayMs, tail: current.tail(20) });
      await sleep(delayMs, stopper.signal);
      if (stopper.signal.aborted) return markExited(exit);
      try {
        const next = await startOne();
        current = next.c;
        value = next.v;
        startedAt = Date.now();
        state = "running";
        readiness.resolve();
        log?.info({ pid: next.c.pid, restarts }, `${opts.name} restarted`);
        opts.onReady?.(value, { pid: next.c.pid, restarts });
      } catch (err) {
        if (stopper.signal.aborted) return markExited(exit);
        const e = err instanceof Error ? err : new Error(String(err));
        if (opts.isFatal?.(e)) return giveUp(e);
        log?.error({ err: e.message }, `${opts.name} restart failed`);
        // The failed child is gone; the loop backs off again from its exit.
        current = last ?? current;
      }
    }
  })();

  return {
    get pid() {
      return child?.pid;
    },
    get value() {
      return value;
    },
    get state() {
      return state;
    },
    get restarts() {
      return restarts;
    },
    get failure() {
      return failure;
    },
    ready: () => readiness.promise,
    tail: (lines) => last?.tail(lines) ?? "",
    exited,
    stop,
  };
}
