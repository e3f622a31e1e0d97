import { fileURLToPath } from "node:url";
import type { Logger } from "../../lib/log.ts";
import {
  type Child,
  liveHandle,
  type SupervisedFields,
  type SupervisorState,
  supervise,
  tailSuffix,
} from "../../service/supervisor.ts";
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

export type ModelServerState = SupervisorState;

/** pid, restarts and state are the supervisor's (service/supervisor.ts). */
export interface ModelServerProcess extends SupervisedFields {
  /** Base URL of the API (`http://host:port/v1`) of the latest start. */
  readonly url: string;
  readonly port: number;
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

/** A ModelServerError for whatever the kit's supervisor gave up with. */
function asModelServerError(err: unknown): ModelServerError {
  return err instanceof ModelServerError
    ? err
    : new ModelServerError("internal", err instanceof Error ? err.message : String(err));
}

/**
 * Runs the model server as its own process (`node --import tsx src/llm/model-server/main.ts ...`),
 * returns once it listens, and restarts it with backoff whenever it dies. A start that fails for
 * a reason a restart cannot fix (missing or corrupt model, bad option: the process exits with
 * EXIT_FATAL and says why) is not retried: the state becomes "failed", ready() rejects with the
 * reason and onFatal is called. The child exits by itself when this process dies (its stdin pipe
 * closes). Throws ModelServerError when the first start fails, with the server's own message.
 * The spawning, restarting and stopping are the service kit's (src/service/supervisor.ts).
 */
export async function startModelServerProcess(opts: ModelServerProcessOptions): Promise<ModelServerProcess> {
  const argv = [...(opts.wrap ?? []), ...modelServerCommand(opts), "--exit-with-stdin"];
  const backoff = opts.backoff ?? { initialMs: 250, maxMs: 10_000 };
  const env = { ...(opts.env ?? process.env) };
  if (opts.apiKey) env[API_KEY_ENV] = opts.apiKey;
  else delete env[API_KEY_ENV];

  /** Resolves with the listening line; rejects with a ModelServerError saying why not. */
  const ready = (c: Child): Promise<ListeningLine> =>
    new Promise<ListeningLine>((resolve, reject) => {
      let fatal: ModelServerError | undefined;
      c.onLine((text) => {
        const line = parseStatusLine(text);
        if (line?.event === "listening") resolve(line);
        else if (line?.event === "fatal") fatal = new ModelServerError(line.reason, line.message);
      });
      // `exited` settles after stdout is fully read, so a fatal line is never missed.
      void c.exited.then(({ code, signal }) => {
        if (fatal && code === EXIT_FATAL) reject(fatal);
        else if (code === EXIT_FATAL)
          reject(
            new ModelServerError("invalid_request", `the model server refused to start${tailSuffix(c, 8)}`),
          );
        else {
          reject(
            new ModelServerError(
              "unavailable",
              `the model server exited (${signal ?? `status ${code}`}) before it listened${fatal ? `: ${fatal.message}` : tailSuffix(c, 8)}`,
            ),
          );
        }
      });
    });

  const sup = await supervise<ListeningLine>({
    name: "model server",
    argv,
    env,
    stdin: "pipe",
    stdout: "lines",
    output: opts.output ?? "inherit",
    tailChars: 8000,
    ready,
    readyTimeoutMs: opts.readyTimeoutMs ?? 120_000,
    timeoutError: (ms, c) =>
      new ModelServerError(
        "unavailable",
        `the model server did not listen within ${ms} ms${tailSuffix(c, 8)}`,
      ),
    stoppedError: () => new ModelServerError("unavailable", "the model server was stopped"),
    restart: { initialMs: backoff.initialMs, maxMs: backoff.maxMs, resetAfterMs: 60_000 },
    // It told us why, and a restart would fail the same way: give up, do not spin.
    isFatal: (err) => asModelServerError(err).reason !== "unavailable",
    graceMs: 5000,
    ...(opts.log ? { log: opts.log } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
    onRestart: (i) =>
      opts.onRestart?.({ code: i.code, signal: i.signal, restarts: i.restarts, delayMs: i.delayMs }),
    onFatal: (err) => opts.onFatal?.(asModelServerError(err)),
  });
  opts.log?.info({ pid: sup.pid, url: sup.value.url, model: sup.value.model }, "model server started");

  return liveHandle(sup, ["url", "port"], {
    get failure() {
      return sup.failure === undefined ? undefined : asModelServerError(sup.failure);
    },
    ready: () => sup.ready(),
    stop: () => sup.stop(),
  });
}
