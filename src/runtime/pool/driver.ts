import { spawn } from "node:child_process";
import { existsSync, constants as fsc } from "node:fs";
import {
  chmod,
  type FileHandle,
  lchown,
  lstat,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  rmdir,
  symlink,
  writeFile,
} from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join, relative } from "node:path";
import type { Logger } from "pino";
import { ClawkeepError } from "../../core/errors.ts";
import type { Plan } from "../../core/plans.ts";
import { parseTenantName } from "../../core/tenant.ts";
import { ExecError, execFile } from "../../lib/exec.ts";
import { pidsOfUid, procInfo, signal as sendSignal } from "../../lib/procfs.ts";
import {
  gatewayArgs,
  type InstancePaths,
  renderGatewayEnv,
  renderOpenClawConfigFile,
} from "../../openclaw/config.ts";
import type { OpenClawRuntime } from "../../openclaw/runtime.ts";
import {
  attachTenant,
  detachTenant,
  edgeAddress,
  ensureBridge,
  hostAddress,
  netnsName,
  tenantAddress,
} from "../linux/net/network.ts";
import { renderOciSpec } from "../linux/oci/spec.ts";
import { lockedBindOptions } from "../linux/volume/mounts.ts";
import type { InstanceSecrets, InstanceSpec, InstanceStatus, RuntimeDriver, Settles } from "../types.ts";
import { cgroupVersion, TenantCgroup } from "./cgroups.ts";
import { CONFINE_PATH, CONFINE_SCRIPT, confinedArgv } from "./confine.ts";
import { applyPoolNetns, type BridgeMember, type NetworkMembers, renderPoolNetns } from "./network.ts";
import { choosePlacement, type PoolOccupancy, poolCapacity } from "./placement.ts";
import { checkPoolId, type PoolStorage } from "./storage.ts";

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

interface PoolRecord {
  id: string;
  index: number;
  slot: number;
  idMapBase: number;
  capacity: number;
  memoryBytes: number;
  cpus: number;
  pids: number;
}

interface TenantRecord {
  name: string;
  tenantId: string;
  slot: number;
  pool: string;
  index: number;
  airGapped: boolean;
  plan: Pick<Plan, "memoryBytes" | "cpus" | "pids">;
  pid: number | null;
  startTicks: number | null;
  startedAt: number | null;
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

/** Container uid of the tenant with index i inside its pool. */
const TENANT_UID_BASE = 10_000;
/** Tenant i's port range inside the pool's namespace: [19000 + 200 i, 19000 + 200 i + 199]. */
const TENANT_PORT_BASE = 19_000;
const TENANT_PORT_SPAN = 200;
/** Outgoing connections inside a pool take source ports above every tenant's range. */
const EPHEMERAL_PORTS = "60000 65000";
const MAX_TENANTS_PER_POOL = 200;
const POOL_DIR = "/pool";
const NOBODY = 65534;
/**
 * Every pool's hostname. OpenClaw records its state lease with the holder's hostname, pid and
 * start time, and reclaims a dead holder's lease only on the same hostname: one name for all
 * pools lets a tenant moved to another pool (or a dead pool's tenants) start at once instead of
 * waiting for the old lease to expire. The pid plus start time still tell holders apart.
 */
const POOL_HOSTNAME = "clawkeep-starter";
const LOG_ROTATE_BYTES = 5 * 1024 * 1024;

export class PoolError extends ClawkeepError {}

const PF_EXITING = 0x4;

/**
 * Whether a pool's init is alive: not gone, not a zombie, not exiting. A pool's init that dies
 * stays in exit until every process of its pid namespace is reaped, and the tenants' processes
 * (started with `runc exec -d`) are reaped by the host's init, which may take a moment.
 */
async function initAlive(pid: number | undefined): Promise<boolean> {
  if (!pid) return false;
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return !/^[ZX]/.test(rest[0] ?? "") && (Number(rest[6]) & PF_EXITING) === 0;
  } catch {
    return false;
  }
}

async function waitGone(pid: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (existsSync(`/proc/${pid}`)) {
    if (Date.now() > deadline || signal?.aborted) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
  return true;
}

const fdPath = (h: FileHandle, name = "") => `/proc/self/fd/${h.fd}${name ? `/${name}` : ""}`;

/** Opens a directory, refusing a symlink in its last component. */
async function openDirNoFollow(path: string): Promise<FileHandle> {
  try {
    return await open(path, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ELOOP" || code === "ENOTDIR")
      throw new PoolError("runtime_failed", `${path} is not a directory (a symlink?): refusing to follow it`);
    throw err;
  }
}

/** `name` under the opened directory `parent`: made if missing, a real directory, 0700 the owner's. */
async function ensureTenantDir(parent: FileHandle, name: string, owner: number): Promise<FileHandle> {
  await mkdir(fdPath(parent, name), { mode: 0o700 }).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== "EEXIST") throw e;
  });
  const h = await openDirNoFollow(fdPath(parent, name));
  await h.chown(owner, owner);
  await h.chmod(0o700);
  return h;
}

/** Writes a root-owned read-only file into the opened directory, atomically, never through a link. */
async function writeRootFile(dir: FileHandle, name: string, text: string): Promise<void> {
  const tmp = fdPath(dir, `${name}.tmp`);
  await rm(tmp, { force: true });
  const fh = await open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o444);
  try {
    await fh.writeFile(text);
    await fh.chown(0, 0);
    await fh.chmod(0o444);
  } finally {
    await fh.close();
  }
  await rename(tmp, fdPath(dir, name));
}

/** The last lines of a root-owned log in a tenant's directory, never through a link. */
async function tailNoFollow(path: string, maxLines: number): Promise<string> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(path, fsc.O_RDONLY | fsc.O_NOFOLLOW);
    const { size } = await fh.stat();
    const len = Math.min(size, 64 * 1024);
    const buf = Buffer.alloc(len);
    await fh.read(buf, 0, len, size - len);
    return buf.toString("utf8").trimEnd().split("\n").slice(-maxLines).join("\n");
  } catch {
    return "";
  } finally {
    await fh?.close();
  }
}

/**
 * Starter: tenants share a pool container (runc, its own user/pid/mount/ipc/uts/net namespaces,
 * cgroup, read-only root, no capabilities, no_new_privs, seccomp, tini as PID 1, /proc with
 * hidepid) and its volume, but each is its own OpenClaw gateway process: its own uid, its own
 * 0700 directory, its own port range, token and secrets, its own child cgroup (memory, pids,
 * CPU), its own Landlock domain (binds only its own ports; no signals or abstract sockets
 * across), its own address (egress through the proxy is per tenant). See README.md.
 */
export class PoolDriver implements RuntimeDriver, Settles {
  readonly kind = "pool";
  readonly #o: PoolDriverOptions;
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
  }

  /** Mutations run one at a time: placement reads and writes records. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn);
    this.#lock = run.catch(() => {});
    return run;
  }

  // -------------------------------------------------------------------------------------------
  // Names, paths, derived values

  #poolId(index: number): string {
    return `pool-${index}`;
  }
  #containerId(pool: string): string {
    return `ck${checkPoolId(pool)}`;
  }
  #poolDir(pool: string): string {
    return join(this.#o.poolsDir, "pools", checkPoolId(pool));
  }
  #tenantRecordPath(name: string): string {
    return join(this.#o.poolsDir, "tenants", `${parseTenantName(name)}.json`);
  }
  #bundle(pool: string): string {
    return join(this.#o.secretsDir, "bundles", checkPoolId(pool));
  }
  #runcRoot(): string {
    return join(this.#o.secretsDir, "runc");
  }
  #uid(index: number): number {
    return TENANT_UID_BASE + index;
  }
  #hostUid(pool: PoolRecord, index: number): number {
    return pool.idMapBase + this.#uid(index);
  }
  #port(index: number): number {
    return TENANT_PORT_BASE + TENANT_PORT_SPAN * index;
  }
  #net() {
    return this.#o.network.config;
  }
  #cgroup(rec: TenantRecord): TenantCgroup {
    return new TenantCgroup({ parent: this.#o.cgroupParent, pool: rec.pool, leaf: `t-${rec.name}` });
  }
  /** The tenant's paths as its gateway sees them inside the pool. */
  #paths(name: string): InstancePaths {
    const dir = `${POOL_DIR}/tenants/${parseTenantName(name)}`;
    return {
      stateDir: `${dir}/state`,
      home: `${dir}/home`,
      tmpDir: `${dir}/tmp`,
      workspaceDir: `${dir}/workspace`,
      configPath: `${dir}/state/openclaw.json`,
      logFile: `${dir}/state/logs/openclaw.log`,
    };
  }

  urlFor(spec: InstanceSpec): string {
    return `http://${tenantAddress(this.#net(), spec.slot)}:${this.#net().gatewayPort}`;
  }

  // -------------------------------------------------------------------------------------------
  // Records

  async #readJson<T>(path: string): Promise<T | undefined> {
    try {
      return JSON.parse(await readFile(path, "utf8")) as T;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new PoolError("runtime_failed", `record ${path} is unreadable`, { cause: err });
    }
  }
  async #writeJson(path: string, value: unknown): Promise<void> {
    await writeFile(`${path}.tmp`, `${JSON.stringify(value)}\n`, { mode: 0o600 });
    await rename(`${path}.tmp`, path);
  }
  #tenant(name: string): Promise<TenantRecord | undefined> {
    return this.#readJson<TenantRecord>(this.#tenantRecordPath(name));
  }
  #pool(pool: string): Promise<PoolRecord | undefined> {
    return this.#readJson<PoolRecord>(join(this.#poolDir(pool), "record.json"));
  }
  async #tenants(): Promise<TenantRecord[]> {
    const out: TenantRecord[] = [];
    for (const f of await readdir(join(this.#o.poolsDir, "tenants")).catch(() => [] as string[])) {
      if (!f.endsWith(".json")) continue;
      try {
        const r = await this.#tenant(parseTenantName(f.slice(0, -5)));
        if (r) out.push(r);
      } catch {
        // not ours
      }
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }
  async #pools(): Promise<PoolRecord[]> {
    const out: PoolRecord[] = [];
    for (const d of await readdir(join(this.#o.poolsDir, "pools")).catch(() => [] as string[])) {
      if (!/^pool-\d{1,5}$/.test(d)) continue;
      const r = await this.#pool(d);
      if (r) out.push(r);
    }
    return out.sort((a, b) => a.index - b.index);
  }

  // -------------------------------------------------------------------------------------------
  // Host set-up

  async #prepare(): Promise<void> {
    if (this.#prepared) return;
    if ((await cgroupVersion()) !== "v1") {
      throw new PoolError(
        "runtime_unavailable",
        "the Starter pool driver needs cgroup v1 controllers (hybrid or legacy layout): per-tenant cgroups on cgroup v2 are not done yet",
      );
    }
    const { secretsDir, poolsDir } = this.#o;
    await mkdir(secretsDir, { recursive: true, mode: 0o700 });
    const mounts = await readFile("/proc/self/mountinfo", "utf8");
    if (!mounts.split("\n").some((l) => l.split(" ")[4] === secretsDir)) {
      await execFile([
        "mount",
        "-t",
        "tmpfs",
        "-o",
        "mode=0700,size=16m,nosuid,nodev,noexec",
        "clawkeep-pool-secrets",
        secretsDir,
      ]);
    }
    await mkdir(join(secretsDir, "bundles"), { recursive: true, mode: 0o700 });
    // Search permission only: a pool's mapped root must reach its rootfs through here.
    await mkdir(poolsDir, { recursive: true, mode: 0o711 });
    await chmod(poolsDir, 0o711);
    await mkdir(join(poolsDir, "pools"), { recursive: true, mode: 0o711 });
    await mkdir(join(poolsDir, "tenants"), { recursive: true, mode: 0o700 });
    await ensureBridge(this.#net());
    this.#prepared = true;
  }

  async #oci(args: string[], signal?: AbortSignal): Promise<string> {
    return execFile(["runc", "--root", this.#runcRoot(), ...args], signal ? { signal } : {});
  }

  /** runc's view of a pool container. */
  async #poolState(pool: string): Promise<{
    state: "absent" | "created" | "running" | "stopped";
    pid: number | null;
    /** The init's pid as runc recorded it, alive or not. */
    initPid: number | null;
  }> {
    try {
      const s = JSON.parse(await this.#oci(["state", this.#containerId(pool)])) as {
        status: string;
        pid: number;
      };
      let st: "created" | "running" | "stopped" =
        s.status === "running" || s.status === "created" ? s.status : "stopped";
      // runc calls an init that is exiting (or a zombie not reaped yet) running: it is not.
      if (st !== "stopped" && !(await initAlive(s.pid))) st = "stopped";
      return { state: st, pid: st === "stopped" ? null : s.pid || null, initPid: s.pid || null };
    } catch (err) {
      if (
        err instanceof ExecError &&
        (/does not exist/.test(err.stderr + err.stdout) || !existsSync(this.#runcRoot()))
      )
        return { state: "absent", pid: null, initPid: null };
      throw err;
    }
  }

  async #writeRootfs(pool: PoolRecord): Promise<string> {
    const rootfs = join(this.#poolDir(pool.id), "rootfs");
    const rt = this.#o.runtime.dir;
    for (const d of [
      "usr",
      "etc/ssl",
      "proc",
      "dev",
      "sys",
      "tmp",
      "run",
      "clawkeep",
      POOL_DIR.slice(1),
      rt.slice(1),
    ]) {
      await mkdir(join(rootfs, d), { recursive: true, mode: 0o755 });
    }
    await chmod(join(rootfs, "tmp"), 0o1777);
    for (const [link, target] of [
      ["bin", "usr/bin"],
      ["lib", "usr/lib"],
      ["lib64", "usr/lib64"],
      ["sbin", "usr/sbin"],
    ] as const) {
      await symlink(target, join(rootfs, link)).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== "EEXIST") throw e;
      });
    }
    const tenants = Array.from({ length: pool.capacity }, (_, i) => this.#uid(i));
    await writeFile(
      join(rootfs, "etc/passwd"),
      `root:x:0:0:root:/root:/usr/sbin/nologin\n${tenants.map((u) => `t${u}:x:${u}:${u}:starter tenant:/nonexistent:/usr/sbin/nologin\n`).join("")}nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`,
    );
    await writeFile(
      join(rootfs, "etc/group"),
      `root:x:0:\n${tenants.map((u) => `t${u}:x:${u}:\n`).join("")}nogroup:x:65534:\n`,
    );
    await writeFile(join(rootfs, "etc/hosts"), "127.0.0.1 localhost\n::1 localhost\n");
    await writeFile(join(rootfs, "etc/nsswitch.conf"), "passwd: files\ngroup: files\nhosts: files\n");
    await writeFile(join(rootfs, CONFINE_PATH.slice(1)), CONFINE_SCRIPT, { mode: 0o444 });
    return rootfs;
  }

  // -------------------------------------------------------------------------------------------
  // Pools

  /** Starts the pool's container when it does not run (never touches a running one). */
  async #ensurePool(pool: PoolRecord, signal?: AbortSignal): Promise<void> {
    await this.#prepare();
    const cur = await this.#poolState(pool.id);
    if (cur.state === "running") return;
    const id = this.#containerId(pool.id);
    if (cur.state !== "absent") {
      // A pool that died: its old init must be gone before the new one takes its name.
      await this.#oci(["kill", "--all", id, "KILL"]).catch(() => {});
      if (cur.initPid && !(await waitGone(cur.initPid, 30_000, signal))) {
        throw new PoolError(
          "runtime_failed",
          `the old init of ${id} (pid ${cur.initPid}) has not exited after 30 s; is something holding its processes?`,
        );
      }
      await this.#oci(["delete", "--force", id]).catch(() => {});
    }
    signal?.throwIfAborted();
    const rootfs = await this.#writeRootfs(pool);
    const data = await this.#o.storage.openPool(pool.id, signal);
    const rt = this.#o.runtime;
    const oci = renderOciSpec({
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
    for (const m of oci.mounts) if (m.destination === "/proc") m.options.push("hidepid=invisible");
    // In a user namespace a bind mount must keep the flags its source mount has locked (an
    // encrypted pool volume is noexec,noatime): runc's remount fails with EPERM otherwise.
    const keep = await lockedBindOptions(data);
    for (const m of oci.mounts) if (m.destination === POOL_DIR) m.options.push(...keep);
    const bundle = this.#bundle(pool.id);
    await rm(bundle, { recursive: true, force: true });
    await mkdir(bundle, { recursive: true, mode: 0o700 });
    await writeFile(join(bundle, "config.json"), JSON.stringify(oci), { mode: 0o600 });
    const logPath = join(this.#poolDir(pool.id), "pool.log");
    const out = await open(logPath, "a", 0o600);
    try {
      await out.write(`--- clawkeep: creating pool ${id} at ${new Date().toISOString()}\n`);
      await this.#spawn(
        ["create", "--bundle", bundle, "--pid-file", join(bundle, "pid"), id],
        out.fd,
        logPath,
      );
    } finally {
      await out.close();
    }
    try {
      const pid = Number((await readFile(join(bundle, "pid"), "utf8")).trim());
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
      await this.#applyPoolNet(pool, signal);
      await this.#oci(["start", id], signal);
      // OpenClaw takes /tmp/openclaw when it can own it: a root-owned one keeps every tenant off it.
      await this.#oci(["exec", "--user", "0:0", id, "/usr/bin/mkdir", "-m", "0700", "/tmp/openclaw"]);
      await this.#syncBridge();
    } catch (err) {
      await this.#oci(["delete", "--force", id]).catch(() => {});
      await detachTenant(pool.slot);
      throw err;
    }
    this.#o.log?.info({ pool: pool.id, container: id, slot: pool.slot }, "starter pool started");
  }

  async #spawn(args: string[], fd: number, logPath: string): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const child = spawn("runc", ["--root", this.#runcRoot(), ...args], { stdio: ["ignore", fd, fd] });
      child.once("error", reject);
      child.once("exit", (code) =>
        code === 0
          ? resolve()
          : reject(new PoolError("runtime_failed", `runc ${args[0]} exited with ${code}; see ${logPath}`)),
      );
    });
  }

  /** The pool's own addresses and ruleset, for every tenant placed in it (running or not). */
  async #applyPoolNet(pool: PoolRecord, signal?: AbortSignal): Promise<void> {
    const placed = (await this.#tenants()).filter((t) => t.pool === pool.id);
    const nets = placed.map((t) => ({
      address: tenantAddress(this.#net(), t.slot),
      uid: this.#uid(t.index),
      port: this.#port(t.index),
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
  async #syncBridge(): Promise<void> {
    const tenants = await this.#tenants();
    const members: BridgeMember[] = [];
    const egress: Array<{ tenant: string; address: string; airGapped: boolean }> = [];
    for (const p of await this.#pools()) {
      if ((await this.#poolState(p.id)).state !== "running") continue;
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
    await this.#o.network.set(this.#o.networkOwner ?? "pools", members, egress);
  }

  /** Removes a pool with no tenants: container, netns, veth, cgroups, volume, records. */
  async #removePool(pool: PoolRecord, signal?: AbortSignal): Promise<void> {
    const id = this.#containerId(pool.id);
    if ((await this.#poolState(pool.id)).state !== "absent") {
      await this.#oci(["kill", "--all", id, "KILL"]).catch(() => {});
      await this.#oci(["delete", "--force", id]).catch(() => {});
    }
    await detachTenant(pool.slot);
    await this.#o.storage.destroyPool(pool.id, signal);
    await rm(this.#bundle(pool.id), { recursive: true, force: true });
    await rm(this.#poolDir(pool.id), { recursive: true, force: true });
    await this.#syncBridge();
    this.#o.log?.info({ pool: pool.id }, "empty starter pool removed");
  }

  async #newPool(index: number, plan: Plan): Promise<PoolRecord> {
    const capacity = poolCapacity(this.#o.poolMemoryBytes, plan.memoryBytes, this.#o.maxTenantsPerPool ?? 64);
    const rec: PoolRecord = {
      id: this.#poolId(index),
      index,
      slot: this.#o.poolSlots.first + index,
      idMapBase: this.#o.idMapBase + index * 65536,
      capacity,
      memoryBytes: this.#o.poolMemoryBytes,
      cpus: this.#o.poolCpus ?? 2,
      pids: capacity * plan.pids + 64,
    };
    await mkdir(this.#poolDir(rec.id), { recursive: true, mode: 0o711 });
    await this.#writeJson(join(this.#poolDir(rec.id), "record.json"), rec);
    return rec;
  }

  /** Picks a pool (and an index in it) for a tenant; makes the pool record when it is new. */
  async #place(plan: Plan, exclude?: string): Promise<{ pool: PoolRecord; index: number }> {
    const pools = await this.#pools();
    const tenants = await this.#tenants();
    const occ: PoolOccupancy[] = pools.map((p) => ({
      index: p.index,
      capacity: p.capacity,
      used: tenants.filter((t) => t.pool === p.id).map((t) => t.index),
    }));
    const capNew = poolCapacity(this.#o.poolMemoryBytes, plan.memoryBytes, this.#o.maxTenantsPerPool ?? 64);
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

  // -------------------------------------------------------------------------------------------
  // Tenants

  /** Directories and config of a tenant in its pool (the directory is left unlocked). */
  async #writeTenantFiles(
    spec: InstanceSpec,
    pool: PoolRecord,
    rec: TenantRecord,
    signal?: AbortSignal,
  ): Promise<string> {
    const owner = this.#hostUid(pool, rec.index);
    const dir = await this.#o.storage.openTenant(pool.id, spec, owner, signal);
    const poolData = await this.#o.storage.openPool(pool.id, signal);
    const rel = relative(poolData, dir);
    if (rel !== `tenants/${rec.name}`)
      throw new PoolError("runtime_failed", `tenant directory ${dir} is not where the pool expects it`);
    // Root works inside a tree the tenant owns: every step below refuses to follow a symlink the
    // tenant may have planted (a followed link would let root chown or write a host file).
    const top = await openDirNoFollow(dir);
    const handles: FileHandle[] = [top];
    try {
      const state = await ensureTenantDir(top, "state", owner);
      handles.push(state);
      handles.push(await ensureTenantDir(state, "logs", owner));
      for (const sub of ["home", "tmp", "workspace"]) handles.push(await ensureTenantDir(top, sub, owner));
      const proxyUrl = spec.plan.egress ? this.#o.network.proxyUrl : null;
      // The platform's file: root-owned and read-only to the gateway (OPENCLAW_CONFIG_READONLY).
      await writeRootFile(
        state,
        "openclaw.json",
        renderOpenClawConfigFile({
          port: this.#port(rec.index),
          bind: "lan",
          paths: this.#paths(rec.name),
          llm: spec.llm,
          // The edge reaches the gateway from its own bridge address (DNAT keeps the source).
          ...(spec.publicOrigin
            ? { allowedOrigins: [spec.publicOrigin], trustedProxies: [edgeAddress(this.#net())] }
            : {}),
          ...(proxyUrl ? { proxyUrl } : {}),
        }),
      );
    } finally {
      for (const h of handles) await h.close();
    }
    return dir;
  }

  async create(spec: InstanceSpec, signal?: AbortSignal): Promise<InstanceStatus> {
    const name = parseTenantName(spec.name);
    signal?.throwIfAborted();
    tenantAddress(this.#net(), spec.slot);
    return this.#serial(async () => {
      await this.#prepare();
      let rec = await this.#tenant(name);
      if (rec && rec.slot !== spec.slot)
        throw new PoolError(
          "runtime_failed",
          `instance ${name} exists for slot ${rec.slot}, not ${spec.slot}`,
        );
      if (this.#isPoolSlot(spec.slot))
        throw new PoolError("invalid_request", `slot ${spec.slot} is reserved for the pools' own addresses`);
      let pool: PoolRecord;
      if (rec) {
        pool = (await this.#pool(rec.pool)) ?? (await this.#newPoolAt(rec.pool, spec.plan));
      } else {
        const placed = await this.#place(spec.plan);
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
        await this.#writeJson(this.#tenantRecordPath(name), rec);
      }
      try {
        await this.#writeTenantFiles(spec, pool, rec, signal);
      } finally {
        if (!(await this.#alive(rec, pool))) await this.#o.storage.closeTenant(pool.id, name, signal);
      }
      await this.#ensurePool(pool, signal);
      await this.#applyPoolNet(pool, signal);
      await this.#syncBridge();
      return this.status(name);
    });
  }

  #isPoolSlot(slot: number): boolean {
    const { first, count } = this.#o.poolSlots;
    return slot >= first && slot < first + count;
  }

  /** A pool record lost while a tenant still points at it: make it again at the same number. */
  async #newPoolAt(pool: string, plan: Plan): Promise<PoolRecord> {
    return this.#newPool(Number(checkPoolId(pool).slice(5)), plan);
  }

  async #alive(rec: TenantRecord | undefined, pool: PoolRecord | undefined): Promise<boolean> {
    if (!rec?.pid || !pool) return false;
    const info = await procInfo(rec.pid);
    return (
      info !== undefined && info.startTicks === rec.startTicks && info.uid === this.#hostUid(pool, rec.index)
    );
  }

  async start(spec: InstanceSpec, secrets: InstanceSecrets, signal?: AbortSignal): Promise<InstanceStatus> {
    const name = parseTenantName(spec.name);
    return this.#serial(async () => {
      const rec = await this.#tenant(name);
      if (!rec) throw new PoolError("runtime_failed", `instance ${name} has not been created`);
      const pool = (await this.#pool(rec.pool)) ?? (await this.#newPoolAt(rec.pool, spec.plan));
      if (await this.#alive(rec, pool)) return this.status(name);
      signal?.throwIfAborted();
      // A dead pool comes back empty; its other tenants are started one by one by their own start().
      await this.#ensurePool(pool, signal);
      const hostUid = this.#hostUid(pool, rec.index);
      const cg = this.#cgroup(rec);
      // Leftovers of an earlier run (children of a killed gateway).
      await cg.kill("SIGKILL", 5000);
      await this.#killUid(hostUid, 5000);
      // The start runs with the pool's cores (startQuota); settle() takes it to the plan's.
      await cg.ensure({
        memoryBytes: spec.plan.memoryBytes,
        cpus: startQuota(spec.plan.cpus, pool.cpus),
        pids: spec.plan.pids,
      });
      const dir = await this.#o.storage.openTenant(pool.id, spec, hostUid, signal);

      const port = this.#port(rec.index);
      const paths = this.#paths(name);
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
      const args = confinedArgv(this.#o.python ?? "/usr/bin/python3", port, TENANT_PORT_SPAN, [
        "/usr/bin/tini",
        "-s",
        "--",
        ...program,
      ]);

      const logPath = join(dir, "gateway.log");
      const st = await lstat(logPath).catch(() => undefined);
      if (st && st.size > LOG_ROTATE_BYTES) await rename(logPath, `${logPath}.1`);
      // The tenant owns the directory: never follow a link it put in the log's place.
      const out = await open(
        logPath,
        fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT | fsc.O_NOFOLLOW,
        0o600,
      ).catch((err: NodeJS.ErrnoException) => {
        throw err.code === "ELOOP"
          ? new PoolError("runtime_failed", `${logPath} is a symlink: refusing to follow it; remove it`)
          : err;
      });
      const bundle = this.#bundle(pool.id);
      const processFile = join(bundle, `${name}.process.json`);
      const pidFile = join(bundle, `${name}.pid`);
      try {
        await out.write(
          `--- clawkeep: starting gateway for ${name} in ${pool.id} at ${new Date().toISOString()}\n`,
        );
        // The process file holds the gateway's secrets (its environment): on the tmpfs only,
        // 0600, gone as soon as runc has read it. Never on a command line.
        await writeFile(
          processFile,
          JSON.stringify(this.#processSpec(this.#uid(rec.index), args, env, paths.home)),
          { mode: 0o600 },
        );
        await rm(pidFile, { force: true });
        await this.#spawn(
          [
            "exec",
            "-d",
            "--process",
            processFile,
            "--pid-file",
            pidFile,
            ...(await cg.runcArgs()),
            this.#containerId(pool.id),
          ],
          out.fd,
          logPath,
        );
      } finally {
        await rm(processFile, { force: true });
        await out.close();
      }
      const pid = Number((await readFile(pidFile, "utf8")).trim());
      await rm(pidFile, { force: true });
      const info = await procInfo(pid);
      await this.#writeJson(this.#tenantRecordPath(name), {
        ...rec,
        pid,
        startTicks: info?.startTicks ?? null,
        startedAt: Date.now(),
      } satisfies TenantRecord);
      this.#o.log?.info({ tenant: name, pool: pool.id, pid, uid: hostUid, port }, "starter gateway started");
      return this.status(name);
    });
  }

  #processSpec(uid: number, args: string[], env: Record<string, string>, cwd: string) {
    for (const k of Object.keys(env)) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k))
        throw new PoolError("invalid_request", `bad environment name ${k}`);
    }
    return {
      terminal: false,
      user: { uid, gid: uid, additionalGids: [] },
      args,
      env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
      cwd,
      capabilities: { bounding: [], effective: [], permitted: [], inheritable: [], ambient: [] },
      noNewPrivileges: true,
      oomScoreAdj: 500,
    };
  }

  async #killUid(uid: number, waitMs: number): Promise<number> {
    let pids = await pidsOfUid(uid);
    const deadline = Date.now() + waitMs;
    while (pids.length > 0) {
      for (const p of pids) sendSignal(p, "SIGKILL");
      if (Date.now() >= deadline) break;
      await new Promise((r) => setTimeout(r, 100));
      pids = await pidsOfUid(uid);
    }
    return pids.length;
  }

  async stop(name: string, signal?: AbortSignal): Promise<void> {
    parseTenantName(name);
    await this.#serial(() => this.#stop(name, signal));
  }

  async #stop(name: string, signal?: AbortSignal): Promise<void> {
    const rec = await this.#tenant(name);
    if (!rec) return;
    const pool = await this.#pool(rec.pool);
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
      (pool ? await this.#killUid(this.#hostUid(pool, rec.index), 5000) : 0);
    if (left > 0) throw new PoolError("runtime_failed", `${left} processes of ${name} survived SIGKILL`);
    if (rec.pid !== null)
      await this.#writeJson(this.#tenantRecordPath(name), {
        ...rec,
        pid: null,
        startTicks: null,
        startedAt: null,
      });
    if (pool) await this.#o.storage.closeTenant(pool.id, name, signal);
  }

  async delete(name: string, signal?: AbortSignal): Promise<void> {
    parseTenantName(name);
    await this.#serial(async () => {
      const rec = await this.#tenant(name);
      if (!rec) return;
      await this.#prepare();
      await this.#stop(name, signal);
      await this.#cgroup(rec).remove();
      const pool = await this.#pool(rec.pool);
      if (pool) {
        // The volume must be mounted for the directory to go (it holds the data while unmounted).
        await this.#o.storage.openPool(rec.pool, signal);
        await this.#o.storage.destroyTenant(rec.pool, name, signal);
      }
      await rm(this.#tenantRecordPath(name), { force: true });
      const left = (await this.#tenants()).filter((t) => t.pool === rec.pool);
      if (left.length === 0) {
        if (pool) await this.#removePool(pool, signal);
        else await this.#o.storage.destroyPool(rec.pool, signal);
      } else if (pool) {
        if ((await this.#poolState(pool.id)).state === "running") await this.#applyPoolNet(pool, signal);
        await this.#syncBridge();
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
    const wasRunning = await this.#serial(async () => {
      const rec = await this.#tenant(name);
      if (!rec) throw new PoolError("runtime_failed", `instance ${name} has not been created`);
      if (opts.to !== undefined && rec.pool === checkPoolId(opts.to)) return null;
      const from = await this.#pool(rec.pool);
      if (!from) throw new PoolError("runtime_failed", `pool ${rec.pool} of ${name} has no record`);
      const running = await this.#alive(rec, from);
      await this.#stop(name, signal);
      let target: { pool: PoolRecord; index: number };
      if (opts.to !== undefined) {
        const to = (await this.#pool(opts.to)) ?? (await this.#newPoolAt(opts.to, spec.plan));
        const used = (await this.#tenants()).filter((t) => t.pool === to.id).map((t) => t.index);
        const index = Array.from({ length: to.capacity }, (_, i) => i).find((i) => !used.includes(i));
        if (index === undefined) throw new PoolError("capacity_exhausted", `pool ${to.id} is full`);
        target = { pool: to, index };
      } else {
        target = await this.#place(spec.plan, rec.pool);
      }
      const moved: TenantRecord = {
        ...rec,
        pool: target.pool.id,
        index: target.index,
        pid: null,
        startTicks: null,
        startedAt: null,
      };
      const oldUid = this.#hostUid(from, rec.index);
      const src = await this.#o.storage.openTenant(from.id, spec, oldUid, signal);
      await this.#o.storage.openPool(target.pool.id, signal);
      const dst = await this.#writeTenantFiles(spec, target.pool, moved, signal);
      const newUid = this.#hostUid(target.pool, target.index);
      // Copy (symlinks as links, modes and times kept), then hand everything to the new uid;
      // what was root's (the gateway log, the config) stays root's.
      await execFile(
        ["cp", "-a", "--no-preserve=ownership", `${src}/.`, `${dst}/`],
        signal ? { signal } : {},
      );
      await execFile(["chown", "-R", "-P", `${newUid}:${newUid}`, dst], signal ? { signal } : {});
      for (const f of ["gateway.log", "gateway.log.1"]) await lchown(join(dst, f), 0, 0).catch(() => {});
      await this.#writeTenantFiles(spec, target.pool, moved, signal);
      await this.#writeJson(this.#tenantRecordPath(name), moved);
      await this.#o.storage.closeTenant(target.pool.id, name, signal);
      await this.#o.storage.destroyTenant(from.id, name, signal);
      await this.#cgroup(rec).remove();
      await this.#ensurePool(target.pool, signal);
      await this.#applyPoolNet(target.pool, signal);
      if ((await this.#tenants()).some((t) => t.pool === from.id)) {
        if ((await this.#poolState(from.id)).state === "running") await this.#applyPoolNet(from, signal);
        await this.#syncBridge();
      } else {
        await this.#removePool(from, signal);
      }
      this.#o.log?.info({ tenant: name, from: from.id, to: target.pool.id }, "starter tenant moved");
      return running;
    });
    if (wasRunning && opts.secrets) return this.start(spec, opts.secrets, signal);
    return this.status(name);
  }

  async status(name: string): Promise<InstanceStatus> {
    const rec = await this.#tenant(name);
    if (!rec) return { name, state: "absent", url: null, pid: null, startedAt: null, details: {} };
    const pool = await this.#pool(rec.pool);
    const alive = await this.#alive(rec, pool);
    const net = this.#net();
    const address = tenantAddress(net, rec.slot);
    const details: Record<string, string | number> = {
      pool: rec.pool,
      container: this.#containerId(rec.pool),
      address,
      port: this.#port(rec.index),
      uid: this.#uid(rec.index),
      directory: `${POOL_DIR}/tenants/${rec.name}`,
      cgroup: `${this.#o.cgroupParent}/${rec.pool}/t-${rec.name}`,
      memoryLimitBytes: rec.plan.memoryBytes,
      egress: rec.airGapped
        ? "none (air-gapped)"
        : `per tenant: proxy at ${hostAddress(net)}:${net.egressPort}, source ${address}`,
    };
    if (pool) {
      details.poolAddress = tenantAddress(net, pool.slot);
      details.hostUid = this.#hostUid(pool, rec.index);
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
    for (const r of await this.#tenants()) out.push(await this.status(r.name));
    return out;
  }

  async logTail(name: string, maxLines = 20): Promise<string> {
    const rec = await this.#tenant(name);
    return rec
      ? tailNoFollow(join(this.#o.storage.tenantDir(rec.pool, rec.name), "gateway.log"), maxLines)
      : "";
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
    const tenants = await this.#tenants();
    const out: Awaited<ReturnType<PoolDriver["pools"]>> = [];
    for (const p of await this.#pools()) {
      const s = await this.#poolState(p.id);
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

  /** The tenant's cgroup (tests, status). */
  /**
   * The gateway is ready: its CPU quota goes from the start quota (the pool's cores) down to its
   * plan's. Idempotent; nothing to do for a tenant whose gateway does not run.
   */
  async settle(spec: InstanceSpec, signal?: AbortSignal): Promise<void> {
    const name = parseTenantName(spec.name);
    await this.#serial(async () => {
      signal?.throwIfAborted();
      const rec = await this.#tenant(name);
      const pool = rec ? await this.#pool(rec.pool) : undefined;
      if (!rec || !pool || !(await this.#alive(rec, pool))) return;
      await this.#cgroup(rec).setCpu(spec.plan.cpus);
    });
  }

  async cgroupOf(name: string): Promise<TenantCgroup | undefined> {
    const rec = await this.#tenant(name);
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
    const rec = await this.#tenant(name);
    if (!rec) throw new PoolError("runtime_failed", `instance ${name} has not been created`);
    const port = this.#port(rec.index);
    const cmd =
      opts.confined === false
        ? argv
        : confinedArgv(this.#o.python ?? "/usr/bin/python3", port, TENANT_PORT_SPAN, argv);
    const uid = this.#uid(rec.index);
    return this.#oci(
      [
        "exec",
        "--user",
        `${uid}:${uid}`,
        "--cwd",
        this.#paths(rec.name).home,
        ...(await this.#cgroup(rec).runcArgs()),
        this.#containerId(rec.pool),
        ...cmd,
      ],
      opts.signal,
    );
  }

  /** Runs a command in a pool as any container uid, outside every tenant's cgroup (tests). */
  async execInPool(
    pool: string,
    argv: string[],
    opts: { user?: string; signal?: AbortSignal } = {},
  ): Promise<string> {
    return this.#oci(
      ["exec", "--user", opts.user ?? `${NOBODY}:${NOBODY}`, this.#containerId(pool), ...argv],
      opts.signal,
    );
  }

  /**
   * Start-up: puts the bridge ruleset, the egress policy and every running pool's own rules back
   * in line with the records (a new control plane's NetworkMembers knows nothing yet).
   */
  async resync(signal?: AbortSignal): Promise<void> {
    await this.#serial(async () => {
      await this.#prepare();
      for (const p of await this.#pools()) {
        if ((await this.#poolState(p.id)).state === "running") await this.#applyPoolNet(p, signal);
      }
      await this.#syncBridge();
    });
  }

  /**
   * Stops every pool (its tenants' gateways go with it), takes it off the bridge and unmounts its
   * volume; records and data stay, so a later start() brings each tenant back in its pool.
   * Teardown (tests, uninstall) after the reconciler has stopped; not part of the driver contract.
   */
  async stopPools(signal?: AbortSignal): Promise<void> {
    await this.#serial(async () => {
      for (const t of await this.#tenants()) {
        await this.#stop(t.name, signal).catch((err: unknown) =>
          this.#o.log?.warn({ err, tenant: t.name }, "stopping a starter gateway failed"),
        );
        await this.#cgroup(t)
          .remove()
          .catch(() => {});
      }
      for (const p of await this.#pools()) {
        const id = this.#containerId(p.id);
        const cur = await this.#poolState(p.id);
        if (cur.state !== "absent") {
          await this.#oci(["kill", "--all", id, "KILL"]).catch(() => {});
          if (cur.initPid) await waitGone(cur.initPid, 30_000, signal);
          await this.#oci(["delete", "--force", id]).catch(() => {});
        }
        await detachTenant(p.slot);
        await rm(this.#bundle(p.id), { recursive: true, force: true });
        await this.#o.storage.closePool(p.id, signal);
      }
      await this.#syncBridge();
    });
  }

  /** Removes what the driver set up for all pools: the secrets tmpfs. Only when no pool runs. */
  async shutdown(): Promise<void> {
    const mounts = await readFile("/proc/self/mountinfo", "utf8");
    if (mounts.split("\n").some((l) => l.split(" ")[4] === this.#o.secretsDir)) {
      await execFile(["umount", this.#o.secretsDir]).catch(() => {});
    }
    // runc leaves the (empty) parent cgroups it made; the pools' own are gone with them.
    for (const controller of await readdir("/sys/fs/cgroup").catch(() => [] as string[])) {
      await rmdir(join("/sys/fs/cgroup", controller, this.#o.cgroupParent)).catch(() => {});
    }
    this.#prepared = false;
  }
}
