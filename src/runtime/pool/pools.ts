import { mkdir, open, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import type { Plan } from "../../core/plans.ts";
import { execFile } from "../../lib/exec.ts";
import type { OpenClawRuntime } from "../../openclaw/runtime.ts";
import { attachTenant, detachTenant, netnsName, tenantAddress } from "../linux/net/network.ts";
import { writeRootfs } from "../linux/oci/rootfs.ts";
import { initAlive, type OciContainerState, type OciRuntime } from "../linux/oci/runtime.ts";
import { renderOciSpec } from "../linux/oci/spec.ts";
import { lockedBindOptions } from "../linux/volume/mounts.ts";
import { CONFINE_PATH, CONFINE_SCRIPT } from "./confine.ts";
import {
  containerId,
  EPHEMERAL_PORTS,
  NOBODY,
  POOL_DIR,
  POOL_HOSTNAME,
  poolId,
  TENANT_PORT_SPAN,
  tenantPort,
  tenantUid,
} from "./layout.ts";
import { applyPoolNetns, type BridgeMember, type NetworkMembers, renderPoolNetns } from "./network.ts";
import { choosePlacement, type PoolOccupancy, poolCapacity } from "./placement.ts";
import type { PoolRecord, PoolRecords } from "./records.ts";
import { checkPoolId, type PoolStorage } from "./storage.ts";

export interface PoolContainersOptions {
  runtime: OpenClawRuntime;
  network: NetworkMembers;
  networkOwner: string;
  storage: PoolStorage;
  records: PoolRecords;
  oci: OciRuntime;
  /** The driver's secrets tmpfs: pool bundles live in its bundles/. */
  secretsDir: string;
  idMapBase: number;
  cgroupParent: string;
  poolSlots: { first: number; count: number };
  poolMemoryBytes: number;
  poolCpus: number;
  maxTenantsPerPool: number;
  /** The driver's host set-up (secrets tmpfs, records, bridge); run before a pool starts. */
  prepare: () => Promise<void>;
  log?: Logger;
}

/** A pool container as runc sees it, with an init that is exiting (or a zombie) counted as stopped. */
export interface PoolState {
  state: OciContainerState["state"];
  pid: number | null;
  /** The init's pid as runc recorded it, alive or not. */
  initPid: number | null;
}

/**
 * The pools' lifecycle: placement of a tenant into a pool (records of new pools), each pool's OCI
 * container (rootfs, spec, start, its own netns rules, removal) and the bridge members and egress
 * entries of every running pool. Callers serialise (the driver's one lock).
 */
export class PoolContainers {
  readonly #o: PoolContainersOptions;

  constructor(opts: PoolContainersOptions) {
    this.#o = opts;
  }

  #net() {
    return this.#o.network.config;
  }
  bundle(pool: string): string {
    return join(this.#o.secretsDir, "bundles", checkPoolId(pool));
  }

  /** runc's view of a pool container. */
  async state(pool: string): Promise<PoolState> {
    const s = await this.#o.oci.state(containerId(pool));
    if (s.state === "absent") return { state: "absent", pid: null, initPid: null };
    // runc calls an init that is exiting (or a zombie not reaped yet) running: it is not.
    const st = s.state !== "stopped" && !(await initAlive(s.pid)) ? "stopped" : s.state;
    return { state: st, pid: st === "stopped" ? null : s.pid, initPid: s.pid };
  }

  async #writeRootfs(pool: PoolRecord): Promise<string> {
    return writeRootfs(join(this.#o.records.poolDir(pool.id), "rootfs"), {
      mountPoints: ["/clawkeep", POOL_DIR, this.#o.runtime.dir],
      users: Array.from({ length: pool.capacity }, (_, i) => tenantUid(i)).map((u) => ({
        name: `t${u}`,
        uid: u,
        gecos: "starter tenant",
        home: "/nonexistent",
      })),
      files: [{ path: CONFINE_PATH, content: CONFINE_SCRIPT, mode: 0o444 }],
    });
  }

  /** Starts the pool's container when it does not run (never touches a running one). */
  async ensure(pool: PoolRecord, signal?: AbortSignal): Promise<void> {
    await this.#o.prepare();
    const cur = await this.state(pool.id);
    if (cur.state === "running") return;
    const id = containerId(pool.id);
    const oci = this.#o.oci;
    // A pool that died: its old init must be gone before the new one takes its name.
    if (cur.state !== "absent")
      await oci.destroy(id, { initPid: cur.initPid, requireGone: true, ...(signal ? { signal } : {}) });
    signal?.throwIfAborted();
    const rootfs = await this.#writeRootfs(pool);
    const data = await this.#o.storage.openPool(pool.id, signal);
    const rt = this.#o.runtime;
    const spec = renderOciSpec({
      hostname: POOL_HOSTNAME,
      rootfs,
      idMapBase: pool.idMapBase,
      user: { uid: NOBODY, gid: NOBODY },
      args: ["/usr/bin/tini", "--", "/usr/bin/sleep", "infinity"],
      env: { PATH: "/usr/bin:/bin" },
      cwd: "/",
      readOnlyBinds: [
        { source: "/usr", destination: "/usr" },
        { source: "/etc/ssl", destination: "/etc/ssl" },
        { source: rt.dir, destination: rt.dir },
      ],
      readWriteBinds: [{ source: data, destination: POOL_DIR }],
      tmpfs: [
        { destination: "/tmp", sizeBytes: 512 * 1024 * 1024 },
        { destination: "/run", sizeBytes: 16 * 1024 * 1024 },
      ],
      memoryBytes: pool.memoryBytes,
      cpus: pool.cpus,
      pids: pool.pids,
      cgroupsPath: `/${this.#o.cgroupParent}/${pool.id}`,
    });
    // Tenants share the pool's pid namespace: each sees only its own processes.
    for (const m of spec.mounts) if (m.destination === "/proc") m.options.push("hidepid=invisible");
    // In a user namespace a bind mount must keep the flags its source mount has locked (an
    // encrypted pool volume is noexec,noatime): runc's remount fails with EPERM otherwise.
    const keep = await lockedBindOptions(data);
    for (const m of spec.mounts) if (m.destination === POOL_DIR) m.options.push(...keep);
    const bundle = this.bundle(pool.id);
    await rm(bundle, { recursive: true, force: true });
    await mkdir(bundle, { recursive: true, mode: 0o700 });
    await writeFile(join(bundle, "config.json"), JSON.stringify(spec), { mode: 0o600 });
    const logPath = join(this.#o.records.poolDir(pool.id), "pool.log");
    const out = await open(logPath, "a", 0o600);
    let pid: number;
    try {
      await out.write(`--- clawkeep: creating pool ${id} at ${new Date().toISOString()}\n`);
      pid = await oci.create(id, bundle, { fd: out.fd, logPath });
    } finally {
      await out.close();
    }
    try {
      await attachTenant(this.#net(), pool.slot, pid);
      await execFile([
        "ip",
        "netns",
        "exec",
        netnsName(pool.slot),
        "sysctl",
        "-q",
        "-w",
        `net.ipv4.ip_local_port_range=${EPHEMERAL_PORTS}`,
      ]);
      await this.applyNet(pool, signal);
      await oci.start(id, signal);
      // OpenClaw takes /tmp/openclaw when it can own it: a root-owned one keeps every tenant off it.
      await oci.exec(id, ["/usr/bin/mkdir", "-m", "0700", "/tmp/openclaw"], { user: "0:0" });
      await this.syncBridge();
    } catch (err) {
      await oci.remove(id);
      await detachTenant(pool.slot);
      throw err;
    }
    this.#o.log?.info({ pool: pool.id, container: id, slot: pool.slot }, "starter pool started");
  }

  /** The pool's own addresses and ruleset, for every tenant placed in it (running or not). */
  async applyNet(pool: PoolRecord, signal?: AbortSignal): Promise<void> {
    const placed = (await this.#o.records.tenants()).filter((t) => t.pool === pool.id);
    const nets = placed.map((t) => ({
      address: tenantAddress(this.#net(), t.slot),
      uid: tenantUid(t.index),
      port: tenantPort(t.index),
      portSpan: TENANT_PORT_SPAN,
    }));
    await applyPoolNetns(
      netnsName(pool.slot),
      nets.map((n) => n.address),
      renderPoolNetns({ publicPort: this.#net().gatewayPort, tenants: nets }),
      { bridge: this.#net().bridge, ...(signal ? { signal } : {}) },
    );
  }

  /** Bridge ruleset and egress policy: every running pool with its tenants' addresses. */
  async syncBridge(): Promise<void> {
    const tenants = await this.#o.records.tenants();
    const members: BridgeMember[] = [];
    const egress: Array<{ tenant: string; address: string; airGapped: boolean }> = [];
    for (const p of await this.#o.records.pools()) {
      if ((await this.state(p.id)).state !== "running") continue;
      const mine = tenants.filter((t) => t.pool === p.id);
      members.push({
        name: p.id,
        slot: p.slot,
        airGapped: false,
        extraAddresses: mine.map((t) => tenantAddress(this.#net(), t.slot)),
      });
      for (const t of mine)
        egress.push({ tenant: t.name, address: tenantAddress(this.#net(), t.slot), airGapped: t.airGapped });
    }
    await this.#o.network.set(this.#o.networkOwner, members, egress);
  }

  /** After a pool's tenants changed: its own rules (when it runs) and the bridge. */
  async resyncAfterChange(pool: PoolRecord, signal?: AbortSignal): Promise<void> {
    if ((await this.state(pool.id)).state === "running") await this.applyNet(pool, signal);
    await this.syncBridge();
  }

  /**
   * Stops the pool's container (its tenants' gateways go with it) and takes it off the bridge
   * (veth, netns), waiting up to 30 s for its init to be gone; unmounts its volume. Records and
   * data stay. The caller syncs the bridge afterwards.
   */
  async stop(pool: PoolRecord, signal?: AbortSignal): Promise<void> {
    const cur = await this.state(pool.id);
    if (cur.state !== "absent")
      await this.#o.oci.destroy(containerId(pool.id), {
        initPid: cur.initPid,
        ...(signal ? { signal } : {}),
      });
    await detachTenant(pool.slot);
    await rm(this.bundle(pool.id), { recursive: true, force: true });
    await this.#o.storage.closePool(pool.id, signal);
  }

  /** Removes a pool with no tenants: container, netns, veth, cgroups, volume, records. */
  async remove(pool: PoolRecord, signal?: AbortSignal): Promise<void> {
    if ((await this.state(pool.id)).state !== "absent") await this.#o.oci.destroy(containerId(pool.id));
    await detachTenant(pool.slot);
    await this.#o.storage.destroyPool(pool.id, signal);
    await rm(this.bundle(pool.id), { recursive: true, force: true });
    await this.#o.records.removePool(pool.id);
    await this.syncBridge();
    this.#o.log?.info({ pool: pool.id }, "empty starter pool removed");
  }

  async #newPool(index: number, plan: Plan): Promise<PoolRecord> {
    const capacity = poolCapacity(this.#o.poolMemoryBytes, plan.memoryBytes, this.#o.maxTenantsPerPool);
    const rec: PoolRecord = {
      id: poolId(index),
      index,
      slot: this.#o.poolSlots.first + index,
      idMapBase: this.#o.idMapBase + index * 65536,
      capacity,
      memoryBytes: this.#o.poolMemoryBytes,
      cpus: this.#o.poolCpus,
      pids: capacity * plan.pids + 64,
    };
    await this.#o.records.writePool(rec);
    return rec;
  }

  /** A pool record lost while a tenant still points at it: make it again at the same number. */
  async newPoolAt(pool: string, plan: Plan): Promise<PoolRecord> {
    return this.#newPool(Number(checkPoolId(pool).slice(5)), plan);
  }

  /** The pool's record, made again at the same number when it was lost. */
  async poolOf(pool: string, plan: Plan): Promise<PoolRecord> {
    return (await this.#o.records.pool(pool)) ?? (await this.newPoolAt(pool, plan));
  }

  /** Picks a pool (and an index in it) for a tenant; makes the pool record when it is new. */
  async place(plan: Plan, exclude?: string): Promise<{ pool: PoolRecord; index: number }> {
    const pools = await this.#o.records.pools();
    const tenants = await this.#o.records.tenants();
    const occ: PoolOccupancy[] = pools.map((p) => ({
      index: p.index,
      capacity: p.capacity,
      used: tenants.filter((t) => t.pool === p.id).map((t) => t.index),
    }));
    const capNew = poolCapacity(this.#o.poolMemoryBytes, plan.memoryBytes, this.#o.maxTenantsPerPool);
    const excl = exclude ? pools.find((p) => p.id === exclude)?.index : undefined;
    const where = choosePlacement(occ, {
      maxPools: this.#o.poolSlots.count,
      capacityOfNew: capNew,
      ...(excl !== undefined ? { exclude: excl } : {}),
    });
    const pool = where.newPool
      ? await this.#newPool(where.pool, plan)
      : pools.find((p) => p.index === where.pool)!;
    return { pool, index: where.index };
  }
}
