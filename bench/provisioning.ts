/**
 * Provisioning benchmark: a bare `openclaw gateway run` start (fresh state, to /readyz) and a
 * tenant create-to-ready through clawkeep (POST /v1/tenants until the tenant is `running`),
 * alternated in one run so both see the same machine load. Prints medians and the ratio.
 * Target: clawkeep adds under 5 % to OpenClaw's own start.
 *
 *   npx tsx bench/provisioning.ts [rounds=3]
 */
import { spawn } from "node:child_process";
import { chown, mkdir, mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { loadSettings } from "../src/config/settings.ts";
import { startPlatform } from "../src/control/platform.ts";
import { createLogger } from "../src/lib/log.ts";
import { pidsOfUid } from "../src/lib/procfs.ts";
import { startEchoProvider } from "../src/llm/echo-provider.ts";
import { gatewayArgs, renderGatewayEnv, renderOpenClawConfigFile } from "../src/openclaw/config.ts";
import { probe } from "../src/openclaw/probe.ts";
import { ensureRuntime } from "../src/openclaw/runtime.ts";

const rounds = Number(process.argv[2] ?? 3);
const BARE_UID = 202900;
const BARE_PORT = 33900;
const UID_BASE = 202000;

async function killUid(uid: number) {
  for (const pid of await pidsOfUid(uid)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
  while ((await pidsOfUid(uid)).length) await new Promise((r) => setTimeout(r, 100));
  await rm(`/tmp/openclaw-state-locks-${uid}`, { recursive: true, force: true });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

const provider = await startEchoProvider();
const settingsEnv = {
  ...process.env,
  CLAWKEEP_LLM_BASE_URL: provider.url,
  CLAWKEEP_LLM_MODEL: provider.model,
};
const runtime = await ensureRuntime(loadSettings(settingsEnv));
const root = await mkdtemp("/tmp/clawkeep-bench-");
await import("node:fs/promises").then((fs) => fs.chmod(root, 0o711));

async function bare(i: number): Promise<number> {
  const dir = join(root, `bare-${i}`);
  const paths = {
    stateDir: join(dir, "state"),
    home: join(dir, "home"),
    tmpDir: join(dir, "tmp"),
    workspaceDir: join(dir, "workspace"),
    configPath: join(dir, "state", "openclaw.json"),
    logFile: join(dir, "state", "logs", "openclaw.log"),
  };
  for (const d of [dir, paths.stateDir, paths.home, paths.tmpDir, paths.workspaceDir]) {
    await mkdir(d, { recursive: true, mode: 0o700 });
    await chown(d, BARE_UID, BARE_UID);
  }
  const { writeFile } = await import("node:fs/promises");
  await writeFile(
    paths.configPath,
    renderOpenClawConfigFile({
      port: BARE_PORT,
      bind: "loopback",
      paths,
      llm: { baseUrl: provider.url, model: provider.model },
    }),
  );
  const env = renderGatewayEnv({
    port: BARE_PORT,
    paths,
    nodeBinDir: runtime.nodeBinDir,
    gatewayToken: "t".repeat(40),
    llmApiKey: "k",
  });
  const t0 = performance.now();
  const child = spawn(runtime.nodeBin, gatewayArgs(runtime.entry, BARE_PORT), {
    env,
    cwd: paths.home,
    uid: BARE_UID,
    gid: BARE_UID,
    detached: true,
    stdio: "ignore",
  });
  child.unref();
  while (!(await probe(`http://127.0.0.1:${BARE_PORT}`)).ok) await new Promise((r) => setTimeout(r, 100));
  const ms = performance.now() - t0;
  await killUid(BARE_UID);
  return ms;
}

const home = join(root, "clawkeep");
const settings = loadSettings({
  ...settingsEnv,
  CLAWKEEP_HOME: home,
  CLAWKEEP_API_LISTEN: "127.0.0.1:0",
  CLAWKEEP_PORT_BASE: "34000",
  CLAWKEEP_UID_BASE: String(UID_BASE),
  CLAWKEEP_RECONCILE_INTERVAL_MS: "200",
});
const platform = await startPlatform(settings, createLogger("warn"));

async function viaClawkeep(i: number): Promise<number> {
  const name = `bench-${i}`;
  const t0 = performance.now();
  const res = await fetch(`${platform.apiUrl}/v1/tenants`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name, tier: "starter" }),
  });
  if (res.status !== 201) throw new Error(await res.text());
  for (;;) {
    const t = platform.store.get(name);
    if (t?.actual === "running") break;
    if (t?.actual === "failed") throw new Error(t.reason ?? "failed");
    await new Promise((r) => setTimeout(r, 50));
  }
  const ms = performance.now() - t0;
  platform.tenants.delete({ kind: "operator" }, name);
  while (platform.store.get(name)) await new Promise((r) => setTimeout(r, 100));
  return ms;
}

const bareMs: number[] = [];
const ckMs: number[] = [];
try {
  for (let i = 0; i < rounds; i++) {
    bareMs.push(await bare(i));
    ckMs.push(await viaClawkeep(i));
    process.stderr.write(
      `round ${i + 1}/${rounds}: bare ${(bareMs[i]! / 1000).toFixed(1)} s, clawkeep ${(ckMs[i]! / 1000).toFixed(1)} s\n`,
    );
  }
  const b = median(bareMs);
  const c = median(ckMs);
  console.log(
    `bare openclaw start to /readyz     median ${(b / 1000).toFixed(2)} s  (${bareMs.map((x) => (x / 1000).toFixed(1)).join(", ")})`,
  );
  console.log(
    `clawkeep create to running         median ${(c / 1000).toFixed(2)} s  (${ckMs.map((x) => (x / 1000).toFixed(1)).join(", ")})`,
  );
  console.log(
    `ratio clawkeep / bare              ${(c / b).toFixed(3)}  (overhead ${(((c - b) / b) * 100).toFixed(1)} %, target < 5 %)`,
  );
} finally {
  await platform.close({ teardown: true });
  await killUid(BARE_UID);
  for (let s = 0; s < 4; s++) await killUid(UID_BASE + s);
  await provider.close();
  await rm(root, { recursive: true, force: true });
}
