import type { Logger } from "pino";
import { ClawkeepError } from "../core/errors.ts";
import { Secret } from "../core/secret.ts";
import { type ActualState, effectiveDesired, type Tenant } from "../core/tenant.ts";
import type { KeyService } from "../kms/types.ts";
import { waitReady } from "../openclaw/probe.ts";
import { type RuntimeDriver, settles } from "../runtime/types.ts";
import type { TenantStore } from "../store/tenants.ts";
import { Admission } from "./admission.ts";
import type { InstanceSpecs } from "./instance-spec.ts";
import { virtualKeyFor } from "./llm-keys.ts";

export const GATEWAY_TOKEN_PURPOSE = "gateway-token";

export interface ReconcilerOptions {
  store: TenantStore;
  driver: RuntimeDriver;
  kms: KeyService;
  /** Each tenant's instance spec (instanceSpecs in instance-spec.ts). */
  specs: InstanceSpecs;
  startConcurrency: number;
  startAttempts: number;
  readyTimeoutMs: number;
  intervalMs: number;
  /** Base of the exponential backoff between start attempts and after crashes. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  clock?: () => number;
  /**
   * Called after any tenant's actual state changes (the edge re-routes on it), and after a tenant
   * that had no LLM relay key got one at its start (the relay learns it).
   */
  onChange?: () => void;
  log: Logger;
}

interface CrashState {
  crashes: number;
  notBefore: number;
}

/**
 * Drives each tenant's actual state toward its desired state through the runtime driver. One
 * operation per tenant at a time; starts go through the admission queue. It keeps nothing that
 * matters only in memory: a restarted control plane reconciles from the store and the driver's
 * view (running gateways are adopted, never started twice).
 */
export class Reconciler {
  readonly admission: Admission;
  readonly #o: ReconcilerOptions;
  readonly #clock: () => number;
  readonly #inflight = new Map<string, { promise: Promise<void>; ctl: AbortController }>();
  readonly #crash = new Map<string, CrashState>();
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;
  #stopped = true;
  #again = false;

  constructor(opts: ReconcilerOptions) {
    this.#o = opts;
    this.#clock = opts.clock ?? Date.now;
    this.admission = new Admission(opts.startConcurrency);
  }

  /** Adopts what runs, stops orphans, then reconciles every interval and on kick(). */
  async start(): Promise<void> {
    this.#stopped = false;
    await this.#adopt();
    this.kick();
  }

  /** Stops reconciling. Gateways keep running, to be adopted by the next control plane. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    for (const op of this.#inflight.values()) op.ctl.abort(new Error("control plane stopping"));
    await this.#ticking;
    await Promise.allSettled([...this.#inflight.values()].map((o) => o.promise));
  }

  /** Asks for a pass now. With a tenant id, aborts that tenant's operation so it re-plans. */
  kick(tenantId?: string): void {
    if (tenantId) this.#inflight.get(tenantId)?.ctl.abort(new Error("desired state changed"));
    if (this.#stopped) return;
    if (this.#ticking) {
      this.#again = true;
      return;
    }
    clearTimeout(this.#timer);
    this.#ticking = this.#tick().finally(() => {
      this.#ticking = undefined;
      if (this.#stopped) return;
      if (this.#again) {
        this.#again = false;
        this.kick();
      } else {
        this.#timer = setTimeout(() => this.kick(), this.#o.intervalMs);
      }
    });
  }

  /**
   * Runs `fn` as the only operation on the tenant: waits for the one in flight to finish (it is
   * not aborted), keeps the reconciler off the tenant while `fn` runs, then reconciles it again.
   * For operator actions on a live instance (moving a Starter tenant to another pool).
   */
  async exclusive<T>(tenantId: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    for (let op = this.#inflight.get(tenantId); op; op = this.#inflight.get(tenantId)) {
      await op.promise.catch(() => {});
    }
    const ctl = new AbortController();
    const run = fn(ctl.signal);
    const promise = run.then(
      () => {},
      () => {},
    );
    this.#inflight.set(tenantId, { promise, ctl });
    try {
      return await run;
    } finally {
      this.#inflight.delete(tenantId);
      this.kick();
    }
  }

  /** Resolves when no tenant operation is in flight (for tests and orderly shutdown). */
  async idle(): Promise<void> {
    while (this.#inflight.size > 0 || this.#ticking) {
      await Promise.allSettled([...this.#inflight.values()].map((o) => o.promise));
      await this.#ticking;
    }
  }

  async #adopt(): Promise<void> {
    const { store, driver, log } = this.#o;
    const known = new Map(store.list().map((t) => [t.name, t]));
    for (const inst of await driver.list()) {
      const t = known.get(inst.name);
      if (!t) {
        // No tenant owns it (a delete cut short, or a database restored from an older backup).
        // Stop it so nothing runs unaccounted for, but keep its data: deleting data is a
        // decision for the operator, never a side effect of a restart.
        if (inst.state === "running") await driver.stop(inst.name);
        log.warn(
          { instance: inst.name, details: inst.details },
          "orphan instance with no tenant: stopped, data kept",
        );
        continue;
      }
      if (inst.state === "running") {
        // Its start may have been cut short between ready and settle: a running tenant that was
        // ready goes back to its steady quota (one that was still starting is settled once ready).
        if (t.actual === "running")
          await this.#settle(t).catch((err: unknown) =>
            log.error({ err, tenant: t.name }, "cannot set the adopted gateway's steady CPU quota"),
          );
        store.addEvent(t.id, "adopted", `adopted running gateway pid ${inst.pid}`, this.#clock());
        log.info({ tenant: t.name, pid: inst.pid }, "adopted running gateway");
      }
    }
  }

  async #tick(): Promise<void> {
    let tenants: Tenant[];
    try {
      tenants = this.#o.store.list();
    } catch (err) {
      this.#o.log.error({ err }, "cannot read tenants");
      return;
    }
    for (const t of tenants) {
      if (this.#inflight.has(t.id)) continue;
      const ctl = new AbortController();
      const promise = this.#reconcile(t, ctl.signal)
        .catch((err: unknown) => {
          if (ctl.signal.aborted) return;
          this.#o.log.error({ err, tenant: t.name }, "reconcile failed");
          this.#event(t, "error", (err as Error).message);
        })
        .finally(() => {
          this.#inflight.delete(t.id);
          if (ctl.signal.aborted && !this.#stopped) this.kick();
        });
      this.#inflight.set(t.id, { promise, ctl });
    }
  }

  #event(t: Tenant, type: string, message: string): void {
    try {
      this.#o.store.addEvent(t.id, type, message, this.#clock());
    } catch {
      // The tenant was removed meanwhile.
    }
  }

  #setActual(t: Tenant, actual: ActualState, reason: string | null): void {
    if (t.actual === actual && t.reason === reason) return;
    this.#o.store.setActual(t.id, actual, reason, this.#clock());
    const changed = t.actual !== actual;
    t.actual = actual;
    t.reason = reason;
    if (changed) this.#o.onChange?.();
  }

  async #reconcile(t: Tenant, signal: AbortSignal): Promise<void> {
    const { driver, store, kms } = this.#o;
    const want = effectiveDesired(t, this.#clock());
    const st = await driver.status(t.name, signal);

    if (want.state === "deleted") {
      this.#setActual(t, "deleting", null);
      await driver.delete(t.name, signal);
      await kms.destroyTenant(t.id);
      store.remove(t.id);
      this.#crash.delete(t.id);
      this.#o.onChange?.();
      this.#o.log.info({ tenant: t.name }, "tenant deleted");
      return;
    }

    if (want.state === "suspended") {
      if (st.state === "running") {
        this.#setActual(t, "stopping", want.reason);
        await driver.stop(t.name, signal);
        this.#event(t, "suspended", want.reason ?? "suspended");
      }
      this.#setActual(t, "suspended", want.reason);
      return;
    }

    // want running
    if (st.state === "running") {
      if (t.actual !== "running") {
        // Adopted mid-start, or resumed: running but not yet confirmed ready.
        await waitReady(st.url!, { timeoutMs: this.#o.readyTimeoutMs, signal, alive: () => this.#alive(t) });
        await this.#settle(t, signal);
        this.#setActual(t, "running", null);
        this.#event(t, "ready", `gateway ready at ${st.url}`);
      }
      const c = this.#crash.get(t.id);
      if (c && st.startedAt && this.#clock() - st.startedAt > 5 * 60_000) this.#crash.delete(t.id);
      if (st.repair) {
        // The gateway runs, a part of it does not (an adopted Enterprise container's model
        // server): start() restores it and keeps the gateway.
        await driver.start(this.#o.specs(t), await this.#secrets(t), signal);
        this.#event(t, "repaired", `restored: ${st.repair}`);
        this.#o.log.info({ tenant: t.name, repair: st.repair }, "instance repaired");
      }
      return;
    }
    if (t.actual === "failed") return; // waits for the operator's restart
    if (st.state === "exited" && (t.actual === "running" || t.actual === "starting")) {
      const tail = await driver.logTail(t.name, 3);
      const c = this.#crash.get(t.id) ?? { crashes: 0, notBefore: 0 };
      c.crashes++;
      c.notBefore = this.#clock() + this.#backoff(c.crashes);
      this.#crash.set(t.id, c);
      this.#event(
        t,
        "crashed",
        `gateway exited unexpectedly (crash ${c.crashes}); restarting in ${Math.round(this.#backoff(c.crashes) / 1000)} s${tail ? `\n${tail}` : ""}`,
      );
      this.#setActual(t, "restarting", "gateway exited unexpectedly");
    }
    const c = this.#crash.get(t.id);
    if (c && this.#clock() < c.notBefore) return;
    await this.#startWithRetries(t, signal);
  }

  #backoff(n: number): number {
    const base = this.#o.backoffBaseMs ?? 2000;
    return Math.min(base * 2 ** (n - 1), this.#o.backoffMaxMs ?? 60_000);
  }

  /** Back to the plan's steady CPU quota, when the driver has the Settles role (runtime/types.ts). */
  async #settle(t: Tenant, signal?: AbortSignal): Promise<void> {
    const { driver } = this.#o;
    if (settles(driver)) await driver.settle(this.#o.specs(t), signal);
  }

  async #alive(t: Tenant): Promise<boolean> {
    return (await this.#o.driver.status(t.name)).state === "running";
  }

  async #secrets(t: Tenant) {
    const sealed = this.#o.store.getSecret(t.id, GATEWAY_TOKEN_PURPOSE);
    if (!sealed) throw new ClawkeepError("kms_failed", `tenant ${t.name} has no gateway token`);
    const raw = await this.#o.kms.unseal(sealed, { tenantId: t.id, purpose: GATEWAY_TOKEN_PURPOSE });
    const gatewayToken = new Secret(raw.toString("utf8"));
    raw.fill(0);
    // The gateway's only provider key is its own relay credential, never an operator's key.
    const { key, created } = await virtualKeyFor(
      { store: this.#o.store, kms: this.#o.kms, now: this.#clock() },
      t,
    );
    if (created) this.#o.onChange?.();
    return { gatewayToken, llmApiKey: key };
  }

  async #startWithRetries(t: Tenant, signal: AbortSignal): Promise<void> {
    const { driver, log } = this.#o;
    const spec = this.#o.specs(t);
    const attempts = this.#o.startAttempts;
    if (t.actual !== "restarting") this.#setActual(t, "starting", "waiting for a start slot");
    await this.admission.run(async () => {
      for (let attempt = 1; attempt <= attempts; attempt++) {
        signal.throwIfAborted();
        const began = this.#clock();
        this.#setActual(
          t,
          t.actual === "restarting" ? "restarting" : "starting",
          `start attempt ${attempt} of ${attempts}`,
        );
        try {
          await driver.create(spec, signal);
          const st = await driver.start(spec, await this.#secrets(t), signal);
          await waitReady(st.url!, {
            timeoutMs: this.#o.readyTimeoutMs,
            signal,
            alive: () => this.#alive(t),
          });
          // Back to the plan's steady CPU quota; a gateway that cannot be capped is not kept.
          await this.#settle(t, signal);
          const secs = ((this.#clock() - began) / 1000).toFixed(1);
          this.#setActual(t, "running", null);
          this.#event(t, "ready", `gateway ready at ${st.url} after ${secs} s (attempt ${attempt})`);
          log.info({ tenant: t.name, attempt, seconds: Number(secs) }, "gateway ready");
          return;
        } catch (err) {
          if (signal.aborted) throw err;
          const tail = await driver.logTail(t.name, 5).catch(() => "");
          const reason = `${(err as Error).message}${tail ? `\nlast output:\n${tail}` : ""}`;
          this.#event(t, "start_failed", `attempt ${attempt} of ${attempts}: ${reason}`);
          log.warn({ tenant: t.name, attempt, err: (err as Error).message }, "gateway start failed");
          await driver.stop(t.name).catch(() => {});
          if (attempt === attempts) {
            this.#setActual(
              t,
              "failed",
              `gateway did not become ready after ${attempts} attempts: ${(err as Error).message}`,
            );
            return;
          }
          await sleep(this.#backoff(attempt), signal);
        }
      }
    }, signal);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}
