import { join } from "node:path";
import type { Command } from "commander";
import { loadSettings, type Settings } from "../config/settings.ts";
import { createLogger } from "../lib/log.ts";
import { KmsClient } from "./client.ts";
import { kmsError } from "./errors.ts";
import { serveKms } from "./server.ts";
import type { AuditEntry } from "./service.types.ts";

/** Where the key service keeps its store and socket by default: `$CLAWKEEP_HOME/kms` and `$CLAWKEEP_HOME/run/kms/kms.sock`. */
export function defaultKmsPaths(settings: Settings): { dir: string; socket: string } {
  return { dir: settings.kmsDir, socket: join(settings.runDir, "kms", "kms.sock") };
}

function uidList(value: string, previous: number[] = []): number[] {
  if (!/^\d+$/.test(value))
    throw kmsError("invalid_input", `--allow-uid takes a numeric uid, got ${JSON.stringify(value)}`);
  return [...previous, Number(value)];
}

function formatAudit(entries: AuditEntry[]): string {
  if (entries.length === 0) return "no audit entries";
  return entries
    .map((e) => {
      const who = typeof e.caller === "object" ? `uid ${e.caller.uid} pid ${e.caller.pid}` : e.caller;
      return `${e.time}  ${e.ok ? "ok " : "ERR"}  ${e.op.padEnd(17)} ${(e.tenant ?? "-").padEnd(38)} ${(e.keyId ?? "-").padEnd(16)}  ${who}${e.error ? `  ${e.error}` : ""}`;
    })
    .join("\n");
}

/**
 * Adds `serve` and `audit` to `cmd`. `src/kms/main.ts` adds them at the top level; the clawkeep CLI
 * adds them under `kms` (registerKmsCommands).
 */
export function addKmsSubcommands(cmd: Command): Command {
  cmd
    .command("serve")
    .description("run the isolated key service in the foreground on its unix socket")
    .option("--dir <path>", "the service's own store directory (default: $CLAWKEEP_HOME/kms)")
    .option("--socket <path>", "unix socket to listen on (default: $CLAWKEEP_HOME/run/kms/kms.sock)")
    .option(
      "--root-key <path>",
      "operator-supplied root key file (32 bytes, 0400); default <dir>/root.key, created at first init",
    )
    .option("--audit <path>", "audit log (default: <dir>/audit.log)")
    .option("--allow-uid <uid>", "a uid allowed to call (repeatable; default: this process's uid)", uidList)
    .option(
      "--exit-with-stdin",
      "exit when stdin closes (set by the supervisor, so the service dies with the control plane)",
    )
    .action(
      async (o: {
        dir?: string;
        socket?: string;
        rootKey?: string;
        audit?: string;
        allowUid?: number[];
        exitWithStdin?: boolean;
      }) => {
        const settings = loadSettings();
        const paths = defaultKmsPaths(settings);
        const log = createLogger(settings.logLevel, "clawkeep-kms");
        const stop = new AbortController();
        const server = await serveKms({
          dir: o.dir ?? paths.dir,
          socket: o.socket ?? paths.socket,
          rootKeyPath: o.rootKey,
          auditPath: o.audit,
          allowedUids: o.allowUid,
          signal: stop.signal,
          log,
        });
        for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => stop.abort());
        if (o.exitWithStdin) {
          process.stdin.on("end", () => stop.abort());
          process.stdin.on("close", () => stop.abort());
          process.stdin.on("error", () => stop.abort());
          process.stdin.resume();
        }
        await server.closed;
        process.exit(0);
      },
    );
  cmd
    .command("audit")
    .description("show the key service's audit log (asks the running service)")
    .option("--socket <path>", "the key service's socket (default: $CLAWKEEP_HOME/run/kms/kms.sock)")
    .option("--tenant <id>", "only this tenant's entries")
    .option("--limit <n>", "at most this many of the newest entries", (v) => Number(v), 1000)
    .option("--json", "print machine-readable JSON")
    .action(async (o: { socket?: string; tenant?: string; limit: number; json?: boolean }) => {
      const client = new KmsClient(o.socket ?? defaultKmsPaths(loadSettings()).socket);
      try {
        const entries = await client.audit({ tenant: o.tenant, limit: o.limit });
        process.stdout.write(o.json ? `${JSON.stringify(entries, null, 2)}\n` : `${formatAudit(entries)}\n`);
      } finally {
        await client.close();
      }
    });
  return cmd;
}

/** Adds `kms serve` and `kms audit` to the clawkeep CLI. */
export function registerKmsCommands(program: Command): Command {
  return addKmsSubcommands(program.command("kms").description("the isolated key service"));
}
