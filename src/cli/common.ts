import { type Command, Option } from "commander";
import { loadSettings } from "../config/settings.ts";
import { AdminClient } from "./admin-client.ts";

/** What every command of the CLI shares: its `--json` option, output, tables and the operator API client. */

export type Out = { json?: boolean };

/** Where commands print their answers: stdout (tests of commands in process replace `write`). */
export const output = { write: (text: string): void => void process.stdout.write(text) };

export function print(opts: Out, data: unknown, human: () => string): void {
  output.write(opts.json ? `${JSON.stringify(data, null, 2)}\n` : `${human()}\n`);
}

/** The `--json` option every command takes. */
export const jsonOpt = () => new Option("--json", "print machine-readable JSON");

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

export function client(cmd: Command): AdminClient {
  const socket = (cmd.optsWithGlobals() as { socket?: string }).socket ?? loadSettings().adminSocket;
  return new AdminClient(socket);
}
