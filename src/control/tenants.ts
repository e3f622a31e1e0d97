import { createHash, randomBytes, randomUUID } from "node:crypto";
import { AuthError, ClawkeepError, ConflictError, NotFoundError } from "../core/errors.ts";
import { type PlanLimits, planFor, planLimits } from "../core/plans.ts";
import {
  effectiveDesired,
  newTenant,
  parseNewTenantName,
  parseTenantName,
  parseTier,
  type Tenant,
  trialStatus,
} from "../core/tenant.ts";
import { ensureTenantKeys } from "../kms/index.ts";
import type { KeyService } from "../kms/types.ts";
import { type LocalModelState, parseModelStatus } from "../llm/model-server/status.ts";
import type { RuntimeDriver } from "../runtime/types.ts";
import type { ApiTokenRecord, TenantEvent, TenantStore } from "../store/tenants.ts";
import type { InstanceSpecs } from "./instance-spec.ts";
import { newVirtualKey, sealFor, VIRTUAL_KEY_PURPOSE } from "./llm-keys.ts";
import { GATEWAY_TOKEN_PURPOSE, type Reconciler } from "./reconciler.ts";

/** Who is calling: the operator (admin socket) or a tenant holding one of its API tokens. */
export type Principal = { kind: "operator" } | { kind: "tenant"; tenantId: string; tokenId: string };

export interface TenantView {
  id: string;
  name: string;
  tier: Tenant["tier"];
  createdAt: string;
  trial: { subscription: Tenant["subscription"]; endsAt: string; expired: boolean; daysLeft: number };
  desired: Tenant["desired"];
  actual: Tenant["actual"];
  reason: string | null;
  gatewayUrl: string;
  /** https://<name>.<domain>/ through the edge (TLS 1.3, WAF), or null without an edge. */
  publicUrl: string | null;
  plan: PlanLimits;
  isolation: string;
}

/** A tenant's egress as the proxy saw it: counters and the latest connections. */
export interface EgressView {
  tenant: string;
  /** "none": air-gapped (Enterprise); "per tenant": filtered, logged and counted by the proxy. */
  mode: "per tenant" | "none";
  counters: { allowed: number; denied: number; bytesUp: number; bytesDown: number; active: number };
  log: Array<{
    time: string;
    method: string;
    host: string | null;
    port: number | null;
    verdict: "allow" | "deny";
    reason: string;
    bytesUp: number;
    bytesDown: number;
    status?: number;
  }>;
}

/** Where the egress proxy's counters and log come from (its admin client). */
export interface EgressReader {
  counters(tenant: string): Promise<EgressView["counters"]>;
  recentLog(tenant: string, limit: number): Promise<EgressView["log"]>;
}

export interface InstanceView {
  tenant: string;
  actual: Tenant["actual"];
  reason: string | null;
  driver: string;
  state: string;
  url: string | null;
  pid: number | null;
  startedAt: string | null;
  details: Record<string, string | number>;
  /**
   * The model server inside the instance (Enterprise), from the driver's `details.model`: its
   * state and, when none, failed or stopped, why (a missing or corrupt model file names the file
   * and the fault). Null for instances without one.
   */
  model: { id: string | null; state: LocalModelState; message: string | null } | null;
  startQueue: { running: number; queued: number };
}

/** What each tier's instance shares and does not, said plainly (shown by the API and CLI). */
const ISOLATION_BY_TIER: Record<Tenant["tier"], string> = {
  starter:
    "Starter (multi-tenant): its own gateway process, uid, port, token and secrets, its own 0700 directory encrypted under its own key, its own memory/CPU/pids bounds, its own address for egress (filtered and logged per tenant by the proxy). Shared with the other tenants of its pool: the host kernel, the pool container (its pid namespace, where others' processes are hidden), the pool's network namespace, /tmp and encrypted volume (its free space), and the Starter key-encryption key. Isolation between them is by software (uids, file modes, Landlock on ports and signals, per-tenant cgroups, tokens, network rules): a kernel or container escape by one reaches the others. Premium adds its own container, network namespace, volume and keys.",
  premium:
    "Premium (single-tenant): its own container (user, pid, mount, ipc, uts and network namespaces), its own cgroup limits, its own encrypted volume and keys, its own network namespace with no route to any other tenant; egress only through the filtering, logging proxy. Shared: the host kernel.",
  enterprise:
    "Enterprise: as Premium, but air-gapped (no egress at all); the LLM runs inside the tenant's own sandbox. Shared: the host kernel.",
};
const HOST_ONLY =
  "host process under its own uid with its own 0700 directory, port and token; shares the host's kernel, network namespace and /tmp (sandbox off: no container, no encryption)";

/** The instance's model server as the API shows it, from the driver's details (see llm/model-server/status.ts). */
function modelView(details: Record<string, string | number>): InstanceView["model"] {
  const s = parseModelStatus(details.model);
  if (!s) return null;
  return { id: typeof details.modelId === "string" ? details.modelId : null, ...s };
}

function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

function newSecretToken(prefix: string): string {
  return `${prefix}${randomBytes(32).toString("base64url")}`;
}

/** What tenants' views read from the parts of the platform that may not run: the edge, the egress proxy. */
export interface TenantViewSources {
  /** The tenant's https URL through the edge, when an edge runs. */
  publicUrl?: (name: string) => string | null;
  /** The CA clients must trust for the edge's certificate, when the edge made its own. */
  caFile?: () => string | null;
  /** The egress proxy's view, when tenants' egress goes through one. */
  egress?: () => EgressReader | null;
}

/**
 * The use cases of the tenant API. Routes parse and map; this class checks who may do what,
 * writes the store in one transaction per change, and tells the reconciler.
 */
export class TenantService {
  constructor(
    private readonly deps: {
      store: TenantStore;
      kms: KeyService;
      driver: RuntimeDriver;
      reconciler: Reconciler;
      /** Each tenant's instance spec (for its gateway URL). */
      specs: InstanceSpecs;
      maxSlots: number;
      clock?: () => number;
    } & TenantViewSources,
  ) {}

  #now(): number {
    return (this.deps.clock ?? Date.now)();
  }

  view(t: Tenant): TenantView {
    const trial = trialStatus(t, this.#now());
    const plan = planFor(t.tier);
    return {
      id: t.id,
      name: t.name,
      tier: t.tier,
      createdAt: new Date(t.createdAt).toISOString(),
      trial: { ...trial, endsAt: new Date(trial.endsAt).toISOString() },
      desired: t.desired,
      actual: t.actual,
      reason: t.reason,
      gatewayUrl: this.deps.driver.urlFor(this.deps.specs(t)),
      publicUrl: this.deps.publicUrl?.(t.name) ?? null,
      plan: planLimits(plan),
      isolation: this.deps.driver.kind === "host" ? HOST_ONLY : ISOLATION_BY_TIER[t.tier],
    };
  }

  /** Finds a tenant the principal may see; a tenant asking about another gets not_found, not forbidden. */
  get(principal: Principal, rawName: string): Tenant {
    const name = parseTenantName(rawName);
    const t = this.deps.store.get(name);
    if (!t || t.desired === "deleted" || (principal.kind === "tenant" && principal.tenantId !== t.id)) {
      throw new NotFoundError("tenant", name);
    }
    return t;
  }

  list(principal: Principal): Tenant[] {
    if (principal.kind !== "operator") throw new AuthError("forbidden", "only the operator can list tenants");
    return this.deps.store.list();
  }

  /** Creates a tenant on a 7-day trial. Returns its secrets once: they are not retrievable later. */
  async create(input: {
    name: string;
    tier: string;
  }): Promise<{ tenant: Tenant; apiToken: string; gatewayToken: string }> {
    const name = parseNewTenantName(input.name);
    const tier = parseTier(input.tier);
    const { store, kms } = this.deps;
    if (store.get(name))
      throw new ConflictError("name_taken", `tenant name '${name}' is taken`, { details: { name } });
    const id = `tnt_${randomUUID().replaceAll("-", "")}`;
    const gatewayToken = newSecretToken("");
    const apiToken = newSecretToken("ckt_");
    // The tenant's key tree first (its KEK, volume and secrets keys); idempotent.
    await ensureTenantKeys(kms, id, tier);
    const sealed = await kms.seal(Buffer.from(gatewayToken), {
      tenantId: id,
      purpose: GATEWAY_TOKEN_PURPOSE,
    });
    // Its relay credential, the only provider key its gateway will hold; stored with the rest.
    const sealedVirtualKey = await sealFor(kms, id, VIRTUAL_KEY_PURPOSE, newVirtualKey());
    const now = this.#now();
    const tenant = store.tx(() => {
      if (store.get(name))
        throw new ConflictError("name_taken", `tenant name '${name}' is taken`, { details: { name } });
      const slot = store.freeSlot(this.deps.maxSlots);
      if (slot === undefined) {
        throw new ClawkeepError(
          "capacity_exhausted",
          `this host holds ${this.deps.maxSlots} tenants already`,
        );
      }
      const t = newTenant({ id, name, tier, slot, now });
      store.insert(t);
      store.putSecret(id, GATEWAY_TOKEN_PURPOSE, sealed, now);
      store.putSecret(id, VIRTUAL_KEY_PURPOSE, sealedVirtualKey, now);
      store.addApiToken(
        {
          id: `tok_${randomBytes(6).toString("hex")}`,
          tenantId: id,
          label: "created with tenant",
          createdAt: now,
          lastUsedAt: null,
        },
        hashToken(apiToken),
      );
      store.addEvent(
        id,
        "created",
        `tenant created on the ${tier} tier; trial ends ${new Date(t.trialEndsAt).toISOString()}`,
        now,
      );
      return t;
    });
    this.deps.reconciler.kick(id);
    return { tenant, apiToken, gatewayToken };
  }

  /**
   * Marks the tenant deleted; the reconciler then removes its instance, destroys its keys (its
   * sealed secrets, its own provider key included, can never be opened again) and its rows: its
   * LLM usage and own provider go with it (cascade).
   */
  delete(principal: Principal, name: string): Tenant {
    const t = this.get(principal, name);
    this.deps.store.tx(() => {
      this.deps.store.setDesired(t.id, "deleted", this.#now());
      this.deps.store.addEvent(
        t.id,
        "delete_requested",
        `deletion requested by ${principal.kind}`,
        this.#now(),
      );
    });
    this.deps.reconciler.kick(t.id);
    return { ...t, desired: "deleted" };
  }

  /** The CA file for the edge's certificate (null with an operator's own certificate or no edge). */
  caFile(): string | null {
    return this.deps.caFile?.() ?? null;
  }

  /**
   * Restarts the tenant's gateway (operator only): a running one is stopped, one operation on the
   * tenant at a time, and the reconciler starts it again through the start queue; a failed or
   * stopped one is simply started again. Data and tokens are kept.
   */
  async restart(principal: Principal, name: string): Promise<Tenant> {
    const t = this.setDesired(principal, name, "restart");
    const { driver, reconciler, store } = this.deps;
    if (effectiveDesired(t, this.#now()).state !== "running") return t;
    await reconciler.exclusive(t.id, async (signal) => {
      if ((await driver.status(t.name, signal)).state !== "running") return;
      await driver.stop(t.name, signal);
      store.setActual(t.id, "pending", "restart requested by the operator", this.#now());
    });
    return store.get(name) ?? t;
  }

  /** Operator actions that change what the tenant's instance should be doing. */
  setDesired(
    principal: Principal,
    name: string,
    action: "suspend" | "resume" | "restart" | "subscribe",
  ): Tenant {
    if (principal.kind !== "operator")
      throw new AuthError("forbidden", `only the operator can ${action} a tenant`);
    const t = this.get(principal, name);
    const now = this.#now();
    const { store } = this.deps;
    store.tx(() => {
      if (action === "suspend") store.setDesired(t.id, "suspended", now);
      if (action === "resume") store.setDesired(t.id, "running", now);
      if (action === "subscribe") store.setSubscription(t.id, "active", now);
      if (action === "restart" || (action === "resume" && t.actual === "failed")) {
        store.setActual(t.id, "pending", "restart requested by the operator", now);
      }
      store.addEvent(t.id, action, `${action} by the operator`, now);
    });
    this.deps.reconciler.kick(t.id);
    return store.get(name)!;
  }

  async instance(principal: Principal, name: string): Promise<InstanceView> {
    const t = this.get(principal, name);
    const st = await this.deps.driver.status(t.name);
    return {
      tenant: t.name,
      actual: t.actual,
      reason: t.reason,
      driver: this.deps.driver.kind,
      state: st.state,
      url: st.url,
      pid: st.pid,
      startedAt: st.startedAt ? new Date(st.startedAt).toISOString() : null,
      details: st.details,
      model: modelView(st.details),
      startQueue: {
        running: this.deps.reconciler.admission.running,
        queued: this.deps.reconciler.admission.queued,
      },
    };
  }

  /** The tenant's egress counters and its latest `limit` connections (newest last). */
  async egress(principal: Principal, name: string, limit = 100): Promise<EgressView> {
    const t = this.get(principal, name);
    const reader = this.deps.egress?.() ?? null;
    if (!reader)
      throw new ClawkeepError(
        "runtime_unavailable",
        "no egress proxy runs (sandbox off): tenants' egress is neither filtered nor logged",
      );
    const [c, log] = await Promise.all([reader.counters(t.name), reader.recentLog(t.name, limit)]);
    return {
      tenant: t.name,
      mode: planFor(t.tier).egress ? "per tenant" : "none",
      counters: {
        allowed: c.allowed,
        denied: c.denied,
        bytesUp: c.bytesUp,
        bytesDown: c.bytesDown,
        active: c.active,
      },
      log: log.map((e) => ({
        time: e.time,
        method: e.method,
        host: e.host,
        port: e.port,
        verdict: e.verdict,
        reason: e.reason,
        bytesUp: e.bytesUp,
        bytesDown: e.bytesDown,
        ...(e.status === undefined ? {} : { status: e.status }),
      })),
    };
  }

  events(principal: Principal, name: string): TenantEvent[] {
    return this.deps.store.events(this.get(principal, name).id);
  }

  tokens(principal: Principal, name: string): ApiTokenRecord[] {
    return this.deps.store.listApiTokens(this.get(principal, name).id);
  }

  createToken(principal: Principal, name: string, label: string): { record: ApiTokenRecord; token: string } {
    const t = this.get(principal, name);
    const token = newSecretToken("ckt_");
    const record: ApiTokenRecord = {
      id: `tok_${randomBytes(6).toString("hex")}`,
      tenantId: t.id,
      label,
      createdAt: this.#now(),
      lastUsedAt: null,
    };
    this.deps.store.addApiToken(record, hashToken(token));
    this.deps.store.addEvent(t.id, "token_created", `API token ${record.id} (${label}) created`, this.#now());
    return { record, token };
  }

  deleteToken(principal: Principal, name: string, tokenId: string): void {
    const t = this.get(principal, name);
    if (!this.deps.store.deleteApiToken(t.id, tokenId)) throw new NotFoundError("token", tokenId);
    this.deps.store.addEvent(t.id, "token_deleted", `API token ${tokenId} deleted`, this.#now());
  }

  /** Resolves a bearer API token to its tenant principal; throws unauthorized otherwise. */
  authenticate(bearer: string | undefined): Principal {
    if (!bearer)
      throw new AuthError("unauthorized", "an API token is required (Authorization: Bearer ckt_...)");
    const rec = this.deps.store.findApiToken(hashToken(bearer));
    if (!rec) throw new AuthError("unauthorized", "the API token is not valid");
    this.deps.store.touchApiToken(rec.id, this.#now());
    return { kind: "tenant", tenantId: rec.tenantId, tokenId: rec.id };
  }
}
