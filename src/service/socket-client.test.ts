import assert from "node:assert/strict";
import type { IncomingMessage, ServerResponse } from "node:http";
import { join } from "node:path";
import { test } from "node:test";
import { useTempDir } from "../testing/temp-dir.ts";
import { isServiceError } from "./errors.ts";
import { connectionError, errorOf, SocketClient } from "./socket-client.ts";
import { sendError, sendJson } from "./socket-server.ts";
import { testClient as client, staleSocket, TEST_SERVICE, whileServing } from "./testing.ts";

const dir = useTempDir("ck-svc-client-");

test("no socket (ENOENT) and a dead one (ECONNREFUSED) are not_running, in one message; a live one answers", async () => {
  const missing = join(dir(), "missing.sock");
  await assert.rejects(
    client(missing).json("GET", "/"),
    (e: unknown) =>
      isServiceError(e, "not_running") &&
      e.message === `the test service is not running at ${missing}` &&
      e.code === "runtime_unavailable",
  );

  const dead = join(dir(), "dead.sock");
  await staleSocket(dead);
  await assert.rejects(client(dead).json("GET", "/"), (e: unknown) => isServiceError(e, "not_running"));

  const live = join(dir(), "live", "s.sock");
  await whileServing({ socket: live, handler: (_req, res) => sendJson(res, 200, { ok: true }) }, async () => {
    assert.deepEqual(await client(live).json("GET", "/"), { ok: true }, "control: a live socket answers");
  });
});

test("EACCES and EPERM map to permission_denied; other errors to unreachable", () => {
  const errno = (code: string) => Object.assign(new Error(`connect ${code} /x.sock`), { code });
  for (const code of ["EACCES", "EPERM"]) {
    const e = connectionError("the test service", "/x.sock", errno(code));
    assert.equal(e.reason, "permission_denied", code);
    assert.equal(e.message, "permission denied on /x.sock: run as root");
    assert.equal(e.code, "forbidden");
  }
  const other = connectionError("the test service", "/x.sock", errno("ECONNRESET"));
  assert.equal(other.reason, "unreachable", "control: another error is not a permission problem");
  assert.match(other.message, /cannot reach the test service at \/x\.sock: connect ECONNRESET/);
});

test("no answer within timeoutMs is a timeout; an answer in time is not; an abort passes through", async () => {
  const socket = join(dir(), "slow", "s.sock");
  const slow = async (req: IncomingMessage, res: ServerResponse) => {
    const ms = Number(new URL(req.url ?? "/", "http://x").searchParams.get("ms"));
    await new Promise((r) => setTimeout(r, ms));
    if (!res.destroyed) sendJson(res, 200, { slept: ms });
  };
  await whileServing({ socket, handler: slow, drainMs: 0 }, async () => {
    await assert.rejects(
      client(socket, 100).json("GET", "/?ms=1000"),
      (e: unknown) =>
        isServiceError(e, "timeout") &&
        e.message === `the test service at ${socket} did not answer within 100 ms`,
    );
    assert.deepEqual(await client(socket, 2000).json("GET", "/?ms=20"), { slept: 20 }, "control: in time");
    const ac = new AbortController();
    const call = client(socket).json("GET", "/?ms=1000", undefined, { signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    await assert.rejects(call, (e: unknown) => (e as Error).name === "AbortError");
  });
});

test("raw bodies travel as bytes; an error status is the caller's to map, with its typed body", async () => {
  const socket = join(dir(), "raw", "s.sock");
  const reverse = async (req: IncomingMessage, res: ServerResponse) => {
    if (req.url === "/fail") return sendError(res, 409, { code: "conflict", message: "no", extra: 1 });
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    res.writeHead(200, { "content-type": "application/octet-stream" });
    res.end(Buffer.concat(chunks).reverse());
  };
  await whileServing({ socket, handler: reverse }, async () => {
    const c = new SocketClient({ service: TEST_SERVICE, socketPath: socket, keepAlive: true });
    const r = await c.request({ method: "POST", path: "/", body: Buffer.from([1, 2, 3]) });
    assert.deepEqual([...r.body], [3, 2, 1]);
    assert.equal(r.type, "application/octet-stream");
    const f = await c.request({ method: "GET", path: "/fail" });
    assert.equal(f.status, 409);
    assert.deepEqual(errorOf(f), { code: "conflict", message: "no", extra: 1 });
    assert.equal(errorOf(r), undefined, "control: a body without an error object");
    c.close();
  });
});
