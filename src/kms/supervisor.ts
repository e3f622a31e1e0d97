import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Logger } from "../lib/log.ts";
import { KmsClient } from "./client.ts";
import { kmsError } from "./errors.ts";

export interface KmsProcessOptions {
  /** The service's store directory. */
  dir: string;
  socket: string;
  /** Aborting it stops the service (as stop() does). */
  signal?: AbortSignal;
  rootKeyPath?: string;
  auditPath?: string;
  allowedUids?: number[];
  log?: Logger;
  /** How long one start may take to answer on its socket (default 30 s). */
  readyTimeoutMs?: number;
  /** Where the service's own log lines go: "inherit" (our stderr, the default) or "ignore". */
  output?: "inherit" | "ignore";
  /** Called with each restart after the service died (for tests and metrics). */
  onRestart?: (info: { code: number | null; signal: string | null; restarts: number }) => void;
}

export interface KmsProcess {
  socket: string;
  /** A client for the service; survives restarts (it reconnects). */
  client: KmsClient;
  /** The current child's pid (undefined while it is being restarted). */
  readonly pid: number | undefined;
  /** How many times the service was restarted after dying. */
  readonly restarts: number;
  /** Resolves once the current (or restarting) service answers on its socket. */
  ready(): Promise<void>;
  /** Stops the service (SIGTERM, then SIGKILL after 5 s) and does not restart it. Idempotent. */
  stop(): Promise<void>;
}

const MAIN = fileURLToPath(new URL("./main.ts", import.meta.url));

/** The argv that runs the service on this Node with tsx: what `npm start` and tests use. */
export function kmsCommand(
  o: Pick<KmsProcessOptions, "dir" | "socket" | "rootKeyPath" | "auditPath" | "allowedUids">,
): string[] {
  const argv = [
    process.execPath,
    "--import",
    import.meta.resolve("tsx"),
    MAIN,
    "serve",
    "--dir",
    o.dir,
    "--socket",
    o.socket,
  ];
  if (o.rootKeyPath) argv.push("--root-key", o.rootKeyPath);
  if (o.auditPath) argv.push("--audit", o.auditPath);
  for (const uid of o.allowedUids ?? []) argv.push("--allow-uid", String(uid));
  return argv;
}

/** Waits `ms`, or less when `signal` aborts. */
const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });

/**
 * Starts the key service as a child process, waits until its socket answers, and restarts it (with
 * backoff: 0.25 s doubling to 10 s, reset after 60 s of life) whenever it dies. The child exits by
 * itself when this process dies (its stdin pipe closes), so a killed control plane never leaves a
 * service holding the store. Throws when the first start fails, with the service's last output.
 */
export async function startKmsProcess(opts: KmsProcessOptions): Promise<KmsProcess> {
  const argv = [...kmsCommand(opts), "--exit-with-stdin"];
  const client = new KmsClient(opts.socket);
  const readyTimeoutMs = opts.readyTimeoutMs ?? 30_000;
  const stopper = new AbortController();
  let child: ChildProcess | undefined;
  let restarts = 0;
  let failures = 0;
  let tail = "";
  let readyP: Promise<void> = Promise.resolve();
  let stopping: Promise<void> | undefined;

  const spawnOnce = (): ChildProcess => {
    const c = spawn(argv[0]!, argv.slice(1), { stdio: ["pipe", "pipe", "pipe"], env: process.env });
    const keep = (d: Buffer) => {
      tail = (tail + d.toString("utf8")).slice(-4000);
      if (opts.output !== "ignore") process.stderr.write(d);
    };
    c.stdout!.on("data", keep);
    c.stderr!.on("data", keep);
    c.stdin!.on("error", () => {});
    return c;
  };

  const waitReady = async (c: ChildProcess): Promise<void> => {
    const deadline = Date.now() + readyTimeoutMs;
    let exited = c.exitCode !== null || c.signalCode !== null;
    const onExit = () => {
      exited = true;
    };
    c.once("exit", onExit);
    try {
      while (!stopper.signal.aborted) {
        if (exited) {
          throw kmsError(
            "unavailable",
            `the key service exited before it answered on ${opts.socket}:\n${tail.trim().split("\n").slice(-8).join("\n")}`,
          );
        }
        try {
          const h = await client.health();
          if (h.pid === c.pid) return;
        } catch {
          // Not up yet.
        }
        if (Date.now() > deadline) {
          throw kmsError(
            "unavailable",
            `the key service did not answer on ${opts.socket} within ${readyTimeoutMs} ms:\n${tail.trim().split("\n").slice(-8).join("\n")}`,
          );
        }
        await sleep(100, stopper.signal);
      }
    } finally {
      c.off("exit", onExit);
    }
  };

  const supervise = (c: ChildProcess) => {
    const startedAt = Date.now();
    c.once("exit", (code, signal) => {
      if (child === c) child = undefined;
      if (stopper.signal.aborted) return;
      if (Date.now() - startedAt > 60_000) failures = 0;
      const delay = Math.min(10_000, 250 * 2 ** failures);
      failures++;
      restarts++;
      opts.log?.warn({ code, signal, restartInMs: delay, restarts }, "key service died; restarting it");
      opts.onRestart?.({ code, signal, restarts });
      readyP = (async () => {
        await sleep(delay, stopper.signal);
        while (!stopper.signal.aborted) {
          const next = spawnOnce();
          child = next;
          supervise(next);
          try {
            await waitReady(next);
            return;
          } catch (err) {
            opts.log?.error({ err: (err as Error).message }, "key service restart failed");
            // supervise() of `next` schedules the next attempt when it exits.
            if (next.exitCode === null && next.signalCode === null) next.kill("SIGKILL");
            return;
          }
        }
      })();
    });
  };

  const first = spawnOnce();
  child = first;
  try {
    await waitReady(first);
  } catch (err) {
    stopper.abort();
    first.kill("SIGKILL");
    await client.close();
    throw err;
  }
  supervise(first);
  opts.log?.info({ pid: first.pid, socket: opts.socket }, "key service started");

  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      stopper.abort();
      await client.close();
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => c.once("exit", () => resolve()));
      c.kill("SIGTERM");
      const t = setTimeout(() => c.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(t);
    })();
    return stopping;
  };
  if (opts.signal) {
    if (opts.signal.aborted) await stop();
    else opts.signal.addEventListener("abort", () => void stop(), { once: true });
  }

  return {
    socket: opts.socket,
    client,
    get pid() {
      return child?.pid;
    },
    get restarts() {
      return restarts;
    },
    ready: () => readyP,
    stop,
  };
}
