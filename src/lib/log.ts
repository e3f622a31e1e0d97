import pino, { type Logger } from "pino";

/** Structured JSON logs to stderr. Secret values are wrapped in Secret and print as [redacted]. */
export function createLogger(level = "info", name = "clawkeep"): Logger {
  return pino(
    {
      name,
      level,
      redact: {
        paths: ["*.token", "*.apiKey", "*.apiToken", "*.gatewayToken", "headers.authorization"],
        censor: "[redacted]",
      },
    },
    pino.destination(2),
  );
}

export type { Logger };
