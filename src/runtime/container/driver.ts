import { mkdir, readdir, readFile, rename, rm, rmdir, stat, writeFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import { ClawkeepError } from "../../core/errors.ts";
import { parseTenantName } from "../../core/tenant.ts";
import { openAppendNoFollow, ownDir, writeFileNoFollow } from "../../lib/safefs.ts";
import { tailFile } from "../../lib/tail.ts";
import type { ModelServerError } from "../../llm/model-server/errors.ts";
import { formatModelStatus, type LocalModelStatus } from "../../llm/model-server/status.ts";
import {
  type ModelServerProcess,
  type ModelSpec,
  startModelServerProcess,
} from "../../llm/model-server/supervisor.ts";
import {
  gatewayArgs,
  type InstancePaths,
  renderGatewayEnv,
  renderOpenClawConfigFile,
} from "../../openclaw/config.ts";
import type { OpenClawRuntime } from "../../openclaw/runtime.ts";
import type { CpuQuotas } from "../cpu-guard.ts";
import type { EgressRegistry } from "../linux/net/egress.types.ts";
import { NetworkMembers } from "../linux/net/members.ts";
import {
  attachTenant,
  detachTenant,
  edgeAddress,
  ensureBridge,
  hostAddress,
  type NetworkConfig,
  netnsName,
  type TenantNet,
  tenantAddress,
} from "../linux/net/network.ts";
import { writeRootfs } from "../linux/oci/rootfs.ts";
import { type OciContainerState, OciRuntime, type OciRuntimeName } from "../linux/oci/runtime.ts";
import { mountSecretsTmpfs, unmountSecretsTmpfs } from "../linux/oci/secrets.ts";
import { renderOciSpec } from "../linux/oci/spec.ts";
import { lockedBindOptions } from "../linux/volume/mounts.ts";
import type { InstanceSecrets, InstanceSpec, InstanceStatus, RuntimeDriver, Settles } from "../types.ts";
import type { TenantVolumes } from "../volumes/types.ts";

/** CFS period of every tenant's CPU quota, in µs. */
export const CPU_PERIOD_US = 100_000;

/**
 * A tenant's CPU quota once its gateway is ready: the plan's, but never every core of the host,
 * so one tenant spinning takes at most hostCpus - 1 cores on average. It does not bound a
 * neighbour's latency by itself (bench/sandbox.ts: B's /healthz p99 1.5-4.7x with A spinning at
 * 1 core of 2); the CPU guard does, with containerCpuQuotas.
 */
export function cpuQuota(planCpus: number, hostCpus = availableParallelism()): number {
  return Math.max(0.5, Math.min(planCpus, hostCpus - 1));
}

/**
 * A tenant's CPU quota while its gateway starts (from start() until settle()): the plan's, up to
 * every core of the host. An OpenClaw start takes ~20-30 CPU-seconds and uses more than one core
 * when it can; capped below that it starts measurably slower than a host process (bench/sandbox.ts).
 * Starts are admitted one at a time, so at most one tenant holds this at once.
 */
export function startCpuQuota(planCpus: number, hostCpus = availableParallelism()): number {
  return Math.max(cpuQuota(planCpus, hostCpus), Math.min(planCpus, hostCpus));
}

/**
 * A container's quotas for the CPU guard (runtime/cpu-guard.ts): the steady one, and while it is
 * demoted to the idle class its start quota (the plan's CPUs up to the host's): in that class it
 * only gets CPU no one else wants, and unthrottled it no longer runs in per-period bursts on every
 * core, which is what its neighbours' tail latency paid for.
 */
export function containerCpuQuotas(planCpus: number, hostCpus = availableParallelism()): CpuQuotas {
  return { steady: cpuQuota(planCpus, hostCpus), demoted: startCpuQuota(planCpus, hostCpus) };
}

export interface ContainerDriverOptions {
  /** Root-owned directory for rootfs skeletons and instance records. */
  containersDir: string;
  /** A tmpfs the driver mounts (0700) for bundles and runtime state: config.json holds secrets. */
  secretsDir: string;
  runtime: OpenClawRuntime;
  oci: OciRuntimeName;
  network: NetworkConfig;
  volumes: TenantVolumes;
  egress?: EgressRegistry;
  /**
   * The bridge's members when another driver (the Starter pools) shares the bridge: this driver
   * replaces only its own ("containers"). Default: a registry of its own over network and egress.
   */
  members?: NetworkMembers;
  /** Host uid that container uid 0 of slot 0 maps to; each slot gets 65536 ids from here on. */
  idMapBase: number;
  /** cgroup parent for every container, e.g. "clawkeep". */
  cgroupParent: string;
  stopGraceMs?: number;
  /**
   * The model a tenant whose plan has a local model (Enterprise) is served by, from the model
   * registry (control/models.ts localModelResolver), checked before each create and start;
   * undefined: none assigned (its gateway then has no provider it can reach). When it throws (a
   * missing or corrupt file), create/start fail with its message and the instance's status says
   * `model: "failed: <why>"`.
   */
  localModel?: (spec: InstanceSpec) => Promise<ModelSpec | undefined>;
  /**
   * Called once when a tenant's model server fails for good (its file went missing or corrupt
   * since the start; a load failure): the status already shows it; this is for events and alerts.
   */
  onModelFailure?: (tenant: string, err: ModelServerError) => void;
  /** Model server tuning (tests cap replies to keep a random test model quick). */
  modelServer?: { maxTokens?: number; contextSize?: number };
  log?: Logger;
}

/** Where the on-instance model server listens inside an Enterprise tenant's own netns. */
export const LOCAL_MODEL_PORT = 11434;
const MODEL_IN_CONTAINER = "/models/model.gguf";
/** The clawkeep install: the model server runs from it (read-only) inside the sandbox. */
const APP_DIR = fileURLToPath(new URL("../../../", import.meta.url)).replace(/\/$/, "");

interface Record_ {
  name: string;
  tenantId: string;
  slot: number;
  airGapped: boolean;
  idMapBase: number;
  /** Host path of the tenant's data directory (on its volume). */
  dataDir: string;
  /** The local model's id as of create; null: the plan has one but none is assigned; absent: no local model. */
  model?: string | null;
}

const CONTAINER_UID = 1000;

/** A model server's message, which names the file as the sandbox sees it, said in the host's terms. */
function hostModelMessage(message: string, model: ModelSpec): string {
  const named = message.replaceAll(MODEL_IN_CONTAINER, model.path);
  return model.id && !named.startsWith(`model '${model.id}'`) ? `model '${model.id}': ${named}` : named;
}
const DATA = "/data";

/**
 * Premium and Enterprise: one OCI container per tenant (runc or crun, no images, no daemon), its
 * own user/pid/mount/ipc/uts/net namespaces, its own cgroup with the plan's memory, CPU and pids
 * limits, a read-only root, no capabilities, no_new_privs, a seccomp denylist, tini as PID 1, its
 * data on its own volume, and its own network namespace wired to the tenants' bridge under the
 * clawkeep nftables ruleset. Enterprise (no egress in its plan) is air-gapped.
 */
export class ContainerDriver implements RuntimeDriver, Settles {
  readonly kind = "container";
  readonly #o: ContainerDriverOptions;
  #prepared = false;
  readonly #members: NetworkMembers;
  readonly #oci: OciRuntime;
  readonly #models = new Map<string, ModelServerProcess>();
  /** Why a tenant's model could not be used at its last create/start (cleared by a good start). */
  readonly #modelFailures = new Map<string, string>();
  /** The model each running model server serves, for its host path in messages. */
  readonly #modelPaths = new Map<string, ModelSpec>();

  constructor(opts: ContainerDriverOptions) {
    this.#o = opts;
    this.#oci = new OciRuntime(opts.oci, this.#runcRoot());
    this.#members = opts.members ?? new NetworkMembers(opts.network, opts.egress);
  }

  #id(name: string): string {
    return `ck-${parseTenantName(name)}`;
  }
  #dir(name: string): string {
    return join(this.#o.containersDir, parseTenantName(name));
  }
  #bundle(name: string): string {
    return join(this.#o.secretsDir, "bundles", parseTenantName(name));
  }
  #runcRoot(): string {
    return join(this.#o.secretsDir, this.#o.oci);
  }
  /**
   * The gateway's stdout and stderr: on the tenant's own encrypted volume, root-owned, because
   * OpenClaw prints conversation content there. Unreadable while the volume is locked.
   */
  async #logPath(name: string): Promise<string | undefined> {
    const rec = await this.#record(name);
    return rec?.dataDir ? join(rec.dataDir, "gateway.log") : undefined;
  }
  #idBase(slot: number): number {
    return this.#o.idMapBase + slot * 65536;
  }

  urlFor(spec: InstanceSpec): string {
    return `http://${tenantAddress(this.#o.network, spec.slot)}:${this.#o.network.gatewayPort}`;
  }

  /** Mounts the secrets tmpfs and creates the bridge. Idempotent. */
  async #prepare(): Promise<void> {
    if (this.#prepared) return;
    const { secretsDir, containersDir } = this.#o;
    await mountSecretsTmpfs(secretsDir, { source: "clawkeep-secrets", sizeMiB: 64 });
    await mkdir(containersDir, { recursive: true, mode: 0o711 });
    await ensureBridge(this.#o.network);
    this.#prepared = true;
  }

  async #records(): Promise<Record_[]> {
    const out: Record_[] = [];
    for (const n of await readdir(this.#o.containersDir).catch(() => [] as string[])) {
      const r = await this.#record(n).catch(() => undefined);
      if (r) out.push(r);
    }
    return out;
  }

  async #record(name: string): Promise<Record_ | undefined> {
    try {
      return JSON.parse(await readFile(join(this.#dir(name), "record.json"), "utf8")) as Record_;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  }

  /** Puts the ruleset and the proxy's policy back in line with the running containers (start-up). */
  async resync(): Promise<void> {
    await this.#prepare();
    await this.#syncNetwork();
  }

  /** Re-renders and applies the whole ruleset and tells the egress proxy who is where. */
  async #syncNetwork(extra?: Record_, without?: string): Promise<void> {
    const recs = (await this.#records()).filter((r) => r.name !== without && r.name !== extra?.name);
    if (extra) recs.push(extra);
    const running: Record_[] = [];
    for (const r of recs)
      if (r.name === extra?.name || (await this.#state(r.name)).state !== "absent") running.push(r);
    const nets: TenantNet[] = running.map((r) => ({ name: r.name, slot: r.slot, airGapped: r.airGapped }));
    await this.#members.set(
      "containers",
      nets,
      running.map((r) => ({
        tenant: r.name,
        address: tenantAddress(this.#o.network, r.slot),
        airGapped: r.airGapped,
      })),
    );
  }

  /** The container's skeleton root: mount points for its binds, the gateway's user. */
  #writeRootfs(name: string): Promise<string> {
    return writeRootfs(join(this.#dir(name), "rootfs"), {
      mountPoints: ["/models", DATA, this.#o.runtime.dir, APP_DIR],
      users: [{ name: "openclaw", uid: CONTAINER_UID, gecos: "openclaw", home: `${DATA}/home` }],
      // A file bind needs a file to mount on.
      files: [{ path: MODEL_IN_CONTAINER, content: "", append: true }],
    });
  }

  #paths(): InstancePaths {
    return {
      stateDir: `${DATA}/state`,
      home: `${DATA}/home`,
      tmpDir: "/tmp",
      workspaceDir: `${DATA}/workspace`,
      configPath: `${DATA}/state/openclaw.json`,
      logFile: `${DATA}/state/logs/openclaw.log`,
    };
  }

  /** The provider a tenant's gateway uses: its own model server when its plan has one. */
  async #llm(spec: InstanceSpec): Promise<{ llm: InstanceSpec["llm"]; model: ModelSpec | undefined }> {
    if (!spec.plan.localModel || !this.#o.localModel) return { llm: spec.llm, model: undefined };
    let model: ModelSpec | undefined;
    try {
      model = await this.#o.localModel(spec);
    } catch (err) {
      this.#modelFailures.set(spec.name, (err as Error).message);
      throw err;
    }
    this.#modelFailures.delete(spec.name);
    if (!model) return { llm: spec.llm, model: undefined };
    return {
      llm: { baseUrl: `http://127.0.0.1:${LOCAL_MODEL_PORT}/v1`, model: model.id ?? "local" },
      model,
    };
  }

  async create(spec: InstanceSpec, signal?: AbortSignal): Promise<InstanceStatus> {
    const name = parseTenantName(spec.name);
    signal?.throwIfAborted();
    await this.#prepare();
    const existing = await this.#record(name);
    if (existing && existing.slot !== spec.slot) {
      throw new ClawkeepError(
        "runtime_failed",
        `container ${name} exists for slot ${existing.slot}, not ${spec.slot}`,
      );
    }
    // The model first: a tenant whose model is missing or corrupt gets nothing made, and says why.
    const local = await this.#llm(spec);
    const dir = this.#dir(name);
    // Search permission only: the container's mapped root must reach its rootfs through here.
    await mkdir(dir, { recursive: true, mode: 0o711 });
    await this.#writeRootfs(name);
    const owner = this.#idBase(spec.slot) + CONTAINER_UID;
    const data = await this.#o.volumes.open(spec, owner, signal);
    // Parents first; the tenant owns these directories, so nothing in them is followed.
    for (const sub of ["state", "state/logs", "home", "workspace"])
      await ownDir(join(data, sub), owner, owner, 0o700);
    const cfg = join(data, "state", "openclaw.json");
    await writeFileNoFollow(
      cfg,
      renderOpenClawConfigFile({
        port: this.#o.network.gatewayPort,
        bind: "lan",
        paths: this.#paths(),
        llm: local.llm,
        ...(spec.publicOrigin
          ? { allowedOrigins: [spec.publicOrigin], trustedProxies: [edgeAddress(this.#o.network)] }
          : {}),
        ...(spec.plan.egress && this.#o.egress?.proxyUrl ? { proxyUrl: this.#o.egress.proxyUrl } : {}),
      }),
      0o444,
    );

    const rec: Record_ = {
      name,
      tenantId: spec.tenantId,
      slot: spec.slot,
      airGapped: !spec.plan.egress,
      idMapBase: this.#idBase(spec.slot),
      dataDir: data,
      ...(spec.plan.localModel && this.#o.localModel ? { model: local.model?.id ?? null } : {}),
    };
    await writeFile(join(dir, "record.json.tmp"), `${JSON.stringify(rec)}\n`, { mode: 0o600 });
    await rename(join(dir, "record.json.tmp"), join(dir, "record.json"));
    return this.status(name);
  }

  /**
   * Runs the tenant's model server inside its container (same namespaces, cgroup and seccomp,
   * as the gateway's uid), listening on the container's own loopback: only that tenant's gateway
   * can reach it. Supervised: restarted when it dies, given up on a corrupt model.
   */
  async #startModel(name: string, spec: InstanceSpec, model: ModelSpec): Promise<void> {
    let proc: ModelServerProcess;
    try {
      proc = await this.#spawnModel(name, spec, model);
    } catch (err) {
      const message = hostModelMessage((err as Error).message, model);
      this.#modelFailures.set(name, message);
      throw new ClawkeepError("runtime_failed", message, { cause: err });
    }
    this.#models.set(name, proc);
    this.#modelPaths.set(name, model);
    this.#modelFailures.delete(name);
  }

  async #spawnModel(name: string, spec: InstanceSpec, model: ModelSpec): Promise<ModelServerProcess> {
    return startModelServerProcess({
      model: { ...model, path: MODEL_IN_CONTAINER },
      host: "127.0.0.1",
      port: LOCAL_MODEL_PORT,
      threads: Math.max(1, Math.floor(cpuQuota(spec.plan.cpus))),
      nodePath: "/usr/bin/node",
      wrap: this.#oci.argv(["exec", "--user", `${CONTAINER_UID}:${CONTAINER_UID}`, this.#id(name)]),
      env: { PATH: "/usr/bin:/bin", HOME: "/tmp", TMPDIR: "/tmp", NODE_ENV: "production" },
      output: "ignore",
      ...(this.#o.modelServer?.maxTokens ? { maxTokens: this.#o.modelServer.maxTokens } : {}),
      ...(this.#o.modelServer?.contextSize ? { contextSize: this.#o.modelServer.contextSize } : {}),
      ...(this.#o.log ? { log: this.#o.log } : {}),
      onFatal: (err) => {
        this.#o.log?.error({ tenant: name, err: err.message }, "model server failed; not restarting it");
        this.#o.onModelFailure?.(name, err);
      },
    });
  }

  /** The model server's state for the instance status; undefined for instances without a local model. */
  #modelStatus(name: string, rec: Record_ | undefined, running: boolean): LocalModelStatus | undefined {
    const proc = this.#models.get(name);
    if (proc) {
      if (proc.state === "running") return { state: "ready", message: null };
      if (proc.state === "failed") {
        const why = proc.failure?.message ?? "the model server failed";
        const model = this.#modelPaths.get(name);
        return { state: "failed", message: model ? hostModelMessage(why, model) : why };
      }
      return { state: proc.state, message: null };
    }
    const failure = this.#modelFailures.get(name);
    if (failure) return { state: "failed", message: failure };
    if (rec?.model === null) {
      return {
        state: "none",
        message: "no model is assigned to this tenant or its plan: register one and assign it",
      };
    }
    if (rec?.model && running) {
      return {
        state: "stopped",
        message:
          "no model server runs for this instance (the control plane that started it exited); the reconciler starts one",
      };
    }
    return undefined;
  }

  /** The OCI runtime's view: absent, created, running or stopped. */
  #state(name: string): Promise<OciContainerState> {
    return this.#oci.state(this.#id(name));
  }

  async start(spec: InstanceSpec, secrets: InstanceSecrets, signal?: AbortSignal): Promise<InstanceStatus> {
    const name = parseTenantName(spec.name);
    await this.#prepare();
    const rec = await this.#record(name);
    if (!rec) throw new ClawkeepError("runtime_failed", `instance ${name} has not been created`);
    const cur = await this.#state(name);
    const { model } = await this.#llm(spec);
    if (cur.state === "running") {
      // A model server that is missing (an adopted container) or failed for good is started again.
      const proc = this.#models.get(name);
      if (model && (!proc || proc.state === "failed")) {
        await proc?.stop();
        this.#models.delete(name);
        await this.#startModel(name, spec, model);
      }
      return this.status(name);
    }
    // The model server of an earlier run (its container ended under it) goes with that run; its
    // supervisor would otherwise retry against a container that is gone. This run starts its own.
    await this.#models.get(name)?.stop();
    this.#models.delete(name);
    if (cur.state !== "absent") await this.#oci.remove(this.#id(name));
    signal?.throwIfAborted();

    const owner = rec.idMapBase + CONTAINER_UID;
    const data = await this.#o.volumes.open(spec, owner, signal);
    const bundle = this.#bundle(name);
    await rm(bundle, { recursive: true, force: true });
    await mkdir(bundle, { recursive: true, mode: 0o700 });
    const paths = this.#paths();
    const env = renderGatewayEnv({
      port: this.#o.network.gatewayPort,
      paths,
      nodeBinDir: this.#o.runtime.nodeBinDir,
      gatewayToken: secrets.gatewayToken.reveal(),
      llmApiKey: secrets.llmApiKey.reveal(),
      proxyUrl: spec.plan.egress ? this.#o.egress?.proxyUrl : null,
    });
    const rt = this.#o.runtime;
    const oci = renderOciSpec({
      hostname: `ck-${name}`.slice(0, 63),
      rootfs: join(this.#dir(name), "rootfs"),
      idMapBase: rec.idMapBase,
      user: { uid: CONTAINER_UID, gid: CONTAINER_UID },
      args: ["/usr/bin/tini", "--", rt.nodeBin, ...gatewayArgs(rt.entry, this.#o.network.gatewayPort)],
      env,
      cwd: paths.home,
      readOnlyBinds: [
        { source: "/usr", destination: "/usr" },
        { source: "/etc/ssl", destination: "/etc/ssl" },
        { source: rt.dir, destination: rt.dir },
        ...(model
          ? [
              { source: model.path, destination: MODEL_IN_CONTAINER },
              { source: APP_DIR, destination: APP_DIR },
            ]
          : []),
      ],
      readWriteBinds: [{ source: data, destination: DATA }],
      tmpfs: [
        { destination: "/tmp", sizeBytes: 512 * 1024 * 1024 },
        { destination: "/run", sizeBytes: 16 * 1024 * 1024 },
      ],
      memoryBytes: spec.plan.memoryBytes,
      // The start runs with the start quota; settle() takes it down to the steady one.
      cpus: startCpuQuota(spec.plan.cpus),
      cpuPeriodUs: CPU_PERIOD_US,
      pids: spec.plan.pids,
      cgroupsPath: `/${this.#o.cgroupParent}/${name}`,
    });
    // In a user namespace the bind must keep the flags its source mount has locked.
    const keep = await lockedBindOptions(data);
    for (const m of oci.mounts) if (m.destination === DATA) m.options.push(...keep);
    // config.json holds the gateway's secrets (its environment): it lives on the secrets tmpfs
    // only, and goes with stop().
    await writeFile(join(bundle, "config.json"), JSON.stringify(oci), { mode: 0o600 });

    const logPath = join(data, "gateway.log");
    const st = await stat(logPath).catch(() => undefined);
    if (st && st.size > 5 * 1024 * 1024) await rename(logPath, `${logPath}.1`);
    const out = await openAppendNoFollow(logPath);
    const id = this.#id(name);
    let pid: number;
    try {
      await out.write(`--- clawkeep: creating container ${id} at ${new Date().toISOString()}\n`);
      pid = await this.#oci.create(id, bundle, { fd: out.fd, logPath });
    } finally {
      await out.close();
    }
    try {
      await attachTenant(this.#o.network, rec.slot, pid);
      await this.#syncNetwork(rec);
      await this.#oci.start(id, signal);
    } catch (err) {
      await this.#oci.remove(id);
      await detachTenant(rec.slot);
      throw err;
    }
    if (model) await this.#startModel(name, spec, model);
    this.#o.log?.info({ tenant: name, container: id, runtime: this.#o.oci }, "container started");
    return this.status(name);
  }

  /**
   * The gateway is ready: its CPU quota goes from the start quota to the steady one
   * (cpuQuota of its plan). Idempotent; nothing to do for an instance that does not run.
   */
  async settle(spec: InstanceSpec, signal?: AbortSignal): Promise<void> {
    const name = parseTenantName(spec.name);
    if ((await this.#state(name)).state !== "running") return;
    await this.#oci.updateCpu(
      this.#id(name),
      CPU_PERIOD_US,
      cpuQuota(spec.plan.cpus) * CPU_PERIOD_US,
      signal,
    );
  }

  async stop(name: string, signal?: AbortSignal): Promise<void> {
    parseTenantName(name);
    const rec = await this.#record(name);
    const id = this.#id(name);
    await this.#models.get(name)?.stop();
    this.#models.delete(name);
    this.#modelPaths.delete(name);
    await this.#oci.stop(id, { graceMs: this.#o.stopGraceMs ?? 20_000, ...(signal ? { signal } : {}) });
    if (rec) {
      await detachTenant(rec.slot);
      await this.#syncNetwork(undefined, name);
    }
    await rm(this.#bundle(name), { recursive: true, force: true });
    await this.#o.volumes.close(name, signal);
  }

  async delete(name: string, signal?: AbortSignal): Promise<void> {
    parseTenantName(name);
    await this.#prepare();
    await this.stop(name, signal);
    await this.#o.volumes.destroy(name, signal);
    await rm(this.#dir(name), { recursive: true, force: true });
    this.#modelFailures.delete(name);
  }

  async status(name: string): Promise<InstanceStatus> {
    const rec = await this.#record(name);
    const cur = await this.#state(name);
    const model = this.#modelStatus(name, rec, cur.state === "running");
    if (!rec && cur.state === "absent")
      return {
        name,
        state: "absent",
        url: null,
        pid: null,
        startedAt: null,
        // A create refused for its model says why.
        details: model ? { model: formatModelStatus(model) } : {},
      };
    const details: Record<string, string | number> = { container: this.#id(name), runtime: this.#o.oci };
    if (rec) {
      details.address = tenantAddress(this.#o.network, rec.slot);
      details.netns = netnsName(rec.slot);
      details.uidRange = `${rec.idMapBase}-${rec.idMapBase + 65535}`;
      details.egress = rec.airGapped
        ? "none (air-gapped)"
        : `proxy at ${hostAddress(this.#o.network)}:${this.#o.network.egressPort}`;
    }
    if (model) {
      details.model = formatModelStatus(model);
      if (rec?.model) details.modelId = rec.model;
      const restarts = this.#models.get(name)?.restarts;
      if (restarts) details.modelRestarts = restarts;
    }
    const state = cur.state === "running" ? "running" : cur.state === "absent" ? "created" : "exited";
    return {
      ...(state === "running" && model?.state === "stopped"
        ? { repair: "the model server is not running" }
        : {}),
      name,
      state,
      url: rec ? `http://${tenantAddress(this.#o.network, rec.slot)}:${this.#o.network.gatewayPort}` : null,
      pid: state === "running" ? cur.pid : null,
      startedAt: state === "running" && cur.created ? Date.parse(cur.created) : null,
      details,
    };
  }

  async list(): Promise<InstanceStatus[]> {
    const names = new Set((await this.#records()).map((r) => r.name));
    const out: InstanceStatus[] = [];
    for (const n of [...names].sort()) out.push(await this.status(n));
    return out;
  }

  /** Runs a command inside a tenant's running container as its gateway user (tests, attestation). */
  async exec(
    name: string,
    argv: string[],
    opts: { user?: string; signal?: AbortSignal } = {},
  ): Promise<string> {
    return this.#oci.exec(this.#id(name), argv, {
      ...opts,
      user: opts.user ?? `${CONTAINER_UID}:${CONTAINER_UID}`,
    });
  }

  async logTail(name: string, maxLines = 20): Promise<string> {
    const path = await this.#logPath(name);
    return path ? tailFile(path, maxLines) : "";
  }

  /**
   * Removes what the driver set up for all tenants: the secrets tmpfs and the (empty) parent
   * cgroups runc leaves behind. Only when no container runs.
   */
  async shutdown(): Promise<void> {
    for (const controller of await readdir("/sys/fs/cgroup").catch(() => [] as string[])) {
      await rmdir(join("/sys/fs/cgroup", controller, this.#o.cgroupParent)).catch(() => {});
    }
    await unmountSecretsTmpfs(this.#o.secretsDir);
    this.#prepared = false;
  }
}
