import { resolve } from "node:path";
import { Command, Option } from "commander";
import { loadSettings } from "../config/settings.ts";
import type { ModelView, TenantModelView } from "../control/models.ts";
import { startPlatform } from "../control/platform.ts";
import type { PoolView } from "../control/pools.ts";
import type { EgressView, InstanceView, TenantView } from "../control/tenants.ts";
import { ClawkeepError } from "../core/errors.ts";
import { TIERS } from "../core/tenant.ts";
import { registerKmsCommands } from "../kms/cli.ts";
import { createLogger } from "../lib/log.ts";
import { findRuntime, installRuntime } from "../openclaw/runtime.ts";
import { AdminClient } from "./admin-client.ts";
import { client, jsonOpt, type Out, print, table } from "./common.ts";
import { reportCliError } from "./fail.ts";
import { registerLlmCommands } from "./llm.ts";

function progress(opts: Out) {
  return (line: string) => {
    if (!opts.json) process.stderr.write(`${line}\n`);
  };
}

/**
 * `<parent> list`: GETs `path` from the operator API and prints the array under `key` as a table
 * (`columns`, then a `row` for each item), or `empty` when there is none; with --json the array.
 */
function listCommand<K extends string, T>(
  parent: Command,
  spec: {
    description: string;
    path: string;
    key: K;
    empty: string;
    columns: string[];
    row: (item: T) => string[];
  },
): void {
  parent
    .command("list")
    .description(spec.description)
    .addOption(jsonOpt())
    .action(async (opts: Out, cmd: Command) => {
      const items = (await client(cmd).call<Record<K, T[]>>("GET", spec.path))[spec.key];
      print(opts, items, () =>
        items.length === 0 ? spec.empty : table([spec.columns, ...items.map((item) => spec.row(item))]),
      );
    });
}

async function waitFor(
  c: AdminClient,
  name: string,
  until: (t: TenantView | null) => boolean,
  opts: Out & { timeout: number },
): Promise<TenantView | null> {
  const deadline = Date.now() + opts.timeout * 1000;
  let last = "";
  while (Date.now() < deadline) {
    let t: TenantView | null;
    try {
      t = await c.call<TenantView>("GET", `/v1/tenants/${name}`);
    } catch (err) {
      if (err instanceof ClawkeepError && err.code === "not_found") t = null;
      else throw err;
    }
    if (until(t)) return t;
    const now = t ? `${t.actual}${t.reason ? ` (${t.reason})` : ""}` : "gone";
    if (now !== last) progress(opts)(`  ${name}: ${now}`);
    last = now;
    if (t?.actual === "failed") throw new ClawkeepError("runtime_failed", `${name} failed: ${t.reason}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new ClawkeepError(
    "runtime_failed",
    `timed out after ${opts.timeout} s waiting for ${name} (last: ${last})`,
  );
}

export function buildCli(): Command {
  const program = new Command("clawkeep")
    .description("Host OpenClaw gateways for many tenants")
    .option("--socket <path>", "operator API socket (default: $CLAWKEEP_HOME/run/admin.sock)")
    .showHelpAfterError();

  program
    .command("serve")
    .description("start the control plane in the foreground (what `npm start` runs)")
    .option(
      "--stop-gateways-on-exit",
      "stop every gateway when the control plane exits (default: leave them running, to be adopted)",
    )
    .action(async (opts: { stopGatewaysOnExit?: boolean }) => {
      const settings = loadSettings();
      const log = createLogger(settings.logLevel);
      const platform = await startPlatform(settings, log, {
        progress: (l) => process.stderr.write(`${l}\n`),
      });
      process.stderr.write(
        `clawkeep is up: public API ${platform.apiUrl}, operator API unix:${platform.adminSocket}\n` +
          `create a tenant: ./bin/clawkeep tenant create alice --tier starter\n`,
      );
      let closing = false;
      const shutdown = async (sig: string) => {
        if (closing) return;
        closing = true;
        log.info({ signal: sig }, "shutting down");
        await platform.close({ stopGateways: opts.stopGatewaysOnExit === true });
        process.exit(0);
      };
      process.on("SIGINT", () => void shutdown("SIGINT"));
      process.on("SIGTERM", () => void shutdown("SIGTERM"));
    });

  program
    .command("teardown")
    .description(
      "with the control plane stopped: stop every gateway, pool and container, the edge and the egress proxy, unmount volumes, remove the bridge and its rules (data and keys are kept; `serve` brings everything back)",
    )
    .addOption(jsonOpt())
    .action(async (opts: Out) => {
      const settings = loadSettings();
      const running = await new AdminClient(settings.adminSocket)
        .call("GET", "/v1/tenants")
        .then(() => true)
        .catch(() => false);
      if (running)
        throw new ClawkeepError(
          "conflict",
          `the control plane is running (unix:${settings.adminSocket}): stop it first, then tear down`,
        );
      const log = createLogger(settings.logLevel);
      const platform = await startPlatform(settings, log, {
        reconcile: false,
        progress: (l) => process.stderr.write(`${l}\n`),
      });
      const gateways = (await platform.driver.list()).filter((i) => i.state === "running").map((i) => i.name);
      process.stderr.write(`stopping ${gateways.length} gateway(s) and everything around them...\n`);
      await platform.close({ teardown: true });
      print(opts, { stopped: gateways, dataKept: true }, () =>
        gateways.length
          ? `stopped ${gateways.join(", ")}; the edge, the egress proxy, pools, mounts and the tenants' network are down; data and keys are kept`
          : "nothing was running; the edge, the egress proxy, mounts and the tenants' network are down; data and keys are kept",
      );
    });

  const runtime = program.command("runtime").description("the OpenClaw runtime (Node 24 + pinned openclaw)");
  runtime
    .command("install")
    .description("install the pinned runtime if it is not installed (idempotent)")
    .addOption(jsonOpt())
    .action(async (opts: Out) => {
      const s = loadSettings();
      const rt = await installRuntime(s, { progress: progress(opts) });
      print(opts, rt, () => `openclaw ${rt.openclawVersion} on node ${rt.nodeVersion}: ${rt.dir}`);
    });
  runtime
    .command("status")
    .description("show whether the pinned runtime is installed")
    .addOption(jsonOpt())
    .action(async (opts: Out) => {
      const s = loadSettings();
      const rt = await findRuntime(s);
      print(
        opts,
        { installed: !!rt, ...rt, openclawVersion: s.openclawVersion, nodeVersion: s.nodeVersion },
        () =>
          rt
            ? `installed: ${rt.dir}`
            : `not installed (openclaw ${s.openclawVersion}, node ${s.nodeVersion})`,
      );
      if (!rt) process.exitCode = 1;
    });

  registerKmsCommands(program);

  const tenant = program.command("tenant").description("manage tenants (operator)");
  tenant
    .command("create <name>")
    .description("create a tenant on a 7-day trial and print its gateway URL and token (shown once)")
    .addOption(new Option("--tier <tier>", "isolation tier").choices([...TIERS]).default("starter"))
    .option("--no-wait", "return at once instead of waiting for the gateway to be ready")
    .option("--timeout <seconds>", "how long to wait for the gateway", (v) => Number(v), 600)
    .addOption(jsonOpt())
    .action(
      async (name: string, opts: Out & { tier: string; wait: boolean; timeout: number }, cmd: Command) => {
        const c = client(cmd);
        const created = await c.call<{
          tenant: TenantView;
          apiToken: string;
          gateway: { url: string; publicUrl: string | null; caFile: string | null; token: string };
        }>("POST", "/v1/tenants", { name, tier: opts.tier });
        progress(opts)(`created ${name} (${opts.tier}); starting its gateway...`);
        let t = created.tenant;
        if (opts.wait) t = (await waitFor(c, name, (x) => x?.actual === "running", opts))!;
        print(opts, { ...created, tenant: t }, () =>
          [
            `tenant:        ${t.name} (${t.tier}, trial ends ${t.trial.endsAt})`,
            `state:         ${t.actual}`,
            ...(created.gateway.publicUrl
              ? [
                  `public URL:    ${created.gateway.publicUrl}  (TLS 1.3 + WAF, through the edge, for remote clients)`,
                ]
              : []),
            `gateway URL:   ${created.gateway.url}/  (direct, from this host)`,
            `gateway token: ${created.gateway.token}`,
            `API token:     ${created.apiToken}`,
            ...(created.gateway.publicUrl && created.gateway.caFile
              ? [`edge CA:       ${created.gateway.caFile}`]
              : []),
            "The tokens are shown only now. Try a chat from this host (OpenClaw refuses proxied",
            "requests from loopback clients, so the edge URL is for other machines):",
            `  curl -s ${created.gateway.url}/v1/chat/completions -H 'Authorization: Bearer ${created.gateway.token}' \\`,
            `    -H 'content-type: application/json' -d '{"model":"openclaw","messages":[{"role":"user","content":"hello"}]}'`,
          ].join("\n"),
        );
      },
    );
  listCommand(tenant, {
    description: "list tenants",
    path: "/v1/tenants",
    key: "tenants",
    empty: "no tenants",
    columns: ["NAME", "TIER", "STATE", "TRIAL", "URL"],
    row: (t: TenantView) => [
      t.name,
      t.tier,
      t.actual,
      t.trial.subscription === "active"
        ? "subscribed"
        : t.trial.expired
          ? "expired"
          : `${t.trial.daysLeft}d left`,
      t.gatewayUrl,
    ],
  });
  tenant
    .command("get <name>")
    .description("show a tenant and its instance")
    .addOption(jsonOpt())
    .action(async (name: string, opts: Out, cmd: Command) => {
      const c = client(cmd);
      const t = await c.call<TenantView>("GET", `/v1/tenants/${encodeURIComponent(name)}`);
      const i = await c.call<InstanceView>("GET", `/v1/tenants/${encodeURIComponent(name)}/instance`);
      print(opts, { tenant: t, instance: i }, () =>
        [
          `${t.name} (${t.tier}) ${t.actual}${t.reason ? `: ${t.reason}` : ""}`,
          `gateway:   ${t.gatewayUrl}/  pid ${i.pid ?? "-"}  ${i.driver}:${i.state}`,
          `trial:     ${t.trial.subscription === "active" ? "subscribed" : `${t.trial.daysLeft} days left (ends ${t.trial.endsAt})`}`,
          ...(i.model
            ? [
                `model:     ${i.model.state}${i.model.id ? ` (${i.model.id})` : ""}${i.model.message ? `: ${i.model.message}` : ""}`,
              ]
            : []),
          `isolation: ${t.isolation}`,
        ].join("\n"),
      );
    });
  tenant
    .command("events <name>")
    .description("what happened to a tenant")
    .addOption(jsonOpt())
    .action(async (name: string, opts: Out, cmd: Command) => {
      const { events } = await client(cmd).call<{ events: { at: string; type: string; message: string }[] }>(
        "GET",
        `/v1/tenants/${encodeURIComponent(name)}/events`,
      );
      print(opts, events, () => events.map((e) => `${e.at}  ${e.type.padEnd(14)} ${e.message}`).join("\n"));
    });
  tenant
    .command("delete <name>")
    .description("delete a tenant: stop its gateway and remove all its data")
    .option("--no-wait", "return at once")
    .option("--timeout <seconds>", "how long to wait", (v) => Number(v), 120)
    .addOption(jsonOpt())
    .action(async (name: string, opts: Out & { wait: boolean; timeout: number }, cmd: Command) => {
      const c = client(cmd);
      await c.call("DELETE", `/v1/tenants/${encodeURIComponent(name)}`);
      if (opts.wait) {
        // The tenant API hides a tenant being deleted; the operator's list shows it until it is gone.
        const deadline = Date.now() + opts.timeout * 1000;
        for (;;) {
          const { tenants } = await c.call<{ tenants: TenantView[] }>("GET", "/v1/tenants");
          const t = tenants.find((x) => x.name === name);
          if (!t) break;
          if (Date.now() > deadline)
            throw new ClawkeepError("runtime_failed", `${name} is still ${t.actual} after ${opts.timeout} s`);
          await new Promise((r) => setTimeout(r, 500));
        }
      }
      print(opts, { deleted: name, done: opts.wait }, () =>
        opts.wait ? `deleted ${name}` : `deleting ${name}`,
      );
    });
  for (const action of ["suspend", "resume", "restart", "subscribe"] as const) {
    tenant
      .command(`${action} <name>`)
      .description(
        {
          suspend: "stop the gateway, keep the data",
          resume: "start a suspended or failed tenant again",
          restart: "restart the gateway (a running one is stopped and started again; a failed one retried)",
          subscribe: "mark the tenant as paying: the trial no longer suspends it",
        }[action],
      )
      .addOption(jsonOpt())
      .action(async (name: string, opts: Out, cmd: Command) => {
        const t = await client(cmd).call<TenantView>(
          "POST",
          `/v1/tenants/${encodeURIComponent(name)}/${action}`,
        );
        print(opts, t, () => `${t.name}: ${action} requested (now ${t.actual})`);
      });
  }
  registerModelCommands(program);
  registerPoolCommands(program);
  registerEgressCommands(program);
  registerLlmCommands(program);
  return program;
}

interface AllowlistOut {
  tenant: string;
  airGapped: boolean;
  defaults: string[];
  operator: string[];
  own: string[];
}
interface OperatorAllowOut {
  defaults: string[];
  settings: string[];
  operator: string[];
}

/**
 * `clawkeep egress show|log|allow|remove`: what tenants may reach through the egress proxy and
 * what they did, through the operator API on its unix socket.
 */
function registerEgressCommands(program: Command): void {
  const egress = program
    .command("egress")
    .description("tenants' egress through the filtering proxy (operator)");
  const showAllow = (a: AllowlistOut) =>
    a.airGapped
      ? `${a.tenant}: air-gapped, no egress at all`
      : [
          `${a.tenant} may reach:`,
          `  defaults:  ${a.defaults.join(", ")}`,
          `  operator:  ${a.operator.join(", ") || "-"}`,
          `  own:       ${a.own.join(", ") || "-"}`,
        ].join("\n");
  egress
    .command("show [tenant]")
    .description(
      "a tenant's allowlist (defaults, operator's, its own), or without a tenant every tenant's additions",
    )
    .addOption(jsonOpt())
    .action(async (tenant: string | undefined, opts: Out, cmd: Command) => {
      const c = client(cmd);
      if (tenant) {
        const a = await c.call<AllowlistOut>("GET", `/v1/tenants/${encodeURIComponent(tenant)}/egress/allow`);
        print(opts, a, () => showAllow(a));
      } else {
        const o = await c.call<OperatorAllowOut>("GET", "/v1/egress/allow");
        print(opts, o, () =>
          [
            `every tenant with egress may reach:`,
            `  defaults:  ${o.defaults.join(", ")}`,
            `  settings:  ${o.settings.join(", ") || "-"} (CLAWKEEP_EGRESS_ALLOW)`,
            `  operator:  ${o.operator.join(", ") || "-"}`,
          ].join("\n"),
        );
      }
    });
  const change = (verb: "allow" | "remove") =>
    egress
      .command(`${verb} <hosts...>`)
      .description(
        verb === "allow"
          ? "add host names (*.domain.tld, IP literals) every tenant, or one (--tenant), may reach"
          : "take host names off the operator's list, or one tenant's (--tenant)",
      )
      .option("--tenant <name>", "only this tenant's list")
      .addOption(jsonOpt())
      .action(async (hosts: string[], opts: Out & { tenant?: string }, cmd: Command) => {
        const c = client(cmd);
        const path = opts.tenant
          ? `/v1/tenants/${encodeURIComponent(opts.tenant)}/egress/allow`
          : "/v1/egress/allow";
        const cur = opts.tenant
          ? (await c.call<AllowlistOut>("GET", path)).own
          : (await c.call<OperatorAllowOut>("GET", path)).operator;
        const lower = new Set(hosts.map((h) => h.trim().toLowerCase()));
        const next = verb === "allow" ? [...cur, ...hosts] : cur.filter((h) => !lower.has(h));
        const out = await c.call<AllowlistOut | OperatorAllowOut>("PUT", path, { hosts: next });
        print(opts, out, () =>
          "tenant" in out ? showAllow(out) : `every tenant's additions: ${out.operator.join(", ") || "-"}`,
        );
      });
  change("allow");
  change("remove");
  egress
    .command("log <tenant>")
    .description("a tenant's egress counters and latest connections (time, host, port, verdict, bytes)")
    .option("--limit <n>", "how many connections", (v) => Number(v), 20)
    .addOption(jsonOpt())
    .action(async (tenant: string, opts: Out & { limit: number }, cmd: Command) => {
      const v = await client(cmd).call<EgressView>(
        "GET",
        `/v1/tenants/${encodeURIComponent(tenant)}/egress?limit=${opts.limit}`,
      );
      print(opts, v, () =>
        [
          `${v.tenant}: egress ${v.mode}; allowed ${v.counters.allowed}, denied ${v.counters.denied}, up ${v.counters.bytesUp} B, down ${v.counters.bytesDown} B, open ${v.counters.active}`,
          v.log.length
            ? table([
                ["TIME", "METHOD", "HOST", "PORT", "VERDICT", "REASON", "UP", "DOWN"],
                ...v.log.map((e) => [
                  e.time,
                  e.method,
                  e.host ?? "-",
                  String(e.port ?? "-"),
                  e.verdict,
                  e.reason,
                  String(e.bytesUp),
                  String(e.bytesDown),
                ]),
              ])
            : "no connections yet",
        ].join("\n"),
      );
    });
}

/** `clawkeep pool list|move`: the Starter pools, through the operator API on its unix socket. */
function registerPoolCommands(program: Command): void {
  const pool = program.command("pool").description("Starter pools (operator)");
  listCommand(pool, {
    description: "every Starter pool: state, address, tenants and capacity",
    path: "/v1/pools",
    key: "pools",
    empty: "no Starter pools (one starts with the first Starter tenant)",
    columns: ["POOL", "STATE", "ADDRESS", "TENANTS", "CAPACITY"],
    row: (p: PoolView) => [
      p.id,
      p.state,
      p.address,
      p.tenants.join(",") || "-",
      `${p.tenants.length}/${p.capacity}`,
    ],
  });
  pool
    .command("move <tenant>")
    .description(
      "move a Starter tenant to another pool with its data; its URL stays, it restarts there (a short outage)",
    )
    .option("--to <pool>", "the pool, e.g. pool-1 (default: wherever placement puts it)")
    .addOption(jsonOpt())
    .action(async (tenant: string, opts: Out & { to?: string }, cmd: Command) => {
      const r = await client(cmd).call<{ tenant: string; pool: string }>("POST", "/v1/pools/moves", {
        tenant,
        ...(opts.to ? { to: opts.to } : {}),
      });
      print(opts, r, () => `${r.tenant} is now in ${r.pool}; it restarts there through the start queue`);
    });
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

function describeModel(m: ModelView): string {
  const users = [...m.defaultFor.map((p) => `${p} plan`), ...m.tenants.map((t) => `tenant ${t}`)];
  return [
    `${m.id}: ${m.status}${m.reason ? ` (${m.reason})` : ""}`,
    `  file:     ${m.path} (${m.size} bytes, ${mib(m.size)})`,
    `  sha256:   ${m.sha256}`,
    `  checked:  ${m.verifiedAt} (registered ${m.registeredAt})`,
    `  used by:  ${users.length ? users.join(", ") : "nobody"}`,
  ].join("\n");
}

/**
 * `clawkeep model register|list|remove|verify|assign|unassign`: the operator's GGUF models for
 * Enterprise tenants, through the operator API on its unix socket.
 */
function registerModelCommands(program: Command): void {
  const model = program.command("model").description("local LLM models for Enterprise tenants (operator)");
  model
    .command("register <id> <path>")
    .description(
      "register a GGUF file after checking it (GGUF header, size, SHA-256); it must be readable by others",
    )
    .option("--sha256 <hex>", "the file's published SHA-256 (default: measured now)")
    .option("--size <bytes>", "the file's size in bytes", (v) => Number(v))
    .addOption(
      new Option("--default-for <tier>", "also make it this plan's default model").choices([...TIERS]),
    )
    .addOption(jsonOpt())
    .action(
      async (
        id: string,
        path: string,
        opts: Out & { sha256?: string; size?: number; defaultFor?: string },
        cmd: Command,
      ) => {
        const c = client(cmd);
        const m = await c.call<ModelView>("POST", "/v1/models", {
          id,
          path: resolve(path),
          ...(opts.sha256 ? { sha256: opts.sha256 } : {}),
          ...(opts.size !== undefined ? { size: opts.size } : {}),
        });
        const out = opts.defaultFor
          ? await c
              .call("PUT", `/v1/plans/${opts.defaultFor}/model`, { model: m.id })
              .then(() => c.call<ModelView>("GET", `/v1/models/${encodeURIComponent(m.id)}`))
          : m;
        print(opts, out, () => `registered ${describeModel(out)}`);
      },
    );
  listCommand(model, {
    description: "registered models, their last check and who uses them",
    path: "/v1/models",
    key: "models",
    empty: "no models registered (clawkeep model register <id> <file.gguf>)",
    columns: ["ID", "STATUS", "SIZE", "SHA256", "USED BY", "PATH"],
    row: (m: ModelView) => [
      m.id,
      m.status,
      mib(m.size),
      `${m.sha256.slice(0, 12)}...`,
      [...m.defaultFor.map((p) => `${p} plan`), ...m.tenants].join(",") || "-",
      m.path,
    ],
  });
  model
    .command("verify <id>")
    .description("check a model's file against its size and SHA-256 now; exits 1 when it fails")
    .addOption(jsonOpt())
    .action(async (id: string, opts: Out, cmd: Command) => {
      const m = await client(cmd).call<ModelView>("POST", `/v1/models/${encodeURIComponent(id)}/verify`);
      print(opts, m, () => describeModel(m));
      if (m.status !== "ready") process.exitCode = 1;
    });
  model
    .command("remove <id>")
    .description(
      "remove a model from the registry (refused while a plan or tenant uses it; the file is kept)",
    )
    .addOption(jsonOpt())
    .action(async (id: string, opts: Out, cmd: Command) => {
      await client(cmd).call("DELETE", `/v1/models/${encodeURIComponent(id)}`);
      print(opts, { removed: id }, () => `removed ${id}`);
    });
  const target = (opts: { plan?: string; tenant?: string }): string => {
    if (!opts.plan === !opts.tenant)
      throw new ClawkeepError("invalid_request", "give exactly one of --plan <tier> or --tenant <name>");
    return opts.plan
      ? `/v1/plans/${encodeURIComponent(opts.plan)}/model`
      : `/v1/tenants/${encodeURIComponent(opts.tenant!)}/model`;
  };
  const assign = async (
    modelId: string | null,
    opts: Out & { plan?: string; tenant?: string },
    cmd: Command,
  ): Promise<void> => {
    const r = await client(cmd).call<TenantModelView | { tier: string; model: string | null }>(
      "PUT",
      target(opts),
      { model: modelId },
    );
    print(opts, r, () =>
      "tenant" in r
        ? `${r.tenant}: own model ${r.model ?? "none"}, served by ${r.effective ?? "nothing"} (applies at its next start: suspend and resume it to switch now)`
        : `${r.tier} plan: default model ${r.model ?? "none"} (applies at each tenant's next start)`,
    );
  };
  model
    .command("assign <id>")
    .description("serve a plan's tenants (default) or one tenant (override) with this model")
    .addOption(new Option("--plan <tier>", "the plan whose default it becomes").choices([...TIERS]))
    .option("--tenant <name>", "the tenant that gets it")
    .addOption(jsonOpt())
    .action((id: string, opts: Out & { plan?: string; tenant?: string }, cmd: Command) =>
      assign(id, opts, cmd),
    );
  model
    .command("unassign")
    .description("clear a plan's default model or a tenant's own choice")
    .addOption(new Option("--plan <tier>", "the plan").choices([...TIERS]))
    .option("--tenant <name>", "the tenant (it falls back to its plan's default)")
    .addOption(jsonOpt())
    .action((opts: Out & { plan?: string; tenant?: string }, cmd: Command) => assign(null, opts, cmd));
}

export async function main(argv = process.argv): Promise<void> {
  try {
    await buildCli().parseAsync(argv);
  } catch (err) {
    reportCliError("clawkeep", err);
    process.exitCode = 1;
  }
}

await main();
