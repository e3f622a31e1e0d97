import { DEFAULT_BYOK_BASE_URLS } from "../config/settings.ts";
import type { KeyService } from "../kms/types.ts";
import type { Logger } from "../lib/log.ts";
import type { LlmProvider } from "../openclaw/config.ts";
import type { RuntimeDriver } from "../runtime/types.ts";
import { LlmStore } from "../store/llm.ts";
import type { TenantStore } from "../store/tenants.ts";
import { type InstanceSpecs, instanceSpecs } from "./instance-spec.ts";
import { LlmService } from "./llm.ts";
import { Reconciler, type ReconcilerOptions } from "./reconciler.ts";
import { TenantService, type TenantViewSources } from "./tenants.ts";

/** How the reconciler paces its work (settings in production, short intervals in tests). */
export type ReconcilerTuning = Pick<
  ReconcilerOptions,
  "startConcurrency" | "startAttempts" | "readyTimeoutMs" | "intervalMs" | "backoffBaseMs" | "backoffMaxMs"
>;

/** The edge's and the egress proxy's views (TenantViewSources) go to the tenant service as given. */
export interface ControlPlaneOptions extends TenantViewSources {
  store: TenantStore;
  driver: RuntimeDriver;
  kms: KeyService;
  /**
   * The provider every gateway is configured with, as tenants reach it (the LLM relay): its URL
   * and model only. A gateway's one provider key is its own virtual key, never an operator's.
   */
  llm: LlmProvider;
  tuning: ReconcilerTuning;
  maxSlots: number;
  log: Logger;
  clock?: () => number;
  /** The origin browsers reach a tenant at through the edge (a Control UI origin). */
  publicOrigin?: (name: string) => string | undefined;
  /**
   * Told after any tenant's actual state changes (the edge re-routes on it) and after a tenant
   * got its first LLM relay key at its start (the relay must learn it).
   */
  onChange?: () => void;
  /** Base URLs a tenant's own LLM provider may have (default: the major providers'). */
  byokAllow?: readonly string[];
  /** Told after a change of a tenant's LLM access (key rotated, own provider set or removed). */
  onLlmChange?: () => Promise<void> | void;
}

export interface ControlPlane {
  specs: InstanceSpecs;
  reconciler: Reconciler;
  tenants: TenantService;
  /** Virtual keys, own providers and usage (store/llm.ts over the same database). */
  llm: LlmService;
  llmStore: LlmStore;
}

/**
 * The control plane's core as production and the unit-test harness both build it: one instance
 * spec factory shared by the reconciler and the tenant service, and the tenants' LLM access, over
 * the given store, driver and key service. Starts nothing (the caller starts the reconciler).
 */
export function createControlPlane(o: ControlPlaneOptions): ControlPlane {
  const specs = instanceSpecs({ llm: o.llm, ...(o.publicOrigin ? { publicOrigin: o.publicOrigin } : {}) });
  const reconciler = new Reconciler({
    store: o.store,
    driver: o.driver,
    kms: o.kms,
    specs,
    ...o.tuning,
    ...(o.clock ? { clock: o.clock } : {}),
    ...(o.onChange ? { onChange: o.onChange } : {}),
    log: o.log,
  });
  const tenants = new TenantService({
    store: o.store,
    kms: o.kms,
    driver: o.driver,
    reconciler,
    specs,
    maxSlots: o.maxSlots,
    ...(o.clock ? { clock: o.clock } : {}),
    ...(o.publicUrl ? { publicUrl: o.publicUrl } : {}),
    ...(o.caFile ? { caFile: o.caFile } : {}),
    ...(o.egress ? { egress: o.egress } : {}),
  });
  const llmStore = new LlmStore(o.store.db);
  const llm = new LlmService({
    store: o.store,
    llm: llmStore,
    kms: o.kms,
    tenants,
    reconciler,
    driver: o.driver,
    byokAllow: o.byokAllow ?? DEFAULT_BYOK_BASE_URLS,
    ...(o.onLlmChange ? { onChange: o.onLlmChange } : {}),
    ...(o.clock ? { clock: o.clock } : {}),
  });
  return { specs, reconciler, tenants, llm, llmStore };
}
