import { chmod, mkdir, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { getRequestListener } from "@hono/node-server";
import type { Settings } from "../config/settings.ts";
import { planFor } from "../core/plans.ts";
import { Edge } from "../edge/edge.ts";
import { ensureSystemUser } from "../edge/user.ts";
import { PLATFORM_LLM_HOST, relayUpstream } from "../egress/platform-upstream.ts";
import type { EgressService } from "../egress/service.ts";
import { defaultKmsPaths } from "../kms/cli.ts";
import { isTenantKeyService } from "../kms/index.ts";
import { startKmsProcess } from "../kms/supervisor.ts";
import type { KeyService } from "../kms/types.ts";
import type { Logger } from "../lib/log.ts";
import { type EchoProvider, startEchoProvider } from "../llm/echo-provider.ts";
import type { LlmProvider } from "../openclaw/config.ts";
import { ensureRuntime, type OpenClawRuntime } from "../openclaw/runtime.ts";
import { renderRelayConfig } from "../relay/config.ts";
import { type RelayService, startRelayService } from "../relay/service.ts";
import type { RelayState, RelayUpstream } from "../relay/types.ts";
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
import type { LlmService } from "./llm.ts";
import { ModelService, registerSettingsModel } from "./models.ts";
import { PoolService } from "./pools.ts";
import type { Reconciler } from "./reconciler.ts";
import { relayStateSource, upstreamApiFor } from "./relay-state.ts";
import type { TenantService } from "./tenants.ts";
import { UsagePersister } from "./usage-persister.ts";

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
  /** The LLM relay every Starter and Premium gateway chats through. */
  relay: RelayService;
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

/** The operator's provider (or the demo one) as the relay's one upstream, with its key. */
function providerUpstream(llm: LlmProvider & { apiKey: string }, demo: boolean): RelayUpstream {
  return {
    id: demo ? "demo" : "operator",
    baseUrl: llm.baseUrl,
    apiKey: llm.apiKey,
    api: upstreamApiFor(llm.baseUrl),
    models: [llm.model],
  };
}

/**
 * The LLM relay on the host's loopback at its fixed port (so adopted gateways keep reaching it
 * across restarts), supervised; its state (tenants' key hashes, the upstream's key) arrives over
 * its admin socket and never touches a disk.
 */
async function startRelay(o: {
  settings: Settings;
  log: Logger;
  cleanups: Cleanups;
  state: () => Promise<RelayState>;
}): Promise<RelayService> {
  const dir = join(o.settings.home, "relay");
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const configPath = join(dir, "config.json");
  await writeFile(
    configPath,
    renderRelayConfig({
      listen: { host: "127.0.0.1", port: o.settings.relay.port },
      adminSocket: join(o.settings.runDir, "relay.sock"),
    }),
    { mode: 0o600 },
  );
  const relay = await startRelayService({ configPath, log: o.log, state: o.state });
  o.cleanups.push(() => relay.stop());
  return relay;
}

/** The runtime as the control plane sees it: a driver, and the egress handle where tenants have one. */
interface Tiers {
  driver: RuntimeDriver;
  /**
   * The provider as tenants' gateways are configured with it: the LLM relay, through the egress
   * proxy in the sandboxed tiers, on the host's loopback for host processes. No key: each
   * gateway's is its own virtual key.
   */
  llm: LlmProvider;
  /** Whether tenants sit on the bridge (their source addresses come from the drivers). */
  sandboxed: boolean;
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
  /** The model tenants chat with (the relay maps it to the operator's provider). */
  model: string;
  store: TenantStore;
  models: ModelService;
  edgeUids: number[];
  /** Told each time the tenants' addresses on the bridge change (the relay's source check). */
  onAddresses: (tenants: ReadonlyArray<{ tenant: string; address: string }>) => void;
  egressAllow: () => EgressAllowService | undefined;
  injected?: RuntimeDriver;
  cleanups: Cleanups;
  teardown: () => boolean;
}): Promise<Tiers> {
  const { settings, runtime, kms, log, store } = o;
  const relay = settings.relay.port;
  const none = {
    pools: null,
    egress: null,
    edgeSource: null,
    sandboxed: false,
    llm: { baseUrl: `http://127.0.0.1:${relay}/v1`, model: o.model },
  };
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
    // Tenants live in their own network namespaces: they reach the relay, and only the relay,
    // as a platform upstream of the egress proxy, which names the caller in a PROXY line.
    platformUpstreams: [relayUpstream(relay)],
    onAddresses: o.onAddresses,
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
    llm: { baseUrl: `http://${PLATFORM_LLM_HOST}:${relay}/v1`, model: o.model },
    sandboxed: true,
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
  llm: LlmService;
  cleanups: Cleanups;
}): Promise<{ apiUrl: string }> {
  const { settings, log, tenants, egressAllow, llm } = o;
  const publicServer = createServer(
    getRequestListener(createApi({ mode: "public", tenants, egressAllow, llm, log }).fetch),
  );
  await listen(publicServer, settings.api);
  o.cleanups.push(() => closeServer(publicServer));
  const addr = publicServer.address();
  const apiUrl = `http://${settings.api.host}:${typeof addr === "object" && addr ? addr.port : settings.api.port}`;

  const adminServer = await serveSocket({
    service: "the operator API",
    socket: settings.adminSocket,
    handler: getRequestListener(
      createApi({ mode: "admin", tenants, models: o.models, pools: o.pools, egressAllow, llm, log }).fetch,
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
    // The relay's source check: each tenant's address on the bridge, as the drivers report them.
    let relay: RelayService | null = null;
    const refreshRelay = (): Promise<void> =>
      relay
        ? relay.refresh().catch((err: unknown) => log.warn({ err }, "LLM relay state push failed"))
        : Promise.resolve();
    const addresses = new Map<string, string[]>();
    const tiers = await startTiers({
      settings,
      runtime,
      kms,
      log,
      model: llm.model,
      onAddresses: (list) => {
        addresses.clear();
        for (const { tenant, address } of list)
          addresses.set(tenant, [...(addresses.get(tenant) ?? []), address]);
        void refreshRelay();
      },
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
    const {
      specs,
      reconciler,
      tenants,
      llm: llmAccess,
      llmStore,
    } = createControlPlane({
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
      byokAllow: settings.relay.byokAllow,
      onChange: () => {
        routes.sync();
        void refreshRelay();
      },
      onLlmChange: refreshRelay,
    });

    // The LLM relay holds the provider's key; gateways hold only their own virtual keys.
    relay = await startRelay({
      settings,
      log,
      cleanups,
      state: relayStateSource({
        store,
        llm: llmStore,
        kms,
        addresses: (t) => (tiers.sandboxed ? (addresses.get(t.name) ?? []) : ["127.0.0.1"]),
        upstreams: [providerUpstream(llm, demoProvider !== null)],
      }),
    });
    const usage = new UsagePersister({ source: relay.admin, store, llm: llmStore, log });
    usage.start();
    // Cleanups run in reverse: the last drain happens before the relay stops.
    cleanups.push(() => usage.stop());

    egressAllow = new EgressAllowService({
      store: new EgressAllowStore(db),
      tenantStore: store,
      tenants,
      settingsAllow: settings.egress.allow,
      onChange: () => tiers.egress?.refresh(),
    });
    const pools = new PoolService({ pools: () => tiers.pools, tenants, reconciler, specs, store });
    const { apiUrl } = await serveApis({
      settings,
      log,
      tenants,
      models,
      pools,
      egressAllow,
      llm: llmAccess,
      cleanups,
    });

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
      relay,
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
