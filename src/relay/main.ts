import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { createLogger } from "../lib/log.ts";
import { runServiceMain, serveAdminUntilStop } from "../service/stop.ts";
import { serveRelayAdmin } from "./admin.ts";
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
  const admin = await serveAdminUntilStop(
    relay,
    () =>
      serveRelayAdmin(relay, config.adminSocket, {
        testOnlySettableClock: config.testOnlySettableClock === true,
      }),
    { onStop: (why) => log.info({ why }, "relay stopping"), exitWithStdin: values["exit-with-stdin"] },
  );
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

runServiceMain("relay", main);
