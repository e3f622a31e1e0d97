import { ClawkeepError } from "../core/errors.ts";

/**
 * How a command-line program of clawkeep (`clawkeep`, `clawkeep-kms`) reports the error that ended
 * it: `<program>: <code>: <message>` on stderr (the stack for an error that is not a ClawkeepError),
 * and, when `--json` is among the arguments, `{"error":{"code","message"}}` on stdout as well (code
 * "internal" for an error without one). Sets no exit code: the caller does.
 */
export function reportCliError(program: string, err: unknown, argv: readonly string[] = process.argv): void {
  const msg =
    err instanceof ClawkeepError ? `${err.code}: ${err.message}` : ((err as Error).stack ?? String(err));
  if (argv.includes("--json")) {
    process.stdout.write(
      `${JSON.stringify({ error: { code: (err as ClawkeepError).code ?? "internal", message: (err as Error).message } })}\n`,
    );
  }
  process.stderr.write(`${program}: ${msg}\n`);
}
