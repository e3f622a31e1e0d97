import { ClawkeepError } from "../../../core/errors.ts";

/**
 * The OCI runtime config (config.json) of one tenant container, rendered as typed data. Pure:
 * the driver writes it into a bundle on a tmpfs (it holds the gateway's environment, secrets
 * included) and runs runc or crun on it.
 */
export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

export interface OciSpec {
  ociVersion: string;
  process: {
    terminal: boolean;
    user: { uid: number; gid: number; additionalGids?: number[] };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: {
      bounding: string[];
      effective: string[];
      permitted: string[];
      inheritable: string[];
      ambient: string[];
    };
    rlimits: Array<{ type: string; hard: number; soft: number }>;
    noNewPrivileges: boolean;
    oomScoreAdj?: number;
  };
  root: { path: string; readonly: boolean };
  hostname: string;
  mounts: OciMount[];
  linux: {
    uidMappings: Array<{ containerID: number; hostID: number; size: number }>;
    gidMappings: Array<{ containerID: number; hostID: number; size: number }>;
    namespaces: Array<{ type: string; path?: string }>;
    cgroupsPath: string;
    resources: {
      memory: { limit: number; swap: number };
      cpu: { quota: number; period: number };
      pids: { limit: number };
      devices: Array<{ allow: boolean; access: string; type?: string; major?: number; minor?: number }>;
    };
    seccomp: Seccomp;
    maskedPaths: string[];
    readonlyPaths: string[];
  };
}

interface SeccompRule {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: Array<{ index: number; value: number; valueTwo: number; op: string }>;
}
interface Seccomp {
  defaultAction: string;
  architectures: string[];
  syscalls: SeccompRule[];
}

export interface ContainerInput {
  hostname: string;
  rootfs: string;
  /** Host uid (and gid) that container uid 0 maps to; the map covers 65536 ids. */
  idMapBase: number;
  /** uid:gid the gateway runs as inside the container. */
  user: { uid: number; gid: number };
  args: string[];
  env: Record<string, string>;
  cwd: string;
  /** Read-only binds, host path -> container path. */
  readOnlyBinds: Array<{ source: string; destination: string }>;
  /** Read-write binds (the tenant's data). */
  readWriteBinds: Array<{ source: string; destination: string }>;
  /** tmpfs mounts with a size limit in bytes. */
  tmpfs: Array<{ destination: string; sizeBytes: number }>;
  memoryBytes: number;
  /** CPU quota in cores, per CFS period. */
  cpus: number;
  /** CFS period in µs (default 100 000). */
  cpuPeriodUs?: number;
  pids: number;
  cgroupsPath: string;
  /** A named network namespace to join, or undefined for a new one owned by the container. */
  netnsPath?: string;
}

/** Namespace flags a process must never pass to clone(): a sandboxed gateway makes no namespaces. */
const CLONE_NS_FLAGS = [0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000];

/** Syscalls the sandbox refuses with EPERM (at least mount, unshare, setns, keyctl, bpf, ptrace). */
export const DENIED_SYSCALLS = [
  "mount",
  "umount2",
  "move_mount",
  "open_tree",
  "fsopen",
  "fsmount",
  "fsconfig",
  "fspick",
  "pivot_root",
  "unshare",
  "setns",
  "keyctl",
  "add_key",
  "request_key",
  "bpf",
  "ptrace",
  "process_vm_readv",
  "process_vm_writev",
  "kcmp",
  "perf_event_open",
  "userfaultfd",
  "kexec_load",
  "kexec_file_load",
  "init_module",
  "finit_module",
  "delete_module",
  "reboot",
  "swapon",
  "swapoff",
  "acct",
  "open_by_handle_at",
  "name_to_handle_at",
  "lookup_dcookie",
  "quotactl",
  "syslog",
  "settimeofday",
  "clock_settime",
  "adjtimex",
  "personality",
];
const EPERM = 1;
const ENOSYS = 38;

export function seccompProfile(): Seccomp {
  return {
    defaultAction: "SCMP_ACT_ALLOW",
    architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    syscalls: [
      { names: DENIED_SYSCALLS, action: "SCMP_ACT_ERRNO", errnoRet: EPERM },
      // clone3 takes its flags in memory seccomp cannot read: make libc fall back to clone.
      { names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: ENOSYS },
      // io_uring bypasses seccomp for the operations it submits.
      {
        names: ["io_uring_setup", "io_uring_enter", "io_uring_register"],
        action: "SCMP_ACT_ERRNO",
        errnoRet: ENOSYS,
      },
      ...CLONE_NS_FLAGS.map((flag) => ({
        names: ["clone"],
        action: "SCMP_ACT_ERRNO",
        errnoRet: EPERM,
        args: [{ index: 0, value: flag, valueTwo: flag, op: "SCMP_CMP_MASKED_EQ" }],
      })),
    ],
  };
}

const ABS = /^\/[^\0]*$/;

function checkPath(p: string, what: string): void {
  if (!ABS.test(p) || p.split("/").includes("..")) {
    throw new ClawkeepError(
      "invalid_request",
      `${what} must be an absolute path without '..': ${JSON.stringify(p)}`,
    );
  }
}

export function renderOciSpec(i: ContainerInput): OciSpec {
  checkPath(i.rootfs, "rootfs");
  for (const b of [...i.readOnlyBinds, ...i.readWriteBinds]) {
    checkPath(b.source, "bind source");
    checkPath(b.destination, "bind destination");
  }
  if (!/^[a-z0-9-]{1,63}$/.test(i.hostname))
    throw new ClawkeepError("invalid_request", `bad hostname ${i.hostname}`);
  for (const k of Object.keys(i.env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k))
      throw new ClawkeepError("invalid_request", `bad environment name ${k}`);
  }
  const period = i.cpuPeriodUs ?? 100_000;
  if (!Number.isInteger(period) || period < 1000 || period > 1_000_000)
    throw new ClawkeepError("invalid_request", `bad CFS period ${period}`);
  return {
    ociVersion: "1.0.2",
    process: {
      terminal: false,
      user: { uid: i.user.uid, gid: i.user.gid, additionalGids: [] },
      args: i.args,
      env: Object.entries(i.env).map(([k, v]) => `${k}=${v}`),
      cwd: i.cwd,
      capabilities: { bounding: [], effective: [], permitted: [], inheritable: [], ambient: [] },
      rlimits: [],
      noNewPrivileges: true,
      oomScoreAdj: 500,
    },
    root: { path: i.rootfs, readonly: true },
    hostname: i.hostname,
    mounts: [
      { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
      {
        destination: "/dev",
        type: "tmpfs",
        source: "tmpfs",
        options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
      },
      {
        destination: "/dev/pts",
        type: "devpts",
        source: "devpts",
        options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
      },
      {
        destination: "/dev/shm",
        type: "tmpfs",
        source: "shm",
        options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
      },
      {
        destination: "/dev/mqueue",
        type: "mqueue",
        source: "mqueue",
        options: ["nosuid", "noexec", "nodev"],
      },
      { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
      ...i.tmpfs.map((t) => ({
        destination: t.destination,
        type: "tmpfs",
        source: "tmpfs",
        options: ["nosuid", "nodev", "noexec", "mode=1777", `size=${t.sizeBytes}`],
      })),
      ...i.readOnlyBinds.map((b) => ({
        destination: b.destination,
        type: "bind",
        source: b.source,
        options: ["rbind", "ro", "nosuid", "nodev"],
      })),
      ...i.readWriteBinds.map((b) => ({
        destination: b.destination,
        type: "bind",
        source: b.source,
        options: ["rbind", "rw", "nosuid", "nodev"],
      })),
    ],
    linux: {
      uidMappings: [{ containerID: 0, hostID: i.idMapBase, size: 65536 }],
      gidMappings: [{ containerID: 0, hostID: i.idMapBase, size: 65536 }],
      namespaces: [
        { type: "pid" },
        { type: "ipc" },
        { type: "uts" },
        { type: "mount" },
        { type: "user" },
        i.netnsPath ? { type: "network", path: i.netnsPath } : { type: "network" },
      ],
      cgroupsPath: i.cgroupsPath,
      resources: {
        memory: { limit: i.memoryBytes, swap: i.memoryBytes },
        cpu: { quota: Math.round(i.cpus * period), period },
        pids: { limit: i.pids },
        devices: [{ allow: false, access: "rwm" }],
      },
      seccomp: seccompProfile(),
      maskedPaths: [
        "/proc/acpi",
        "/proc/asound",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/sys/firmware",
        "/sys/devices/virtual/powercap",
      ],
      readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    },
  };
}
