import type { Plan } from "../core/plans.ts";
import type { Secret } from "../core/secret.ts";
import type { Tier } from "../core/tenant.ts";
import type { LlmProvider } from "../openclaw/config.ts";

/**
 * The runtime driver contract. A driver runs one OpenClaw gateway per tenant instance and owns
 * every resource that instance needs on its substrate (directories, uids, ports today;
 * containers, volumes, network namespaces, pools, Kubernetes objects in later drivers).
 *
 * The reconciler is the only caller. It decides *when*; the driver decides *how*. Rules every
 * driver keeps (the conformance suite in conformance.ts checks them):
 * - Every method is idempotent: repeating a call with the same arguments is not an error and
 *   changes nothing more. Stopping a stopped instance, deleting an absent one, starting a
 *   running one all succeed.
 * - A driver keeps no state only in memory that it needs to find its instances again: a new
 *   driver object (a restarted control plane) sees, adopts and can stop what an earlier one
 *   started, and never starts a second copy.
 * - Secrets reach a driver only as arguments to start(); a driver never writes them to disk (they
 *   live in process memory or on a tmpfs, never in a file under the driver's own directories).
 * - Every long call takes an AbortSignal and stops waiting when it aborts. A call given a signal
 *   that has already aborted rejects promptly and leaves nothing running.
 * - urlFor(spec) is where status() says a running instance listens: the two agree.
 * - A gateway process that ends on its own (crashes, is killed) makes status() report `exited`
 *   (not `running`, not `absent`); start() then brings it back.
 * - Failures throw ClawkeepError (usually code runtime_failed) with a message a human can act on.
 */
export interface InstanceSpec {
  tenantId: string;
  /** The tenant name: a DNS label, already validated. */
  name: string;
  tier: Tier;
  /** Small integer unique among live tenants, for deriving ports, uids and addresses. */
  slot: number;
  plan: Plan;
  llm: LlmProvider;
  /** Where browsers reach the gateway through the edge (allowed as a Control UI origin). */
  publicOrigin?: string;
}

export interface InstanceSecrets {
  gatewayToken: Secret;
  llmApiKey: Secret;
}

export type InstanceState =
  /** Nothing of this instance exists. */
  | "absent"
  /** Resources exist (directories, config); no process runs. */
  | "created"
  /** The gateway process runs (it may not be ready yet; the reconciler probes). */
  | "running"
  /** It ran and its main process has ended; resources are kept. */
  | "exited";

export interface InstanceStatus {
  name: string;
  state: InstanceState;
  /** Where the gateway listens, from the control plane's point of view, e.g. http://127.0.0.1:20000. */
  url: string | null;
  pid: number | null;
  /** Epoch ms when the running process started. */
  startedAt: number | null;
  /** Driver-specific facts for operators (uid, directory, container id). Never secrets. */
  details: Record<string, string | number>;
  /**
   * Set when the gateway runs but a part of the instance that start() brings back does not
   * (an Enterprise model server whose supervisor was an earlier control plane): says what. The
   * reconciler then calls start() again, which keeps the running gateway and restores the part.
   */
  repair?: string;
}

export interface RuntimeDriver {
  readonly kind: string;

  /** Where the instance's gateway is (or will be) reachable from the control plane. Pure. */
  urlFor(spec: InstanceSpec): string;

  /**
   * Makes everything the instance needs except the running process: directories, config,
   * users, volumes, networks. Calling it again repairs and rewrites config; data is kept.
   * An encrypted volume is left open for the start() that follows; stop() locks it.
   */
  create(spec: InstanceSpec, signal?: AbortSignal): Promise<InstanceStatus>;

  /**
   * Starts the gateway process and returns once it is launched (not necessarily ready). When a
   * live process of this instance exists, it is kept and reported: never a second copy.
   * Leftovers of an earlier run (children of a killed gateway) are cleared first.
   * Requires create() to have run.
   */
  start(spec: InstanceSpec, secrets: InstanceSecrets, signal?: AbortSignal): Promise<InstanceStatus>;

  /**
   * Stops every process of the instance: a graceful signal first, then a kill after the grace
   * period. Data and resources are kept. Stopping a stopped or absent instance is not an error.
   */
  stop(name: string, signal?: AbortSignal): Promise<void>;

  /** Stops the instance and removes everything create() made, data included. Absent is fine. */
  delete(name: string, signal?: AbortSignal): Promise<void>;

  status(name: string, signal?: AbortSignal): Promise<InstanceStatus>;

  /** Every instance this driver finds on its substrate, whoever started it (for adoption and orphan removal). */
  list(signal?: AbortSignal): Promise<InstanceStatus[]>;

  /** The last lines the gateway printed, for failure reasons. Empty when there are none. */
  logTail(name: string, maxLines?: number): Promise<string>;
}

/**
 * A driver role beside the contract (as cri-api splits its services): a driver whose start() may
 * give a gateway more CPU than its plan's steady quota, so that it starts as fast as a bare
 * process would, takes it back in settle() once the reconciler has seen the gateway ready.
 * settle() is idempotent and does nothing for an instance that does not run. A driver without
 * the role runs its gateways at one quota throughout.
 */
export interface Settles {
  /** Takes the running instance back to its plan's steady CPU quota. */
  settle(spec: InstanceSpec, signal?: AbortSignal): Promise<void>;
}

/** Whether the driver has the Settles role. */
export function settles<D extends RuntimeDriver>(d: D): d is D & Settles {
  return "settle" in d && typeof d.settle === "function";
}
