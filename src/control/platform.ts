import { chmod, mkdir } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { getRequestListener } from "@hono/node-server";
import type { Settings } from "../config/settings.ts";
import { planFor } from "../core/plans.ts";
import { Edge } from "../edge/edge.ts";
import { ensureSystemUser } from "../edge/user.ts";
import { tenantFacingLlm } from "../egress/platform-upstream.ts";
import { defaultKmsPaths } from "../kms/cli.ts";
import { isTenantKeyService } from "../kms/index.ts";
import { startKmsProcess } from "../kms/supervisor.ts";
import type { KeyService } from "../kms/types.ts";
import type { Logger } from "../lib/log.ts";
import { type EchoProvider, startEchoProvider } from "../llm/echo-provider.ts";
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
import { EgressAllowService } from "./egress-allow.ts";
import { instanceSpecs } from "./instance-spec.ts";
import { ModelService, registerSettingsModel } from "./models.ts";
import { PoolService } from "./pools.ts";
import { Reconciler } from "./reconciler.ts";
import { type EgressReader, TenantService } from "./tenants.ts";

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
  const cleanups: Array<() => Promise<void> | void> = [];
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
    let kms: KeyService;
    if (opts.kms) {
      kms = opts.kms;
    } else {
      const proc = await startKmsProcess({ ...defaultKmsPaths(settings), log });
      cleanups.push(() => proc.stop());
      kms = proc.client;
    }

    let demoProvider: EchoProvider | null = null;
    let llm = settings.llm;
    if (!llm) {
      demoProvider = await startEchoProvider({ replyPrefix: "demo provider says: " });
      cleanups.push(() => demoProvider?.close());
      llm = { baseUrl: demoProvider.url, apiKey: "demo", model: demoProvider.model };
      log.warn(
        { url: demoProvider.url },
        "no LLM provider configured (CLAWKEEP_LLM_BASE_URL): Starter and Premium gateways use the built-in demo provider, which echoes",
      );
    }

    // The edge's workers run as their own uid: the only one besides root that may reach gateways.
    const edgeUids: number[] = [];
    if (settings.edge.enabled) {
      edgeUids.push((await ensureSystemUser(settings.edge.options.user ?? "clawkeep-edge")).uid);
    }
    let edge: Edge | null = null;

    let driver: RuntimeDriver;
    let egress: (() => EgressReader) | null = null;
    let pools: PoolDriver | null = null;
    let refreshEgress: (() => Promise<void>) | null = null;
    let egressAllow: EgressAllowService | undefined;
    /** The edge's source address towards gateways (sandboxed tiers: its own on the bridge). */
    let edgeSource: string | null = null;
    if (opts.driver) {
      driver = opts.driver;
    } else if (settings.sandbox === "off" || !isTenantKeyService(kms)) {
      log.warn(
        "sandbox off: every tier runs as plain host processes, without containers or encrypted volumes",
      );
      driver = new HostProcessDriver({
        tenantsDir: settings.tenantsDir,
        runDir: settings.runDir,
        runtime,
        portBase: settings.portBase,
        portStride: settings.portStride,
        uidBase: settings.uidBase,
        gatewayHost: settings.gatewayHost,
        log,
      });
    } else {
      // Tenants live in their own network namespaces: a provider on the host's loopback (the demo
      // one included) reaches them as a platform upstream of the egress proxy.
      const facing = tenantFacingLlm(llm);
      llm = facing.llm;
      const sandbox = await buildSandboxDrivers({
        settings,
        runtime,
        kms,
        log,
        gatewayClientUids: edgeUids,
        ...(facing.upstream ? { platformUpstreams: [facing.upstream] } : {}),
        models,
        egressAllow: {
          operator: () => egressAllow?.operatorPatterns() ?? settings.egress.allow,
          tenant: (name) => egressAllow?.tenantPatterns(name) ?? [],
        },
        onModelFailure: (tenant, err) => {
          const t = store.get(tenant);
          if (t) store.addEvent(t.id, "model_failed", err.message, Date.now());
        },
        onCpuClass: (tenant, demoted, why) => {
          const t = store.get(tenant);
          if (t) store.addEvent(t.id, demoted ? "cpu_demoted" : "cpu_restored", why, Date.now());
        },
        planOf: (tenant) => {
          const t = store.get(tenant);
          return t ? planFor(t.tier) : undefined;
        },
      });
      pools = sandbox.pools;
      refreshEgress = () => sandbox.egress.refresh();
      cleanups.push(() => sandbox.close({ teardown }));
      driver = sandbox.driver;
      egress = () => sandbox.egress.admin;
      edgeSource = edgeAddress(sandbox.network);
    }

    const specs = instanceSpecs({
      llm,
      publicOrigin: (name) => (edge ? edge.tenantUrl(name).replace(/\/$/, "") : undefined),
    });
    const reconciler = new Reconciler({
      store,
      driver,
      kms,
      llm,
      specs,
      startConcurrency: settings.startConcurrency,
      startAttempts: settings.startAttempts,
      readyTimeoutMs: settings.readyTimeoutMs,
      intervalMs: settings.reconcileIntervalMs,
      onChange: () => syncRoutes(),
      log,
    });
    const tenants = new TenantService({
      store,
      kms,
      driver,
      reconciler,
      specs,
      maxSlots: settings.maxSlots,
      publicUrl: (name) => edge?.tenantUrl(name) ?? null,
      caFile: () => edge?.caFile ?? null,
      egress: () => egress?.() ?? null,
    });

    egressAllow = new EgressAllowService({
      store: new EgressAllowStore(db),
      tenantStore: store,
      tenants,
      settingsAllow: settings.egress.allow,
      onChange: () => refreshEgress?.(),
    });
    const poolService = new PoolService({ pools: () => pools, tenants, reconciler, specs, store });

    // The edge routes every running tenant's host name to its gateway; re-rendered on changes.
    let routesKey = "";
    let routesTimer: NodeJS.Timeout | undefined;
    let routing: Promise<void> = Promise.resolve();
    const syncRoutes = (): void => {
      if (!edge) return;
      clearTimeout(routesTimer);
      routesTimer = setTimeout(() => {
        routing = routing.then(async () => {
          if (!edge) return;
          const routes = store
            .list()
            .filter((t) => t.actual === "running")
            .map((t) => ({ tenant: t.name, upstream: driver.urlFor(specs(t)) }));
          const key = JSON.stringify(routes);
          if (key === routesKey) return;
          try {
            await edge.setRoutes(routes);
            routesKey = key;
          } catch (err) {
            log.error({ err }, "edge route update failed; the edge keeps serving the previous routes");
          }
        });
      }, 200);
    };

    const publicServer = createServer(
      getRequestListener(createApi({ mode: "public", tenants, egressAllow, log }).fetch),
    );
    await listen(publicServer, settings.api);
    cleanups.push(() => closeServer(publicServer));
    const addr = publicServer.address();
    const apiUrl = `http://${settings.api.host}:${typeof addr === "object" && addr ? addr.port : settings.api.port}`;

    // The operator API: 0600 socket in a 0700 directory (the service kit).
    const adminServer = await serveSocket({
      service: "the operator API",
      socket: settings.adminSocket,
      handler: getRequestListener(
        createApi({ mode: "admin", tenants, models, pools: poolService, egressAllow, log }).fetch,
      ),
      drainMs: 0,
    });
    cleanups.push(() => adminServer.close());

    if (settings.edge.enabled) {
      edge = new Edge({
        ...settings.edge.options,
        apiUpstream: apiUrl,
        tenantSourceAddress: edgeSource,
        log,
      });
      await edge.start();
      const e = edge;
      cleanups.push(async () => {
        clearTimeout(routesTimer);
        await routing;
        // Like the gateways, the edge keeps serving across a control plane restart.
        if (teardown) await e.stop();
      });
    }

    if (opts.reconcile !== false) {
      await reconciler.start();
      syncRoutes();
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
