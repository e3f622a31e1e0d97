/**
 * What the model server process and its supervisor agree on: exit statuses, the environment
 * variable for the API key, and the JSON lines the process prints on stdout.
 */
import { basename } from "node:path";
import type { ListeningLineBase } from "../../service/supervisor.ts";
import type { ModelServerFailure } from "./errors.ts";

/** Exit status for errors a restart cannot fix (sysexits EX_CONFIG): bad option, missing or corrupt model. */
export const EXIT_FATAL = 78;

/** The environment variable holding the API key clients must send (never on the command line). */
export const API_KEY_ENV = "CLAWKEEP_MODEL_API_KEY";

/** Printed once the server listens. */
export interface ListeningLine extends ListeningLineBase {
  model: string;
  contextSize: number;
  sequences: number;
  threads: number;
}

/** Printed before exiting with EXIT_FATAL (or 1 for `internal`). */
export interface FatalLine {
  event: "fatal";
  reason: ModelServerFailure;
  message: string;
}

export type StatusLine = ListeningLine | FatalLine;

/** Parses one stdout line; undefined for anything that is not ours. */
export function parseStatusLine(line: string): StatusLine | undefined {
  try {
    const v = JSON.parse(line) as Partial<StatusLine> | null;
    if (v && (v.event === "listening" || v.event === "fatal")) return v as StatusLine;
  } catch {
    // Not ours.
  }
  return undefined;
}

/** The default model id: the file name without .gguf, lower-cased, reduced to [a-z0-9._-]. */
export function defaultModelId(path: string): string {
  return basename(path)
    .replace(/\.gguf$/i, "")
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, "-")
    .replace(/^[^a-z0-9]+/, "")
    .slice(0, 64);
}
