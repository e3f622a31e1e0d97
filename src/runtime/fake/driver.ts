import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { ClawkeepError } from "../../core/errors.ts";
import { parseTenantName } from "../../core/tenant.ts";
import type { InstanceSecrets, InstanceSpec, InstanceStatus, RuntimeDriver } from "../types.ts";

type Method = "create" | "start" | "stop" | "delete" | "status" | "list";

interface FakeInstance {
  spec: InstanceSpec;
  server: Server | null;
  port: number | null;
  pid: number | null;
  startedAt: number | null;
  everStarted: boolean;
  /** The gateway token the instance was started with, to check secrets flow. */
  token: string | null;
}

/**
 * A driver that keeps instances in memory and serves each "gateway" as a tiny HTTP server on
 * loopback answering /readyz. It records every call and accepts injected failures, so the
 * reconciler and API can be tested in seconds. It shares one object across "control plane
 * restarts" the way a real host keeps its processes.
 */
export class FakeDriver implements RuntimeDriver {
  readonly kind = "fake";
  readonly calls: Array<{ method: Method; name?: string }> = [];
  readonly instances = new Map<string, FakeInstance>();
  readonly #failures: Array<{ method: Method; error: Error; times: number }> = [];
  /** Names whose gateways never answer /readyz with 200. */
  readonly neverReady = new Set<string>();
  #nextPid = 1000;

  /** The next `times` calls of `method` throw `error`. */
  failNext(
    method: Method,
    error: Error = new ClawkeepError("runtime_failed", `injected ${method} failure`),
    times = 1,
  ): void {
    this.#failures.push({ method, error, times });
  }

  #record(method: Method, name?: string): void {
    this.calls.push(name === undefined ? { method } : { method, name });
    const f = this.#failures.find((x) => x.method === method && x.times > 0);
    if (f) {
      f.times--;
      throw f.error;
    }
  }

  count(method: Method, name?: string): number {
    return this.calls.filter((c) => c.method === method && (name === undefined || c.name === name)).length;
  }

  urlFor(spec: InstanceSpec): string {
    const i = this.instances.get(spec.name);
    return i?.port ? `http://127.0.0.1:${i.port}` : `http://127.0.0.1:0`;
  }

  #status(name: string): InstanceStatus {
    const i = this.instances.get(name);
    if (!i) return { name, state: "absent", url: null, pid: null, startedAt: null, details: {} };
    return {
      name,
      state: i.server ? "running" : i.everStarted ? "exited" : "created",
      url: i.port ? `http://127.0.0.1:${i.port}` : null,
      pid: i.server ? i.pid : null,
      startedAt: i.server ? i.startedAt : null,
      details: { slot: i.spec.slot },
    };
  }

  async create(spec: InstanceSpec, signal?: AbortSignal): Promise<InstanceStatus> {
    parseTenantName(spec.name);
    signal?.throwIfAborted();
    this.#record("create", spec.name);
    const i = this.instances.get(spec.name);
    if (i) i.spec = spec;
    else
      this.instances.set(spec.name, {
        spec,
        server: null,
        port: null,
        pid: null,
        startedAt: null,
        everStarted: false,
        token: null,
      });
    return this.#status(spec.name);
  }

  async start(spec: InstanceSpec, secrets: InstanceSecrets, signal?: AbortSignal): Promise<InstanceStatus> {
    this.#record("start", spec.name);
    const i = this.instances.get(spec.name);
    if (!i) throw new ClawkeepError("runtime_failed", `instance ${spec.name} has not been created`);
    if (i.server) return this.#status(spec.name);
    signal?.throwIfAborted();
    const server = createServer((req, res) => {
      const ready = !this.neverReady.has(spec.name);
      res.writeHead(req.url === "/readyz" ? (ready ? 200 : 503) : 200).end();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    i.server = server;
    i.port = (server.address() as AddressInfo).port;
    i.pid = this.#nextPid++;
    i.startedAt = Date.now();
    i.everStarted = true;
    i.token = secrets.gatewayToken.reveal();
    return this.#status(spec.name);
  }

  /** The instance whose gateway has this (fake) pid, for tests that kill by pid. */
  nameOfPid(pid: number): string | undefined {
    for (const [name, i] of this.instances) if (i.server && i.pid === pid) return name;
    return undefined;
  }

  /** Simulates the gateway process dying. */
  async crash(name: string): Promise<void> {
    const i = this.instances.get(name);
    if (!i?.server) return;
    const s = i.server;
    i.server = null;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  async stop(name: string): Promise<void> {
    this.#record("stop", name);
    await this.crash(name);
    const i = this.instances.get(name);
    if (i) i.everStarted = false;
  }

  async delete(name: string): Promise<void> {
    this.#record("delete", name);
    await this.stop(name);
    this.instances.delete(name);
  }

  async status(name: string): Promise<InstanceStatus> {
    this.#record("status", name);
    return this.#status(name);
  }

  async list(): Promise<InstanceStatus[]> {
    this.#record("list");
    return [...this.instances.keys()].sort().map((n) => this.#status(n));
  }

  async logTail(name: string): Promise<string> {
    return this.instances.has(name) ? `fake gateway ${name}` : "";
  }

  async closeAll(): Promise<void> {
    for (const n of this.instances.keys()) await this.crash(n);
  }
}
