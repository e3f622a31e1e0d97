/**
 * The model server process: `node --import tsx src/llm/model-server/main.ts --model FILE ...`.
 *
 * It checks the model file (and its pins, when given), loads it, listens, and prints one JSON line
 * on stdout: `{"event":"listening",...}`. When the model is missing, corrupt or cannot be loaded,
 * or an option is wrong, it prints `{"event":"fatal","reason":...,"message":...}`, writes the
 * message to stderr and exits with EXIT_FATAL (78): a supervisor must not restart it, since the
 * same file will fail the same way. Other crashes exit non-zero and may be retried.
 */
import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";
import { createLogger } from "../../lib/log.ts";
import { loadLlamaEngine } from "./engine.ts";
import { ModelServerError } from "./errors.ts";
import { API_KEY_ENV, defaultModelId, EXIT_FATAL, type FatalLine, type ListeningLine } from "./protocol.ts";
import { startModelServer } from "./server.ts";
import { parseModelId, verifyModelFile } from "./verify.ts";

const shutdown = new AbortController();

function intOption(name: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ModelServerError(
      "invalid_request",
      `--${name} must be an integer ${min}-${max}, got '${value}'`,
    );
  }
  return n;
}

async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      model: { type: "string" },
      "model-id": { type: "string" },
      sha256: { type: "string" },
      size: { type: "string" },
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "0" },
      threads: { type: "string" },
      "context-size": { type: "string" },
      sequences: { type: "string" },
      "max-queue": { type: "string" },
      "max-tokens": { type: "string" },
      temperature: { type: "string" },
      "no-flash-attention": { type: "boolean", default: false },
      "exit-with-stdin": { type: "boolean", default: false },
      "log-level": { type: "string", default: "info" },
    },
  });
  const log = createLogger(values["log-level"], "model-server");
  if (values["exit-with-stdin"]) {
    // The supervisor holds our stdin: when it dies, the pipe closes and we go too.
    process.stdin.on("error", () => {});
    process.stdin.on("close", () => shutdown.abort());
    process.stdin.resume();
  }
  for (const sig of ["SIGTERM", "SIGINT"] as const) process.once(sig, () => shutdown.abort());

  if (!values.model) throw new ModelServerError("invalid_request", "--model FILE is required");
  const modelPath = values.model;
  const modelId = parseModelId(values["model-id"] ?? defaultModelId(modelPath));
  const threads = intOption("threads", values.threads, 1, 256) ?? availableParallelism();
  const temperature = values.temperature === undefined ? undefined : Number(values.temperature);
  if (temperature !== undefined && !(temperature >= 0 && temperature <= 2)) {
    throw new ModelServerError("invalid_request", `--temperature must be 0-2, got '${values.temperature}'`);
  }
  const size = intOption("size", values.size, 0, Number.MAX_SAFE_INTEGER);
  const port = intOption("port", values.port, 0, 65535) ?? 0;

  const checked = await verifyModelFile(
    modelPath,
    { ...(values.sha256 ? { sha256: values.sha256 } : {}), ...(size !== undefined ? { size } : {}) },
    { signal: shutdown.signal, skipChecksum: !values.sha256 },
  );
  log.info(
    { path: modelPath, size: checked.size, sha256: checked.sha256, architecture: checked.gguf.architecture },
    "model file verified",
  );
  const contextSize = intOption("context-size", values["context-size"], 256, 1 << 20);
  const sequences = intOption("sequences", values.sequences, 1, 64);
  const maxQueue = intOption("max-queue", values["max-queue"], 0, 10_000);
  const maxTokens = intOption("max-tokens", values["max-tokens"], 1, 1 << 20);
  const engine = await loadLlamaEngine({
    modelPath,
    modelId,
    threads,
    ...(contextSize !== undefined ? { contextSize } : {}),
    ...(sequences !== undefined ? { sequences } : {}),
    ...(maxQueue !== undefined ? { maxQueue } : {}),
    ...(maxTokens !== undefined ? { maxTokens } : {}),
    ...(temperature !== undefined ? { temperature } : {}),
    flashAttention: !values["no-flash-attention"],
    signal: shutdown.signal,
    log,
  });
  const apiKey = env[API_KEY_ENV];
  const server = await startModelServer({
    engine,
    host: values.host,
    port,
    ...(apiKey ? { apiKey } : {}),
    log,
  });
  const line: ListeningLine = {
    event: "listening",
    pid: process.pid,
    url: server.url,
    host: server.host,
    port: server.port,
    model: modelId,
    contextSize: engine.info.contextSize,
    sequences: engine.info.sequences,
    threads,
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
  log.info({ url: server.url, model: modelId }, "model server listening");
  await new Promise<void>((resolve) => {
    if (shutdown.signal.aborted) resolve();
    else shutdown.signal.addEventListener("abort", () => resolve(), { once: true });
  });
  log.info("model server stopping");
  await server.close();
}

main(process.argv.slice(2), process.env).then(
  () => process.exit(0),
  (err: unknown) => {
    // Stopped while loading: not a failure.
    if (shutdown.signal.aborted) process.exit(0);
    const fatal =
      err instanceof ModelServerError
        ? ["invalid_request", "model_missing", "model_corrupt", "load_failed"].includes(err.reason)
        : (err as NodeJS.ErrnoException)?.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" ||
          (err as NodeJS.ErrnoException)?.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE";
    const reason = err instanceof ModelServerError ? err.reason : fatal ? "invalid_request" : "internal";
    const message = err instanceof Error ? err.message : String(err);
    const line: FatalLine = { event: "fatal", reason, message };
    process.stdout.write(`${JSON.stringify(line)}\n`);
    process.stderr.write(`model server: ${message}\n`);
    process.exit(fatal ? EXIT_FATAL : 1);
  },
);
