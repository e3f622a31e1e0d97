import { readFile } from "node:fs/promises";
import { createLogger } from "../lib/log.ts";
import { runServiceMain, serveAdminUntilStop } from "../service/stop.ts";
import { serveAdmin } from "./admin.ts";
import { parseEgressConfig, proxyOptionsFromConfig } from "./config.ts";
import { EgressError } from "./errors.ts";
import { startEgressProxy } from "./proxy.ts";

/**
 * The egress proxy process: `node --import tsx src/egress/main.ts --config <file.json>`.
 * Prints one JSON line to stdout once it listens ({"event":"listening", url, port, ...});
 * diagnostics go to stderr. The admin API (admin.ts) is served on the configured socket for the
 * proxy started here. SIGTERM or SIGINT: close the admin socket, stop, flush the log, exit 0.
 */
async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  const i = argv.indexOf("--config");
  const configPath = i >= 0 ? argv[i + 1] : undefined;
  if (!configPath || argv.length !== 2) {
    throw new EgressError("invalid_request", "usage: main.ts --config <egress-config.json>");
  }
  const config = parseEgressConfig(await readFile(configPath, "utf8"));
  const logger = createLogger(env.CLAWKEEP_LOG_LEVEL ?? "info", "clawkeep-egress");
  const proxy = await startEgressProxy({ ...proxyOptionsFromConfig(config), logger });
  const admin = await serveAdminUntilStop(proxy, () => serveAdmin(proxy, config.adminSocket), {
    onStop: (signal) => logger.info({ signal }, "egress proxy stopping"),
  });
  logger.info(
    { url: proxy.url, adminSocket: admin.socketPath, logFile: proxy.logFile },
    "egress proxy listening",
  );
  process.stdout.write(
    `${JSON.stringify({
      event: "listening",
      pid: process.pid,
      url: proxy.url,
      host: proxy.host,
      port: proxy.port,
      adminSocket: admin.socketPath,
      logFile: proxy.logFile,
    })}\n`,
  );
}

runServiceMain("egress proxy", main);
