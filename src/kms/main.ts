/**
 * The key service's own entry point: `node --import tsx src/kms/main.ts serve --dir D --socket S`.
 * The control plane starts it through supervisor.ts; operators may also run it by hand.
 */
import { Command } from "commander";
import { reportCliError } from "../cli/fail.ts";
import { addKmsSubcommands } from "./cli.ts";

const program = new Command("clawkeep-kms")
  .description("the clawkeep isolated key service")
  .showHelpAfterError();
addKmsSubcommands(program);
try {
  await program.parseAsync(process.argv);
} catch (err) {
  reportCliError("clawkeep-kms", err);
  process.exit(1);
}
