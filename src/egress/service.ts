import type { Logger } from "../lib/log.ts";
import type { EgressRegistry } from "../runtime/linux/net/egress.types.ts";
import { liveHandle, type RestartPolicy, type SupervisedFields } from "../service/supervisor.ts";
import type { EgressPolicy } from "./policy.ts";
import {
  type EgressEndpoint,
  type EgressProcessOptions,
  egressEndpoint,
  superviseEgressProcess,
} from "./process.ts";

/** The tenants the drivers report (NetworkMembers): who has which source address. */
export type EgressTenants = Parameters<EgressRegistry["setTenants"]>[0];

/**
 * Sends policies one at a time, each built from the latest tenants when its turn comes: a slow
 * earlier call never lands after a later one with an older policy. A failed send is the failure
 * of the setTenants() call that caused it and does not block the next one.
 */
export class PolicyQueue {
  #last: EgressTenants = [];
  #queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly send: (policy: EgressPolicy) => Promise<unknown>,
    private readonly policyOf: (tenants: EgressTenants) => EgressPolicy,
  ) {}

  /** The tenants of the latest setTenants() call. */
  get tenants(): EgressTenants {
    return this.#last;
  }

  setTenants(tenants: EgressTenants): Promise<void> {
    this.#last = tenants;
    const run = this.#queue.then(() => this.send(this.policyOf(this.#last)));
    this.#queue = run.then(
      () => {},
      () => {},
    );
    return run.then(() => {});
  }

  /** Sends the latest tenants again (operator or tenant allowlists changed). */
  refresh(): Promise<void> {
    return this.setTenants(this.#last);
  }
}

export interface EgressServiceOptions extends EgressProcessOptions {
  /** The proxy's whole policy for the drivers' tenants (allowlists included). */
  policyOf: (tenants: EgressTenants) => EgressPolicy;
  log?: Logger;
  /** How a proxy that died is started again. Default: 1 s doubling to 30 s, reset after 60 s. */
  restart?: RestartPolicy;
}

/**
 * The egress proxy as the control plane sees it: one supervised process (started again when it
 * dies, then given the last policy again), the policy queue, and its admin client. It is the
 * `EgressRegistry` the drivers use.
 */
export interface EgressService extends EgressRegistry, EgressEndpoint, SupervisedFields {
  /** http://host:port of the latest start (the same as `url`): the value for HTTP_PROXY / HTTPS_PROXY. */
  readonly proxyUrl: string;
  /** Sends the latest tenants again (allowlists changed). */
  refresh(): Promise<void>;
}

/**
 * Starts the egress proxy process from `configPath` and returns once it listens. Throws
 * EgressError (runtime_failed) with its stderr when the first start fails. Later deaths are
 * restarted with backoff; after each restart the latest policy is sent again (a failure there is
 * logged, and the next setTenants() or refresh() sends it again).
 */
export async function startEgressService(opts: EgressServiceOptions): Promise<EgressService> {
  const { policyOf, log, restart, ...processOptions } = opts;
  let queue: PolicyQueue | undefined;
  const sup = await superviseEgressProcess({
    ...processOptions,
    restart: restart ?? { initialMs: 1_000, maxMs: 30_000, resetAfterMs: 60_000 },
    ...(log ? { log } : {}),
    onReady: (_line, { restarts }) => {
      if (restarts === 0 || !queue) return;
      queue.refresh().catch((err: unknown) => log?.error({ err }, "egress proxy restart failed"));
    },
  });
  const endpoint = egressEndpoint(sup);
  queue = new PolicyQueue((policy) => endpoint.admin.setPolicy(policy), policyOf);
  const q = queue;
  return liveHandle(sup, ["url", "host", "port"], {
    ...endpoint,
    get proxyUrl() {
      return sup.value.url;
    },
    setTenants: (tenants: EgressTenants) => q.setTenants(tenants),
    refresh: () => q.refresh(),
  });
}
