import { existsSync } from "node:fs";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before } from "node:test";
import { loadSettings } from "../src/config/settings.ts";
import { planFor } from "../src/core/plans.ts";
import { pidsOfUid } from "../src/lib/procfs.ts";
import { type EchoProvider, startEchoProvider } from "../src/llm/echo-provider.ts";
import { ensureRuntime, type OpenClawRuntime } from "../src/openclaw/runtime.ts";
import { driverConformance } from "../src/runtime/conformance.ts";
import { HostProcessDriver } from "../src/runtime/host/driver.ts";
import { needsRoot } from "./support.ts";

/** The driver contract's conformance suite against the host-process driver and real OpenClaw. */
const UID_BASE = 203000;
const SLOT = 3;
let home = "";
let runtime: OpenClawRuntime;
let provider: EchoProvider;

before(async () => {
  if (needsRoot()) return;
  home = await mkdtemp("/tmp/clawkeep-hostdrv-");
  await chmod(home, 0o711);
  runtime = await ensureRuntime(loadSettings());
  provider = await startEchoProvider();
});

after(async () => {
  if (!home) return;
  for (const pid of await pidsOfUid(UID_BASE + SLOT)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
  await rm(`/tmp/openclaw-state-locks-${UID_BASE + SLOT}`, { recursive: true, force: true });
  await provider?.close();
  await rm(home, { recursive: true, force: true });
});

const make = () =>
  new HostProcessDriver({
    tenantsDir: join(home, "tenants"),
    runDir: join(home, "run"),
    runtime,
    portBase: 33000,
    portStride: 200,
    uidBase: UID_BASE,
    gatewayHost: "127.0.0.1",
  });

if (needsRoot()) {
  const { test } = await import("node:test");
  test("host driver conformance", { skip: needsRoot() }, () => {});
} else {
  driverConformance({
    label: "host driver (real OpenClaw)",
    driver: make,
    fresh: make,
    specs: [{ tier: "starter", slot: SLOT, plan: planFor("starter") }],
    llm: () => ({ baseUrl: provider.url, model: provider.model }),
    readyTimeoutMs: 240_000,
    dataDirs: () => [join(home, "tenants"), join(home, "run"), join(home, "logs")],
    leftovers: async (name) => {
      const left: string[] = [];
      if ((await pidsOfUid(UID_BASE + SLOT)).length) left.push("processes");
      if (existsSync(join(home, "tenants", name))) left.push("tenant directory");
      if (existsSync(join(home, "run", "instances", `${name}.json`))) left.push("run record");
      if (existsSync(join(home, "logs", `${name}.log`))) left.push("log");
      if (existsSync(`/tmp/openclaw-state-locks-${UID_BASE + SLOT}`)) left.push("lock directory");
      return left;
    },
  });
}
