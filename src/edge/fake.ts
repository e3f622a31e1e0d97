import { ClawkeepError } from "../core/errors.ts";
import { validateRoutes } from "./render.ts";
import type { BlockedEvent, EdgeController, EdgeRoute, EdgeStatus } from "./types.ts";

type Method = "start" | "setRoutes" | "stop";

/**
 * An edge that keeps its routes in memory, records every call and accepts injected failures, for
 * control-plane tests. It validates routes exactly like the real edge, and a failed setRoutes
 * keeps the previous routes, as the real one does.
 */
export class FakeEdge implements EdgeController {
  readonly calls: Array<{ method: Method; tenants?: string[] }> = [];
  readonly blocked: BlockedEvent[] = [];
  routes: EdgeRoute[] = [];
  running = false;
  #generation = 0;
  readonly #failures: Array<{ method: Method; error: Error; times: number }> = [];

  constructor(
    readonly domain = "clawkeep.localhost",
    readonly port = 8443,
  ) {}

  /** The next `times` calls of `method` throw `error`. */
  failNext(
    method: Method,
    error: Error = new ClawkeepError("runtime_failed", `injected ${method} failure`),
    times = 1,
  ) {
    this.#failures.push({ method, error, times });
  }

  #record(method: Method, tenants?: string[]): void {
    this.calls.push(tenants ? { method, tenants } : { method });
    const f = this.#failures.find((x) => x.method === method && x.times > 0);
    if (f) {
      f.times--;
      throw f.error;
    }
  }

  async start(): Promise<void> {
    this.#record("start");
    this.running = true;
    this.#generation++;
  }

  async setRoutes(routes: readonly EdgeRoute[]): Promise<void> {
    const valid = validateRoutes(routes);
    this.#record(
      "setRoutes",
      valid.map((r) => r.tenant),
    );
    this.routes = valid;
    this.#generation++;
  }

  async stop(): Promise<void> {
    this.#record("stop");
    this.running = false;
  }

  async status(): Promise<EdgeStatus> {
    return {
      running: this.running,
      pid: this.running ? 4242 : null,
      workers: [],
      generation: this.running ? String(this.#generation) : null,
      tenants: this.routes.map((r) => r.tenant),
      domain: this.domain,
      listen: { host: "127.0.0.1", port: this.port },
      waf: true,
      caFile: null,
    };
  }

  async blockedEvents(tenant: string, opts: { limit?: number } = {}): Promise<BlockedEvent[]> {
    return this.blocked.filter((e) => e.tenant === tenant).slice(-(opts.limit ?? 100));
  }

  tenantUrl(tenant: string): string {
    return `https://${tenant}.${this.domain}:${this.port}/`;
  }
}
