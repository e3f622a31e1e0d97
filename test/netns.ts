import { type ChildProcess, spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import { type EgressProxy, startEgressProxy } from "../src/egress/proxy.ts";
import { execFile } from "../src/lib/exec.ts";
import type { EgressRegistry } from "../src/runtime/linux/net/egress.types.ts";
import {
  ensureBridge,
  hostAddress,
  type NetworkConfig,
  removeBridge,
  removeRuleset,
} from "../src/runtime/linux/net/network.ts";

/**
 * A network namespace of the test's own with one veth to the host: "the internet" for tests
 * (a fake LLM provider runs in it). Addresses are from 198.18.0.0/15, which exists nowhere else.
 */
export interface FakeInternet {
  ns: string;
  hostIf: string;
  hostAddress: string;
  address: string;
  server: ChildProcess;
  close(): Promise<void>;
}

export async function startFakeInternet(opts: {
  ns: string;
  hostIf: string;
  subnet24: string;
}): Promise<FakeInternet> {
  const hostAddress = `${opts.subnet24}.1`;
  const address = `${opts.subnet24}.2`;
  const cleanup = async () => {
    await execFile(["ip", "link", "del", opts.hostIf]).catch(() => {});
    await execFile(["ip", "netns", "delete", opts.ns]).catch(() => {});
  };
  await cleanup();
  await execFile(["ip", "netns", "add", opts.ns]);
  await execFile([
    "ip",
    "link",
    "add",
    opts.hostIf,
    "type",
    "veth",
    "peer",
    "name",
    "eth0",
    "netns",
    opts.ns,
  ]);
  await execFile(["ip", "addr", "add", `${hostAddress}/24`, "dev", opts.hostIf]);
  await execFile(["ip", "link", "set", opts.hostIf, "up"]);
  await execFile(["ip", "-n", opts.ns, "-batch", "-"], {
    input: `addr add ${address}/24 dev eth0\nlink set eth0 up\nlink set lo up\n`,
  });
  const server = spawn(
    "ip",
    [
      "netns",
      "exec",
      opts.ns,
      process.execPath,
      "--import",
      "tsx",
      "test/fixtures/echo-server.ts",
      address,
      "80",
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  await new Promise<void>((resolve, reject) => {
    server.stdout!.once("data", () => resolve());
    server.once("exit", (code) => reject(new Error(`fake internet server exited with ${code}`)));
  });
  return {
    ns: opts.ns,
    hostIf: opts.hostIf,
    hostAddress,
    address,
    server,
    async close() {
      server.kill("SIGTERM");
      await new Promise((r) => setTimeout(r, 200));
      server.kill("SIGKILL");
      await cleanup();
    },
  };
}

/** Node script: try a TCP connect to each [host, port]; print a JSON array of "open" or an error code. */
export const PROBE_SCRIPT = `const net=require("net");const t=JSON.parse(process.argv[1]);
Promise.all(t.map(([h,p])=>new Promise(r=>{const s=net.connect({host:h,port:p});const k=setTimeout(()=>{s.destroy();r("timeout")},3000);
s.on("connect",()=>{clearTimeout(k);s.destroy();r("open")});s.on("error",e=>{clearTimeout(k);r(e.code||"error")})}))).then(x=>console.log(JSON.stringify(x)))`;

/** Runs the probe on the host as `uid`. */
export async function probeFromHost(
  nodeBin: string,
  uid: number,
  targets: Array<[string, number]>,
): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(nodeBin, ["-e", PROBE_SCRIPT, JSON.stringify(targets)], {
      uid,
      gid: uid,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout!.on("data", (d) => {
      out += d;
    });
    child.stderr!.on("data", (d) => {
      err += d;
    });
    child.on("exit", (code) =>
      code === 0 ? resolve(JSON.parse(out) as string[]) : reject(new Error(`probe failed: ${err}`)),
    );
  });
}

/**
 * The drivers' EgressRegistry over an egress proxy run in the suite's own process (at the bridge's
 * host address and `net.egressPort`): each tenant a driver reports gets its address, its air gap
 * and `allow` as its allowlist. `proxy()` is read at each call (the proxy may start after the driver).
 */
export function proxyRegistry(
  net: NetworkConfig,
  proxy: () => EgressProxy,
  allow: readonly string[],
): EgressRegistry {
  return {
    proxyUrl: `http://${hostAddress(net)}:${net.egressPort}`,
    async setTenants(ts) {
      proxy().setPolicy({
        tenants: ts.map((t) => ({
          name: t.tenant,
          addresses: [t.address],
          airGapped: t.airGapped,
          allow: [...allow],
        })),
      });
    },
  };
}

/**
 * Takes down the host side of a sandbox suite, each part even when another fails or was never
 * made: the egress proxy, the fake internet, the host's test server, then the tenants' ruleset
 * and bridge.
 */
async function closeHostSide(parts: {
  net: NetworkConfig;
  proxy?: EgressProxy | undefined;
  internet?: FakeInternet | undefined;
  hostServer?: Server | undefined;
}): Promise<void> {
  await parts.proxy?.close().catch(() => {});
  await parts.internet?.close().catch(() => {});
  parts.hostServer?.close();
  await removeRuleset(parts.net).catch(() => {});
  await removeBridge(parts.net).catch(() => {});
}

/** The host side of a sandbox suite (startHostSide). */
export interface HostSide {
  internet: FakeInternet;
  /** Answers "host" on every host address at the suite's host port: what tenants must not reach. */
  hostServer: Server;
  /** The egress proxy, in this process, on the bridge's host address at `net.egressPort`. */
  proxy: EgressProxy;
  /** Takes it all down (closeHostSide), the tenants' ruleset and bridge too. */
  close(): Promise<void>;
}

/**
 * Starts the host side of a sandbox suite: the fake internet (namespace `ns`, veth `hostIf`, the
 * /24 `subnet24`), a server answering "host" on every host address at `hostPort`, the tenants'
 * bridge, and the egress proxy on it (log `logFile`, names resolved by `resolve`, the fake
 * internet's /24 let through). When a step fails, what the earlier steps made is taken down
 * before the error is thrown.
 */
export async function startHostSide(opts: {
  net: NetworkConfig;
  ns: string;
  hostIf: string;
  subnet24: string;
  hostPort: number;
  logFile: string;
  resolve: (host: string) => string[];
}): Promise<HostSide> {
  const { net } = opts;
  const made: { internet?: FakeInternet; hostServer?: Server; proxy?: EgressProxy } = {};
  try {
    made.internet = await startFakeInternet({ ns: opts.ns, hostIf: opts.hostIf, subnet24: opts.subnet24 });
    made.hostServer = createServer((_q, r) => r.end("host")).listen(opts.hostPort, "0.0.0.0");
    // The bridge must exist before the proxy can listen on its address.
    await ensureBridge(net);
    const proxy = await startEgressProxy({
      listen: { host: hostAddress(net), port: net.egressPort },
      policy: { tenants: [] },
      logFile: opts.logFile,
      resolve: async (h) => opts.resolve(h),
      testOnlyPermitRanges: [`${opts.subnet24}.0/24`],
    });
    const { internet, hostServer } = made as Required<typeof made>;
    return {
      internet,
      hostServer,
      proxy,
      close: () => closeHostSide({ net, proxy, internet, hostServer }),
    };
  } catch (err) {
    await closeHostSide({ net, ...made });
    throw err;
  }
}
