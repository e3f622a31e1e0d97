import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { ClawkeepError } from "../core/errors.ts";
import { createLogger } from "../lib/log.ts";
import { type RelayAdminServer, serveRelayAdmin } from "./admin.ts";
import { parseRelayConfig, relayOptionsFromConfig } from "./config.ts";
import { RelayError } from "./errors.ts";
import { startRelay } from "./server.ts";
import type { ListeningLine } from "./service.ts";

/**
 * The relay process: `node --import tsx src/relay/main.ts --config <file.json> [--exit-with-stdin]`.
 * Serves the data plane on the configured TCP address and the admin API on the configured unix
 * socket, then prints one JSON line on stdout ({"event":"listening", url, port, adminSocket, ...});
 * diagnostics go to stderr. It holds no state until the control plane pushes one (requests get
 * 503 relay_starting meanwhile). SIGTERM or SIGINT (or, with --exit-with-stdin, its stdin
 * closing: its supervisor died): close the admin socket and the data plane, exit 0.
 */
async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: { config: { type: "string" }, "exit-with-stdin": { type: "boolean", default: false } },
  });
  if (!values.config) throw new RelayError("invalid_state", "usage: main.ts --config <relay-config.json>");
  const config = parseRelayConfig(await readFile(values.config, "utf8"));
  const log = createLogger(config.logLevel ?? env.CLAWKEEP_LOG_LEVEL ?? "info", "clawkeep-relay");
  const relay = await startRelay({ ...relayOptionsFromConfig(config), log });
  let admin: RelayAdminServer;
  try {
    admin = await serveRelayAdmin(relay, config.adminSocket, {
      testOnlySettableClock: config.testOnlySettableClock === true,
    });
  } catch (err) {
    await relay.close();
    throw err;
  }
  let stopping = false;
  const stop = (why: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ why }, "relay stopping");
    admin
      .close()
      .then(() => relay.close())
      .then(
        () => process.exit(0),
        () => process.exit(1),
      );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  if (values["exit-with-stdin"]) {
    // The supervisor holds our stdin: when it dies, the pipe closes and we go too.
    process.stdin.on("error", () => {});
    process.stdin.on("close", () => stop("stdin closed"));
    process.stdin.resume();
  }
  log.info({ url: relay.url, adminSocket: admin.socketPath }, "relay listening");
  const line: ListeningLine = {
    event: "listening",
    pid: process.pid,
    url: relay.url,
    host: relay.host,
    port: relay.port,
    adminSocket: admin.socketPath,
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

main(process.argv.slice(2), process.env).catch((err: unknown) => {
  const msg = err instanceof ClawkeepError ? `${err.code}: ${err.message}` : String(err);
  process.stderr.write(`relay: ${msg}\n`);
  process.exit(1);
});
