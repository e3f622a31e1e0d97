import type { Tier } from "../core/tenant.ts";
import {
  type InstanceSecrets,
  type InstanceSpec,
  type InstanceStatus,
  type RuntimeDriver,
  type Settles,
  settles,
} from "./types.ts";

/**
 * One driver per tier behind the driver contract: create/start go by the spec's tier; calls by
 * name go to whichever driver has the instance. The reconciler does not know it is talking to
 * several drivers.
 */
export class TieredDriver implements RuntimeDriver, Settles {
  readonly kind: string;
  readonly #byTier: Record<Tier, RuntimeDriver>;
  readonly #all: RuntimeDriver[];

  constructor(byTier: Record<Tier, RuntimeDriver>) {
    this.#byTier = byTier;
    this.#all = [...new Set(Object.values(byTier))];
    this.kind = this.#all.map((d) => d.kind).join("+");
  }

  driverFor(tier: Tier): RuntimeDriver {
    return this.#byTier[tier];
  }

  urlFor(spec: InstanceSpec): string {
    return this.#byTier[spec.tier].urlFor(spec);
  }

  /** The driver that has the instance, or undefined when none does. */
  async #owner(
    name: string,
    signal?: AbortSignal,
  ): Promise<{ driver: RuntimeDriver; status: InstanceStatus } | undefined> {
    for (const driver of this.#all) {
      const status = await driver.status(name, signal);
      if (status.state !== "absent") return { driver, status };
    }
    return undefined;
  }

  async create(spec: InstanceSpec, signal?: AbortSignal): Promise<InstanceStatus> {
    const owner = await this.#owner(spec.name, signal);
    const target = this.#byTier[spec.tier];
    // A tier change (Starter -> Premium) moves the instance: the old driver's copy goes once the
    // new one exists. Data migration between drivers is the upgrade flow's job, not this one's.
    if (owner && owner.driver !== target) await owner.driver.stop(spec.name, signal);
    return target.create(spec, signal);
  }

  start(spec: InstanceSpec, secrets: InstanceSecrets, signal?: AbortSignal): Promise<InstanceStatus> {
    return this.#byTier[spec.tier].start(spec, secrets, signal);
  }

  /** Passes the reconciler's "ready: back to the steady CPU quota" to the tier's driver, if it settles. */
  async settle(spec: InstanceSpec, signal?: AbortSignal): Promise<void> {
    const d = this.#byTier[spec.tier];
    if (settles(d)) await d.settle(spec, signal);
  }

  async stop(name: string, signal?: AbortSignal): Promise<void> {
    for (const d of this.#all) await d.stop(name, signal);
  }

  async delete(name: string, signal?: AbortSignal): Promise<void> {
    for (const d of this.#all) await d.delete(name, signal);
  }

  async status(name: string, signal?: AbortSignal): Promise<InstanceStatus> {
    const owner = await this.#owner(name, signal);
    return owner?.status ?? { name, state: "absent", url: null, pid: null, startedAt: null, details: {} };
  }

  async list(signal?: AbortSignal): Promise<InstanceStatus[]> {
    const out = new Map<string, InstanceStatus>();
    for (const d of this.#all)
      for (const s of await d.list(signal)) if (!out.has(s.name) || s.state === "running") out.set(s.name, s);
    return [...out.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  async logTail(name: string, maxLines?: number): Promise<string> {
    const owner = await this.#owner(name);
    return owner ? owner.driver.logTail(name, maxLines) : "";
  }
}
