import { type ChildProcess, spawn } from "node:child_process";
import { execFile } from "../src/lib/exec.ts";

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
