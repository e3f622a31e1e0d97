import { ClawkeepError } from "../core/errors.ts";

/**
 * Makes `stop` idempotent (every call returns the first call's promise) and binds it to `signal`:
 * when the signal has already aborted it is called at once and awaited; otherwise it is called on
 * the signal's abort event. Returns the idempotent stop.
 */
export async function stopOnAbort(
  stop: () => Promise<void>,
  signal?: AbortSignal,
): Promise<() => Promise<void>> {
  let stopping: Promise<void> | undefined;
  const once = (): Promise<void> => {
    stopping ??= stop();
    return stopping;
  };
  if (signal) {
    if (signal.aborted) await once();
    else signal.addEventListener("abort", () => void once(), { once: true });
  }
  return once;
}

/**
 * How a service process ends (the egress proxy's, the relay's main.ts): on SIGTERM or SIGINT, and
 * with `exitWithStdin` when its stdin closes (the supervisor holding the pipe died), calls
 * `onStop(why)` and then `close()` once, and exits 0 when close resolved, 1 when it threw. Later
 * signals are ignored while it closes.
 */
export function exitOnStop(
  close: () => Promise<void>,
  opts: { onStop?: (why: string) => void; exitWithStdin?: boolean } = {},
): void {
  let stopping = false;
  const stop = (why: string) => {
    if (stopping) return;
    stopping = true;
    opts.onStop?.(why);
    close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  if (opts.exitWithStdin) {
    // The supervisor holds our stdin: when it dies, the pipe closes and we go too.
    process.stdin.on("error", () => {});
    process.stdin.on("close", () => stop("stdin closed"));
    process.stdin.resume();
  }
}

/**
 * The admin API of a service process beside its running `server`: serves it with `serve()` (when
 * that fails, `server` is closed and the error rethrown), then ends the process as exitOnStop()
 * does, closing the admin server first and `server` after. Returns the admin server.
 */
export async function serveAdminUntilStop<A extends { close(): Promise<void> }>(
  server: { close(): Promise<void> },
  serve: () => Promise<A>,
  opts: { onStop?: (why: string) => void; exitWithStdin?: boolean } = {},
): Promise<A> {
  let admin: A;
  try {
    admin = await serve();
  } catch (err) {
    await server.close();
    throw err;
  }
  exitOnStop(async () => {
    await admin.close();
    await server.close();
  }, opts);
  return admin;
}

/**
 * Runs a service process's `main` with this process's arguments and environment. When it
 * throws, writes `<name>: <code>: <message>` (a ClawkeepError) or the error as text to stderr and
 * exits 1.
 */
export function runServiceMain(
  name: string,
  main: (argv: string[], env: NodeJS.ProcessEnv) => Promise<void>,
): void {
  main(process.argv.slice(2), process.env).catch((err: unknown) => {
    const msg = err instanceof ClawkeepError ? `${err.code}: ${err.message}` : String(err);
    process.stderr.write(`${name}: ${msg}\n`);
    process.exit(1);
  });
}
