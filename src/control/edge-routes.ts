import type { EdgeController, EdgeRoute } from "../edge/types.ts";
import type { Logger } from "../lib/log.ts";

/**
 * Keeps the edge's routes equal to the running tenants' gateways. sync() is cheap to call on
 * every state change: calls within `debounceMs` collapse into one, updates run one at a time,
 * and an unchanged set is not sent again. A failed update is logged and the edge keeps serving
 * the routes it had; the next change tries again.
 */
export class EdgeRoutes {
  readonly #edge: () => EdgeController | null;
  readonly #routes: () => EdgeRoute[];
  readonly #log: Logger;
  readonly #debounceMs: number;
  #sent = "";
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> = Promise.resolve();

  constructor(o: {
    /** The edge, once it runs (null: nothing to route). */
    edge: () => EdgeController | null;
    /** The routes as they should be now. */
    routes: () => EdgeRoute[];
    log: Logger;
    debounceMs?: number;
  }) {
    this.#edge = o.edge;
    this.#routes = o.routes;
    this.#log = o.log;
    this.#debounceMs = o.debounceMs ?? 200;
  }

  sync(): void {
    if (!this.#edge()) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#running = this.#running.then(() => this.#apply());
    }, this.#debounceMs);
  }

  async #apply(): Promise<void> {
    const edge = this.#edge();
    if (!edge) return;
    const routes = this.#routes();
    const key = JSON.stringify(routes);
    if (key === this.#sent) return;
    try {
      await edge.setRoutes(routes);
      this.#sent = key;
    } catch (err) {
      this.#log.error({ err }, "edge route update failed; the edge keeps serving the previous routes");
    }
  }

  /** Drops a pending sync and waits for the update in flight. */
  async close(): Promise<void> {
    clearTimeout(this.#timer);
    await this.#running;
  }
}
