import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Logger } from "../../lib/log.ts";
import { ModelServerError } from "./errors.ts";
import { API_KEY_ENV, EXIT_FATAL, type ListeningLine, parseStatusLine } from "./protocol.ts";
import { parseListenAddress } from "./server.ts";
import { parseModelId, parseModelPath, parseSha256 } from "./verify.ts";

const MAIN = fileURLToPath(new URL("./main.ts", import.meta.url));

/** A model to serve: a file, optionally pinned by size and SHA-256 (as a registered model is). */
export interface ModelSpec {
  path: string;
  /** Served id (default: the file name without .gguf). */
  id?: string;
  sha256?: string;
  size?: number;
}

export interface ModelServerProcessOptions {
  /** The GGUF file, or a pinned model (what the control plane's model registry resolves). */
  model: string | ModelSpec;
  host: string;
  /** 0 picks a free port at each start (tests); a tenant gets a fixed one. */
  port: number;
  /** CPU threads: the tenant's CPU quota. */
  threads: number;
  contextSize?: number;
  sequences?: number;
  maxQueue?: number;
  maxTokens?: number;
  temperature?: number;
  flashAttention?: boolean;
  /** Clients must send it as a Bearer token; passed to the process in its environment. */
  apiKey?: string;
  /** Aborting it stops the server, as stop() does. */
  signal?: AbortSignal;
  /** An argv prefix to run the server elsewhere (e.g. `["ip", "netns", "exec", NS]`); never a shell string. */
  wrap?: readonly string[];
  /** The environment of the process (default: this one's); the API key is added to it. */
  env?: NodeJS.ProcessEnv;
  /** Node binary (default: this one). */
  nodePath?: string;
  /** How long one start may take to listen (default 120 s: checksum and load of a large model). */
  readyTimeoutMs?: number;
  /** Where the server's log lines (stderr) go: "inherit" (our stderr, the default), "ignore", or a function. */
  output?: "inherit" | "ignore" | ((chunk: string) => void);
  /** Restart delay: `initialMs` doubling to `maxMs` (default 250 ms to 10 s), reset after 60 s of life. */
  backoff?: { initialMs: number; maxMs: number };
  log?: Logger;
  /** Called with each restart after the server died. */
  onRestart?: (info: {
    code: number | null;
    signal: string | null;
    restarts: number;
    delayMs: number;
  }) => void;
  /** Called once when the server failed for good (missing or corrupt model, bad option). */
  onFatal?: (err: ModelServerError) => void;
}

export type ModelServerState = "starting" | "running" | "restarting" | "failed" | "stopped";

export interface ModelServerProcess {
  /** Base URL of the API (`http://host:port/v1`) of the latest start. */
  readonly url: string;
  readonly port: number;
  /** The current child's pid (undefined between a death and the restart). */
  readonly pid: number | undefined;
  /** How many times the server was restarted after dying. */
  readonly restarts: number;
  readonly state: ModelServerState;
  /** Why it failed for good (state "failed"). */
  readonly failure: ModelServerError | undefined;
  /**
   * Resolves when the server listens (at once while running; after the restart while
   * restarting). Rejects with the failure when it failed for good, or when it was stopped.
   */
  ready(): Promise<void>;
  /** SIGTERM, then SIGKILL after 5 s; no restart after. Idempotent. */
  stop(): Promise<void>;
}

function modelSpec(model: string | ModelSpec): ModelSpec {
  return typeof model === "string" ? { path: model } : model;
}

/** The argv that runs the model server with tsx on this Node (no `wrap`, no `--exit-with-stdin`). */
export function modelServerCommand(
  opts: Omit<ModelServerProcessOptions, "signal" | "output" | "log" | "onRestart" | "onFatal">,
): string[] {
  const m = modelSpec(opts.model);
  parseModelPath(m.path);
  if (m.id !== undefined) parseModelId(m.id);
  parseListenAddress(opts.host, opts.port);
  const argv = [
    opts.nodePath ?? process.execPath,
    "--import",
    import.meta.resolve("tsx"),
    MAIN,
    "--model",
    m.path,
    "--host",
    opts.host,
    "--port",
    String(opts.port),
    "--threads",
    String(opts.threads),
  ];
  if (m.id !== undefined) argv.push("--model-id", m.id);
  if (m.sha256 !== undefined) argv.push("--sha256", parseSha256(m.sha256));
  if (m.size !== undefined) argv.push("--size", String(m.size));
  if (opts.contextSize !== undefined) argv.push("--context-size", String(opts.contextSize));
  if (opts.sequences !== undefined) argv.push("--sequences", String(opts.sequences));
  if (opts.maxQueue !== undefined) argv.push("--max-queue", String(opts.maxQueue));
  if (opts.maxTokens !== undefined) argv.push("--max-tokens", String(opts.maxTokens));
  if (opts.temperature !== undefined) argv.push("--temperature", String(opts.temperature));
  if (opts.flashAttention === false) argv.push("--no-flash-attention");
  return argv;
}

/** Waits `ms`, or less when `signal` aborts. */
const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });

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

/**
 * Runs the model server as its own process (`node --import tsx src/llm/model-server/main.ts ...`),
 * returns once it listens, and restarts it with backoff whenever it dies. A start that fails for
 * a reason a restart cannot fix (missing or corrupt model, bad option: the process exits with
 * EXIT_FATAL and says why) is not retried: the state becomes "failed", ready() rejects with the
 * reason and onFatal is called. The child exits by itself when this process dies (its stdin pipe
 * closes). Throws ModelServerError when the first start fails, with the server's own message.
 */
export async function startModelServerProcess(opts: ModelServerProcessOptions): Promise<ModelServerProcess> {
  const argv = [...(opts.wrap ?? []), ...modelServerCommand(opts), "--exit-with-stdin"];
  const readyTimeoutMs = opts.readyTimeoutMs ?? 120_000;
  const backoff = opts.backoff ?? { initialMs: 250, maxMs: 10_000 };
  const stopper = new AbortController();
  const env = { ...(opts.env ?? process.env) };
  if (opts.apiKey) env[API_KEY_ENV] = opts.apiKey;
  else delete env[API_KEY_ENV];

  let child: ChildProcess | undefined;
  let listening: ListeningLine | undefined;
  let state: ModelServerState = "starting";
  let failure: ModelServerError | undefined;
  let restarts = 0;
  let readiness = deferred();
  let stopping: Promise<void> | undefined;

  const spawnChild = () => {
    const [cmd, ...args] = argv;
    const c = spawn(cmd!, args, { stdio: ["pipe", "pipe", "pipe"], env });
    let tail = "";
    c.stderr!.setEncoding("utf8").on("data", (d: string) => {
      tail = (tail + d).slice(-8000);
      if (typeof opts.output === "function") opts.output(d);
      else if (opts.output !== "ignore") process.stderr.write(d);
    });
    c.stdin!.on("error", () => {});
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      // "close", not "exit": stdout is fully read by then, so a fatal line is never missed.
      c.once("close", (code, signal) => resolve({ code, signal }));
      c.once("error", () => resolve({ code: null, signal: null }));
    });
    // Resolves with the listening line; rejects with a ModelServerError saying why not.
    const started = new Promise<ListeningLine>((resolve, reject) => {
      let buf = "";
      let fatal: ModelServerError | undefined;
      const timer = setTimeout(() => {
        reject(
          new ModelServerError(
            "unavailable",
            `the model server did not listen within ${readyTimeoutMs} ms${lastLines()}`,
          ),
        );
      }, readyTimeoutMs);
      const lastLines = () => {
        const t = tail.trim().split("\n").slice(-8).join("\n");
        return t ? `:\n${t}` : "";
      };
      c.stdout!.setEncoding("utf8").on("data", (d: string) => {
        buf += d;
        for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
          const line = parseStatusLine(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
          if (line?.event === "listening") {
            clearTimeout(timer);
            resolve(line);
          } else if (line?.event === "fatal") {
            fatal = new ModelServerError(line.reason, line.message);
          }
        }
      });
      void exited.then(({ code, signal }) => {
        clearTimeout(timer);
        if (fatal && code === EXIT_FATAL) reject(fatal);
        else if (code === EXIT_FATAL)
          reject(new ModelServerError("invalid_request", `the model server refused to start${lastLines()}`));
        else {
          reject(
            new ModelServerError(
              "unavailable",
              `the model server exited (${signal ?? `status ${code}`}) before it listened${fatal ? `: ${fatal.message}` : lastLines()}`,
            ),
          );
        }
      });
    });
    started.catch(() => {});
    return { c, exited, started };
  };

  const kill = async (c: ChildProcess, exited: Promise<unknown>) => {
    if (c.exitCode !== null || c.signalCode !== null) return;
    c.kill("SIGTERM");
    const t = setTimeout(() => c.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(t);
  };

  const first = spawnChild();
  child = first.c;
  try {
    listening = await first.started;
  } catch (err) {
    stopper.abort();
    await kill(first.c, first.exited);
    state = "failed";
    throw err;
  }
  state = "running";
  readiness.resolve();
  opts.log?.info({ pid: first.c.pid, url: listening.url, model: listening.model }, "model server started");

  // Supervise: restart on death with backoff; stop for good on a fatal start.
  void (async () => {
    let current = first;
    let startedAt = Date.now();
    let failures = 0;
    for (;;) {
      const { code, signal } = await current.exited;
      if (child === current.c) child = undefined;
      if (stopper.signal.aborted) return;
      if (Date.now() - startedAt > 60_000) failures = 0;
      const delayMs = Math.min(backoff.maxMs, backoff.initialMs * 2 ** failures);
      failures++;
      restarts++;
      state = "restarting";
      readiness = deferred();
      opts.log?.warn({ code, signal, restartInMs: delayMs, restarts }, "model server died; restarting it");
      opts.onRestart?.({ code, signal, restarts, delayMs });
      await sleep(delayMs, stopper.signal);
      if (stopper.signal.aborted) return;
      current = spawnChild();
      child = current.c;
      try {
        listening = await current.started;
        startedAt = Date.now();
        state = "running";
        readiness.resolve();
        opts.log?.info({ pid: current.c.pid, url: listening.url, restarts }, "model server restarted");
      } catch (err) {
        const e = err instanceof ModelServerError ? err : new ModelServerError("internal", String(err));
        if (e.reason !== "unavailable") {
          // It told us why, and a restart would fail the same way: give up, do not spin.
          await kill(current.c, current.exited);
          if (child === current.c) child = undefined;
          state = "failed";
          failure = e;
          readiness.reject(e);
          opts.log?.error({ reason: e.reason, err: e.message }, "model server failed; not restarting it");
          opts.onFatal?.(e);
          return;
        }
        opts.log?.error({ err: e.message }, "model server restart failed");
        await kill(current.c, current.exited); // The loop then waits for its exit and backs off.
      }
    }
  })();

  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      stopper.abort();
      if (state !== "failed") state = "stopped";
      readiness.reject(new ModelServerError("unavailable", "the model server was stopped"));
      const c = child;
      if (c)
        await kill(
          c,
          new Promise<void>((resolve) =>
            c.exitCode !== null || c.signalCode !== null ? resolve() : c.once("exit", () => resolve()),
          ),
        );
    })();
    return stopping;
  };
  if (opts.signal) {
    if (opts.signal.aborted) await stop();
    else opts.signal.addEventListener("abort", () => void stop(), { once: true });
  }

  return {
    get url() {
      return listening!.url;
    },
    get port() {
      return listening!.port;
    },
    get pid() {
      return child?.pid;
    },
    get restarts() {
      return restarts;
    },
    get state() {
      return state;
    },
    get failure() {
      return failure;
    },
    ready: () => readiness.promise,
    stop,
  };
}
