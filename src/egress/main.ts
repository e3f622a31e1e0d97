import { readFile } from "node:fs/promises";
import { ClawkeepError } from "../core/errors.ts";
import { createLogger } from "../lib/log.ts";
import { type AdminServer, serveAdmin } from "./admin.ts";
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
  let admin: AdminServer;
  try {
    admin = await serveAdmin(proxy, config.adminSocket);
  } catch (err) {
    await proxy.close();
    throw err;
  }
  let stopping = false;
  const stop = (sig: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal: sig }, "egress proxy stopping");
    admin
      .close()
      .then(() => proxy.close())
      .then(
        () => process.exit(0),
        () => process.exit(1),
      );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
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

main(process.argv.slice(2), process.env).catch((err: unknown) => {
  const msg = err instanceof ClawkeepError ? `${err.code}: ${err.message}` : String(err);
  process.stderr.write(`egress proxy: ${msg}\n`);
  process.exit(1);
});
