import { isAbsolute } from "node:path";
import { z } from "zod";

/**
 * What the platform's services share in their JSON configuration files (the egress proxy's, the
 * relay's): the schema pieces both use, the message of a value that does not validate, and the
 * render and parse pair around a service's own validation.
 */

/** An absolute path without NUL bytes. */
export const AbsolutePath = z
  .string()
  .min(1)
  .refine((p) => isAbsolute(p) && !p.includes("\0"), { message: "must be an absolute path" });

/** A time-out or interval in milliseconds: 1 ms to one day. */
export const Millis = z
  .number()
  .int()
  .min(1)
  .max(24 * 60 * 60 * 1000);

/**
 * Parses `input` with `schema`. When it does not validate, throws `fail(message)` with the
 * message `invalid <what>: <path>: <problem>` for the first problem (`(root)` for the top level);
 * the message never quotes a value (keys stay out of it).
 */
export function parseOrFail<S extends z.ZodType>(
  schema: S,
  input: unknown,
  what: string,
  fail: (message: string) => Error,
): z.output<S> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const i = parsed.error.issues[0];
  throw fail(
    `invalid ${what}: ${i ? `${i.path.map(String).join(".") || "(root)"}: ${i.message}` : "unknown problem"}`,
  );
}

/** The text of a service's configuration file and back, around the service's own `validate`. */
export interface JsonConfigFile<C> {
  /** The file's text (JSON indented by two, a line end): pure, validates first. */
  render(config: C): string;
  /** Reads a file's text: throws `notJson(cause)` when it is not JSON, then validates it. */
  parse(text: string): C;
}

export function jsonConfigFile<C>(
  validate: (input: unknown) => C,
  notJson: (cause: unknown) => Error,
): JsonConfigFile<C> {
  return {
    render: (config) => `${JSON.stringify(validate(config), null, 2)}\n`,
    parse(text) {
      let raw: unknown;
      try {
        raw = JSON.parse(text);
      } catch (err) {
        throw notJson(err);
      }
      return validate(raw);
    },
  };
}
