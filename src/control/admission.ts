/**
 * Start admission: OpenClaw needs ~25 CPU-seconds to start and several starting at once on a small
 * host all fail. Starts take a slot here; at most `limit` run at a time, the rest wait in order.
 */
export class Admission {
  #running = 0;
  readonly #waiting: Array<{ resolve: () => void; reject: (e: unknown) => void; signal?: AbortSignal }> = [];

  constructor(readonly limit: number) {}

  get running(): number {
    return this.#running;
  }
  get queued(): number {
    return this.#waiting.length;
  }

  async run<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    await this.#acquire(signal);
    try {
      return await fn();
    } finally {
      this.#release();
    }
  }

  #acquire(signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    if (this.#running < this.limit) {
      this.#running++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const entry = { resolve, reject, signal };
      this.#waiting.push(entry);
      signal?.addEventListener(
        "abort",
        () => {
          const i = this.#waiting.indexOf(entry);
          if (i >= 0) {
            this.#waiting.splice(i, 1);
            reject(signal.reason);
          }
        },
        { once: true },
      );
    });
  }

  #release(): void {
    const next = this.#waiting.shift();
    if (next) next.resolve();
    else this.#running--;
  }
}
