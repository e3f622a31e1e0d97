import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { EgressAdminClient } from "./admin.ts";
import { EgressError } from "./errors.ts";

/** The repository root: where `--import tsx` resolves. */
const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = fileURLToPath(new URL("./main.ts", import.meta.url));

export interface EgressProcessOptions {
  /** The configuration file (see config.ts; write it with renderEgressConfig). */
  configPath: string;
  /** Give up when it does not listen within this long. Default 30000 (tsx start-up on a loaded host). */
  startTimeoutMs?: number;
  /** Aborting kills the child if it is still starting. */
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

export interface EgressProcess {
  readonly pid: number;
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly adminSocket: string;
  readonly logFile: string;
  readonly admin: EgressAdminClient;
  /** Resolves with the exit code (null when killed by a signal) once the process has ended. */
  readonly exited: Promise<number | null>;
  /** The last lines the process wrote to stderr. */
  stderrTail(): string;
  /** SIGTERM, then SIGKILL after `graceMs` (default 5000). Stopping a stopped process is not an error. */
  stop(graceMs?: number): Promise<void>;
}

interface ListeningLine {
  event: "listening";
  pid: number;
  url: string;
  host: string;
  port: number;
  adminSocket: string;
  logFile: string;
}

/**
 * Starts the egress proxy as its own process and returns once it listens (it prints one JSON
 * line on stdout then). Throws EgressError (runtime_failed) with its stderr when it exits or
 * stays silent past the timeout; the child is killed in that case.
 */
export async function startEgressProcess(opts: EgressProcessOptions): Promise<EgressProcess> {
  opts.signal?.throwIfAborted();
  const argv = [
    ...(opts.wrap ?? []),
    opts.nodePath ?? process.execPath,
    "--import",
    "tsx",
    MAIN,
    "--config",
    opts.configPath,
  ];
  const [cmd, ...args] = argv;
  if (!cmd) throw new EgressError("invalid_request", "empty command");
  const child: ChildProcess = spawn(cmd, args, {
    cwd: REPO_ROOT,
    env: opts.env ?? process.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    stderr = (stderr + d).slice(-16_384);
  });
  const exited = new Promise<number | null>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
    else child.once("exit", (code) => resolve(code));
  });
  const tail = () => stderr.trim().split("\n").slice(-20).join("\n");

  let listening: ListeningLine;
  try {
    listening = await new Promise<ListeningLine>((resolve, reject) => {
      let buf = "";
      const timer = setTimeout(
        () => reject(new Error(`did not listen within ${opts.startTimeoutMs ?? 30_000} ms`)),
        opts.startTimeoutMs ?? 30_000,
      );
      const onAbort = () => reject(opts.signal?.reason ?? new Error("aborted"));
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      const done = () => {
        clearTimeout(timer);
        opts.signal?.removeEventListener("abort", onAbort);
      };
      child.once("error", (err) => {
        done();
        reject(err);
      });
      void exited.then((code) => {
        done();
        reject(new Error(`exited with ${code} before it listened`));
      });
      child.stdout?.setEncoding("utf8").on("data", (d: string) => {
        buf += d;
        for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          try {
            const msg = JSON.parse(line) as Partial<ListeningLine>;
            if (msg.event === "listening") {
              done();
              resolve(msg as ListeningLine);
            }
          } catch {
            // Not ours: ignore.
          }
        }
      });
    });
  } catch (err) {
    child.kill("SIGKILL");
    await exited;
    throw new EgressError(
      "runtime_failed",
      `egress proxy ${(err as Error).message}${tail() ? `:\n${tail()}` : ""}`,
      {
        cause: err,
      },
    );
  }
  // Keep draining stdout so the child never blocks on a full pipe.
  child.stdout?.resume();

  return {
    pid: child.pid ?? listening.pid,
    url: listening.url,
    host: listening.host,
    port: listening.port,
    adminSocket: listening.adminSocket,
    logFile: listening.logFile,
    admin: new EgressAdminClient(listening.adminSocket),
    exited,
    stderrTail: tail,
    async stop(graceMs = 5_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
