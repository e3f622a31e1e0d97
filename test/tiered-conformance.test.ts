import { chmod, lstat, mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { loadSettings, type Settings } from "../src/config/settings.ts";
import { ModelService } from "../src/control/models.ts";
import { planFor } from "../src/core/plans.ts";
import type { Tier } from "../src/core/tenant.ts";
import { PLATFORM_LLM_HOST } from "../src/egress/platform-upstream.ts";
import { FakeKeyService } from "../src/kms/fake.ts";
import { createLogger } from "../src/lib/log.ts";
import { type EchoProvider, startEchoProvider } from "../src/llm/echo-provider.ts";
import { writeTinyModel } from "../src/llm/gguf/tiny-model.ts";
import { ensureRuntime } from "../src/openclaw/runtime.ts";
import { driverConformance } from "../src/runtime/conformance.ts";
import { buildSandboxDrivers, type SandboxDrivers } from "../src/runtime/sandbox.ts";
import { TieredDriver } from "../src/runtime/tiered.ts";
import { openDatabase } from "../src/store/db.ts";
import { ModelStore } from "../src/store/models.ts";
import { TenantStore } from "../src/store/tenants.ts";
import { sandboxHome } from "./fixtures/host.ts";
import { needsRoot } from "./support.ts";

/**
 * The driver contract's conformance suite over what production runs: the TieredDriver that
 * buildSandboxDrivers wires (Starter in an encrypted pool, Premium and Enterprise in containers
 * with their own encrypted volume; one bridge, one ruleset, the egress proxy process), with one
 * spec per tier, Enterprise with a tiny GGUF model from the model registry. Its own home,
 * tenants' /16 (10.216: no other test or bench uses it), uid range and key service (the fake one:
 * the real key tree in process). Two real OpenClaw gateway starts per tier.
 */
const skip = needsRoot();
const TIERS: Tier[] = ["starter", "premium", "enterprise"];
const log = createLogger(process.env.CLAWKEEP_TEST_LOG ?? "warn");
let home = "";
let settings: Settings;
let sandbox: SandboxDrivers | undefined;
let kms: FakeKeyService | undefined;
let provider: EchoProvider | undefined;
let llm = { baseUrl: "http://127.0.0.1:9/v1", model: "echo-1" };
const db = openDatabase(":memory:");
const models = new ModelService({ models: new ModelStore(db), tenants: new TenantStore(db) });

before(async () => {
  if (skip) return;
  home = await sandboxHome("clawkeep-tiered-");
  provider = await startEchoProvider();
  settings = loadSettings({
    ...process.env,
    CLAWKEEP_HOME: home,
    CLAWKEEP_TENANT_NET_PREFIX: "10.216",
    CLAWKEEP_EGRESS_PORT: "3138",
    CLAWKEEP_IDMAP_BASE: "5000000",
    CLAWKEEP_MAX_TENANTS: "20",
    CLAWKEEP_STARTER_POOL_MIB: "512",
    CLAWKEEP_STARTER_POOLS_MAX: "2",
    CLAWKEEP_CPU_GUARD: "off",
  });
  const runtime = await ensureRuntime(settings);
  // Enterprise's on-instance model: a small GGUF with deterministic random weights.
  await mkdir(join(home, "models"), { mode: 0o755 });
  const modelPath = join(home, "models", "tiny.gguf");
  await writeTinyModel(modelPath);
  await chmod(modelPath, 0o644);
  await models.register({ id: "tiny-local", path: modelPath });
  models.setPlanModel("enterprise", "tiny-local");
  kms = await FakeKeyService.create();
  // The provider on the host's loopback, offered to tenants through the egress proxy as a platform
  // upstream (the platform offers its LLM relay so; this suite needs no chat, only a reachable URL).
  const port = Number(new URL(provider.url).port);
  const upstream = { host: PLATFORM_LLM_HOST, port, address: "127.0.0.1", targetPort: port };
  llm = { baseUrl: `http://${PLATFORM_LLM_HOST}:${port}/v1`, model: provider.model };
  sandbox = await buildSandboxDrivers({
    settings,
    runtime,
    kms,
    log,
    models,
    platformUpstreams: [upstream],
  });
});

after(async () => {
  if (skip || !home) return;
  await sandbox?.close({ teardown: true }).catch((err) => console.error("teardown:", err));
  await kms?.close().catch(() => {});
  await provider?.close().catch(() => {});
  db.close();
  await rm(home, { recursive: true, force: true });
});

/** Paths under dir whose name holds the tenant's name (bounded walk, no link followed). */
async function namedUnder(dir: string, name: string, depth = 6): Promise<string[]> {
  if (depth === 0) return [];
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = join(dir, e.name);
    if (e.name.includes(name)) out.push(p);
    else if (e.isDirectory()) out.push(...(await namedUnder(p, name, depth - 1)));
  }
  return out;
}

async function leftovers(name: string): Promise<string[]> {
  const left = await namedUnder(home, name);
  for (const c of ["memory", "pids", "cpu"])
    for (const parent of ["clawkeep", "clawkeep-pools"]) {
      const root = join("/sys/fs/cgroup", c, parent);
      if ((await lstat(root).catch(() => undefined))?.isDirectory())
        left.push(...(await namedUnder(root, name, 3)));
    }
  return left;
}

if (skip) {
  test("tiered driver conformance", { skip }, () => {});
} else {
  driverConformance({
    label: "tiered driver (production wiring, real OpenClaw)",
    driver: () => sandbox!.driver,
    // A new TieredDriver keeps nothing of its own: it finds each instance through its drivers.
    // (Adoption by new pool and container driver objects: pool-driver and container-driver tests.)
    fresh: () =>
      new TieredDriver({
        starter: sandbox!.pools,
        premium: sandbox!.containers,
        enterprise: sandbox!.containers,
      }),
    specs: TIERS.map((tier, i) => ({ tier, slot: i + 1, plan: planFor(tier) })),
    llm: () => llm,
    // The control plane makes the tenant's key tree at sign-up, before the driver sees it.
    provision: async (spec) => {
      await kms!.createTenantKeys(spec.tenantId, spec.tier);
    },
    readyTimeoutMs: 240_000,
    exitTimeoutMs: 60_000,
    // Everything of the drivers' on disk but the secrets tmpfs (run/): records, rootfs, the
    // mounted (decrypted) volumes, logs, the egress proxy's files.
    dataDirs: () =>
      ["containers", "pools", join("volumes", "mnt"), "logs", "egress"].map((d) => join(home, d)),
    leftovers,
  });
}
