import { ModelServerError } from "./errors.ts";

/** One slot taken from the pool; release it exactly once (extra calls are ignored). */
export interface Lease<T> {
  readonly item: T;
  readonly index: number;
  /** Gives the slot back; `affinity` is remembered for the next acquire that asks for it. */
  release(affinity?: string): void;
}

interface Waiter<T> {
  affinity: string | undefined;
  resolve: (lease: Lease<T>) => void;
  reject: (err: unknown) => void;
  cleanup: () => void;
}

/**
 * A fixed set of reusable items (the context sequences of one llama.cpp context) handed out one
 * request at a time. Items are created once and never disposed: disposing a sequence and getting
 * a new one right after intermittently fails in node-llama-cpp ("No sequences left").
 *
 * When all are busy, callers wait in FIFO order, up to `maxQueue` of them; one more is refused at
 * once with `busy` (429). An aborted waiter leaves the queue. An acquire may name an `affinity`
 * (a hash of the prompt's start): an idle item last released with the same affinity is preferred,
 * so its cached prompt prefix is reused; otherwise the least recently used idle item is taken.
 */
export class SequencePool<T> {
  private readonly idle: number[];
  private readonly lastAffinity: (string | undefined)[];
  private readonly lastUsed: number[];
  private readonly waiters: Waiter<T>[] = [];
  private clock = 0;
  private closed = false;

  constructor(
    private readonly items: readonly T[],
    private readonly maxQueue: number,
  ) {
    if (items.length === 0) throw new Error("a pool needs at least one item");
    this.idle = items.map((_, i) => i);
    this.lastAffinity = items.map(() => undefined);
    this.lastUsed = items.map(() => 0);
  }

  get size(): number {
    return this.items.length;
  }
  get busy(): number {
    return this.items.length - this.idle.length;
  }
  get queued(): number {
    return this.waiters.length;
  }

  acquire(opts: { signal?: AbortSignal; affinity?: string } = {}): Promise<Lease<T>> {
    if (this.closed)
      return Promise.reject(new ModelServerError("unavailable", "the model server is shutting down"));
    if (opts.signal?.aborted) return Promise.reject(opts.signal.reason);
    if (this.idle.length > 0) return Promise.resolve(this.take(opts.affinity));
    if (this.waiters.length >= this.maxQueue) {
      return Promise.reject(
        new ModelServerError(
          "busy",
          `all ${this.items.length} sequences are busy and ${this.waiters.length} requests are waiting; retry later`,
        ),
      );
    }
    return new Promise<Lease<T>>((resolve, reject) => {
      const onAbort = () => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(opts.signal?.reason);
      };
      const waiter: Waiter<T> = {
        affinity: opts.affinity,
        resolve,
        reject,
        cleanup: () => opts.signal?.removeEventListener("abort", onAbort),
      };
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  /** Refuses new and waiting acquires; leases already out stay valid. */
  close(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) {
      w.cleanup();
      w.reject(new ModelServerError("unavailable", "the model server is shutting down"));
    }
  }

  private take(affinity: string | undefined): Lease<T> {
    let pick = -1;
    if (affinity !== undefined) pick = this.idle.findIndex((i) => this.lastAffinity[i] === affinity);
    if (pick < 0) {
      pick = 0;
      for (let k = 1; k < this.idle.length; k++) {
        if (this.lastUsed[this.idle[k]!]! < this.lastUsed[this.idle[pick]!]!) pick = k;
      }
    }
    const index = this.idle.splice(pick, 1)[0]!;
    this.lastUsed[index] = ++this.clock;
    let released = false;
    return {
      item: this.items[index]!,
      index,
      release: (nextAffinity?: string) => {
        if (released) return;
        released = true;
        this.lastAffinity[index] = nextAffinity;
        this.idle.push(index);
        const w = this.waiters.shift();
        if (w) {
          w.cleanup();
          w.resolve(this.take(w.affinity));
        }
      },
    };
  }
}
