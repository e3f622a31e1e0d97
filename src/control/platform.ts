import { chmod, mkdir } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { getRequestListener } from "@hono/node-server";
import type { Settings } from "../config/settings.ts";
import { planFor } from "../core/plans.ts";
import { Edge } from "../edge/edge.ts";
import { ensureSystemUser } from "../edge/user.ts";
import { tenantFacingLlm } from "../egress/platform-upstream.ts";
import type { EgressService } from "../egress/service.ts";
import { defaultKmsPaths } from "../kms/cli.ts";
import { isTenantKeyService } from "../kms/index.ts";
import { startKmsProcess } from "../kms/supervisor.ts";
import type { KeyService } from "../kms/types.ts";
import type { Logger } from "../lib/log.ts";
import { type EchoProvider, startEchoProvider } from "../llm/echo-provider.ts";
import type { LlmProvider } from "../openclaw/config.ts";
import { ensureRuntime, type OpenClawRuntime } from "../openclaw/runtime.ts";
import { HostProcessDriver } from "../runtime/host/driver.ts";
import { edgeAddress } from "../runtime/linux/net/network.ts";
import type { PoolDriver } from "../runtime/pool/driver.ts";
import { buildSandboxDrivers } from "../runtime/sandbox.ts";
import type { RuntimeDriver } from "../runtime/types.ts";
import { serveSocket } from "../service/socket-server.ts";
import { openDatabase } from "../store/db.ts";
import { EgressAllowStore } from "../store/egress.ts";
import { ModelStore } from "../store/models.ts";
import { TenantStore } from "../store/tenants.ts";
import { createApi } from "./api.ts";
import { createControlPlane } from "./control-plane.ts";
import { EdgeRoutes } from "./edge-routes.ts";
import { EgressAllowService } from "./egress-allow.ts";
import { ModelService, registerSettingsModel } from "./models.ts";
import { PoolService } from "./pools.ts";
import type { Reconciler } from "./reconciler.ts";
import type { TenantService } from "./tenants.ts";

export interface Platform {
  settings: Settings;
  store: TenantStore;
  /** The key service client (the isolated KMS process unless one was injected). */
  kms: KeyService;
  driver: RuntimeDriver;
  reconciler: Reconciler;
  tenants: TenantService;
  runtime: OpenClawRuntime;
  /** Where the public API listens, e.g. http://127.0.0.1:8080. */
  apiUrl: string;
  adminSocket: string;
  /** The TLS + WAF edge, unless turned off. */
  edge: Edge | null;
  /** The demo LLM provider, when no provider was configured. */
  demoProvider: EchoProvider | null;
  /**
   * Stops the control plane. Gateways keep running (to be adopted) unless stopGateways is set;
   * teardown (tests, uninstall) stops them and also removes the host-wide network and mounts.
   */
  close(opts?: { stopGateways?: boolean; teardown?: boolean }): Promise<void>;
}

function listen(server: Server, target: { port: number; host: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(target.port, target.host, () => resolve());
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

/** What start-up made, undone in reverse order by close() or by a failed start. */
type Cleanups = Array<() => Promise<void> | void>;

/** The isolated key service process, supervised (or the injected one). */
async function startKeyService(settings: Settings, log: Logger, cleanups: Cleanups): Promise<KeyService> {
  const proc = await startKmsProcess({ ...defaultKmsPaths(settings), log });
  cleanups.push(() => proc.stop());
  return proc.client;
}

/** The configured LLM provider, or the built-in demo provider on loopback when none is. */
async function startLlm(
  settings: Settings,
  log: Logger,
  cleanups: Cleanups,
): Promise<{ llm: LlmProvider & { apiKey: string }; demoProvider: EchoProvider | null }> {
  if (settings.llm) return { llm: settings.llm, demoProvider: null };
  const demoProvider = await startEchoProvider({ replyPrefix: "demo provider says: " });
  cleanups.push(() => demoProvider.close());
  log.warn(
    { url: demoProvider.url },
    "no LLM provider configured (CLAWKEEP_LLM_BASE_URL): Starter and Premium gateways use the built-in demo provider, which echoes",
  );
  return { llm: { baseUrl: demoProvider.url, apiKey: "demo", model: demoProvider.model }, demoProvider };
}

/** The runtime as the control plane sees it: a driver, and the egress handle where tenants have one. */
interface Tiers {
  driver: RuntimeDriver;
  /** The provider as tenants reach it (through the egress proxy in the sandboxed tiers). */
  llm: LlmProvider & { apiKey: string };
  pools: PoolDriver | null;
  egress: EgressService | null;
  /** The edge's source address towards gateways (sandboxed tiers: its own on the bridge). */
  edgeSource: string | null;
}

/**
 * The tiers' driver: the sandboxed drivers (pools, containers, the egress proxy) where the host
 * and the key service allow them, else plain host processes; or the injected driver (tests).
 */
async function startTiers(o: {
  settings: Settings;
  runtime: OpenClawRuntime;
  kms: KeyService;
  log: Logger;
  llm: LlmProvider & { apiKey: string };
  store: TenantStore;
  models: ModelService;
  edgeUids: number[];
  egressAllow: () => EgressAllowService | undefined;
  injected?: RuntimeDriver;
  cleanups: Cleanups;
  teardown: () => boolean;
}): Promise<Tiers> {
  const { settings, runtime, kms, log, store } = o;
  const none = { pools: null, egress: null, edgeSource: null, llm: o.llm };
  if (o.injected) return { driver: o.injected, ...none };
  if (settings.sandbox === "off" || !isTenantKeyService(kms)) {
    log.warn("sandbox off: every tier runs as plain host processes, without containers or encrypted volumes");
    const driver = new HostProcessDriver({
      tenantsDir: settings.tenantsDir,
      runDir: settings.runDir,
      runtime,
      portBase: settings.portBase,
      portStride: settings.portStride,
      uidBase: settings.uidBase,
      gatewayHost: settings.gatewayHost,
      log,
    });
    return { driver, ...none };
  }
  // Tenants live in their own network namespaces: a provider on the host's loopback (the demo
  // one included) reaches them as a platform upstream of the egress proxy.
  const facing = tenantFacingLlm(o.llm);
  const event = (tenant: string, type: string, message: string) => {
    const t = store.get(tenant);
    if (t) store.addEvent(t.id, type, message, Date.now());
  };
  const sandbox = await buildSandboxDrivers({
    settings,
    runtime,
    kms,
    log,
    gatewayClientUids: o.edgeUids,
    ...(facing.upstream ? { platformUpstreams: [facing.upstream] } : {}),
    models: o.models,
    egressAllow: {
      operator: () => o.egressAllow()?.operatorPatterns() ?? settings.egress.allow,
      tenant: (name) => o.egressAllow()?.tenantPatterns(name) ?? [],
    },
    onModelFailure: (tenant, err) => event(tenant, "model_failed", err.message),
    onCpuClass: (tenant, demoted, why) => event(tenant, demoted ? "cpu_demoted" : "cpu_restored", why),
    planOf: (tenant) => {
      const t = store.get(tenant);
      return t ? planFor(t.tier) : undefined;
    },
  });
  o.cleanups.push(() => sandbox.close({ teardown: o.teardown() }));
  return {
    driver: sandbox.driver,
    llm: facing.llm,
    pools: sandbox.pools,
    egress: sandbox.egress,
    edgeSource: edgeAddress(sandbox.network),
  };
}

/** The public API on TCP; the operator API on a 0600 unix socket only (the service kit). */
async function serveApis(o: {
  settings: Settings;
  log: Logger;
  tenants: TenantService;
  models: ModelService;
  pools: PoolService;
  egressAllow: EgressAllowService;
  cleanups: Cleanups;
}): Promise<{ apiUrl: string }> {
  const { settings, log, tenants, egressAllow } = o;
  const publicServer = createServer(
    getRequestListener(createApi({ mode: "public", tenants, egressAllow, log }).fetch),
  );
  await listen(publicServer, settings.api);
  o.cleanups.push(() => closeServer(publicServer));
  const addr = publicServer.address();
  const apiUrl = `http://${settings.api.host}:${typeof addr === "object" && addr ? addr.port : settings.api.port}`;

  const adminServer = await serveSocket({
    service: "the operator API",
    socket: settings.adminSocket,
    handler: getRequestListener(
      createApi({ mode: "admin", tenants, models: o.models, pools: o.pools, egressAllow, log }).fetch,
    ),
    drainMs: 0,
  });
  o.cleanups.push(() => adminServer.close());
  return { apiUrl };
}

/**
 * Starts the control plane: store, key service, OpenClaw runtime (installed when missing),
 * runtime driver, reconciler, the public API on TCP and the admin API on a unix socket.
 */
export async function startPlatform(
  settings: Settings,
  log: Logger,
  opts: {
    progress?: (line: string) => void;
    kms?: KeyService;
    driver?: RuntimeDriver;
    /** false: bring everything up but never start, adopt or stop a gateway (for teardown). */
    reconcile?: boolean;
  } = {},
): Promise<Platform> {
  const cleanups: Cleanups = [];
  let teardown = false;
  try {
    await mkdir(settings.home, { recursive: true, mode: 0o711 });
    // Search permission only: tenant uids pass through to their own directories below.
    await chmod(settings.home, 0o711);
    const runtime = await ensureRuntime(settings, { progress: opts.progress ?? ((l) => log.info(l)) });

    const db = openDatabase(settings.dbPath);
    cleanups.push(() => {
      db.close();
    });
    const store = new TenantStore(db);
    const models = new ModelService({ models: new ModelStore(db), tenants: store, log });
    // CLAWKEEP_ENTERPRISE_MODEL becomes a registered model (the Enterprise default unless the
    // operator chose one); a missing or corrupt file is recorded on it, not fatal.
    await registerSettingsModel(settings, models, log);
    const kms = opts.kms ?? (await startKeyService(settings, log, cleanups));
    const { llm, demoProvider } = await startLlm(settings, log, cleanups);

    // The edge's workers run as their own uid: the only one besides root that may reach gateways.
    const edgeUids: number[] = [];
    if (settings.edge.enabled) {
      edgeUids.push((await ensureSystemUser(settings.edge.options.user ?? "clawkeep-edge")).uid);
    }
    let edge: Edge | null = null;
    let egressAllow: EgressAllowService | undefined;
    const tiers = await startTiers({
      settings,
      runtime,
      kms,
      log,
      llm,
      store,
      models,
      edgeUids,
      egressAllow: () => egressAllow,
      ...(opts.driver ? { injected: opts.driver } : {}),
      cleanups,
      teardown: () => teardown,
    });
    const { driver } = tiers;

    // The edge routes every running tenant's host name to its gateway; re-rendered on changes.
    const routes = new EdgeRoutes({
      edge: () => edge,
      routes: () =>
        store
          .list()
          .filter((t) => t.actual === "running")
          .map((t) => ({ tenant: t.name, upstream: driver.urlFor(specs(t)) })),
      log,
    });
    const { specs, reconciler, tenants } = createControlPlane({
      store,
      driver,
      kms,
      llm: tiers.llm,
      tuning: {
        startConcurrency: settings.startConcurrency,
        startAttempts: settings.startAttempts,
        readyTimeoutMs: settings.readyTimeoutMs,
        intervalMs: settings.reconcileIntervalMs,
      },
      maxSlots: settings.maxSlots,
      log,
      publicOrigin: (name) => (edge ? edge.tenantUrl(name).replace(/\/$/, "") : undefined),
      publicUrl: (name) => edge?.tenantUrl(name) ?? null,
      caFile: () => edge?.caFile ?? null,
      egress: () => tiers.egress?.admin ?? null,
      onChange: () => routes.sync(),
    });

    egressAllow = new EgressAllowService({
      store: new EgressAllowStore(db),
      tenantStore: store,
      tenants,
      settingsAllow: settings.egress.allow,
      onChange: () => tiers.egress?.refresh(),
    });
    const pools = new PoolService({ pools: () => tiers.pools, tenants, reconciler, specs, store });
    const { apiUrl } = await serveApis({ settings, log, tenants, models, pools, egressAllow, cleanups });

    if (settings.edge.enabled) {
      const e = new Edge({
        ...settings.edge.options,
        apiUpstream: apiUrl,
        tenantSourceAddress: tiers.edgeSource,
        log,
      });
      await e.start();
      edge = e;
      cleanups.push(async () => {
        await routes.close();
        // Like the gateways, the edge keeps serving across a control plane restart.
        if (teardown) await e.stop();
      });
    }

    if (opts.reconcile !== false) {
      await reconciler.start();
      routes.sync();
    }
    cleanups.push(() => reconciler.stop());
    log.info({ api: apiUrl, admin: settings.adminSocket, driver: driver.kind }, "clawkeep is up");

    return {
      settings,
      store,
      kms,
      driver,
      reconciler,
      tenants,
      edge,
      runtime,
      apiUrl,
      adminSocket: settings.adminSocket,
      demoProvider,
      async close(o = {}) {
        await reconciler.stop();
        teardown = o.teardown === true;
        if (o.stopGateways || o.teardown) {
          for (const inst of await driver.list()) await driver.stop(inst.name).catch(() => {});
        }
        for (const fn of cleanups.reverse()) await fn();
        cleanups.length = 0;
      },
    };
  } catch (err) {
    for (const fn of cleanups.reverse()) await Promise.resolve(fn()).catch(() => {});
    throw err;
  }
}
