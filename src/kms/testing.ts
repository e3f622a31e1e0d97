/** Test support for the key service's process suites (test/kms*.test.ts): start, kill, scan. */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KmsClient } from "./client.ts";
import { kmsCommand } from "./supervisor.ts";

/** A key service process started by a test, with its output kept for scans and failure reports. */
export interface ServiceUnderTest {
  child: ChildProcess;
  client: KmsClient;
  output(): string;
  /** SIGTERM and wait; resolves to the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
}

const live = new Set<ChildProcess>();

export function exited(c: ChildProcess): Promise<number | null> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve(c.exitCode);
  return new Promise((resolve) => c.once("exit", (code) => resolve(code)));
}

/** Starts `src/kms/main.ts serve` as a child process and waits until it answers on its socket. */
export async function startService(o: {
  dir: string;
  socket: string;
  rootKeyPath?: string;
  allowedUids?: number[];
  timeoutMs?: number;
}): Promise<ServiceUnderTest> {
  const argv = kmsCommand(o);
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
  live.add(child);
  child.once("exit", () => live.delete(child));
  let out = "";
  child.stdout!.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr!.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const client = new KmsClient(o.socket);
  const deadline = Date.now() + (o.timeoutMs ?? 30_000);
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `key service exited (${child.exitCode ?? child.signalCode}) before it answered:\n${out}`,
      );
    }
    try {
      if ((await client.health()).pid === child.pid) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`key service did not answer on ${o.socket}:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    child,
    client,
    output: () => out,
    async stop() {
      await client.close();
      child.kill("SIGTERM");
      return exited(child);
    },
    async kill() {
      child.kill("SIGKILL");
      await exited(child);
      await client.close();
    },
  };
}

/** Kills every service a test started and did not stop (for `after`). */
export async function killAll(): Promise<void> {
  for (const c of [...live]) {
    c.kill("SIGKILL");
    await exited(c);
  }
}

const dirs: string[] = [];
export async function tempDir(prefix: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}
export async function removeTempDirs(): Promise<void> {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
}

/** Every regular file under dir (recursively) with its bytes. */
export async function filesUnder(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) {
      const p = join(e.parentPath, e.name);
      out.set(p, await readFile(p));
    }
  }
  return out;
}

/** The forms a leaked key could take in a file: raw, hex, base64, and 16-byte raw windows. */
export function leakForms(key: Buffer): Buffer[] {
  const forms = [key, Buffer.from(key.toString("hex")), Buffer.from(key.toString("base64"))];
  for (let i = 0; i + 16 <= key.length; i += 16) forms.push(key.subarray(i, i + 16));
  return forms;
}
