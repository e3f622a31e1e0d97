import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmod, lstat, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Command } from "commander";
import { registerKmsCommands } from "../src/kms/cli.ts";
import { keyServiceConformance, rejectsWith } from "../src/kms/conformance.ts";
import { kmsCommand, startKmsProcess } from "../src/kms/supervisor.ts";
import {
  exited,
  filesUnder,
  killAll,
  leakForms,
  removeTempDirs,
  type ServiceUnderTest,
  startService,
  tempDir,
} from "../src/kms/testing.ts";
import { execFile } from "../src/lib/exec.ts";

const isRoot = process.getuid?.() === 0;
const ctx = (tenantId: string) => ({ tenantId, purpose: "gateway-token" });

/** A new base directory and, in it, where a key service keeps its store and its socket. */
async function servicePaths(prefix: string): Promise<{ base: string; dir: string; socket: string }> {
  const base = await tempDir(prefix);
  return { base, dir: join(base, "store"), socket: join(base, "run", "kms.sock") };
}

after(async () => {
  await killAll();
  await removeTempDirs();
});

test("the key service runs as its own process: 0700 store, 0600 socket in a 0700 directory; SIGTERM stops it cleanly", async () => {
  const { base, dir, socket } = await servicePaths("ck-kms-proc-");
  const svc = await startService({ dir, socket });
  try {
    const h = await svc.client.health();
    assert.equal(h.pid, svc.child.pid);
    assert.notEqual(h.pid, process.pid);
    const uid = process.getuid?.() ?? 0;
    for (const [p, mode] of [
      [dir, 0o700],
      [join(base, "run"), 0o700],
      [socket, 0o600],
      [join(dir, "root.key"), 0o400],
      [join(dir, "audit.log"), 0o600],
    ] as const) {
      const st = await lstat(p);
      assert.equal(st.mode & 0o777, mode, `${p} mode`);
      assert.equal(st.uid, uid, `${p} owner`);
    }
    assert.ok((await lstat(socket)).isSocket());
    await svc.client.createTenantKeys("tnt_proc", "premium");
    const v = await svc.client.getVolumeKey("tnt_proc");
    assert.equal(await svc.stop(), 0);
    await assert.rejects(stat(socket), /ENOENT/, "the socket is removed on stop");
    await assert.rejects(stat(join(dir, "kms.lock")), /ENOENT/, "the store lock is released on stop");

    const again = await startService({ dir, socket });
    try {
      assert.equal((await again.client.health()).rootKeyId, h.rootKeyId);
      assert.deepEqual(await again.client.getVolumeKey("tnt_proc"), v, "keys survive a restart");
    } finally {
      await again.stop();
    }
  } finally {
    await svc.kill();
  }
});

test("a second service on the same store or socket is refused", async () => {
  const base = await tempDir("ck-kms-two-");
  const svc = await startService({ dir: join(base, "store"), socket: join(base, "run", "kms.sock") });
  try {
    await assert.rejects(
      startService({ dir: join(base, "store"), socket: join(base, "run2", "kms.sock"), timeoutMs: 20_000 }),
      /already_running|another key service/,
    );
    await assert.rejects(
      startService({ dir: join(base, "store2"), socket: join(base, "run", "kms.sock"), timeoutMs: 20_000 }),
      /already listens/,
    );
    assert.equal((await svc.client.health()).pid, svc.child.pid, "the first service is unharmed");
  } finally {
    await svc.stop();
  }
});

describe("through the socket", () => {
  let svc: ServiceUnderTest;
  before(async () => {
    const base = await tempDir("ck-kms-conf-");
    svc = await startService({ dir: join(base, "store"), socket: join(base, "run", "kms.sock") });
  });
  after(() => svc?.stop());
  keyServiceConformance("socket", () => svc.client);
});

/** Runs a node child as `uid` that asks GET /v1/health on the socket; returns what it saw. */
async function healthAs(
  uid: number,
  socket: string,
): Promise<{ status?: number; reason?: string; error?: string }> {
  const script = `
    const http = require("node:http");
    const req = http.request({ socketPath: ${JSON.stringify(socket)}, path: "/v1/health" }, (res) => {
      let d = ""; res.on("data", (c) => (d += c));
      res.on("end", () => { let r; try { r = JSON.parse(d).error?.reason; } catch {} console.log(JSON.stringify({ status: res.statusCode, reason: r })); });
    });
    req.on("error", (e) => console.log(JSON.stringify({ error: e.code })));
    req.end();`;
  const child = spawn(process.execPath, ["-e", script], {
    uid,
    gid: uid === 0 ? 0 : 65534,
    cwd: "/",
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    out += d.toString();
  });
  await exited(child);
  try {
    return JSON.parse(out.trim()) as { status?: number; error?: string };
  } catch {
    throw new Error(`probe as uid ${uid} printed: ${out}`);
  }
}

test("another uid cannot use the key service: the socket refuses it (EACCES), and so does the uid check", async (t) => {
  if (!isRoot) return t.skip("needs root: spawns a probe as uid 65534 (nobody)");
  const base = await tempDir("ck-kms-uid-");
  await chmod(base, 0o711);
  const dir = join(base, "store");
  const socket = join(base, "run", "kms.sock");
  let svc = await startService({ dir, socket });
  try {
    assert.equal((await healthAs(0, socket)).status, 200, "control: root (the control plane's uid) connects");
    assert.deepEqual(
      await healthAs(65534, socket),
      { error: "EACCES" },
      "uid 65534 is stopped by the socket's permissions",
    );

    // Second layer: with the permissions loosened, the peer's uid (SO_PEERCRED) is still refused.
    if (!(await svc.client.health()).peerCredentials) {
      return t.skip(
        "peer credentials (SO_PEERCRED via koffi) are not available here: the uid check cannot be tested",
      );
    }
    await chmod(join(base, "run"), 0o711);
    await chmod(socket, 0o666);
    assert.deepEqual(
      await healthAs(65534, socket),
      { status: 403, reason: "forbidden" },
      "uid 65534 reaches the socket but is refused",
    );
    const refused = (await svc.client.audit()).filter((e) => e.op.startsWith("GET /v1/health") && !e.ok);
    assert.equal(refused.length, 1);
    assert.equal(typeof refused[0]!.caller === "object" && refused[0]!.caller.uid, 65534);
    await svc.stop();

    // Control: the same probe succeeds when the service allows that uid (and the permissions are loosened again).
    svc = await startService({ dir, socket, allowedUids: [0, 65534] });
    assert.deepEqual(
      await healthAs(65534, socket),
      { error: "EACCES" },
      "a restart makes the socket private again",
    );
    await chmod(join(base, "run"), 0o711);
    await chmod(socket, 0o666);
    assert.equal(
      (await healthAs(65534, socket)).status,
      200,
      "control: an allowed uid with access to the socket is served",
    );
  } finally {
    await svc.stop();
  }
});

test("destroy crypto-shreds: unwrap fails, before and after a restart, and the store no longer holds the tenant's wrapped keys", async () => {
  const { dir, socket } = await servicePaths("ck-kms-destroy-");
  let svc = await startService({ dir, socket });
  try {
    const c = svc.client;
    await c.createTenantKeys("tnt_gone", "premium");
    await c.createTenantKeys("tnt_gone_s", "starter");
    await c.createTenantKeys("tnt_kept", "starter");
    const sealed = await c.seal(Buffer.from("secret"), ctx("tnt_gone"));
    const kept = await c.getVolumeKey("tnt_kept");
    const wrapped: string[] = [];
    for (const t of ["tnt_gone", "tnt_gone_s"]) {
      const rec = JSON.parse(await readFile(join(dir, "tenants", `${t}.json`), "utf8"));
      wrapped.push(rec.volumeKey.wrapped, ...rec.secretsKeys.map((k: { wrapped: string }) => k.wrapped));
      if (rec.kek) wrapped.push(rec.kek.wrapped);
    }
    await c.destroyTenant("tnt_gone");
    await c.destroyTenant("tnt_gone_s");
    await rejectsWith(c.getVolumeKey("tnt_gone"), "tenant_destroyed");
    await rejectsWith(c.unseal(sealed, ctx("tnt_gone")), "tenant_destroyed");
    await rejectsWith(c.getVolumeKey("tnt_gone_s"), "tenant_destroyed");
    await svc.stop();
    svc = await startService({ dir, socket });
    await rejectsWith(svc.client.getVolumeKey("tnt_gone"), "tenant_destroyed");
    await rejectsWith(svc.client.unseal(sealed, ctx("tnt_gone")), "tenant_destroyed");
    assert.deepEqual(await svc.client.getVolumeKey("tnt_kept"), kept);
    await assert.rejects(stat(join(dir, "tenants", "tnt_gone.json")), /ENOENT/);
    for (const [path, bytes] of await filesUnder(dir)) {
      for (const w of wrapped) {
        assert.ok(
          !bytes.includes(w) && !bytes.includes(Buffer.from(w, "base64")),
          `${path} still holds a destroyed wrapped key`,
        );
      }
    }
  } finally {
    await svc.stop();
  }
});

test("store scan: no unwrapped key, plaintext or root key appears in any file of the store, the audit log or the service's output", async () => {
  const base = await tempDir("ck-kms-scan-");
  const dir = join(base, "store");
  const rootKeyPath = join(base, "operator-root.key");
  const rootKey = Buffer.from(Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff));
  await writeFile(rootKeyPath, rootKey, { mode: 0o400 });
  const svc = await startService({ dir, socket: join(base, "run", "kms.sock"), rootKeyPath });
  const keys: Buffer[] = [];
  const plaintexts: Buffer[] = [];
  try {
    const c = svc.client;
    const tenants = ["tnt_s1", "tnt_s2", "tnt_p1", "tnt_e1"];
    for (const [i, t] of tenants.entries()) {
      await c.createTenantKeys(t, i < 2 ? "starter" : i === 2 ? "premium" : "enterprise");
      keys.push(await c.getVolumeKey(t));
      const p = Buffer.from(`plaintext-${t}-${"z".repeat(20)}`);
      plaintexts.push(p);
      assert.deepEqual(await c.unseal(await c.seal(p, ctx(t)), ctx(t)), p);
    }
    await c.rotateKek("tnt_p1");
    await c.rotateStarterKek();
    await c.destroyTenant("tnt_s2");
    await c.getVolumeKey("tnt_nobody").catch(() => {});
    for (const t of ["tnt_s1", "tnt_p1", "tnt_e1"]) keys.push(await c.getVolumeKey(t));
  } finally {
    assert.equal(await svc.stop(), 0);
  }
  const files = await filesUnder(dir);
  assert.ok(files.has(join(dir, "audit.log")) && files.size >= 5, `scanned ${[...files.keys()].join(", ")}`);
  files.set("(service output)", Buffer.from(svc.output()));
  const secrets = [...keys.flatMap(leakForms), ...plaintexts, ...leakForms(rootKey)];
  for (const [path, bytes] of files) {
    for (const s of secrets) assert.ok(!bytes.includes(s), `${path} contains key material or plaintext`);
  }
  const audit = (await readFile(join(dir, "audit.log"), "utf8")).trim().split("\n");
  assert.ok(audit.length >= 20, "every call was audited");
});

test("supervisor: starts the service, restarts it after SIGKILL, stops it; the service dies with its parent", async () => {
  const { dir, socket } = await servicePaths("ck-kms-sup-");
  const restarts: number[] = [];
  const kms = await startKmsProcess({
    dir,
    socket,
    output: "ignore",
    onRestart: (i) => restarts.push(i.restarts),
  });
  try {
    await kms.client.createTenantKeys("tnt_sup", "premium");
    const v = await kms.client.getVolumeKey("tnt_sup");
    const firstPid = kms.pid!;
    process.kill(firstPid, "SIGKILL");
    for (let i = 0; i < 100 && (kms.pid === firstPid || kms.pid === undefined); i++)
      await new Promise((r) => setTimeout(r, 50));
    await kms.ready();
    assert.notEqual(kms.pid, firstPid);
    assert.deepEqual(restarts, [1]);
    assert.deepEqual(
      await kms.client.getVolumeKey("tnt_sup"),
      v,
      "the client reconnects to the restarted service",
    );
  } finally {
    await kms.stop();
  }
  await assert.rejects(stat(socket), /ENOENT/, "stop() removes the socket");

  // A control plane killed with SIGKILL takes its key service with it (stdin pipe closes).
  const parentScript = `
    import { startKmsProcess } from ${JSON.stringify(new URL("../src/kms/supervisor.ts", import.meta.url).pathname)};
    const k = await startKmsProcess({ dir: ${JSON.stringify(dir)}, socket: ${JSON.stringify(socket)}, output: "ignore" });
    console.log(k.pid);`;
  const parent = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", parentScript], {
    cwd: new URL("..", import.meta.url).pathname,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  parent.stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  parent.stderr.on("data", (d: Buffer) => {
    err += d.toString();
  });
  try {
    for (let i = 0; i < 600 && !/^\d+\n/.test(out) && parent.exitCode === null; i++)
      await new Promise((r) => setTimeout(r, 50));
    const childPid = Number(out.trim().split("\n")[0]);
    assert.ok(childPid > 0, `parent printed: ${out}${err}`);
    parent.kill("SIGKILL");
    await exited(parent);
    let alive = true;
    for (let i = 0; i < 100 && alive; i++) {
      try {
        process.kill(childPid, 0);
        await new Promise((r) => setTimeout(r, 50));
      } catch {
        alive = false;
      }
    }
    assert.equal(alive, false, `key service ${childPid} outlived its parent`);
  } finally {
    parent.kill("SIGKILL");
  }
});

test("CLI: `kms serve` and `kms audit --json` are registered; audit prints the service's log as JSON", async () => {
  const program = new Command("clawkeep");
  registerKmsCommands(program);
  const kms = program.commands.find((c) => c.name() === "kms");
  assert.deepEqual(kms?.commands.map((c) => c.name()).sort(), ["audit", "serve"]);

  const base = await tempDir("ck-kms-cli-");
  const socket = join(base, "run", "kms.sock");
  const svc = await startService({ dir: join(base, "store"), socket });
  try {
    await svc.client.createTenantKeys("tnt_cli", "starter");
    const argv = kmsCommand({ dir: "", socket }).slice(0, 4);
    const out = await execFile([...argv, "audit", "--socket", socket, "--tenant", "tnt_cli", "--json"]);
    const entries = JSON.parse(out) as { op: string; tenant: string; ok: boolean }[];
    assert.deepEqual(
      entries.map((e) => [e.op, e.tenant, e.ok]),
      [["createTenantKeys", "tnt_cli", true]],
    );
    await assert.rejects(
      execFile([...argv, "audit", "--socket", join(base, "nowhere.sock"), "--json"]),
      /key service is not running/,
    );
  } finally {
    await svc.stop();
  }
});
