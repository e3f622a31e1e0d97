import assert from "node:assert/strict";
import { test } from "node:test";
import { cpuQuota } from "../../container/driver.ts";
import { DENIED_SYSCALLS, renderOciSpec } from "./spec.ts";

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

test("seccomp refuses at least mount, unshare, setns, keyctl, bpf, ptrace, and namespace flags to clone", () => {
  for (const n of ["mount", "unshare", "setns", "keyctl", "bpf", "ptrace"])
    assert.ok(DENIED_SYSCALLS.includes(n), n);
  const s = renderOciSpec(base);
  assert.equal(s.linux.seccomp.defaultAction, "SCMP_ACT_ALLOW");
  const clone = s.linux.seccomp.syscalls.filter((r) => r.names.includes("clone"));
  assert.ok(
    clone.some((r) => r.args?.[0]?.value === 0x10000000),
    "CLONE_NEWUSER refused",
  );
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

test("a tenant's CPU quota never takes every core of the host", () => {
  assert.equal(cpuQuota(2, 2), 1);
  assert.equal(cpuQuota(2, 8), 2);
  assert.equal(cpuQuota(4, 1), 0.5);
});
