import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import type { LlmView, UsageSummary, UsageView } from "../control/llm.ts";
import { ClawkeepError } from "../core/errors.ts";
import type { LlmLimits } from "../core/plans.ts";
import { client, jsonOpt, type Out, print, table } from "./common.ts";

const n = (v: number | null) => (v === null ? "no limit" : v.toLocaleString("en-US"));
const limitsLine = (l: LlmLimits) =>
  `tokens/day ${n(l.tokensPerDay)}, tokens/month ${n(l.tokensPerMonth)}, requests/min ${n(l.requestsPerMinute)}`;
const tenantPath = (tenant: string, rest: string) => `/v1/tenants/${encodeURIComponent(tenant)}${rest}`;

function describeLlm(v: LlmView): string {
  if (v.models === "none")
    return `${v.tenant}: air-gapped, served by the model inside its own sandbox (no LLM relay)`;
  return [
    `${v.tenant}: ${v.plan} plan; ${limitsLine(v.limits)}`,
    v.own
      ? `  provider: its own at ${v.own.baseUrl}${v.own.model ? ` (model ${v.own.model})` : ""}, set ${v.own.updatedAt}`
      : "  provider: the platform's",
  ].join("\n");
}

/** The key in a file: its first line, without the line end; an empty one is refused. */
async function readKeyFile(path: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new ClawkeepError(
      "invalid_request",
      `cannot read the API key file ${path}: ${(err as Error).message}`,
    );
  }
  const key = text.split(/\r?\n/, 1)[0]?.trim() ?? "";
  if (!key) throw new ClawkeepError("invalid_request", `the API key file ${path} is empty`);
  return key;
}

/** `clawkeep llm <name> <tenant>`: calls `method` on the tenant's /llm route and prints the LlmView it answers. */
function llmViewCommand(llm: Command, name: string, description: string, method: "GET" | "DELETE"): void {
  llm
    .command(`${name} <tenant>`)
    .description(description)
    .addOption(jsonOpt())
    .action(async (tenant: string, opts: Out, cmd: Command) => {
      const v = await client(cmd).call<LlmView>(method, tenantPath(tenant, "/llm"));
      print(opts, v, () => describeLlm(v));
    });
}

/**
 * `clawkeep llm show|set-key|clear-key|rotate-key` and `clawkeep usage`: tenants' LLM access
 * through the relay, through the operator API on its unix socket.
 */
export function registerLlmCommands(program: Command): void {
  const llm = program.command("llm").description("tenants' LLM access through the relay (operator)");
  llmViewCommand(
    llm,
    "show",
    "a tenant's LLM plan, limits and provider (the platform's or its own; never a key)",
    "GET",
  );
  llm
    .command("set-key <tenant>")
    .description(
      "let a tenant use its own provider key (one of the allowed base URLs); sealed, used only by the relay",
    )
    .requiredOption("--base-url <url>", "the provider's base URL, e.g. https://api.openai.com/v1")
    .requiredOption(
      "--api-key-file <file>",
      "a file whose first line is the key (never pass a key as an argument)",
    )
    .option("--model <id>", "the model to use at that provider")
    .addOption(jsonOpt())
    .action(
      async (
        tenant: string,
        opts: Out & { baseUrl: string; apiKeyFile: string; model?: string },
        cmd: Command,
      ) => {
        const apiKey = await readKeyFile(opts.apiKeyFile);
        const v = await client(cmd).call<LlmView>("PUT", tenantPath(tenant, "/llm"), {
          baseUrl: opts.baseUrl,
          apiKey,
          ...(opts.model ? { model: opts.model } : {}),
        });
        print(opts, v, () => describeLlm(v));
      },
    );
  llmViewCommand(
    llm,
    "clear-key",
    "remove a tenant's own provider key: back to the platform's provider",
    "DELETE",
  );
  llm
    .command("rotate-key <tenant>")
    .description(
      "replace a tenant's LLM relay key: the old one stops working, a running gateway restarts with the new one",
    )
    .addOption(jsonOpt())
    .action(async (tenant: string, opts: Out, cmd: Command) => {
      const r = await client(cmd).call<{ tenant: string; restarted: boolean }>(
        "POST",
        tenantPath(tenant, "/llm/rotate-key"),
      );
      print(opts, r, () =>
        r.restarted
          ? `${r.tenant}: relay key rotated; its gateway restarts with the new one`
          : `${r.tenant}: relay key rotated; its gateway gets it at its next start`,
      );
    });

  program
    .command("usage [tenant]")
    .description(
      "a tenant's LLM usage per day and model with its limits, or every tenant's today and this month",
    )
    .option("--days <n>", "how many days of a tenant's usage", (v) => Number(v), 31)
    .addOption(jsonOpt())
    .action(async (tenant: string | undefined, opts: Out & { days: number }, cmd: Command) => {
      const c = client(cmd);
      if (tenant) {
        const u = await c.call<UsageView>("GET", tenantPath(tenant, `/usage?days=${opts.days}`));
        print(opts, u, () =>
          [
            `${u.tenant}: ${u.plan} plan; ${limitsLine(u.limits)}`,
            `  today (${u.today.day}):      ${n(u.today.tokens)} tokens in ${n(u.today.requests)} requests`,
            `  this month (${u.thisMonth.month}): ${n(u.thisMonth.tokens)} tokens in ${n(u.thisMonth.requests)} requests`,
            u.days.length
              ? table([
                  ["DAY", "MODEL", "INPUT", "OUTPUT", "REQUESTS"],
                  ...u.days.map((d) => [
                    d.day,
                    d.model,
                    String(d.inputTokens),
                    String(d.outputTokens),
                    String(d.requests),
                  ]),
                ])
              : "no usage yet",
          ].join("\n"),
        );
        return;
      }
      const s = await c.call<UsageSummary>("GET", "/v1/usage");
      print(opts, s, () =>
        s.tenants.length === 0
          ? "no tenants"
          : table([
              [
                "TENANT",
                "PLAN",
                `TODAY (${s.day})`,
                "DAY LIMIT",
                `MONTH (${s.month})`,
                "MONTH LIMIT",
                "REQUESTS TODAY",
              ],
              ...s.tenants.map((t) => [
                t.tenant,
                t.plan,
                String(t.today.tokens),
                n(t.limits.tokensPerDay),
                String(t.thisMonth.tokens),
                n(t.limits.tokensPerMonth),
                String(t.today.requests),
              ]),
            ]),
      );
    });
}
