import { stat } from "node:fs/promises";
import { dirname } from "node:path";
import type { Settings } from "../config/settings.ts";
import { ClawkeepError, NotFoundError } from "../core/errors.ts";
import { type Plan, planFor } from "../core/plans.ts";
import { parseTenantName, parseTier, type Tier } from "../core/tenant.ts";
import type { Logger } from "../lib/log.ts";
import { ModelServerError } from "../llm/model-server/errors.ts";
import type { ModelSpec } from "../llm/model-server/supervisor.ts";
import { parseModelId, parseModelPath, parseSha256, verifyModelFile } from "../llm/model-server/verify.ts";
import type { ModelFileStatus, ModelRecord, ModelStore } from "../store/models.ts";
import type { TenantStore } from "../store/tenants.ts";

/** A registered model as the operator API shows it. */
export interface ModelView {
  id: string;
  path: string;
  size: number;
  sha256: string;
  registeredAt: string;
  verifiedAt: string;
  /** What the last check of the file found: ready, missing (or unreadable) or corrupt. */
  status: ModelFileStatus;
  /** Why the last check failed; null when it passed. */
  reason: string | null;
  /** Plans whose tenants it serves unless they chose another. */
  defaultFor: Tier[];
  /** Tenants that chose it. */
  tenants: string[];
}

/** A tenant's model choice: its own, the effective one (its own, else its plan's default). */
export interface TenantModelView {
  tenant: string;
  tier: Tier;
  model: string | null;
  effective: string | null;
}

export interface RegisterModelInput {
  id: string;
  /** Absolute path of the GGUF file on the host. */
  path: string;
  /** The operator's pin from where the model came from; measured when not given. */
  sha256?: string;
  size?: number;
}

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Whether a tenant sandbox can read the file: the model server runs inside the tenant's user
 * namespace as an unprivileged uid, so the file must be readable by others and every directory
 * above it searchable by others. Throws `model_missing` saying what to change.
 */
export async function checkSandboxReadable(path: string): Promise<void> {
  const st = await stat(path).catch((err: NodeJS.ErrnoException) => {
    throw new ModelServerError("model_missing", `model file ${path} cannot be read (${err.code})`, {
      cause: err,
      details: { path },
    });
  });
  if ((st.mode & 0o004) === 0) {
    throw new ModelServerError(
      "model_missing",
      `model file ${path} cannot be read inside tenant sandboxes (mode ${(st.mode & 0o777).toString(8).padStart(4, "0")}): make it readable by others (chmod o+r)`,
      { details: { path } },
    );
  }
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    const d = await stat(dir);
    if ((d.mode & 0o001) === 0) {
      throw new ModelServerError(
        "model_missing",
        `model file ${path} cannot be reached inside tenant sandboxes: directory ${dir} (mode ${(d.mode & 0o777).toString(8).padStart(4, "0")}) is not searchable by others (chmod o+x)`,
        { details: { path, directory: dir } },
      );
    }
    if (dir === dirname(dir)) break;
  }
}

/**
 * The operator's model registry and the choice of model per plan and tenant (operator API only).
 * Every file is checked before it is registered and again before each use (GGUF header, size,
 * SHA-256, readable from inside a sandbox); the outcome of the last check is kept with the model,
 * so `list` shows a file that went missing or was damaged. A check that found the file unchanged
 * (same inode, size, mtime and ctime) since it last passed is not hashed again.
 */
export class ModelService {
  /** Model id -> fingerprint of the file (pins and stat) when it last passed a full check. */
  readonly #passed = new Map<string, string>();

  constructor(
    private readonly deps: {
      models: ModelStore;
      tenants: TenantStore;
      clock?: () => number;
      log?: Logger;
    },
  ) {}

  #now(): number {
    return (this.deps.clock ?? Date.now)();
  }

  #view(m: ModelRecord): ModelView {
    const users = this.deps.models.usersOf(m.id);
    return {
      id: m.id,
      path: m.path,
      size: m.size,
      sha256: m.sha256,
      registeredAt: iso(m.registeredAt),
      verifiedAt: iso(m.verifiedAt),
      status: m.status,
      reason: m.reason,
      defaultFor: users.plans,
      tenants: users.tenants,
    };
  }

  #record(id: string): ModelRecord {
    const m = this.deps.models.get(parseModelId(id));
    if (!m) {
      throw new ModelServerError("not_registered", `no model is registered as '${id}'`, { details: { id } });
    }
    return m;
  }

  list(): ModelView[] {
    return this.deps.models.list().map((m) => this.#view(m));
  }

  /** One model; throws `not_registered` (404) when there is none. */
  get(id: string): ModelView {
    return this.#view(this.#record(id));
  }

  /**
   * Registers a model after checking its file. With `sha256`/`size` given the file must match
   * them. A file that is missing, unreadable from a sandbox or not a valid GGUF model is refused
   * (invalid_request, `details.reason` model_missing or model_corrupt) and nothing is stored.
   * Registering the same id with the same file and pins again changes nothing (created: false);
   * with another file it is a conflict unless `replace` (the settings' model at start-up), which
   * keeps the model's plan and tenant assignments.
   */
  async register(
    input: RegisterModelInput,
    opts: { signal?: AbortSignal; replace?: boolean } = {},
  ): Promise<{ model: ModelView; created: boolean }> {
    const id = parseModelId(input.id);
    const path = parseModelPath(input.path);
    const sha256 = input.sha256 === undefined ? undefined : parseSha256(input.sha256);
    if (input.size !== undefined && (!Number.isSafeInteger(input.size) || input.size < 0)) {
      throw new ModelServerError("invalid_request", `size ${input.size} is not a byte count`, {
        details: { field: "size" },
      });
    }
    let checked: { size: number; sha256: string };
    try {
      const v = await verifyModelFile(
        path,
        { ...(sha256 ? { sha256 } : {}), ...(input.size !== undefined ? { size: input.size } : {}) },
        opts.signal ? { signal: opts.signal } : {},
      );
      await checkSandboxReadable(path);
      checked = { size: v.size, sha256: v.sha256! };
    } catch (err) {
      if (
        err instanceof ModelServerError &&
        (err.reason === "model_missing" || err.reason === "model_corrupt")
      ) {
        throw new ClawkeepError("invalid_request", `cannot register model '${id}': ${err.message}`, {
          cause: err,
          details: { ...err.details, field: "path" },
        });
      }
      throw err;
    }
    const now = this.#now();
    const rec: ModelRecord = {
      id,
      path,
      size: checked.size,
      sha256: checked.sha256,
      registeredAt: now,
      verifiedAt: now,
      status: "ready",
      reason: null,
    };
    const { models } = this.deps;
    const created = models.tx(() => {
      const existing = models.get(id);
      if (!existing) {
        models.insert(rec);
        return true;
      }
      if (existing.path === rec.path && existing.sha256 === rec.sha256 && existing.size === rec.size) {
        models.setStatus(id, "ready", null, now);
        return false;
      }
      if (!opts.replace) {
        throw new ModelServerError(
          "already_registered",
          `model '${id}' is already registered with ${existing.path} (sha256 ${existing.sha256}); remove it first or use another id`,
          { details: { id } },
        );
      }
      models.replace(rec);
      return false;
    });
    this.#passed.delete(id);
    this.deps.log?.info({ model: id, path, bytes: rec.size, created }, "model registered");
    return { model: this.get(id), created };
  }

  /**
   * Removes a model from the registry (the file is left alone). Refused (conflict) while a plan
   * or tenant uses it, naming them; not_registered when there is no such model.
   */
  remove(id: string): void {
    const m = this.#record(id);
    const { models } = this.deps;
    models.tx(() => {
      const users = models.usersOf(m.id);
      if (users.plans.length || users.tenants.length) {
        const who = [
          ...users.plans.map((p) => `the ${p} plan's default`),
          ...users.tenants.map((t) => `tenant ${t}`),
        ].join(", ");
        throw new ClawkeepError(
          "conflict",
          `model '${m.id}' is in use (${who}); assign another model first`,
          {
            details: { id: m.id, plans: users.plans, tenants: users.tenants },
          },
        );
      }
      models.remove(m.id);
    });
    this.#passed.delete(m.id);
  }

  /**
   * Checks a registered model's file against its pins now (always hashing it) and records the
   * outcome. Returns the model with its new status: a failed check is an answer, not an error.
   */
  async verify(id: string, signal?: AbortSignal): Promise<ModelView> {
    const m = this.#record(id);
    this.#passed.delete(m.id);
    await this.#check(m, signal).catch((err: unknown) => {
      if (!(err instanceof ModelServerError && isFileFault(err))) throw err;
    });
    return this.get(m.id);
  }

  /** Sets (or with null, clears) the default model of a plan; only plans with a local model have one. */
  setPlanModel(rawTier: string, modelId: string | null): { tier: Tier; model: string | null } {
    const tier = parseTier(rawTier);
    localModelPlan(tier);
    if (modelId !== null) this.#record(modelId);
    this.deps.models.setPlanModel(tier, modelId);
    return { tier, model: modelId };
  }

  /** The default model of a plan, or null. */
  planModel(rawTier: string): string | null {
    return this.deps.models.planModel(parseTier(rawTier)) ?? null;
  }

  /**
   * Sets (or with null, clears) a tenant's own model, which wins over its plan's default. It
   * takes effect at the tenant's next start (restart it to switch now).
   */
  setTenantModel(rawName: string, modelId: string | null): TenantModelView {
    const name = parseTenantName(rawName);
    const t = this.deps.tenants.get(name);
    if (!t || t.desired === "deleted") throw new NotFoundError("tenant", name);
    localModelPlan(t.tier);
    if (modelId !== null) this.#record(modelId);
    this.deps.models.setTenantModel(t.id, modelId);
    return this.tenantModel(name);
  }

  /** A tenant's own model and the effective one. */
  tenantModel(rawName: string): TenantModelView {
    const name = parseTenantName(rawName);
    const t = this.deps.tenants.get(name);
    if (!t || t.desired === "deleted") throw new NotFoundError("tenant", name);
    return {
      tenant: t.name,
      tier: t.tier,
      model: this.deps.models.tenantModel(t.id) ?? null,
      effective: this.effectiveModelId({ tenantId: t.id, tier: t.tier, plan: planFor(t.tier) }) ?? null,
    };
  }

  /** The model a tenant is served by: its own choice, else its plan's default; none without a local model. */
  effectiveModelId(spec: {
    tenantId: string;
    tier: Tier;
    plan: Pick<Plan, "localModel">;
  }): string | undefined {
    if (!spec.plan.localModel) return undefined;
    return this.deps.models.tenantModel(spec.tenantId) ?? this.deps.models.planModel(spec.tier);
  }

  /**
   * The model to serve a tenant with, checked before use: undefined when its plan has no local
   * model or none is assigned. Throws ModelServerError `model_missing` / `model_corrupt` naming
   * the model and the fault when its file is gone, unreadable or no longer what was registered.
   */
  async resolve(
    spec: { tenantId: string; tier: Tier; plan: Pick<Plan, "localModel"> },
    signal?: AbortSignal,
  ): Promise<ModelSpec | undefined> {
    const id = this.effectiveModelId(spec);
    if (!id) return undefined;
    const m = this.#record(id);
    await this.#check(m, signal);
    return { path: m.path, id: m.id, sha256: m.sha256, size: m.size };
  }

  /** A full check of the file against its pins, skipped when it passed before and is unchanged. */
  async #check(m: ModelRecord, signal?: AbortSignal): Promise<void> {
    const fingerprint = async () => {
      const st = await stat(m.path).catch(() => undefined);
      return (
        st && `${m.path}|${m.size}|${m.sha256}|${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`
      );
    };
    const before = await fingerprint();
    if (before && m.status === "ready" && this.#passed.get(m.id) === before) return;
    this.#passed.delete(m.id);
    try {
      await verifyModelFile(m.path, { size: m.size, sha256: m.sha256 }, signal ? { signal } : {});
      await checkSandboxReadable(m.path);
    } catch (err) {
      if (err instanceof ModelServerError && isFileFault(err)) {
        const status: ModelFileStatus = err.reason === "model_corrupt" ? "corrupt" : "missing";
        this.deps.models.setStatus(m.id, status, err.message, this.#now());
        this.deps.log?.error({ model: m.id, err: err.message }, "model file check failed");
        throw new ModelServerError(err.reason, `model '${m.id}': ${err.message}`, {
          cause: err,
          details: { ...err.details, model: m.id },
        });
      }
      throw err;
    }
    this.deps.models.setStatus(m.id, "ready", null, this.#now());
    // Cached only when the file did not change while it was read.
    if (before && (await fingerprint()) === before) this.#passed.set(m.id, before);
  }
}

function isFileFault(err: ModelServerError): boolean {
  return err.reason === "model_missing" || err.reason === "model_corrupt";
}

function localModelPlan(tier: Tier): void {
  if (!planFor(tier).localModel) {
    throw new ClawkeepError(
      "invalid_request",
      `the ${tier} plan has no local model: its tenants use the configured LLM provider`,
      { details: { field: "tier", tier } },
    );
  }
}

/**
 * The ContainerDriver's `localModel` option: the model a tenant is served by, from the registry,
 * checked before each use (see ModelService.resolve).
 */
export function localModelResolver(
  models: ModelService,
): (spec: {
  tenantId: string;
  tier: Tier;
  plan: Pick<Plan, "localModel">;
}) => Promise<ModelSpec | undefined> {
  return (spec) => models.resolve(spec);
}

/**
 * Start-up: the settings' model (CLAWKEEP_ENTERPRISE_MODEL[_ID, _SHA256]) becomes a registered
 * model (its file and pins replace an earlier registration under the same id) and, unless the
 * operator chose another, the Enterprise plan's default. A missing or corrupt file does not stop
 * the control plane: it is logged, recorded on the model when it is registered, and Enterprise
 * tenants that use it show the error on their status. Returns the model, or undefined.
 */
export async function registerSettingsModel(
  settings: Pick<Settings, "enterpriseModel">,
  models: ModelService,
  log?: Logger,
): Promise<ModelView | undefined> {
  const m = settings.enterpriseModel;
  if (!m) {
    if (!models.planModel("enterprise"))
      log?.warn("no Enterprise model: register one (clawkeep model register) and assign it to the plan");
    return undefined;
  }
  try {
    const { model } = await models.register(
      { id: m.id, path: m.path, ...(m.sha256 ? { sha256: m.sha256 } : {}) },
      { replace: true },
    );
    if (!models.planModel("enterprise")) models.setPlanModel("enterprise", model.id);
    log?.info({ model: model.id, path: model.path, bytes: model.size }, "enterprise model registered");
    return models.get(model.id);
  } catch (err) {
    const reason = err instanceof ClawkeepError ? err.details?.reason : undefined;
    if (reason !== "model_missing" && reason !== "model_corrupt") throw err;
    log?.error(
      { model: m.id, err: (err as Error).message },
      "CLAWKEEP_ENTERPRISE_MODEL is unusable; Enterprise tenants on it will fail to start",
    );
    // A model registered earlier under this id gets the fault recorded.
    if (models.list().some((x) => x.id === m.id)) return models.verify(m.id);
    return undefined;
  }
}
