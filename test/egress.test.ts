import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { ClawkeepError } from "../src/core/errors.ts";
import { renderEgressConfig } from "../src/egress/config.ts";
import type { ConnectionLogEntry } from "../src/egress/journal.ts";
import type { EgressPolicy } from "../src/egress/policy.ts";
import { startEgressProcess } from "../src/egress/process.ts";
import { type EgressProxy, type EgressProxyOptions, startEgressProxy } from "../src/egress/proxy.ts";
import { ExecError, execFile } from "../src/lib/exec.ts";
import { listenSomewhere, randomPort } from "./fixtures/ports.ts";

/*
 * The egress proxy against real sockets. Tenants are network namespaces on a bridge, each with
 * its own source address; the "internet" is another namespace with a fake server. Every address
 * is in 198.18.0.0/15 (benchmarking), which the proxy refuses by default: the tests that need to
 * reach the fake internet permit exactly its /24 with testOnlyPermitRanges.
 *
 *   host:      bridge ckb<id> 198.19.X.1/24 (the proxy listens here), veth cke<id>n 198.19.X+1.1/24
 *   tenants:   ckeg<id>a .11 (alice), b .12 (bob), c .13 (carol, air-gapped), x .14 (nobody)
 *   internet:  ckeg<id>n 198.19.X+1.2, fake server on ports 80, 443 and the canary's port
 *   canary:    a server on host loopback; any connection to it is a proxy connecting to loopback
 */

const id = (process.pid % 46_000).toString(36);
const octet = 100 + (process.pid % 50) * 2;
const NET = `198.19.${octet}`;
const INET = `198.19.${octet + 1}`;
const PROXY_IP = `${NET}.1`;
const INET_IP = `${INET}.2`;
const BRIDGE = `ckb${id}`;
const TENANTS = { a: `${NET}.11`, b: `${NET}.12`, c: `${NET}.13`, x: `${NET}.14` } as const;
type Who = keyof typeof TENANTS | "n";
const ns = (w: Who) => `ckeg${id}${w}`;
const hostVeth = (w: Who) => `cke${id}${w}`;
const PERMIT_INET = [`${INET}.0/24`];
interface Fixture {
  dir: string;
  canary: Server;
  canaryPort: number;
  canaryHits: number;
  internet: ChildProcess;
}

let fixture: Fixture | null = null;
let skipReason: string | null = null;
const created: string[] = [];

const FAKE_INTERNET = `
import { createServer } from "node:http";
const ports = process.argv.slice(2).map(Number);
let ready = 0;
for (const port of ports) {
  createServer((req, res) => {
    let received = 0;
    req.on("data", (c) => { received += c.length; });
    req.on("end", () => {
      const u = new URL(req.url, "http://x");
      const send = () => {
        const size = Number(u.searchParams.get("size") ?? 0);
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ fake: "internet", port, host: req.headers.host, path: u.pathname,
          remote: req.socket.remoteAddress, received, proxyHeaders: Object.keys(req.headers).filter((h) => h.startsWith("proxy-")),
          pad: "x".repeat(size) }));
      };
      if (u.pathname === "/slow") setTimeout(send, Number(u.searchParams.get("ms") ?? 1000));
      else send();
    });
  }).listen(port, "0.0.0.0", () => { if (++ready === ports.length) console.log("ready"); });
}
`;

async function sh(argv: string[]): Promise<string> {
  return execFile(argv);
}

async function quiet(argv: string[]): Promise<void> {
  await execFile(argv).catch(() => undefined);
}

async function teardownNetwork(): Promise<void> {
  for (const w of ["a", "b", "c", "x", "n"] as const) await quiet(["ip", "netns", "del", ns(w)]);
  for (const w of ["a", "b", "c", "x", "n"] as const) await quiet(["ip", "link", "del", hostVeth(w)]);
  await quiet(["ip", "link", "del", BRIDGE]);
}

async function setupNetwork(): Promise<void> {
  const inUse = await sh(["ip", "-o", "-4", "addr", "show"]);
  if (inUse.includes(`${NET}.`) || inUse.includes(`${INET}.`))
    throw new Error(`${NET}.0/24 or ${INET}.0/24 is in use`);
  created.push(`bridge ${BRIDGE}`);
  await sh(["ip", "link", "add", BRIDGE, "type", "bridge"]);
  await sh(["ip", "addr", "add", `${PROXY_IP}/24`, "dev", BRIDGE]);
  await sh(["ip", "link", "set", BRIDGE, "up"]);
  for (const [w, addr] of Object.entries(TENANTS) as Array<[Who, string]>) {
    created.push(`netns ${ns(w)} (${addr})`);
    await sh(["ip", "netns", "add", ns(w)]);
    await sh(["ip", "link", "add", hostVeth(w), "type", "veth", "peer", "name", "eth0", "netns", ns(w)]);
    await sh(["ip", "link", "set", hostVeth(w), "master", BRIDGE, "up"]);
    await sh(["ip", "-n", ns(w), "addr", "add", `${addr}/24`, "dev", "eth0"]);
    await sh(["ip", "-n", ns(w), "link", "set", "eth0", "up"]);
    await sh(["ip", "-n", ns(w), "link", "set", "lo", "up"]);
  }
  created.push(`netns ${ns("n")} (${INET_IP})`);
  await sh(["ip", "netns", "add", ns("n")]);
  await sh(["ip", "link", "add", hostVeth("n"), "type", "veth", "peer", "name", "eth0", "netns", ns("n")]);
  await sh(["ip", "addr", "add", `${INET}.1/24`, "dev", hostVeth("n")]);
  await sh(["ip", "link", "set", hostVeth("n"), "up"]);
  await sh(["ip", "-n", ns("n"), "addr", "add", `${INET_IP}/24`, "dev", "eth0"]);
  await sh(["ip", "-n", ns("n"), "link", "set", "eth0", "up"]);
  await sh(["ip", "-n", ns("n"), "link", "set", "lo", "up"]);
}

/** What the fixture made so far, so that `after` removes it even when `before` failed halfway. */
const made: { dir?: string; canary?: Server; internet?: ChildProcess } = {};

before(async () => {
  if (process.getuid?.() !== 0) {
    skipReason = "needs root (network namespaces, veth, bridge)";
    return;
  }
  try {
    await sh(["ip", "-V"]);
    await sh(["curl", "--version"]);
  } catch (err) {
    skipReason = `needs iproute2 and curl: ${(err as Error).message}`;
    return;
  }
  const dir = await mkdtemp(join(tmpdir(), "clawkeep-egress-test-"));
  made.dir = dir;
  const state = { hits: 0 };
  const canary = createServer((_req, res) => {
    res.end("canary: you reached host loopback\n");
  });
  made.canary = canary;
  canary.on("connection", () => state.hits++);
  const canaryPort = await listenSomewhere(canary, "127.0.0.1");
  try {
    await teardownNetwork();
    await setupNetwork();
    const script = join(dir, "fake-internet.mjs");
    await writeFile(script, FAKE_INTERNET);
    created.push("fake internet server");
    const internet = spawn(
      "ip",
      ["netns", "exec", ns("n"), process.execPath, script, "80", "443", String(canaryPort)],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    made.internet = internet;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("fake internet did not start")), 15_000);
      internet.stdout?.on("data", (d: Buffer) => {
        if (d.toString().includes("ready")) {
          clearTimeout(timer);
          resolve();
        }
      });
      internet.once("exit", (code) => reject(new Error(`fake internet exited with ${code}`)));
    });
    fixture = {
      dir,
      canary,
      canaryPort,
      get canaryHits() {
        return state.hits;
      },
      internet,
    };
  } catch (err) {
    console.error(`egress test fixture failed; it had made: ${created.join(", ")}`);
    throw err;
  }
});

after(async () => {
  made.internet?.kill("SIGKILL");
  if (made.canary) {
    const canary = made.canary;
    await new Promise<void>((r) => canary.close(() => r()));
  }
  await teardownNetwork();
  if (made.dir) await rm(made.dir, { recursive: true, force: true });
  const left = await execFile(["ip", "netns", "list"]).catch(() => "");
  if (left.includes(`ckeg${id}`))
    console.error(`egress test: left behind: ${left} (made: ${created.join(", ")})`);
});

function need(t: { skip(msg?: string): void }): Fixture | null {
  if (!fixture) {
    t.skip(skipReason ?? "fixture did not start");
    return null;
  }
  return fixture;
}

/** A resolver that answers from a table and records every question. */
class FakeDns {
  readonly calls: string[] = [];
  constructor(readonly table: Record<string, string[] | ((n: number) => string[])>) {}
  readonly resolve = async (host: string): Promise<string[]> => {
    this.calls.push(host);
    const a = this.table[host];
    if (!a) throw Object.assign(new Error(`no such host ${host}`), { code: "ENOTFOUND" });
    return typeof a === "function" ? a(this.calls.filter((h) => h === host).length) : a;
  };
}

const POLICY: EgressPolicy = {
  tenants: [
    {
      name: "alice",
      addresses: [TENANTS.a],
      allow: ["api.fake.test", "rebind.fake.test", "mixed.fake.test"],
    },
    { name: "bob", addresses: [TENANTS.b], allow: ["api.fake.test"], maxConcurrent: 2 },
    { name: "carol", addresses: [TENANTS.c], airGapped: true, allow: ["api.fake.test", INET_IP] },
  ],
  operatorAllow: [
    "loop.fake.test",
    "meta.fake.test",
    "priv.fake.test",
    "mapped.fake.test",
    "bench.fake.test",
    INET_IP,
  ],
};

async function withProxy<T>(
  f: Fixture,
  extra: Partial<EgressProxyOptions> & { dns?: FakeDns },
  body: (p: EgressProxy, dns: FakeDns) => Promise<T>,
): Promise<T> {
  const dns =
    extra.dns ??
    new FakeDns({
      "api.fake.test": [INET_IP],
      "api.openai.com": [INET_IP],
      "evil.fake.test": [INET_IP],
      "bench.fake.test": [INET_IP],
      "loop.fake.test": ["127.0.0.1"],
      "meta.fake.test": ["169.254.169.254"],
      "priv.fake.test": ["10.20.30.40"],
      "mapped.fake.test": ["::ffff:127.0.0.1"],
    });
  // Only this suite's proxies listen on PROXY_IP, so a random port is free in practice.
  const proxy = await startEgressProxy({
    listen: { host: PROXY_IP, port: randomPort() },
    policy: POLICY,
    logFile: join(f.dir, `egress-${Date.now()}-${Math.random().toString(36).slice(2)}.log`),
    resolve: dns.resolve,
    ...extra,
  });
  try {
    return await body(proxy, dns);
  } finally {
    await proxy.close();
  }
}

interface CurlResult {
  exit: number;
  connect: number;
  code: number;
  body: string;
}

/** curl from inside a tenant's namespace through the proxy; tunnel = CONNECT, else plain HTTP. */
async function curl(
  who: Who,
  proxy: { url: string },
  url: string,
  opts: { tunnel?: boolean; data?: string; maxTime?: number } = {},
): Promise<CurlResult> {
  const argv = [
    "ip",
    "netns",
    "exec",
    ns(who),
    "curl",
    "-sS",
    "--max-time",
    String(opts.maxTime ?? 10),
    "--noproxy",
    "",
    "-x",
    proxy.url,
    ...(opts.tunnel ? ["--proxytunnel"] : []),
    ...(opts.data === undefined ? [] : ["--data-binary", "@-", "-H", "content-type: text/plain"]),
    "-w",
    "\n%{http_connect} %{http_code}",
    url,
  ];
  let out: string;
  let exit = 0;
  try {
    out = await execFile(argv, {
      env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin" },
      ...(opts.data === undefined ? {} : { input: opts.data }),
    });
  } catch (err) {
    if (!(err instanceof ExecError) || err.exitCode === null) throw err;
    out = err.stdout;
    exit = err.exitCode;
  }
  const nl = out.lastIndexOf("\n");
  const [connect, code] = out
    .slice(nl + 1)
    .trim()
    .split(" ")
    .map((n) => Number(n));
  return { exit, connect: connect ?? 0, code: code ?? 0, body: out.slice(0, Math.max(0, nl)) };
}

async function waitFor<T>(
  what: string,
  f: () => T | undefined | null | false,
  timeoutMs = 8_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function entries(p: EgressProxy, tenant: string, n: number): Promise<ConnectionLogEntry[]> {
  return waitFor(`${n} log entries for ${tenant}`, () => {
    const e = p.recentLog(tenant, 1000);
    return e.length >= n ? e : null;
  });
}

test("an allowed host through CONNECT and through plain HTTP reaches the fake internet; logged, bytes counted", async (t) => {
  const f = need(t);
  if (!f) return;
  await withProxy(f, { testOnlyPermitRanges: PERMIT_INET }, async (p) => {
    const tunnel = await curl("a", p, "http://api.fake.test:443/hello", { tunnel: true });
    assert.equal(tunnel.connect, 200, JSON.stringify(tunnel));
    assert.equal(tunnel.code, 200);
    const tb = JSON.parse(tunnel.body) as {
      fake: string;
      host: string;
      path: string;
      remote: string;
      port: number;
    };
    assert.equal(tb.fake, "internet");
    assert.equal(tb.port, 443);
    assert.equal(tb.path, "/hello");
    assert.equal(tb.remote, `${INET}.1`, "the fake internet sees the proxy, not the tenant");

    const upload = "u".repeat(5000);
    const plain = await curl("a", p, "http://api.openai.com/v1/chat/completions?size=20000", {
      data: upload,
    });
    assert.equal(plain.exit, 0, JSON.stringify(plain).slice(0, 300));
    assert.equal(plain.code, 200);
    const pb = JSON.parse(plain.body) as {
      received: number;
      host: string;
      path: string;
      proxyHeaders: string[];
    };
    assert.equal(pb.received, 5000);
    assert.equal(pb.host, "api.openai.com");
    assert.equal(pb.path, "/v1/chat/completions");
    assert.deepEqual(pb.proxyHeaders, [], "proxy-* headers are not forwarded");

    const [e1, e2] = await entries(p, "alice", 2);
    assert.ok(e1 && e2);
    assert.equal(e1.verdict, "allow");
    assert.equal(e1.method, "CONNECT");
    assert.equal(e1.host, "api.fake.test");
    assert.equal(e1.port, 443);
    assert.equal(e1.address, INET_IP);
    assert.equal(e1.source, TENANTS.a);
    assert.ok(e1.bytesUp > 50 && e1.bytesDown > tunnel.body.length, JSON.stringify(e1));
    assert.equal(e2.verdict, "allow");
    assert.equal(e2.method, "POST");
    assert.equal(e2.host, "api.openai.com");
    assert.equal(e2.port, 80);
    assert.equal(e2.status, 200);
    assert.ok(e2.bytesUp >= 5000, JSON.stringify(e2));
    assert.ok(e2.bytesDown >= 20_000, JSON.stringify(e2));
    assert.ok(!JSON.stringify(e2).includes("chat/completions"), "the log never holds URL paths");
    const c = p.counters("alice");
    assert.equal(c.allowed, 2);
    assert.equal(c.denied, 0);
    assert.equal(c.bytesUp, e1.bytesUp + e2.bytesUp);
    assert.equal(c.bytesDown, e1.bytesDown + e2.bytesDown);
    assert.equal(c.active, 0);

    await p.close();
    const lines = (await readFile(p.logFile, "utf8")).trim().split("\n");
    const fromFile = lines.map((l) => JSON.parse(l) as ConnectionLogEntry);
    assert.deepEqual(fromFile, [e1, e2], "the log file holds the same entries, one JSON line each");
    assert.equal((await stat(p.logFile)).mode & 0o777, 0o600);
  });
});

test("a host that is not on the allowlist is refused with 403 and logged; it is never resolved", async (t) => {
  const f = need(t);
  if (!f) return;
  await withProxy(f, { testOnlyPermitRanges: PERMIT_INET }, async (p, dns) => {
    const control = await curl("a", p, "http://api.fake.test/");
    assert.equal(control.code, 200, "control: an allowlisted host works through the same proxy");
    const tunnel = await curl("a", p, "http://evil.fake.test:443/", { tunnel: true });
    assert.equal(tunnel.connect, 403);
    assert.notEqual(tunnel.exit, 0);
    const plain = await curl("a", p, "http://evil.fake.test/");
    assert.equal(plain.code, 403);
    assert.match(plain.body, /not-allowlisted/);
    const port = await curl("a", p, "http://api.fake.test:22/", { tunnel: true });
    assert.equal(port.connect, 403);
    assert.ok(!dns.calls.includes("evil.fake.test"), "a refused name is never looked up");

    const log = await entries(p, "alice", 4);
    const denied = log.filter((e) => e.verdict === "deny");
    assert.deepEqual(
      denied.map((e) => [e.method, e.host, e.port, e.reason, e.bytesUp, e.bytesDown]),
      [
        ["CONNECT", "evil.fake.test", 443, "not-allowlisted", 0, 0],
        ["GET", "evil.fake.test", 80, "not-allowlisted", 0, 0],
        ["CONNECT", "api.fake.test", 22, "port-not-allowed", 0, 0],
      ],
    );
    assert.equal(p.counters("alice").denied, 3);
    assert.equal(p.counters("alice").allowed, 1);
  });
});

test("allowlisted names that resolve to loopback, private or metadata addresses are refused (SSRF)", async (t) => {
  const f = need(t);
  if (!f) return;
  const targets = [
    ["loop.fake.test", "loopback"],
    ["meta.fake.test", "cloud-metadata"],
    ["priv.fake.test", "private"],
    ["mapped.fake.test", "loopback"],
    ["bench.fake.test", "benchmarking"],
    [INET_IP, "benchmarking"],
  ] as const;
  await withProxy(f, { policy: { ...POLICY, ports: [80, 443, f.canaryPort] } }, async (p) => {
    const before = f.canaryHits;
    for (const [host, why] of targets) {
      const port = host.startsWith("loop") || host.startsWith("mapped") ? f.canaryPort : 443;
      const r = await curl("a", p, `http://${host}:${port}/`, { tunnel: true });
      assert.equal(r.connect, 403, `${host} must be refused`);
      const plain = await curl("a", p, `http://${host}:${port}/`);
      assert.equal(plain.code, 403, `${host} must be refused over plain HTTP too`);
      assert.match(plain.body, new RegExp(`forbidden-address.*${why}`));
    }
    assert.equal(f.canaryHits, before, "nothing reached host loopback");
    const log = await entries(p, "alice", targets.length * 2);
    assert.ok(log.every((e) => e.verdict === "deny" && e.reason === "forbidden-address" && e.bytesUp === 0));
    assert.equal(log.find((e) => e.host === "meta.fake.test")?.address, "169.254.169.254");
    assert.equal(log.find((e) => e.host === "mapped.fake.test")?.address, "127.0.0.1");
  });

  // Control: the same requests succeed once the test-only permit covers the range, so it is the
  // address check, and nothing else, that stopped them. Ranges not permitted stay refused.
  await withProxy(
    f,
    {
      policy: { ...POLICY, ports: [80, 443, f.canaryPort] },
      testOnlyPermitRanges: ["127.0.0.0/8", ...PERMIT_INET],
    },
    async (p) => {
      const before = f.canaryHits;
      const loop = await curl("a", p, `http://loop.fake.test:${f.canaryPort}/`, { tunnel: true });
      assert.equal(loop.connect, 200);
      assert.match(loop.body, /canary/);
      assert.equal(f.canaryHits, before + 1);
      const mapped = await curl("a", p, `http://mapped.fake.test:${f.canaryPort}/`);
      assert.match(mapped.body, /canary/);
      for (const host of ["bench.fake.test", INET_IP]) {
        const r = await curl("a", p, `http://${host}/`);
        assert.equal(r.code, 200, host);
        assert.match(r.body, /"fake":"internet"/);
      }
      for (const host of ["meta.fake.test", "priv.fake.test"]) {
        assert.equal(
          (await curl("a", p, `http://${host}/`)).code,
          403,
          `${host} is not covered by the permit`,
        );
      }
    },
  );
});

test("a source address that belongs to no tenant is refused", async (t) => {
  const f = need(t);
  if (!f) return;
  await withProxy(f, { testOnlyPermitRanges: PERMIT_INET }, async (p, dns) => {
    const control = await curl("a", p, "http://api.fake.test:443/", { tunnel: true });
    assert.equal(control.connect, 200, "control: a known tenant gets through");
    const callsBefore = dns.calls.length;
    const tunnel = await curl("x", p, "http://api.fake.test:443/", { tunnel: true });
    assert.equal(tunnel.connect, 403);
    const plain = await curl("x", p, "http://api.openai.com/");
    assert.equal(plain.code, 403);
    assert.match(plain.body, /unknown-source/);
    assert.equal(dns.calls.length, callsBefore, "nothing is resolved for an unknown source");
    const unknown = await waitFor("unknown-source entries", () => {
      const e = p.recentUnknownSources();
      return e.length >= 2 ? e : null;
    });
    assert.ok(
      unknown.every((e) => e.tenant === null && e.source === TENANTS.x && e.reason === "unknown-source"),
    );
    assert.equal(p.allCounters().unknownSourceDenied, 2);
    assert.throws(
      () => p.counters("nobody"),
      (e: unknown) => e instanceof ClawkeepError && e.code === "not_found",
    );
  });
});

test("an air-gapped tenant is refused everything and its counters show zero bytes", async (t) => {
  const f = need(t);
  if (!f) return;
  await withProxy(f, { testOnlyPermitRanges: PERMIT_INET }, async (p, dns) => {
    const attempts = [
      curl("c", p, "http://api.fake.test:443/", { tunnel: true }),
      curl("c", p, "http://api.openai.com/"),
      curl("c", p, `http://${INET_IP}/`, { data: "secret" }),
      curl("c", p, `http://${INET_IP}:443/`, { tunnel: true }),
    ];
    for (const r of await Promise.all(attempts)) {
      assert.ok(r.connect === 403 || r.code === 403, JSON.stringify(r));
      assert.doesNotMatch(r.body, /fake/);
    }
    assert.ok(!dns.calls.length, "an air-gapped tenant's names are never even resolved");
    await entries(p, "carol", 4);
    assert.deepEqual(p.counters("carol"), {
      tenant: "carol",
      allowed: 0,
      denied: 4,
      bytesUp: 0,
      bytesDown: 0,
      active: 0,
    });
    assert.ok(p.recentLog("carol").every((e) => e.reason === "air-gapped"));
    const control = await curl("a", p, `http://${INET_IP}/`);
    assert.equal(control.code, 200, "control: the same request from a tenant with egress works");
  });
});

test("a platform upstream: every tenant with egress reaches exactly that host loopback port by its name, nothing more", async (t) => {
  const f = need(t);
  if (!f) return;
  const upstream = {
    host: "llm.clawkeep.internal",
    port: 8080,
    address: "127.0.0.1",
    targetPort: f.canaryPort,
  };
  const ports = [80, 443, 8080, f.canaryPort];
  // Control: without the upstream, the name is not allowlisted and host loopback is refused.
  await withProxy(f, { policy: { ...POLICY, ports } }, async (p) => {
    const before = f.canaryHits;
    assert.equal((await curl("b", p, "http://llm.clawkeep.internal:8080/")).code, 403);
    assert.equal((await curl("b", p, `http://127.0.0.1:${f.canaryPort}/`)).code, 403);
    assert.equal(f.canaryHits, before);
  });
  await withProxy(f, { policy: { ...POLICY, ports }, platformUpstreams: [upstream] }, async (p, dns) => {
    const before = f.canaryHits;
    for (const who of ["a", "b"] as const) {
      const r = await curl(who, p, "http://llm.clawkeep.internal:8080/v1/models");
      assert.equal(r.code, 200, `${who}: ${r.body}`);
      assert.match(r.body, /canary/);
      const tunnel = await curl(who, p, "http://llm.clawkeep.internal:8080/", { tunnel: true });
      assert.equal(tunnel.connect, 200);
    }
    assert.equal(f.canaryHits, before + 4);
    assert.ok(!dns.calls.includes("llm.clawkeep.internal"), "the upstream's name is never resolved");
    // Only that name and port: another port of the name, the address itself, and the air-gapped
    // tenant are all refused.
    assert.equal((await curl("a", p, "http://llm.clawkeep.internal:80/")).code, 403);
    assert.equal((await curl("a", p, `http://127.0.0.1:${f.canaryPort}/`)).code, 403);
    const gapped = await curl("c", p, "http://llm.clawkeep.internal:8080/");
    assert.equal(gapped.code, 403);
    assert.match(gapped.body, /air-gapped/);
    assert.equal(f.canaryHits, before + 4);
    const log = await entries(p, "bob", 2);
    assert.ok(log.some((e) => e.host === "llm.clawkeep.internal" && e.verdict === "allow"));
  });
});

test("DNS rebinding: a name that answers a test address first and loopback second never reaches loopback", async (t) => {
  const f = need(t);
  if (!f) return;
  const port = f.canaryPort; // the fake internet listens on this port too
  const rebinding = () =>
    new FakeDns({
      "rebind.fake.test": (n) => (n === 1 ? [INET_IP] : ["127.0.0.1"]),
      "mixed.fake.test": () => [INET_IP, "127.0.0.1"],
    });
  const policy = { ...POLICY, ports: [port] };

  const dns = rebinding();
  await withProxy(f, { policy, dns, testOnlyPermitRanges: PERMIT_INET }, async (p) => {
    const before = f.canaryHits;
    const first = await curl("a", p, `http://rebind.fake.test:${port}/`, { tunnel: true });
    assert.equal(first.connect, 200);
    assert.match(first.body, /"fake":"internet"/, "the first answer was checked and connected to");
    const second = await curl("a", p, `http://rebind.fake.test:${port}/`, { tunnel: true });
    assert.equal(second.connect, 403, "the rebound answer is refused");
    const third = await curl("a", p, `http://rebind.fake.test:${port}/`);
    assert.equal(third.code, 403);
    const mixed = await curl("a", p, `http://mixed.fake.test:${port}/`, { tunnel: true });
    assert.equal(mixed.connect, 403, "one loopback answer among public ones refuses the name");
    assert.equal(f.canaryHits, before, "no connection ever reached loopback");
    assert.equal(
      dns.calls.filter((h) => h === "rebind.fake.test").length,
      3,
      "one lookup per connection, never two",
    );
    const log = await entries(p, "alice", 4);
    assert.deepEqual(
      log.map((e) => [e.verdict, e.address]),
      [
        ["allow", INET_IP],
        ["deny", "127.0.0.1"],
        ["deny", "127.0.0.1"],
        ["deny", "127.0.0.1"],
      ],
    );
  });

  // Control: with loopback permitted the rebound answer does reach the canary, so the canary
  // would have seen a rebinding that got through.
  await withProxy(
    f,
    { policy, dns: rebinding(), testOnlyPermitRanges: ["127.0.0.0/8", ...PERMIT_INET] },
    async (p) => {
      const before = f.canaryHits;
      await curl("a", p, `http://rebind.fake.test:${port}/`, { tunnel: true });
      const second = await curl("a", p, `http://rebind.fake.test:${port}/`, { tunnel: true });
      assert.match(second.body, /canary/);
      assert.equal(f.canaryHits, before + 1);
    },
  );
});

test("limits: concurrent connections per tenant, and an idle timeout", async (t) => {
  const f = need(t);
  if (!f) return;
  await withProxy(f, { testOnlyPermitRanges: PERMIT_INET }, async (p) => {
    const slow = [
      curl("b", p, "http://api.fake.test:443/slow?ms=2500", { tunnel: true }),
      curl("b", p, "http://api.fake.test:443/slow?ms=2500", { tunnel: true }),
    ];
    await waitFor("two open connections", () => p.counters("bob").active === 2);
    const third = await curl("b", p, "http://api.fake.test:443/", { tunnel: true });
    assert.equal(third.connect, 429, "bob's limit is 2");
    const other = await curl("a", p, "http://api.fake.test:443/", { tunnel: true });
    assert.equal(other.connect, 200, "another tenant is not affected by bob's limit");
    for (const r of await Promise.all(slow)) assert.equal(r.code, 200);
    const log = await entries(p, "bob", 3);
    assert.ok(log.some((e) => e.reason === "concurrency-limit" && e.status === 429));
    await waitFor("bob's connections closed", () => p.counters("bob").active === 0);
    assert.equal((await curl("b", p, "http://api.fake.test:443/", { tunnel: true })).connect, 200);
  });

  await withProxy(f, { testOnlyPermitRanges: PERMIT_INET, idleTimeoutMs: 700 }, async (p) => {
    const started = Date.now();
    const r = await curl("a", p, "http://api.fake.test:443/slow?ms=5000", { tunnel: true });
    assert.notEqual(r.exit, 0, "the idle tunnel was cut");
    assert.ok(Date.now() - started < 4_500);
    const [e] = await entries(p, "alice", 1);
    assert.equal(e?.verdict, "allow");
    assert.equal(e?.error, "idle-timeout");
  });
});

test("when the log cannot be written, new connections are refused (every connection is logged or none is made)", async (t) => {
  const f = need(t);
  if (!f) return;
  // /dev/full accepts the open and fails every write with ENOSPC.
  await withProxy(f, { testOnlyPermitRanges: PERMIT_INET, logFile: "/dev/full" }, async (p) => {
    const first = await curl("a", p, "http://api.fake.test/");
    assert.equal(first.code, 200, "control: traffic flows until a write fails");
    await waitFor("the log failure", () => p.logFailure);
    const next = await curl("a", p, "http://api.fake.test/");
    assert.equal(next.code, 503);
    assert.match(next.body, /log-unavailable/);
  });
});

test("the proxy as its own process: admin socket 0600, policy replaced at runtime, counters and logs over it", async (t) => {
  const f = need(t);
  if (!f) return;
  const configPath = join(f.dir, "egress.json");
  const adminSocket = join(f.dir, "run", "egress-admin.sock");
  const logFile = join(f.dir, "process-egress.log");
  const alice = { name: "alice", addresses: [TENANTS.a], allow: [INET_IP] };
  await writeFile(
    configPath,
    renderEgressConfig({
      listen: { host: PROXY_IP, port: randomPort() },
      adminSocket,
      logFile,
      policy: { tenants: [alice] },
      testOnlyPermitRanges: PERMIT_INET,
    }),
  );
  const proc = await startEgressProcess({ configPath, startTimeoutMs: 60_000 });
  try {
    assert.equal((await stat(adminSocket)).mode & 0o777, 0o600);
    assert.ok((await stat(adminSocket)).isSocket());
    assert.deepEqual(await proc.admin.health(), { ok: true, url: proc.url, tenants: 1 });

    const before = await curl("b", proc, `http://${INET_IP}/`);
    assert.equal(before.code, 403, "bob is unknown to the proxy at first");
    await assert.rejects(
      proc.admin.setPolicy({ tenants: [alice, { name: "Bob!", addresses: [TENANTS.b] }] }),
      (e: unknown) => e instanceof ClawkeepError && e.code === "invalid_request",
    );
    assert.equal((await proc.admin.getPolicy()).tenants.length, 1, "an invalid policy leaves the old one");

    const bob = { name: "bob", addresses: [TENANTS.b], allow: [INET_IP] };
    assert.deepEqual(await proc.admin.setPolicy({ tenants: [alice, bob] }), { tenants: 2, closed: 0 });
    const after = await curl("b", proc, `http://${INET_IP}/?size=1000`);
    assert.equal(after.code, 200);
    const c = await proc.admin.counters("bob");
    assert.equal(c.allowed, 1);
    assert.ok(c.bytesDown > 1000 && c.bytesUp > 0, JSON.stringify(c));
    const log = await proc.admin.recentLog("bob");
    assert.equal(log.length, 1);
    assert.equal(log[0]?.address, INET_IP);
    const unknown = await proc.admin.recentUnknownSources();
    assert.equal(unknown[0]?.source, TENANTS.b);
    assert.equal((await proc.admin.allCounters()).unknownSourceDenied, 1);
    await assert.rejects(
      proc.admin.counters("zed"),
      (e: unknown) => e instanceof ClawkeepError && e.code === "not_found",
    );

    // Taking bob's egress away cuts his open connection.
    const open = curl("b", proc, `http://${INET_IP}:443/slow?ms=5000`, { tunnel: true });
    await waitForAsync(async () => (await proc.admin.counters("bob")).active === 1);
    assert.deepEqual(await proc.admin.setPolicy({ tenants: [alice, { ...bob, airGapped: true }] }), {
      tenants: 2,
      closed: 1,
    });
    assert.notEqual((await open).exit, 0);
    const cut = await waitForAsync(async () => (await proc.admin.recentLog("bob")).find((e) => e.error));
    assert.equal(cut.error, "policy-revoked");
  } finally {
    await proc.stop();
  }
  assert.equal(await proc.exited, 0, proc.stderrTail());
  const lines = (await readFile(logFile, "utf8")).trim().split("\n");
  assert.equal(lines.length, 3);
  await assert.rejects(stat(adminSocket), "the admin socket is removed on stop");
});

async function waitForAsync<T>(
  f: () => Promise<T | undefined | null | false>,
  timeoutMs = 8_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("a proxy process with a bad config fails to start and says why", async (t) => {
  const f = need(t);
  if (!f) return;
  const configPath = join(f.dir, "bad.json");
  await writeFile(
    configPath,
    JSON.stringify({ listen: { host: "localhost", port: 0 }, policy: { tenants: [] } }),
  );
  await assert.rejects(
    startEgressProcess({ configPath, startTimeoutMs: 60_000 }),
    (e: unknown) => e instanceof ClawkeepError && /listen\.host|adminSocket/.test(e.message),
  );
});
