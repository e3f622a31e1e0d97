import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { lstat, mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { SocketClient } from "./socket-client.ts";
import { type SocketServer, type SocketServerOptions, serveSocket } from "./socket-server.ts";

/*
 * Fixtures for the service kit's unit tests (socket-server.test.ts, socket-client.test.ts). Not
 * run on its own.
 */

/** The service name the fixtures serve and call under. */
export const TEST_SERVICE = "the test service";

/** A client of "the test service" at `socketPath`, with the kit's default time-out unless given. */
export const testClient = (socketPath: string, timeoutMs?: number) =>
  new SocketClient({ service: TEST_SERVICE, socketPath, ...(timeoutMs ? { timeoutMs } : {}) });

/**
 * Serves "the test service" with `opts` while `fn` runs, and closes the server afterwards, also
 * when `fn` throws. Returns what `fn` returns.
 */
export async function whileServing<T>(
  opts: Omit<SocketServerOptions, "service">,
  fn: (server: SocketServer) => Promise<T>,
): Promise<T> {
  const s = await serveSocket({ service: TEST_SERVICE, ...opts });
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

/** Leaves a dead socket at `path`: a child listens there and is SIGKILLed (nothing unlinks it). */
export async function staleSocket(path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const script = `require("node:net").createServer().listen(${JSON.stringify(path)}, () => console.log("up"));`;
  const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise<void>((resolve) => child.stdout.once("data", () => resolve()));
  const gone = new Promise((r) => child.once("exit", r));
  child.kill("SIGKILL");
  await gone;
  assert.ok((await lstat(path)).isSocket(), "control: the dead child's socket is still there");
}
