import { readdir, rmdir } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join, relative } from "node:path";
import type { Logger } from "pino";
import { parseTenantName } from "../../core/tenant.ts";
import { procInfo, signal as sendSignal } from "../../lib/procfs.ts";
import { tailFile } from "../../lib/tail.ts";
import { gatewayArgs, renderGatewayEnv, renderOpenClawConfigFile } from "../../openclaw/config.ts";
import type { OpenClawRuntime } from "../../openclaw/runtime.ts";
import { edgeAddress, ensureBridge, hostAddress, tenantAddress } from "../linux/net/network.ts";
import { OciRuntime } from "../linux/oci/runtime.ts";
import { mountSecretsTmpfs, unmountSecretsTmpfs } from "../linux/oci/secrets.ts";
import type { InstanceSecrets, InstanceSpec, InstanceStatus, RuntimeDriver, Settles } from "../types.ts";
import { cgroupVersion, TenantCgroup } from "./cgroups.ts";
import { confinedArgv } from "./confine.ts";
import { killUid, openGatewayLog, spawnGateway } from "./gateway.ts";
import {
  containerId,
  MAX_TENANTS_PER_POOL,
  NOBODY,
  POOL_DIR,
  PoolError,
  TENANT_PORT_SPAN,
  tenantPaths,
  tenantPort,
  tenantUid,
} from "./layout.ts";
import { moveTenant } from "./move.ts";
import type { NetworkMembers } from "./network.ts";
import { PoolContainers } from "./pools.ts";
import { hostUid, type PoolRecord, PoolRecords, type TenantRecord } from "./records.ts";
import type { PoolStorage } from "./storage.ts";
import { writeTenantTree } from "./tenant-dir.ts";

export interface PoolDriverOptions {
  /** Root-owned bookkeeping: pool and tenant records, the pools' root filesystems. */
  poolsDir: string;
  /** A tmpfs the driver mounts (0700): runc state, bundles, and the exec files that hold secrets. */
  secretsDir: string;
  runtime: OpenClawRuntime;
  /** The tenants' bridge, its nftables ruleset and the egress policy, shared with the container driver. */
  network: NetworkMembers;
  /** This driver's name among the bridge's owners (default "pools"). */
  networkOwner?: string;
  storage: PoolStorage;
  /** Host uid that container uid 0 of pool 0 maps to; pool n maps 65536 ids from idMapBase + 65536 n. */
  idMapBase: number;
  /** cgroup parent of every pool, e.g. "clawkeep-pools". */
  cgroupParent: string;
  /** Network slots of the pools (addresses on the bridge): pool n uses first + n; at most count pools. */
  poolSlots: { first: number; count: number };
  /** Memory of one pool (its cgroup limit). A pool holds floor(poolMemoryBytes / plan.memoryBytes) tenants. */
  poolMemoryBytes: number;
  /** CPU quota of one pool in cores (default 2). Each tenant also gets its plan's quota. */
  poolCpus?: number;
  /** Upper bound of tenants per pool whatever the memory says (default 64, at most 200). */
  maxTenantsPerPool?: number;
  stopGraceMs?: number;
  /** Python 3 inside the pool (host /usr), which runs the Landlock launcher. */
  python?: string;
  /**
   * Tests and benchmarks only: what runs instead of the OpenClaw gateway (still confined, under
   * tini, as the tenant, in its cgroup). Gets the tenant's port and the Node binary.
   */
  gatewayCommand?: (ctx: { port: number; nodeBin: string }) => string[];
  /** Benchmarks: gateway environment variables to add, or to drop (undefined). */
  envOverrides?: Record<string, string | undefined>;
  log?: Logger;
}

/**
 * A Starter tenant's CPU quota while its gateway starts (start() until settle()): every core its
 * pool has, up to the host's. An OpenClaw start takes ~25 CPU-seconds and uses two cores when it
 * can; at the plan's one core it took ~9 s longer (bench/provisioning.ts). The platform admits
 * starts one at a time, so at most one tenant of a pool holds this at once.
 */
export function startQuota(planCpus: number, poolCpus: number, hostCpus = availableParallelism()): number {
  return Math.max(planCpus, Math.min(poolCpus, hostCpus));
}

/**
 * Starter: tenants share a pool container (runc, its own user/pid/mount/ipc/uts/net namespaces,
 * cgroup, read-only root, no capabilities, no_new_privs, seccomp, tini as PID 1, /proc with
 * hidepid) and its volume, but each is its own OpenClaw gateway process: its own uid, its own
 * 0700 directory, its own port range, token and secrets, its own child cgroup (memory, pids,
 * CPU), its own Landlock domain (binds only its own ports; no signals or abstract sockets
 * across), its own address (egress through the proxy is per tenant). See README.md.
 *
 * The facade over its parts: records.ts (the bookkeeping), pools.ts (placement and the pool
 * containers), gateway.ts (a tenant's gateway process), tenant-dir.ts (its directory), move.ts.
 */
export class PoolDriver implements RuntimeDriver, Settles {
  readonly kind = "pool";
  readonly #o: PoolDriverOptions;
  readonly #records: PoolRecords;
  readonly #oci: OciRuntime;
  readonly #pools: PoolContainers;
  #prepared = false;
  #lock: Promise<unknown> = Promise.resolve();

  constructor(opts: PoolDriverOptions) {
    const max = opts.maxTenantsPerPool ?? 64;
    if (!Number.isInteger(max) || max < 1 || max > MAX_TENANTS_PER_POOL)
      throw new PoolError("invalid_request", `maxTenantsPerPool must be 1..${MAX_TENANTS_PER_POOL}`);
    const { first, count } = opts.poolSlots;
    if (
      !Number.isInteger(first) ||
      !Number.isInteger(count) ||
      first < 0 ||
      count < 1 ||
      first + count > 65_000
    )
      throw new PoolError("invalid_request", `bad pool slot range ${first}+${count}`);
    if (!Number.isInteger(opts.idMapBase) || opts.idMapBase < 100_000)
      throw new PoolError("invalid_request", `idMapBase ${opts.idMapBase} is too low`);
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(opts.cgroupParent))
      throw new PoolError("invalid_request", `bad cgroup parent ${JSON.stringify(opts.cgroupParent)}`);
    this.#o = opts;
    this.#records = new PoolRecords(opts.poolsDir);
    this.#oci = new OciRuntime("runc", join(opts.secretsDir, "runc"));
    this.#pools = new PoolContainers({
      runtime: opts.runtime,
      network: opts.network,
      networkOwner: opts.networkOwner ?? "pools",
      storage: opts.storage,
      records: this.#records,
      oci: this.#oci,
      secretsDir: opts.secretsDir,
      idMapBase: opts.idMapBase,
      cgroupParent: opts.cgroupParent,
      poolSlots: opts.poolSlots,
      poolMemoryBytes: opts.poolMemoryBytes,
      poolCpus: opts.poolCpus ?? 2,
      maxTenantsPerPool: max,
      prepare: () => this.#prepare(),
      ...(opts.log ? { log: opts.log } : {}),
    });
  }

  /** Mutations run one at a time: placement reads and writes records. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn);
    this.#lock = run.catch(() => {});
    return run;
  }

  #net() {
    return this.#o.network.config;
  }
  #cgroup(rec: TenantRecord): TenantCgroup {
    return new TenantCgroup({ parent: this.#o.cgroupParent, pool: rec.pool, leaf: `t-${rec.name}` });
  }
  #python(): string {
    return this.#o.python ?? "/usr/bin/python3";
  }

  urlFor(spec: InstanceSpec): string {
    return `http://${tenantAddress(this.#net(), spec.slot)}:${this.#net().gatewayPort}`;
  }

  async #prepare(): Promise<void> {
    if (this.#prepared) return;
    if ((await cgroupVersion()) !== "v1") {
      throw new PoolError(
        "runtime_unavailable",
        "the Starter pool driver needs cgroup v1 controllers (hybrid or legacy layout): per-tenant cgroups on cgroup v2 are not done yet",
      );
    }
    await mountSecretsTmpfs(this.#o.secretsDir, { source: "clawkeep-pool-secrets", sizeMiB: 16 });
    await this.#records.prepare();
    await ensureBridge(this.#net());
    this.#prepared = true;
  }

  /** Directories and config of a tenant in its pool (the directory is left unlocked). */
  async #writeTenantFiles(
    spec: InstanceSpec,
    pool: PoolRecord,
    rec: TenantRecord,
    signal?: AbortSignal,
  ): Promise<string> {
    const owner = hostUid(pool, rec.index);
    const dir = await this.#o.storage.openTenant(pool.id, spec, owner, signal);
    const poolData = await this.#o.storage.openPool(pool.id, signal);
    const rel = relative(poolData, dir);
    if (rel !== `tenants/${rec.name}`)
      throw new PoolError("runtime_failed", `tenant directory ${dir} is not where the pool expects it`);
    const proxyUrl = spec.plan.egress ? this.#o.network.proxyUrl : null;
    const config = renderOpenClawConfigFile({
      port: tenantPort(rec.index),
      bind: "lan",
      paths: tenantPaths(rec.name),
      llm: spec.llm,
      // The edge reaches the gateway from its own bridge address (DNAT keeps the source).
      ...(spec.publicOrigin
        ? { allowedOrigins: [spec.publicOrigin], trustedProxies: [edgeAddress(this.#net())] }
        : {}),
      ...(proxyUrl ? { proxyUrl } : {}),
    });
    await writeTenantTree(dir, owner, config);
    return dir;
  }

  async create(spec: InstanceSpec, signal?: AbortSignal): Promise<InstanceStatus> {
    const name = parseTenantName(spec.name);
    signal?.throwIfAborted();
    tenantAddress(this.#net(), spec.slot);
    return this.#serial(async () => {
      await this.#prepare();
      let rec = await this.#records.tenant(name);
      if (rec && rec.slot !== spec.slot)
        throw new PoolError(
          "runtime_failed",
          `instance ${name} exists for slot ${rec.slot}, not ${spec.slot}`,
        );
      if (this.#isPoolSlot(spec.slot))
        throw new PoolError("invalid_request", `slot ${spec.slot} is reserved for the pools' own addresses`);
      let pool: PoolRecord;
      if (rec) {
        pool = await this.#pools.poolOf(rec.pool, spec.plan);
      } else {
        const placed = await this.#pools.place(spec.plan);
        pool = placed.pool;
        rec = {
          name,
          tenantId: spec.tenantId,
          slot: spec.slot,
          pool: pool.id,
          index: placed.index,
          airGapped: !spec.plan.egress,
          plan: { memoryBytes: spec.plan.memoryBytes, cpus: spec.plan.cpus, pids: spec.plan.pids },
          pid: null,
          startTicks: null,
          startedAt: null,
        };
        await this.#records.writeTenant(rec);
      }
      try {
        await this.#writeTenantFiles(spec, pool, rec, signal);
      } finally {
        if (!(await this.#alive(rec, pool))) await this.#o.storage.closeTenant(pool.id, name, signal);
      }
      await this.#pools.ensure(pool, signal);
      await this.#pools.applyNet(pool, signal);
      await this.#pools.syncBridge();
      return this.status(name);
    });
  }

  #isPoolSlot(slot: number): boolean {
    const { first, count } = this.#o.poolSlots;
    return slot >= first && slot < first + count;
  }

  async #alive(rec: TenantRecord | undefined, pool: PoolRecord | undefined): Promise<boolean> {
    if (!rec?.pid || !pool) return false;
    const info = await procInfo(rec.pid);
    return info !== undefined && info.startTicks === rec.startTicks && info.uid === hostUid(pool, rec.index);
  }

  async start(spec: InstanceSpec, secrets: InstanceSecrets, signal?: AbortSignal): Promise<InstanceStatus> {
    const name = parseTenantName(spec.name);
    return this.#serial(async () => {
      const rec = await this.#records.tenant(name);
      if (!rec) throw new PoolError("runtime_failed", `instance ${name} has not been created`);
      const pool = await this.#pools.poolOf(rec.pool, spec.plan);
      if (await this.#alive(rec, pool)) return this.status(name);
      signal?.throwIfAborted();
      // A dead pool comes back empty; its other tenants are started one by one by their own start().
      await this.#pools.ensure(pool, signal);
      const uidOnHost = hostUid(pool, rec.index);
      const cg = this.#cgroup(rec);
      // Leftovers of an earlier run (children of a killed gateway).
      await cg.kill("SIGKILL", 5000);
      await killUid(uidOnHost, 5000);
      // The start runs with the pool's cores (startQuota); settle() takes it to the plan's.
      await cg.ensure({
        memoryBytes: spec.plan.memoryBytes,
        cpus: startQuota(spec.plan.cpus, pool.cpus),
        pids: spec.plan.pids,
      });
      const dir = await this.#o.storage.openTenant(pool.id, spec, uidOnHost, signal);

      const port = tenantPort(rec.index);
      const paths = tenantPaths(name);
      const rt = this.#o.runtime;
      const env: Record<string, string> = renderGatewayEnv({
        port,
        paths,
        nodeBinDir: rt.nodeBinDir,
        gatewayToken: secrets.gatewayToken.reveal(),
        llmApiKey: secrets.llmApiKey.reveal(),
        proxyUrl: spec.plan.egress ? this.#o.network.proxyUrl : null,
      });
      for (const [k, v] of Object.entries(this.#o.envOverrides ?? {})) {
        if (v === undefined) delete env[k];
        else env[k] = v;
      }
      const program = this.#o.gatewayCommand
        ? this.#o.gatewayCommand({ port, nodeBin: rt.nodeBin })
        : [rt.nodeBin, ...gatewayArgs(rt.entry, port)];
      const args = confinedArgv(this.#python(), port, TENANT_PORT_SPAN, [
        "/usr/bin/tini",
        "-s",
        "--",
        ...program,
      ]);

      const { out, logPath } = await openGatewayLog(dir);
      let pid: number;
      try {
        await out.write(
          `--- clawkeep: starting gateway for ${name} in ${pool.id} at ${new Date().toISOString()}\n`,
        );
        pid = await spawnGateway(this.#oci, {
          container: containerId(pool.id),
          bundle: this.#pools.bundle(pool.id),
          name,
          uid: tenantUid(rec.index),
          args,
          env,
          cwd: paths.home,
          cgroupArgs: await cg.runcArgs(),
          out: { fd: out.fd, logPath },
        });
      } finally {
        await out.close();
      }
      const info = await procInfo(pid);
      await this.#records.writeTenant({
        ...rec,
        pid,
        startTicks: info?.startTicks ?? null,
        startedAt: Date.now(),
      });
      this.#o.log?.info(
        { tenant: name, pool: pool.id, pid, uid: uidOnHost, port },
        "starter gateway started",
      );
      return this.status(name);
    });
  }

  async stop(name: string, signal?: AbortSignal): Promise<void> {
    parseTenantName(name);
    await this.#serial(() => this.#stop(name, signal));
  }

  async #stop(name: string, signal?: AbortSignal): Promise<void> {
    const rec = await this.#records.tenant(name);
    if (!rec) return;
    const pool = await this.#records.pool(rec.pool);
    if (pool && (await this.#alive(rec, pool))) {
      // tini passes the signal on to the gateway.
      sendSignal(rec.pid!, "SIGTERM");
      const deadline = Date.now() + (this.#o.stopGraceMs ?? 20_000);
      while ((await this.#alive(rec, pool)) && Date.now() < deadline && !signal?.aborted) {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const left =
      (await this.#cgroup(rec).kill("SIGKILL", 5000)) +
      (pool ? await killUid(hostUid(pool, rec.index), 5000) : 0);
    if (left > 0) throw new PoolError("runtime_failed", `${left} processes of ${name} survived SIGKILL`);
    if (rec.pid !== null)
      await this.#records.writeTenant({ ...rec, pid: null, startTicks: null, startedAt: null });
    if (pool) await this.#o.storage.closeTenant(pool.id, name, signal);
  }

  async delete(name: string, signal?: AbortSignal): Promise<void> {
    parseTenantName(name);
    await this.#serial(async () => {
      const rec = await this.#records.tenant(name);
      if (!rec) return;
      await this.#prepare();
      await this.#stop(name, signal);
      await this.#cgroup(rec).remove();
      const pool = await this.#records.pool(rec.pool);
      if (pool) {
        // The volume must be mounted for the directory to go (it holds the data while unmounted).
        await this.#o.storage.openPool(rec.pool, signal);
        await this.#o.storage.destroyTenant(rec.pool, name, signal);
      }
      await this.#records.removeTenant(name);
      const left = (await this.#records.tenants()).filter((t) => t.pool === rec.pool);
      if (left.length === 0) {
        if (pool) await this.#pools.remove(pool, signal);
        else await this.#o.storage.destroyPool(rec.pool, signal);
      } else if (pool) {
        await this.#pools.resyncAfterChange(pool, signal);
      }
    });
  }

  /**
   * Moves a tenant to another pool (`to`, or wherever placement puts it), data included: the
   * gateway stops, its directory is copied to the new pool's volume under its new uid, its config
   * gets its new port, the old directory goes (and the old pool, when it is left empty). It is
   * started again in its new pool when `secrets` are given and it was running; otherwise it stays
   * stopped for the reconciler to start. Its address and URL do not change.
   */
  async move(
    spec: InstanceSpec,
    opts: { to?: string; secrets?: InstanceSecrets; signal?: AbortSignal } = {},
  ): Promise<InstanceStatus> {
    const name = parseTenantName(spec.name);
    const signal = opts.signal;
    const wasRunning = await this.#serial(() =>
      moveTenant(
        {
          records: this.#records,
          pools: this.#pools,
          storage: this.#o.storage,
          alive: (rec, pool) => this.#alive(rec, pool),
          stop: (n, s) => this.#stop(n, s),
          writeTenantFiles: (sp, pool, rec, s) => this.#writeTenantFiles(sp, pool, rec, s),
          cgroup: (rec) => this.#cgroup(rec),
          ...(this.#o.log ? { log: this.#o.log } : {}),
        },
        spec,
        name,
        { ...(opts.to !== undefined ? { to: opts.to } : {}), ...(signal ? { signal } : {}) },
      ),
    );
    if (wasRunning && opts.secrets) return this.start(spec, opts.secrets, signal);
    return this.status(name);
  }

  async status(name: string): Promise<InstanceStatus> {
    const rec = await this.#records.tenant(name);
    if (!rec) return { name, state: "absent", url: null, pid: null, startedAt: null, details: {} };
    const pool = await this.#records.pool(rec.pool);
    const alive = await this.#alive(rec, pool);
    const net = this.#net();
    const address = tenantAddress(net, rec.slot);
    const details: Record<string, string | number> = {
      pool: rec.pool,
      container: containerId(rec.pool),
      address,
      port: tenantPort(rec.index),
      uid: tenantUid(rec.index),
      directory: `${POOL_DIR}/tenants/${rec.name}`,
      cgroup: `${this.#o.cgroupParent}/${rec.pool}/t-${rec.name}`,
      memoryLimitBytes: rec.plan.memoryBytes,
      egress: rec.airGapped
        ? "none (air-gapped)"
        : `per tenant: proxy at ${hostAddress(net)}:${net.egressPort}, source ${address}`,
    };
    if (pool) {
      details.poolAddress = tenantAddress(net, pool.slot);
      details.hostUid = hostUid(pool, rec.index);
    }
    return {
      name,
      state: alive ? "running" : rec.pid ? "exited" : "created",
      url: `http://${address}:${net.gatewayPort}`,
      pid: alive ? rec.pid : null,
      startedAt: alive ? rec.startedAt : null,
      details,
    };
  }

  async list(): Promise<InstanceStatus[]> {
    const out: InstanceStatus[] = [];
    for (const r of await this.#records.tenants()) out.push(await this.status(r.name));
    return out;
  }

  /** The last lines of the tenant's gateway log (root-owned, in its directory; never through a link). */
  async logTail(name: string, maxLines = 20): Promise<string> {
    const rec = await this.#records.tenant(name);
    return rec ? tailFile(join(this.#o.storage.tenantDir(rec.pool, rec.name), "gateway.log"), maxLines) : "";
  }

  /** Every pool with its state, address, capacity and tenants (operators, tests). */
  async pools(): Promise<
    Array<{
      id: string;
      state: string;
      pid: number | null;
      address: string;
      capacity: number;
      tenants: string[];
    }>
  > {
    const tenants = await this.#records.tenants();
    const out: Awaited<ReturnType<PoolDriver["pools"]>> = [];
    for (const p of await this.#records.pools()) {
      const s = await this.#pools.state(p.id);
      out.push({
        id: p.id,
        state: s.state,
        pid: s.pid,
        address: tenantAddress(this.#net(), p.slot),
        capacity: p.capacity,
        tenants: tenants.filter((t) => t.pool === p.id).map((t) => t.name),
      });
    }
    return out;
  }

  /**
   * The gateway is ready: its CPU quota goes from the start quota (the pool's cores) down to its
   * plan's. Idempotent; nothing to do for a tenant whose gateway does not run.
   */
  async settle(spec: InstanceSpec, signal?: AbortSignal): Promise<void> {
    const name = parseTenantName(spec.name);
    await this.#serial(async () => {
      signal?.throwIfAborted();
      const rec = await this.#records.tenant(name);
      const pool = rec ? await this.#records.pool(rec.pool) : undefined;
      if (!rec || !pool || !(await this.#alive(rec, pool))) return;
      await this.#cgroup(rec).setCpu(spec.plan.cpus);
    });
  }

  /** The tenant's cgroup (tests, status). */
  async cgroupOf(name: string): Promise<TenantCgroup | undefined> {
    const rec = await this.#records.tenant(name);
    return rec ? this.#cgroup(rec) : undefined;
  }

  /**
   * Runs a command in the pool as the tenant: its uid, its cgroup, its working directory and
   * (unless `confined: false`) its Landlock rules, exactly as its gateway runs. For tests and
   * isolation probes; the output is returned, the process is waited for.
   */
  async exec(
    name: string,
    argv: string[],
    opts: { confined?: boolean; signal?: AbortSignal } = {},
  ): Promise<string> {
    const rec = await this.#records.tenant(name);
    if (!rec) throw new PoolError("runtime_failed", `instance ${name} has not been created`);
    const port = tenantPort(rec.index);
    const cmd = opts.confined === false ? argv : confinedArgv(this.#python(), port, TENANT_PORT_SPAN, argv);
    const uid = tenantUid(rec.index);
    return this.#oci.exec(containerId(rec.pool), cmd, {
      user: `${uid}:${uid}`,
      cwd: tenantPaths(rec.name).home,
      extra: await this.#cgroup(rec).runcArgs(),
      signal: opts.signal,
    });
  }

  /** Runs a command in a pool as any container uid, outside every tenant's cgroup (tests). */
  async execInPool(
    pool: string,
    argv: string[],
    opts: { user?: string; signal?: AbortSignal } = {},
  ): Promise<string> {
    return this.#oci.exec(containerId(pool), argv, { ...opts, user: opts.user ?? `${NOBODY}:${NOBODY}` });
  }

  /**
   * Start-up: puts the bridge ruleset, the egress policy and every running pool's own rules back
   * in line with the records (a new control plane's NetworkMembers knows nothing yet).
   */
  async resync(signal?: AbortSignal): Promise<void> {
    await this.#serial(async () => {
      await this.#prepare();
      for (const p of await this.#records.pools()) {
        if ((await this.#pools.state(p.id)).state === "running") await this.#pools.applyNet(p, signal);
      }
      await this.#pools.syncBridge();
    });
  }

  /**
   * Stops every pool (its tenants' gateways go with it), takes it off the bridge and unmounts its
   * volume; records and data stay, so a later start() brings each tenant back in its pool.
   * Teardown (tests, uninstall) after the reconciler has stopped; not part of the driver contract.
   */
  async stopPools(signal?: AbortSignal): Promise<void> {
    await this.#serial(async () => {
      for (const t of await this.#records.tenants()) {
        await this.#stop(t.name, signal).catch((err: unknown) =>
          this.#o.log?.warn({ err, tenant: t.name }, "stopping a starter gateway failed"),
        );
        await this.#cgroup(t)
          .remove()
          .catch(() => {});
      }
      for (const p of await this.#records.pools()) await this.#pools.stop(p, signal);
      await this.#pools.syncBridge();
    });
  }

  /** Removes what the driver set up for all pools: the secrets tmpfs. Only when no pool runs. */
  async shutdown(): Promise<void> {
    await unmountSecretsTmpfs(this.#o.secretsDir);
    // runc leaves the (empty) parent cgroups it made; the pools' own are gone with them.
    for (const controller of await readdir("/sys/fs/cgroup").catch(() => [] as string[])) {
      await rmdir(join("/sys/fs/cgroup", controller, this.#o.cgroupParent)).catch(() => {});
    }
    this.#prepared = false;
  }
}
