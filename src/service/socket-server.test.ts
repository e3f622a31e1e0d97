import assert from "node:assert/strict";
import { lstat, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { useTempDir } from "../testing/temp-dir.ts";
import { isServiceError } from "./errors.ts";
import { peerCredentialsAvailable } from "./peer.ts";
import { readBody, type SocketHandler, sendError, sendJson, serveSocket } from "./socket-server.ts";
import { testClient as client, staleSocket, whileServing } from "./testing.ts";

const dir = useTempDir("ck-svc-");

let n = 0;
const socketIn = (sub = `run${n++}`) => join(dir(), sub, "s.sock");
const hello: SocketHandler = (_req, res) => sendJson(res, 200, { hello: "world" });

test("the socket is 0600 in a directory created 0700; close() removes it", async () => {
  const socket = socketIn();
  const s = await serveSocket({ service: "the test service", socket, handler: hello });
  try {
    assert.equal((await lstat(socket)).mode & 0o777, 0o600);
    assert.ok((await lstat(socket)).isSocket());
    assert.equal((await stat(join(socket, ".."))).mode & 0o777, 0o700);
    assert.deepEqual(await client(socket).json("GET", "/"), { hello: "world" });
  } finally {
    await s.close();
  }
  await assert.rejects(stat(socket), /ENOENT/, "the socket is removed on close");
  await s.closed;
});

test("a second server on a live socket is refused; a stale socket is replaced; a file is never replaced", async () => {
  const socket = socketIn();
  await whileServing({ socket, handler: hello }, async () => {
    await assert.rejects(
      serveSocket({ service: "the test service", socket, handler: hello }),
      (e: unknown) => isServiceError(e, "already_running") && /already listens on/.test(e.message),
    );
    assert.deepEqual(await client(socket).json("GET", "/"), { hello: "world" }, "the first is unharmed");
  });

  const stale = socketIn();
  await staleSocket(stale);
  await whileServing({ socket: stale, handler: hello }, async () => {
    assert.deepEqual(
      await client(stale).json("GET", "/"),
      { hello: "world" },
      "the stale socket was replaced",
    );
  });

  const file = socketIn();
  await serveSocket({ service: "t", socket: file, handler: hello }).then((s) => s.close());
  await writeFile(file, "not a socket");
  await assert.rejects(
    serveSocket({ service: "the test service", socket: file, handler: hello }),
    (e: unknown) => isServiceError(e, "bad_socket_path") && /is not a socket/.test(e.message),
  );
});

test("a uid outside allowedUids gets 403 with a typed error body; an allowed uid gets through", async (t) => {
  if (!(await peerCredentialsAvailable())) {
    t.skip("peer credentials cannot be read here (koffi or libc missing)");
    return;
  }
  const me = process.getuid?.() ?? 0;
  const refused: number[] = [];
  const closed = serveSocket({
    service: "the test service",
    socket: socketIn(),
    handler: hello,
    allowedUids: [me + 12_345],
    onRefused: (caller) => {
      refused.push(caller.uid);
      return undefined;
    },
  });
  const open = serveSocket({
    service: "the test service",
    socket: socketIn(),
    handler: hello,
    allowedUids: [me],
  });
  const [no, yes] = await Promise.all([closed, open]);
  try {
    const r = await client(no.socket).request({ method: "GET", path: "/" });
    assert.equal(r.status, 403);
    const body = JSON.parse(r.body.toString()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, "forbidden");
    assert.match(
      body.error.message,
      new RegExp(`uid ${me} \\(pid ${process.pid}\\) may not use the test service`),
    );
    assert.deepEqual(refused, [me]);
    const ok = await client(yes.socket).request({ method: "GET", path: "/" });
    assert.equal(ok.status, 200, "control: the allowed uid is served");
  } finally {
    await no.close();
    await yes.close();
  }
});

test("with an allow-list, a caller whose credentials cannot be read is refused (fails closed); one that can be read and is allowed gets through", async () => {
  const me = process.getuid?.() ?? 0;
  const unreadable = await serveSocket({
    service: "the test service",
    socket: socketIn(),
    handler: hello,
    allowedUids: [me],
    readPeer: async () => null,
  });
  const readable = await serveSocket({
    service: "the test service",
    socket: socketIn(),
    handler: hello,
    allowedUids: [me],
    readPeer: async () => ({ uid: me, gid: me, pid: process.pid }),
  });
  try {
    const r = await client(unreadable.socket).request({ method: "GET", path: "/" });
    assert.equal(r.status, 403);
    assert.match(JSON.parse(r.body.toString()).error.message, /cannot be read \(SO_PEERCRED\)/);
    const ok = await client(readable.socket).request({ method: "GET", path: "/" });
    assert.equal(ok.status, 200, "control: the same caller, readable and allowed, is served");
  } finally {
    await unreadable.close();
    await readable.close();
  }
});

test("close() lets a call in flight finish; drainMs 0 cuts it", async () => {
  const slow: SocketHandler = async (_req, res) => {
    await new Promise((r) => setTimeout(r, 200));
    sendJson(res, 200, { done: true });
  };
  const s = await serveSocket({ service: "the test service", socket: socketIn(), handler: slow });
  const call = client(s.socket).json("GET", "/");
  await new Promise((r) => setTimeout(r, 50));
  await s.close();
  assert.deepEqual(await call, { done: true });

  const cut = await serveSocket({
    service: "the test service",
    socket: socketIn(),
    handler: slow,
    drainMs: 0,
  });
  const lost = assert.rejects(
    client(cut.socket).json("GET", "/"),
    (e: unknown) => isServiceError(e, "unreachable") || isServiceError(e, "connection_lost"),
    "control: the cut call fails",
  );
  await new Promise((r) => setTimeout(r, 50));
  await cut.close();
  await lost;
});

test("readBody: a body over the limit is refused (drained so the error can be answered); one within is read", async () => {
  const bounded: SocketHandler = async (req, res) => {
    try {
      const body = await readBody(req, 1024, undefined, { drain: true });
      sendJson(res, 200, { size: body.length });
    } catch (err) {
      sendError(res, 413, { code: "invalid_request", message: (err as Error).message });
    }
  };
  await whileServing({ socket: socketIn(), handler: bounded }, async (s) => {
    const c = client(s.socket);
    const big = await c.request({ method: "POST", path: "/", body: Buffer.alloc(4096, 1) });
    assert.equal(big.status, 413);
    assert.match(big.body.toString(), /larger than 1024 bytes/);
    const small = await c.request({ method: "POST", path: "/", body: Buffer.alloc(1000, 1) });
    assert.deepEqual(JSON.parse(small.body.toString()), { size: 1000 }, "control: within the limit");
  });
});
