import assert from "node:assert/strict";
import { test } from "node:test";
import { type OciSpec, renderOciSpec } from "./spec.ts";

const base = {
  hostname: "ck-a",
  rootfs: "/c/a/rootfs",
  idMapBase: 1_065_536,
  user: { uid: 1000, gid: 1000 },
  args: ["/usr/bin/tini", "--", "/rt/node"],
  env: { PATH: "/usr/bin", OPENCLAW_GATEWAY_TOKEN: "t" },
  cwd: "/data/home",
  readOnlyBinds: [{ source: "/usr", destination: "/usr" }],
  readWriteBinds: [{ source: "/v/a/data", destination: "/data" }],
  tmpfs: [{ destination: "/tmp", sizeBytes: 1 << 20 }],
  memoryBytes: 2 * 1024 ** 3,
  cpus: 1.5,
  pids: 512,
  cgroupsPath: "/clawkeep/a",
};

test("the sandbox: read-only root, no capabilities, no_new_privs, own namespaces incl. user, limits", () => {
  const s = renderOciSpec(base);
  assert.equal(s.root.readonly, true);
  assert.deepEqual(s.process.capabilities.bounding, []);
  assert.deepEqual(s.process.capabilities.effective, []);
  assert.equal(s.process.noNewPrivileges, true);
  assert.deepEqual(s.linux.namespaces.map((n) => n.type).sort(), [
    "ipc",
    "mount",
    "network",
    "pid",
    "user",
    "uts",
  ]);
  assert.deepEqual(s.linux.uidMappings, [{ containerID: 0, hostID: 1_065_536, size: 65536 }]);
  assert.equal(s.linux.resources.memory.limit, 2 * 1024 ** 3);
  assert.equal(s.linux.resources.cpu.quota, 150_000);
  assert.equal(s.linux.resources.pids.limit, 512);
  assert.ok(s.mounts.find((m) => m.destination === "/usr")!.options.includes("ro"));
  assert.ok(s.mounts.find((m) => m.destination === "/data")!.options.includes("nosuid"));
});

const EPERM = 1;
const ENOSYS = 38;

/** The errno the rendered spec's seccomp gives `name` whatever its arguments; undefined: no such rule. */
function unconditionalErrno(spec: OciSpec, name: string): number | undefined {
  const rule = spec.linux.seccomp.syscalls.find(
    (r) => r.names.includes(name) && r.action === "SCMP_ACT_ERRNO" && !r.args?.length,
  );
  return rule?.errnoRet;
}

/** Written down here, not taken from spec.ts: what the sandbox must refuse with EPERM. */
const MUST_DENY = [
  "add_key",
  "bpf",
  "delete_module",
  "finit_module",
  "init_module",
  "kexec_load",
  "keyctl",
  "mount",
  "open_by_handle_at",
  "perf_event_open",
  "pivot_root",
  "process_vm_readv",
  "process_vm_writev",
  "ptrace",
  "request_key",
  "setns",
  "umount2",
  "unshare",
  "userfaultfd",
];

test("the rendered spec's seccomp: default allow, x86 architectures, every denied syscall refused with EPERM", () => {
  const s = renderOciSpec(base);
  assert.equal(s.linux.seccomp.defaultAction, "SCMP_ACT_ALLOW");
  assert.deepEqual([...s.linux.seccomp.architectures].sort(), [
    "SCMP_ARCH_X32",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
  ]);
  for (const n of MUST_DENY) assert.equal(unconditionalErrno(s, n), EPERM, `${n} is not refused with EPERM`);
  // clone3 and io_uring: ENOSYS, so libc falls back to clone (whose flags seccomp can read).
  for (const n of ["clone3", "io_uring_setup", "io_uring_enter", "io_uring_register"])
    assert.equal(unconditionalErrno(s, n), ENOSYS, n);
  // Every namespace flag to clone is refused; clone itself is not.
  const clone = s.linux.seccomp.syscalls.filter((r) => r.names.includes("clone") && r.args?.length);
  for (const flag of [0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000]) {
    assert.ok(
      clone.some(
        (r) =>
          r.action === "SCMP_ACT_ERRNO" &&
          r.errnoRet === EPERM &&
          r.args?.some(
            (a) => a.index === 0 && a.value === flag && a.valueTwo === flag && a.op === "SCMP_CMP_MASKED_EQ",
          ),
      ),
      `clone with flag 0x${flag.toString(16)} is not refused`,
    );
  }
});

test("control: what a gateway needs is not denied, and a spec without the ptrace rule fails the check", () => {
  const s = renderOciSpec(base);
  for (const n of ["read", "write", "openat", "socket", "connect", "clone", "execve", "futex"])
    assert.equal(unconditionalErrno(s, n), undefined, `${n} must stay allowed`);
  // The check reads the rendered rules: take ptrace out of them and it is no longer refused.
  const without = structuredClone(s);
  for (const r of without.linux.seccomp.syscalls) r.names = r.names.filter((n) => n !== "ptrace");
  assert.equal(unconditionalErrno(without, "ptrace"), undefined);
  assert.equal(unconditionalErrno(without, "mount"), EPERM);
});

test("bad paths, hostnames and environment names are refused before anything is written", () => {
  assert.throws(() => renderOciSpec({ ...base, rootfs: "relative" }), /absolute path/);
  assert.throws(
    () => renderOciSpec({ ...base, readWriteBinds: [{ source: "/v/../etc", destination: "/data" }] }),
    /'\.\.'/,
  );
  assert.throws(() => renderOciSpec({ ...base, hostname: "Bad_Host" }), /hostname/);
  assert.throws(() => renderOciSpec({ ...base, env: { "A=B": "x" } }), /environment name/);
});
