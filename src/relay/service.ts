import { fileURLToPath } from "node:url";
import type { Logger } from "../lib/log.ts";
import {
  type Child,
  type ListeningLineBase,
  listeningLine,
  liveHandle,
  REPO_ROOT,
  type RestartPolicy,
  type SupervisedFields,
  supervise,
  tailSuffix,
  tsxArgv,
} from "../service/supervisor.ts";
import { RelayAdminClient } from "./admin.ts";
import { RelayError } from "./errors.ts";
import type { RelayHealth, RelayState, UsageBatch } from "./types.ts";

const MAIN = fileURLToPath(new URL("./main.ts", import.meta.url));

/** The line the relay process prints on stdout once it listens (main.ts). */
export interface ListeningLine extends ListeningLineBase {
  adminSocket: string;
}

export interface RelayServiceOptions {
  /** The configuration file (config.ts; write it with renderRelayConfig). */
  configPath: string;
  /**
   * The whole state to push: called at every (re)start, before the relay counts as ready, and on
   * each refresh(), when that push's turn comes (so it is always the latest).
   */
  state: () => RelayState | Promise<RelayState>;
  log?: Logger;
  /** How a relay that died is started again. Default: 200 ms doubling to 10 s, reset after 60 s. */
  restart?: RestartPolicy;
  /** Give up on a start that is not ready within this long. Default 30000 (tsx start-up on a loaded host). */
  startTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Default: this process's node. */
  nodePath?: string;
  /** Aborting stops the relay, as stop() does. */
  signal?: AbortSignal;
}

/** The relay as the control plane sees it: one supervised process, its state pushes and its usage. */
export interface RelayService extends SupervisedFields {
  /** http://127.0.0.1:<port>: the fixed address tenants reach (directly, or through the egress proxy). */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly adminSocket: string;
  readonly admin: RelayAdminClient;
  /** Resolves with the exit code (null when killed by a signal) once the relay has ended for good. */
  readonly exited: Promise<number | null>;
  /** Pushes state() again (tenants, keys, plans or upstreams changed). Rejects with RelayError when the push fails. */
  refresh(): Promise<void>;
  /**
   * Takes the usage and events counted since the last acknowledged drain. With `persist`, the batch
   * is acknowledged only once persist() resolved (a failure leaves it in the relay, handed out
   * again next time); without, at once (at most one interval lost when the caller then fails).
   */
  drain(persist?: (batch: UsageBatch) => Promise<void>): Promise<UsageBatch>;
  health(): Promise<RelayHealth>;
  stderrTail(): string;
  /** SIGTERM, then SIGKILL after `graceMs` (default 5000); never restarted after. Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts the relay process (`main.ts --config <configPath> --exit-with-stdin`, so it never outlives
 * this process) with the service kit's supervisor and returns once it listens and holds the
 * state. A first start that fails throws RelayError (start_failed) with its stderr. Later deaths
 * are restarted with backoff; each restart counts as ready only once state() has been pushed.
 * Pushes go one at a time, each built from state() when its turn comes.
 */
export async function startRelayService(opts: RelayServiceOptions): Promise<RelayService> {
  let admin: RelayAdminClient | undefined;
  let queue: Promise<void> = Promise.resolve();
  const push = (client: RelayAdminClient, signal?: AbortSignal): Promise<void> => {
    const run = queue.then(async () => {
      await client.putState(await opts.state(), signal);
    });
    queue = run.then(
      () => {},
      () => {},
    );
    return run;
  };
  const failed = (why: string, c: Child, cause?: unknown) =>
    new RelayError("start_failed", `the LLM relay ${why}${tailSuffix(c, 20)}`, {
      cause: cause ?? new Error(why),
    });
  const sup = await supervise<ListeningLine>({
    name: "LLM relay",
    argv: tsxArgv(MAIN, ["--config", opts.configPath, "--exit-with-stdin"], opts.nodePath),
    cwd: REPO_ROOT,
    env: opts.env ?? process.env,
    stdin: "pipe",
    stdout: "lines",
    output: "ignore",
    readyTimeoutMs: opts.startTimeoutMs ?? 30_000,
    ready: async (c, signal) => {
      const line = await listeningLine<ListeningLine>(c, (why, cause) => failed(why, c, cause));
      admin ??= new RelayAdminClient(line.adminSocket);
      try {
        await push(admin, signal);
      } catch (err) {
        throw failed(`did not take its state: ${(err as Error).message}`, c, err);
      }
      return line;
    },
    timeoutError: (ms, c) => failed(`was not ready within ${ms} ms`, c),
    stoppedError: () => new RelayError("unavailable", "the LLM relay was stopped"),
    restart: opts.restart ?? { initialMs: 200, maxMs: 10_000, resetAfterMs: 60_000 },
    ...(opts.log ? { log: opts.log } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  const client = admin ?? new RelayAdminClient(sup.value.adminSocket);
  const fields = {
    adminSocket: sup.value.adminSocket,
    admin: client,
    exited: sup.exited.then((e) => e.code),
    refresh: () => push(client),
    async drain(persist?: (batch: UsageBatch) => Promise<void>) {
      const batch = await client.drain();
      if (persist) await persist(batch);
      await client.ack(batch.id);
      return batch;
    },
    health: () => client.health(),
    stderrTail: () => sup.tail(20),
    stop: async (graceMs = 5_000) => {
      await sup.stop(graceMs);
      client.close();
    },
  };
  return liveHandle(sup, ["url", "host", "port"], fields);
}
