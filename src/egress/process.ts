import { fileURLToPath } from "node:url";
import type { Logger } from "../lib/log.ts";
import {
  type Child,
  type ListeningLineBase,
  listeningLine,
  REPO_ROOT,
  type RestartPolicy,
  type Supervised,
  type SuperviseOptions,
  supervise,
  tailSuffix,
  tsxArgv,
} from "../service/supervisor.ts";
import { EgressAdminClient } from "./admin.ts";
import { EgressError } from "./errors.ts";

const MAIN = fileURLToPath(new URL("./main.ts", import.meta.url));

export interface EgressProcessOptions {
  /** The configuration file (see config.ts; write it with renderEgressConfig). */
  configPath: string;
  /** Give up when it does not listen within this long. Default 30000 (tsx start-up on a loaded host). */
  startTimeoutMs?: number;
  /** Aborting kills the child (while it starts, and after). */
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
  /**
   * An argv prefix to run the proxy elsewhere, e.g. ["ip", "netns", "exec", "clawkeep-egress"].
   * The node binary and its arguments follow it. Never a shell string.
   */
  wrap?: readonly string[];
  /** Default: this process's node. */
  nodePath?: string;
}

/** What every handle on a running egress proxy offers (a process, or the supervised service). */
export interface EgressEndpoint {
  /** http://host:port: the value for HTTP_PROXY / HTTPS_PROXY. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly adminSocket: string;
  readonly logFile: string;
  /** The admin API (counters, logs, the policy in force). */
  readonly admin: EgressAdminClient;
  /** Resolves with the exit code (null when killed by a signal) once the proxy has ended for good. */
  readonly exited: Promise<number | null>;
  /** The last lines the current (or last) process wrote to stderr. */
  stderrTail(): string;
  /** SIGTERM, then SIGKILL after `graceMs` (default 5000); never restarted after. Stopping a stopped proxy is not an error. */
  stop(graceMs?: number): Promise<void>;
}

export interface EgressProcess extends EgressEndpoint {
  readonly pid: number;
}

/** The line the proxy process prints on stdout once it listens (main.ts). */
export interface ListeningLine extends ListeningLineBase {
  adminSocket: string;
  logFile: string;
}

/**
 * Supervises the egress proxy process with the service kit: ready when it prints its listening
 * line; with `restart`, started again (with backoff) whenever it dies. A start that fails throws
 * EgressError (runtime_failed) with its stderr; the child is killed then.
 */
export function superviseEgressProcess(
  opts: EgressProcessOptions & {
    restart?: RestartPolicy;
    onReady?: SuperviseOptions<ListeningLine>["onReady"];
    onRestart?: SuperviseOptions<ListeningLine>["onRestart"];
    log?: Logger;
  },
): Promise<Supervised<ListeningLine>> {
  opts.signal?.throwIfAborted();
  const startTimeoutMs = opts.startTimeoutMs ?? 30_000;
  const failed = (why: string, c: Child, cause?: unknown) =>
    new EgressError("runtime_failed", `egress proxy ${why}${tailSuffix(c, 20)}`, {
      cause: cause ?? new Error(why),
    });
  return supervise<ListeningLine>({
    name: "egress proxy",
    argv: [...(opts.wrap ?? []), ...tsxArgv(MAIN, ["--config", opts.configPath], opts.nodePath)],
    cwd: REPO_ROOT,
    env: opts.env ?? process.env,
    stdin: "ignore",
    stdout: "lines",
    output: "ignore",
    tailChars: 16_384,
    readyTimeoutMs: startTimeoutMs,
    ready: (c) => listeningLine<ListeningLine>(c, (why, cause) => failed(why, c, cause)),
    timeoutError: (ms, c) => failed(`did not listen within ${ms} ms`, c),
    stoppedError: () =>
      new EgressError("runtime_failed", "egress proxy start-up was aborted", { cause: opts.signal?.reason }),
    ...(opts.restart ? { restart: opts.restart } : {}),
    ...(opts.onReady ? { onReady: opts.onReady } : {}),
    ...(opts.onRestart ? { onRestart: opts.onRestart } : {}),
    ...(opts.log ? { log: opts.log } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
}

/**
 * Starts the egress proxy as its own process and returns once it listens (it prints one JSON
 * line on stdout then). Throws EgressError (runtime_failed) with its stderr when it exits or
 * stays silent past the timeout; the child is killed in that case. It is not restarted when it
 * dies: service.ts does that.
 */
export async function startEgressProcess(opts: EgressProcessOptions): Promise<EgressProcess> {
  const sup = await superviseEgressProcess(opts);
  const listening = sup.value;
  return {
    ...egressEndpoint(sup),
    pid: sup.pid ?? listening.pid,
    url: listening.url,
    host: listening.host,
    port: listening.port,
  };
}

/**
 * The parts of an egress handle that stay the same across restarts: the admin socket and its
 * client (made once), the log file, and the supervisor's exit, stderr tail and stop.
 */
export function egressEndpoint(
  sup: Supervised<ListeningLine>,
): Omit<EgressEndpoint, "url" | "host" | "port"> {
  const first = sup.value;
  return {
    adminSocket: first.adminSocket,
    logFile: first.logFile,
    admin: new EgressAdminClient(first.adminSocket),
    exited: sup.exited.then((e) => e.code),
    stderrTail: () => sup.tail(20),
    stop: (graceMs = 5_000) => sup.stop(graceMs),
  };
}
