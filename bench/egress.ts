/**
 * The egress proxy's cost, measured side by side in one run on loopback:
 * requests/s and latency direct to a server vs through the proxy (plain HTTP forwarding, a
 * fresh CONNECT tunnel per request, and requests reusing one tunnel), plus bulk throughput.
 * The proxy runs as its own process (as in production); the target server is another process.
 *
 *   npx tsx bench/egress.ts [--seconds 4] [--concurrency 16]
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { renderEgressConfig } from "../src/egress/config.ts";
import { type EgressProcess, startEgressProcess } from "../src/egress/process.ts";
import { LISTEN_AND_PRINT_PORT, opsPerSecond } from "./support.ts";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const SECONDS = arg("seconds", 4);
const CONCURRENCY = arg("concurrency", 16);
const LATENCY_SAMPLES = 300;
const BULK_MB = 200;

const SERVER = `
import { createServer } from "node:http";
const small = Buffer.from("ok\\n");
const chunk = Buffer.alloc(1 << 20, 120);
const s = createServer((req, res) => {
  if (req.url.startsWith("/bulk")) {
    const mb = Number(new URL(req.url, "http://x").searchParams.get("mb"));
    res.writeHead(200, { "content-length": mb * chunk.length });
    let left = mb;
    const pump = () => { while (left > 0) { left--; if (!res.write(chunk)) return res.once("drain", pump); } res.end(); };
    return pump();
  }
  res.writeHead(200, { "content-length": small.length, "content-type": "text/plain" });
  res.end(small);
});
s.keepAliveTimeout = 60000;
${LISTEN_AND_PRINT_PORT}`;

/** A minimal HTTP/1.1 client on one socket: responses must carry content-length. */
class RawConn {
  #buf: Buffer = Buffer.alloc(0);
  #waiter: (() => void) | null = null;
  #error: Error | null = null;

  private constructor(readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on("data", (d: Buffer) => {
      this.#buf = this.#buf.length ? Buffer.concat([this.#buf, d]) : d;
      this.#waiter?.();
    });
    const fail = (err?: Error) => {
      this.#error = err ?? new Error("connection closed");
      this.#waiter?.();
    };
    socket.on("error", fail);
    socket.on("close", () => fail());
  }

  static open(port: number): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: "127.0.0.1", port }, () => {
        s.off("error", reject);
        resolve(new RawConn(s));
      });
      s.once("error", reject);
    });
  }

  async #until(pred: () => number): Promise<number> {
    for (;;) {
      const n = pred();
      if (n >= 0) return n;
      if (this.#error) throw this.#error;
      await new Promise<void>((r) => {
        this.#waiter = r;
      });
      this.#waiter = null;
    }
  }

  /** Reads one response head (and body when it has a content-length, or none for CONNECT). */
  async response(
    opts: { connect?: boolean; countOnly?: boolean } = {},
  ): Promise<{ status: number; bytes: number }> {
    const headEnd = await this.#until(() => this.#buf.indexOf("\r\n\r\n"));
    const head = this.#buf.subarray(0, headEnd).toString("latin1");
    const status = Number(head.slice(9, 12));
    const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    const len = opts.connect && status === 200 ? 0 : m ? Number(m[1]) : 0;
    this.#buf = this.#buf.subarray(headEnd + 4);
    if (opts.countOnly) {
      let got = 0;
      for (;;) {
        got += this.#buf.length;
        this.#buf = Buffer.alloc(0);
        if (got >= len) break;
        await this.#until(() => (this.#buf.length > 0 ? 0 : -1));
      }
      return { status, bytes: got };
    }
    await this.#until(() => (this.#buf.length >= len ? 0 : -1));
    this.#buf = this.#buf.subarray(len);
    return { status, bytes: len };
  }

  send(text: string): void {
    this.socket.write(text);
  }

  close(): void {
    this.socket.destroy();
  }
}

type Mode = "direct" | "proxy-http" | "proxy-connect";

interface Target {
  server: number;
  proxy: number;
}

/** One request on a fresh connection (and, for CONNECT, a fresh tunnel). */
async function freshRequest(mode: Mode, t: Target, path = "/"): Promise<void> {
  const c = await RawConn.open(mode === "direct" ? t.server : t.proxy);
  try {
    const authority = `127.0.0.1:${t.server}`;
    if (mode === "proxy-connect") {
      c.send(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
      const r = await c.response({ connect: true });
      if (r.status !== 200) throw new Error(`CONNECT answered ${r.status}`);
    }
    const target = mode === "proxy-http" ? `http://${authority}${path}` : path;
    c.send(`GET ${target} HTTP/1.1\r\nHost: ${authority}\r\nConnection: close\r\n\r\n`);
    const r = await c.response();
    if (r.status !== 200) throw new Error(`${mode} answered ${r.status}`);
  } finally {
    c.close();
  }
}

/** A connection (direct, or a CONNECT tunnel) that carries many keep-alive requests. */
async function persistent(mode: "direct" | "proxy-connect", t: Target): Promise<RawConn> {
  const c = await RawConn.open(mode === "direct" ? t.server : t.proxy);
  if (mode === "proxy-connect") {
    c.send(`CONNECT 127.0.0.1:${t.server} HTTP/1.1\r\nHost: 127.0.0.1:${t.server}\r\n\r\n`);
    const r = await c.response({ connect: true });
    if (r.status !== 200) throw new Error(`CONNECT answered ${r.status}`);
  }
  return c;
}

async function keepAliveRequest(c: RawConn, t: Target): Promise<void> {
  c.send(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${t.server}\r\n\r\n`);
  const r = await c.response();
  if (r.status !== 200) throw new Error(`answered ${r.status}`);
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

async function latency(mode: Mode, t: Target): Promise<{ p50: number; p99: number }> {
  for (let i = 0; i < 20; i++) await freshRequest(mode, t);
  const samples: number[] = [];
  for (let i = 0; i < LATENCY_SAMPLES; i++) {
    const start = performance.now();
    await freshRequest(mode, t);
    samples.push(performance.now() - start);
  }
  samples.sort((a, b) => a - b);
  return { p50: percentile(samples, 50), p99: percentile(samples, 99) };
}

const throughput = (run: () => Promise<void>) => opsPerSecond(run, SECONDS * 1000, CONCURRENCY);

async function keepAliveThroughput(mode: "direct" | "proxy-connect", t: Target): Promise<number> {
  const conns = await Promise.all(Array.from({ length: CONCURRENCY }, () => persistent(mode, t)));
  const end = performance.now() + SECONDS * 1000;
  const start = performance.now();
  let done = 0;
  await Promise.all(
    conns.map(async (c) => {
      while (performance.now() < end) {
        await keepAliveRequest(c, t);
        done++;
      }
    }),
  );
  const rate = done / ((performance.now() - start) / 1000);
  for (const c of conns) c.close();
  return rate;
}

async function bulk(mode: "direct" | "proxy-connect", t: Target): Promise<number> {
  const c = await persistent(mode, t);
  try {
    const start = performance.now();
    c.send(`GET /bulk?mb=${BULK_MB} HTTP/1.1\r\nHost: 127.0.0.1:${t.server}\r\n\r\n`);
    const r = await c.response({ countOnly: true });
    const secs = (performance.now() - start) / 1000;
    return r.bytes / (1 << 20) / secs;
  } finally {
    c.close();
  }
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "clawkeep-egress-bench-"));
  const serverScript = join(dir, "server.mjs");
  await writeFile(serverScript, SERVER);
  const server = spawn(process.execPath, [serverScript], { stdio: ["ignore", "pipe", "inherit"] });
  let proxy: EgressProcess | null = null;
  try {
    const serverPort = await new Promise<number>((resolve, reject) => {
      server.stdout?.once("data", (d: Buffer) =>
        resolve((JSON.parse(d.toString()) as { port: number }).port),
      );
      server.once("exit", (code) => reject(new Error(`server exited with ${code}`)));
    });
    const configPath = join(dir, "egress.json");
    const writeConfig = () =>
      writeFile(
        configPath,
        renderEgressConfig({
          listen: { host: "127.0.0.1", port: 41_000 + Math.floor(Math.random() * 19_000) },
          adminSocket: join(dir, "admin.sock"),
          logFile: join(dir, "egress.log"),
          policy: {
            tenants: [{ name: "bench", addresses: ["127.0.0.1"], allow: ["127.0.0.1"] }],
            ports: [serverPort],
          },
          maxConcurrentPerTenant: 10_000,
          // The bench target is on loopback, which the proxy refuses by default.
          testOnlyPermitRanges: ["127.0.0.1/32"],
        }),
      );
    for (let attempt = 1; !proxy; attempt++) {
      await writeConfig();
      try {
        proxy = await startEgressProcess({ configPath, env: { ...process.env, CLAWKEEP_LOG_LEVEL: "warn" } });
      } catch (err) {
        if (attempt >= 5 || !/EADDRINUSE/.test(String(err))) throw err;
      }
    }
    const t: Target = { server: serverPort, proxy: proxy.port };
    console.log(
      `egress proxy bench: loopback, ${CONCURRENCY} concurrent clients, ${SECONDS} s per throughput run`,
    );
    console.log(
      `(proxy pid ${proxy.pid}, server pid ${server.pid}; this machine: ${availableParallelism()} CPUs)\n`,
    );

    const lat: Record<Mode, { p50: number; p99: number }> = {
      direct: await latency("direct", t),
      "proxy-http": await latency("proxy-http", t),
      "proxy-connect": await latency("proxy-connect", t),
    };
    console.log("latency, one request on a fresh connection, sequential (ms):");
    console.log(
      `  ${"".padEnd(34)} ${"p50".padStart(8)} ${"p99".padStart(8)} ${"added p50".padStart(10)} ${"ratio".padStart(7)}`,
    );
    for (const m of Object.keys(lat) as Mode[]) {
      const v = lat[m];
      const added = v.p50 - lat.direct.p50;
      console.log(
        `  ${label(m).padEnd(34)} ${v.p50.toFixed(3).padStart(8)} ${v.p99.toFixed(3).padStart(8)} ${(m === "direct" ? "" : `+${added.toFixed(3)}`).padStart(10)} ${(v.p50 / lat.direct.p50).toFixed(2).padStart(7)}`,
      );
    }

    const fresh: Record<Mode, number> = {
      direct: await throughput(() => freshRequest("direct", t)),
      "proxy-http": await throughput(() => freshRequest("proxy-http", t)),
      "proxy-connect": await throughput(() => freshRequest("proxy-connect", t)),
    };
    const kaDirect = await keepAliveThroughput("direct", t);
    const kaTunnel = await keepAliveThroughput("proxy-connect", t);
    console.log("\nrequests/s (ratio = proxy / direct):");
    for (const m of Object.keys(fresh) as Mode[]) {
      console.log(
        `  ${`${label(m)}, fresh connection`.padEnd(48)} ${fresh[m].toFixed(0).padStart(8)}  ${(fresh[m] / fresh.direct).toFixed(2).padStart(6)}`,
      );
    }
    console.log(
      `  ${"direct, keep-alive".padEnd(48)} ${kaDirect.toFixed(0).padStart(8)}  ${"1.00".padStart(6)}`,
    );
    console.log(
      `  ${"through one CONNECT tunnel each, keep-alive".padEnd(48)} ${kaTunnel.toFixed(0).padStart(8)}  ${(kaTunnel / kaDirect).toFixed(2).padStart(6)}`,
    );

    const bulkDirect = await bulk("direct", t);
    const bulkTunnel = await bulk("proxy-connect", t);
    console.log(`\nbulk download of ${BULK_MB} MiB (MiB/s):`);
    console.log(`  ${"direct".padEnd(48)} ${bulkDirect.toFixed(0).padStart(8)}  ${"1.00".padStart(6)}`);
    console.log(
      `  ${"through a CONNECT tunnel".padEnd(48)} ${bulkTunnel.toFixed(0).padStart(8)}  ${(bulkTunnel / bulkDirect).toFixed(2).padStart(6)}`,
    );

    const counters = await proxy.admin.counters("bench");
    console.log(
      `\nproxy counters for the bench tenant: ${counters.allowed} allowed, ${counters.denied} denied, ` +
        `${(counters.bytesUp / (1 << 20)).toFixed(1)} MiB up, ${(counters.bytesDown / (1 << 20)).toFixed(1)} MiB down`,
    );
  } finally {
    await proxy?.stop();
    server.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
  }
}

function label(m: Mode): string {
  return {
    direct: "direct",
    "proxy-http": "proxy, plain HTTP forward",
    "proxy-connect": "proxy, new CONNECT tunnel",
  }[m];
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
