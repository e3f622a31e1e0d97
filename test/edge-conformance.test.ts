import { chmod, mkdtemp, rm, stat } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { edgeConformance } from "../src/edge/conformance.ts";
import { Edge, type EdgeOptions } from "../src/edge/edge.ts";
import { DEBIAN_EDGE_SYSTEM } from "../src/edge/render.ts";
import { ensureSystemUser } from "../src/edge/user.ts";
import { execFile } from "../src/lib/exec.ts";

/**
 * The edge contract's conformance suite against the nginx edge (one instance for the whole
 * suite, WAF off: the WAF is edge.test.ts's subject, and loading the CRS would only slow each
 * apply), as root. Its user and ports are its own.
 */
const EDGE_USER = "ck-edge-conf";
let dir = "";
let opts: EdgeOptions | undefined;
let edge: Edge | undefined;
let upstream: Server | undefined;
let userCreated = false;

async function why(): Promise<string | undefined> {
  if (process.getuid?.() !== 0)
    return "needs root (CI runs as root): nginx binds ports and drops its workers to the edge user";
  for (const f of [DEBIAN_EDGE_SYSTEM.nginx, DEBIAN_EDGE_SYSTEM.modsecurityModule]) {
    if (!(await stat(f).catch(() => null)))
      return `${f} is missing: install nginx libnginx-mod-http-modsecurity (scripts/deps.sh)`;
  }
  return undefined;
}

/** A port nobody listens on right now, above the tenant gateways' 20000-40000. */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

const skip = await why();
if (skip) process.stderr.write(`\n# SKIPPING the nginx edge conformance suite: ${skip}\n\n`);

before(async () => {
  if (skip) return;
  dir = await mkdtemp("/tmp/clawkeep-edge-conf-");
  await chmod(dir, 0o711);
  userCreated = (await ensureSystemUser(EDGE_USER)).created;
  upstream = createServer((_q, r) => r.end("upstream"));
  await new Promise<void>((r) => upstream!.listen(0, "127.0.0.1", () => r()));
  opts = {
    stateDir: join(dir, "edge"),
    domain: "conf.test",
    listen: { host: "127.0.0.1", port: await freePort() },
    waf: false,
    user: EDGE_USER,
    workerShutdownSeconds: 5,
  };
  edge = new Edge(opts);
});

after(async () => {
  if (skip) return;
  await edge?.stop().catch((err) => console.error("edge conformance cleanup:", err));
  await new Promise((r) => (upstream ? upstream.close(r) : r(undefined)));
  if (userCreated) await execFile(["userdel", EDGE_USER]).catch(() => {});
  if (dir) await rm(dir, { recursive: true, force: true });
});

if (skip) {
  test("nginx edge conformance", { skip }, () => {});
} else {
  edgeConformance({
    label: "nginx edge",
    edge: () => edge!,
    fresh: () => new Edge(opts!),
    upstream: () => `http://127.0.0.1:${(upstream!.address() as AddressInfo).port}`,
  });
}
