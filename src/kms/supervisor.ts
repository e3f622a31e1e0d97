import { fileURLToPath } from "node:url";
import type { Logger } from "../lib/log.ts";
import { stopOnAbort } from "../service/stop.ts";
import {
  type Child,
  liveHandle,
  type Supervised,
  type SupervisedFields,
  sleep,
  supervise,
} from "../service/supervisor.ts";
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

/** pid, restarts and state are the supervisor's (service/supervisor.ts). */
export interface KmsProcess extends SupervisedFields {
  socket: string;
  /** A client for the service; survives restarts (it reconnects). */
  client: KmsClient;
  /** Resolves once the current (or restarting) service answers on its socket; rejects once stopped. */
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

/**
 * Starts the key service as a child process, waits until its socket answers, and restarts it (with
 * backoff: 0.25 s doubling to 10 s, reset after 60 s of life) whenever it dies. The child exits by
 * itself when this process dies (its stdin pipe closes), so a killed control plane never leaves a
 * service holding the store. Throws when the first start fails, with the service's last output.
 * The spawning, restarting and stopping are the service kit's (src/service/supervisor.ts).
 */
export async function startKmsProcess(opts: KmsProcessOptions): Promise<KmsProcess> {
  const client = new KmsClient(opts.socket);
  const readyTimeoutMs = opts.readyTimeoutMs ?? 30_000;
  const withTail = (c: Child) => `:\n${c.tail(8)}`;

  /** Ready once the service answers its health call as this child (not a predecessor). */
  const ready = async (c: Child, signal: AbortSignal): Promise<void> => {
    while (!signal.aborted) {
      if (c.ended) {
        throw kmsError(
          "unavailable",
          `the key service exited before it answered on ${opts.socket}${withTail(c)}`,
        );
      }
      try {
        const h = await client.health({ signal });
        if (h.pid === c.pid) return;
      } catch {
        // Not up yet.
      }
      await sleep(100, signal);
    }
  };

  let proc: Supervised<void>;
  try {
    proc = await supervise<void>({
      name: "key service",
      argv: [...kmsCommand(opts), "--exit-with-stdin"],
      stdin: "pipe",
      stdout: "output",
      output: opts.output ?? "inherit",
      tailChars: 4000,
      ready,
      readyTimeoutMs,
      timeoutError: (ms, c) =>
        kmsError(
          "unavailable",
          `the key service did not answer on ${opts.socket} within ${ms} ms${withTail(c)}`,
        ),
      restart: { initialMs: 250, maxMs: 10_000, resetAfterMs: 60_000 },
      graceMs: 5000,
      ...(opts.log ? { log: opts.log } : {}),
      onRestart: (i) => opts.onRestart?.({ code: i.code, signal: i.signal, restarts: i.restarts }),
    });
  } catch (err) {
    await client.close();
    throw err;
  }
  opts.log?.info({ pid: proc.pid, socket: opts.socket }, "key service started");

  const stop = await stopOnAbort(async () => {
    await client.close();
    await proc.stop();
  }, opts.signal);

  return liveHandle(proc, [], { socket: opts.socket, client, ready: () => proc.ready(), stop });
}
