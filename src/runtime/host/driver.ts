import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, chown, mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Logger } from "pino";
import { ClawkeepError } from "../../core/errors.ts";
import { parseTenantName } from "../../core/tenant.ts";
import { pidsOfUid, procInfo, signal } from "../../lib/procfs.ts";
import { openAppendNoFollow, ownDir, writeFileNoFollow } from "../../lib/safefs.ts";
import { tailFile } from "../../lib/tail.ts";
import {
  gatewayArgs,
  type InstancePaths,
  renderGatewayEnv,
  renderOpenClawConfigFile,
} from "../../openclaw/config.ts";
import type { OpenClawRuntime } from "../../openclaw/runtime.ts";
import type { InstanceSecrets, InstanceSpec, InstanceStatus, RuntimeDriver } from "../types.ts";
import type { TenantVolumes } from "../volumes/types.ts";

export interface HostDriverOptions {
  /** Parent of every tenant directory; made 0711 root-owned so tenants can reach only their own. */
  tenantsDir: string;
  /** Root-owned bookkeeping: one run record per instance. */
  runDir: string;
  runtime: OpenClawRuntime;
  portBase: number;
  portStride: number;
  uidBase: number;
  /** Host the control plane and users reach gateways at. Gateways bind to loopback. */
  gatewayHost: string;
  stopGraceMs?: number;
  /**
   * Where tenant directories live. When set (the encrypted Starter pool), each tenant directory
   * is `tenantsDir/<name>` on it, unlocked only while its gateway runs.
   */
  volumes?: TenantVolumes;
  log?: Logger;
}

/** What the driver keeps about an instance, root-owned, outside the tenant's reach. */
interface RunRecord {
  name: string;
  tenantId: string;
  slot: number;
  uid: number;
  port: number;
  pid: number | null;
  startTicks: number | null;
  startedAt: number | null;
}

const LOG_ROTATE_BYTES = 5 * 1024 * 1024;

/**
 * Runs each tenant's gateway as a host process under its own uid, with its own 0700 directory,
 * port and token. A stepping stone, not the isolation the tiers promise: the processes share the
 * host's kernel view, network namespace and /tmp. Processes are started in their own session so
 * they outlive a control plane restart and are adopted by the next one.
 */
export class HostProcessDriver implements RuntimeDriver {
  readonly kind = "host";
  readonly #o: HostDriverOptions;

  constructor(opts: HostDriverOptions) {
    this.#o = opts;
  }

  urlFor(spec: InstanceSpec): string {
    return `http://${this.#o.gatewayHost}:${this.#port(spec.slot)}`;
  }

  #uid(slot: number): number {
    return this.#o.uidBase + slot;
  }
  #port(slot: number): number {
    return this.#o.portBase + slot * this.#o.portStride;
  }
  #dir(name: string): string {
    return join(this.#o.tenantsDir, parseTenantName(name));
  }
  #recordPath(name: string): string {
    return join(this.#o.runDir, "instances", `${parseTenantName(name)}.json`);
  }
  /**
   * The gateway's stdout and stderr: inside the tenant's own (encrypted) directory, root-owned,
   * because OpenClaw prints conversation content there.
   */
  #logPath(name: string): string {
    return join(this.#dir(name), "gateway.log");
  }
  #paths(name: string): InstancePaths {
    const dir = this.#dir(name);
    const stateDir = join(dir, "state");
    return {
      stateDir,
      home: join(dir, "home"),
      tmpDir: join(dir, "tmp"),
      workspaceDir: join(dir, "workspace"),
      configPath: join(stateDir, "openclaw.json"),
      logFile: join(stateDir, "logs", "openclaw.log"),
    };
  }

  async #readRecord(name: string): Promise<RunRecord | undefined> {
    try {
      return JSON.parse(await readFile(this.#recordPath(name), "utf8")) as RunRecord;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new ClawkeepError("runtime_failed", `run record of ${name} is unreadable`, { cause: err });
    }
  }

  async #writeRecord(rec: RunRecord): Promise<void> {
    const path = this.#recordPath(rec.name);
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const tmp = `${path}.tmp`;
    await writeFile(tmp, `${JSON.stringify(rec)}\n`, { mode: 0o600 });
    await rename(tmp, path);
  }

  async #alive(rec: RunRecord | undefined): Promise<boolean> {
    if (!rec?.pid) return false;
    const info = await procInfo(rec.pid);
    return info !== undefined && info.startTicks === rec.startTicks && info.uid === rec.uid;
  }

  #status(name: string, rec: RunRecord | undefined, alive: boolean, dirExists: boolean): InstanceStatus {
    if (!rec && !dirExists)
      return { name, state: "absent", url: null, pid: null, startedAt: null, details: {} };
    const details: Record<string, string | number> = { directory: this.#dir(name) };
    if (rec) Object.assign(details, { uid: rec.uid, port: rec.port });
    return {
      name,
      state: alive ? "running" : rec?.pid ? "exited" : "created",
      url: rec ? `http://${this.#o.gatewayHost}:${rec.port}` : null,
      pid: alive ? rec!.pid : null,
      startedAt: alive ? rec!.startedAt : null,
      details,
    };
  }

  async #prepareRoots(): Promise<void> {
    const { tenantsDir, runDir } = this.#o;
    await mkdir(tenantsDir, { recursive: true, mode: 0o711 });
    await chown(tenantsDir, 0, 0);
    await chmod(tenantsDir, 0o711);
    // Tenants must be able to pass through every ancestor (search bit) to reach their own directory.
    for (let d = dirname(tenantsDir); d !== "/"; d = dirname(d)) {
      const st = await stat(d);
      if ((st.mode & 0o001) === 0) {
        if (d === dirname(tenantsDir)) await chmod(d, (st.mode & 0o7777) | 0o001);
        else {
          throw new ClawkeepError(
            "runtime_unavailable",
            `tenant uids cannot reach ${tenantsDir}: ${d} has no search permission for others (mode ${(st.mode & 0o777).toString(8)})`,
          );
        }
      }
    }
    await mkdir(join(runDir, "instances"), { recursive: true, mode: 0o700 });
    // OpenClaw prefers /tmp/openclaw when it can own it. A root-owned 0700 one makes every
    // gateway fall back to its own TMPDIR, so no tenant takes the shared name.
    await mkdir("/tmp/openclaw", { mode: 0o700 }).catch(() => {});
  }

  async create(spec: InstanceSpec, signal_?: AbortSignal): Promise<InstanceStatus> {
    const name = parseTenantName(spec.name);
    signal_?.throwIfAborted();
    await this.#prepareRoots();
    const uid = this.#uid(spec.slot);
    const port = this.#port(spec.slot);
    const dir = this.#dir(name);
    const p = this.#paths(name);
    const opened = this.#o.volumes ? await this.#o.volumes.open(spec, uid, signal_) : dir;
    if (opened !== dir)
      throw new ClawkeepError("runtime_failed", `volume of ${name} opened at ${opened}, expected ${dir}`);
    // Parents first; the tenant owns these directories, so nothing in them is followed.
    for (const d of [dir, p.stateDir, p.home, p.tmpDir, p.workspaceDir, dirname(p.logFile)]) {
      await ownDir(d, uid, uid, 0o700);
    }
    // The config is the platform's: root-owned and read-only to the gateway (OPENCLAW_CONFIG_READONLY).
    await writeFileNoFollow(
      p.configPath,
      renderOpenClawConfigFile({
        port,
        bind: "loopback",
        paths: p,
        llm: spec.llm,
        ...(spec.publicOrigin ? { allowedOrigins: [spec.publicOrigin], trustedProxies: ["127.0.0.1"] } : {}),
      }),
      0o444,
    );
    const rec = await this.#readRecord(name);
    if (!rec) {
      await this.#writeRecord({
        name,
        tenantId: spec.tenantId,
        slot: spec.slot,
        uid,
        port,
        pid: null,
        startTicks: null,
        startedAt: null,
      });
    } else if (rec.uid !== uid || rec.port !== port) {
      throw new ClawkeepError(
        "runtime_failed",
        `instance ${name} exists with uid ${rec.uid} port ${rec.port}, not slot ${spec.slot}`,
      );
    }
    return this.status(name);
  }

  async start(spec: InstanceSpec, secrets: InstanceSecrets, signal_?: AbortSignal): Promise<InstanceStatus> {
    const name = parseTenantName(spec.name);
    const rec = await this.#readRecord(name);
    if (!rec || !existsSync(this.#dir(name))) {
      throw new ClawkeepError("runtime_failed", `instance ${name} has not been created`);
    }
    if (await this.#alive(rec)) return this.status(name);
    signal_?.throwIfAborted();
    // A gateway killed hard leaves children (its spawn broker runs in a session of its own).
    await this.#killUid(rec.uid, "SIGKILL", 5000);
    if (this.#o.volumes) await this.#o.volumes.open(spec, rec.uid, signal_);
    const p = this.#paths(name);
    const logPath = this.#logPath(name);
    const st = await stat(logPath).catch(() => undefined);
    if (st && st.size > LOG_ROTATE_BYTES) await rename(logPath, `${logPath}.1`);
    const out = await openAppendNoFollow(logPath);
    try {
      await out.write(`--- clawkeep: starting gateway for ${name} at ${new Date().toISOString()}\n`);
      const env = renderGatewayEnv({
        port: rec.port,
        paths: p,
        nodeBinDir: this.#o.runtime.nodeBinDir,
        gatewayToken: secrets.gatewayToken.reveal(),
        llmApiKey: secrets.llmApiKey.reveal(),
      });
      const child = spawn(this.#o.runtime.nodeBin, gatewayArgs(this.#o.runtime.entry, rec.port), {
        cwd: p.home,
        env,
        uid: rec.uid,
        gid: rec.uid,
        detached: true,
        stdio: ["ignore", out.fd, out.fd],
      });
      const pid = await new Promise<number>((resolve, reject) => {
        child.once("spawn", () => resolve(child.pid!));
        child.once("error", (err) =>
          reject(
            new ClawkeepError("runtime_failed", `cannot start gateway for ${name}: ${err.message}`, {
              cause: err,
            }),
          ),
        );
      });
      child.unref();
      const info = await procInfo(pid);
      await this.#writeRecord({ ...rec, pid, startTicks: info?.startTicks ?? null, startedAt: Date.now() });
      this.#o.log?.info({ tenant: name, pid, uid: rec.uid, port: rec.port }, "gateway process started");
    } finally {
      await out.close();
    }
    return this.status(name);
  }

  /** Signals every process of the uid, waits until none is left or the time passes. Returns how many remain. */
  async #killUid(uid: number, sig: NodeJS.Signals, waitMs: number): Promise<number> {
    let pids = await pidsOfUid(uid);
    for (const pid of pids) signal(pid, sig);
    const deadline = Date.now() + waitMs;
    while (pids.length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      pids = await pidsOfUid(uid);
    }
    return pids.length;
  }

  async stop(name: string, signal_?: AbortSignal): Promise<void> {
    const rec = await this.#readRecord(name);
    if (!rec) return;
    if (await this.#alive(rec)) {
      signal(rec.pid!, "SIGTERM");
      const deadline = Date.now() + (this.#o.stopGraceMs ?? 20_000);
      while ((await this.#alive(rec)) && Date.now() < deadline) {
        if (signal_?.aborted) break;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const left = await this.#killUid(rec.uid, "SIGKILL", 5000);
    if (left > 0)
      throw new ClawkeepError(
        "runtime_failed",
        `${left} processes of ${name} (uid ${rec.uid}) survived SIGKILL`,
      );
    await this.#writeRecord({ ...rec, pid: null, startTicks: null, startedAt: null });
    await this.#o.volumes?.close(name, signal_);
  }

  async delete(name: string, signal_?: AbortSignal): Promise<void> {
    const rec = await this.#readRecord(name);
    if (rec) await this.stop(name, signal_);
    if (this.#o.volumes) await this.#o.volumes.destroy(name, signal_);
    await rm(this.#dir(name), { recursive: true, force: true });
    if (rec) {
      // OpenClaw keeps lock files in /tmp/openclaw-state-locks-<uid> whatever TMPDIR says.
      await rm(`/tmp/openclaw-state-locks-${rec.uid}`, { recursive: true, force: true });
      await rm(this.#recordPath(name), { force: true });
    }
  }

  async status(name: string): Promise<InstanceStatus> {
    const rec = await this.#readRecord(name);
    return this.#status(name, rec, await this.#alive(rec), existsSync(this.#dir(name)));
  }

  async list(): Promise<InstanceStatus[]> {
    const names = new Set<string>();
    const recDir = join(this.#o.runDir, "instances");
    for (const f of await readdir(recDir).catch(() => [] as string[])) {
      if (f.endsWith(".json")) names.add(f.slice(0, -5));
    }
    for (const d of await readdir(this.#o.tenantsDir).catch(() => [] as string[])) names.add(d);
    const out: InstanceStatus[] = [];
    for (const n of [...names].sort()) {
      try {
        parseTenantName(n);
      } catch {
        continue; // not ours
      }
      out.push(await this.status(n));
    }
    return out;
  }

  async logTail(name: string, maxLines = 20): Promise<string> {
    return tailFile(this.#logPath(name), maxLines);
  }
}
