/**
 * The key service's own entry point: `node --import tsx src/kms/main.ts serve --dir D --socket S`.
 * The control plane starts it through supervisor.ts; operators may also run it by hand.
 */
import { Command } from "commander";
import { ClawkeepError } from "../core/errors.ts";
import { addKmsSubcommands } from "./cli.ts";

const program = new Command("clawkeep-kms")
  .description("the clawkeep isolated key service")
  .showHelpAfterError();
addKmsSubcommands(program);
try {
  await program.parseAsync(process.argv);
} catch (err) {
  const msg =
    err instanceof ClawkeepError ? `${err.code}: ${err.message}` : ((err as Error).stack ?? String(err));
  if (process.argv.includes("--json")) {
    process.stdout.write(
      `${JSON.stringify({ error: { code: (err as ClawkeepError).code ?? "internal", message: (err as Error).message } })}\n`,
    );
  }
  process.stderr.write(`clawkeep-kms: ${msg}\n`);
  process.exit(1);
}
