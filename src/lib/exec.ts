import { spawn } from "node:child_process";
import { ClawkeepError } from "../core/errors.ts";

/** A failed external command, with everything needed to see why. */
export class ExecError extends ClawkeepError {
  constructor(
    readonly command: readonly string[],
    readonly exitCode: number | null,
    readonly stdout: string,
    readonly stderr: string,
    cause?: unknown,
  ) {
    const tail = (stderr || stdout).trim().split("\n").slice(-5).join("\n");
    super(
      "runtime_failed",
      `${command[0]} ${exitCode === null ? "could not run" : `exited with ${exitCode}`}: ${command.join(" ")}${tail ? `\n${tail}` : ""}`,
      cause === undefined ? {} : { cause },
    );
  }
}

export interface ExecOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  signal?: AbortSignal;
  input?: string | Buffer;
  /** Called with each chunk of output, for progress display. */
  onOutput?: (chunk: string) => void;
}

/**
 * Runs a program with an argument array (never through a shell) and returns its stdout.
 * Throws ExecError carrying the command, exit code, stdout and stderr when it fails.
 */
export function execFile(argv: readonly string[], opts: ExecOptions = {}): Promise<string> {
  const [cmd, ...args] = argv;
  if (!cmd) throw new Error("execFile needs a command");
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      signal: opts.signal,
      stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
      opts.onOutput?.(d);
    });
    child.stderr!.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
      opts.onOutput?.(d);
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    child.on("error", (err) => reject(new ExecError(argv, null, stdout, stderr, err)));
    child.on("close", (code) => {
      if (code === 0) resolve(stdout);
      else reject(new ExecError(argv, code, stdout, stderr));
    });
  });
}
