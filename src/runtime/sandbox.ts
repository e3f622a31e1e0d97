import { chmod, mkdir, writeFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import type { Settings } from "../config/settings.ts";
import { localModelResolver, type ModelService } from "../control/models.ts";
import type { Plan } from "../core/plans.ts";
import { renderEgressConfig } from "../egress/config.ts";
import type { PlatformUpstream } from "../egress/proxy.ts";
import { type EgressService, startEgressService } from "../egress/service.ts";
import type { TenantKeyService } from "../kms/service.types.ts";
import type { Logger } from "../lib/log.ts";
import type { OpenClawRuntime } from "../openclaw/runtime.ts";
import { ContainerDriver, containerCpuQuotas } from "./container/driver.ts";
import {
  CpuGuard,
  type CpuGuardTarget,
  type CpuQuotas,
  cpuControllerRoot,
  scanTenantCgroups,
} from "./cpu-guard.ts";
import type { EgressRegistry } from "./linux/net/egress.types.ts";
import { NetworkMembers } from "./linux/net/members.ts";
import {
  DEFAULT_NETWORK,
  ensureBridge,
  hostAddress,
  type NetworkConfig,
  removeBridge,
  removeRuleset,
} from "./linux/net/network.ts";
import { detectOciRuntime } from "./linux/oci/runtime.ts";
import { LocalVolumes } from "./linux/volume/volume.ts";
import { PoolDriver } from "./pool/driver.ts";
import { EncryptedPoolStorage } from "./pool/storage.ts";
import { TieredDriver } from "./tiered.ts";
import { EncryptedTenantVolumes } from "./volumes/encrypted.ts";

export interface SandboxDrivers {
  driver: TieredDriver;
  pools: PoolDriver;
  containers: ContainerDriver;
  network: NetworkConfig;
  /** The supervised egress proxy: its admin API (counters, logs), refresh() when an allowlist changed. */
  egress: EgressService;
  /**
   * Stops the egress proxy. With teardown (tests, uninstall; only once every gateway is stopped):
   * also stops the Starter pools, unmounts their volumes and the secrets tmpfs, and removes the
   * bridge and the ruleset.
   */
  close(opts?: { teardown?: boolean }): Promise<void>;
}

/**
 * The CPU guard's quotas for a tenant, from its plan: a dedicated container's steady quota and the
 * one it is lifted to while demoted; a Starter pool tenant's plan quota, never lifted.
 */
export function cpuGuardQuotas(
  planOf: (tenant: string) => Plan | undefined,
  hostCpus = availableParallelism(),
): (t: CpuGuardTarget) => CpuQuotas | undefined {
  return (t) => {
    const plan = planOf(t.tenant);
    if (!plan) return undefined;
    return t.kind === "container"
      ? containerCpuQuotas(plan.cpus, hostCpus)
      : { steady: plan.cpus, demoted: plan.cpus };
  };
}

/** cgroup parents of the dedicated containers and of the Starter pools (the CPU guard watches both). */
const CONTAINERS_CGROUP = "clawkeep";
const POOLS_CGROUP = "clawkeep-pools";

/**
 * The drivers of the tiers as the product promises them: Starter tenants in shared pool
 * containers (each its own gateway process, uid, port and directory on the pool's encrypted
 * volume, under its own key); Premium and Enterprise in containers with their own encrypted
 * volume, network namespace and cgroup. Both share one bridge and one ruleset; egress only
 * through the egress proxy process (Enterprise: none at all).
 */
export async function buildSandboxDrivers(o: {
  settings: Settings;
  runtime: OpenClawRuntime;
  kms: TenantKeyService;
  log: Logger;
  /** uids besides root allowed to reach tenant gateways (the edge's). */
  gatewayClientUids?: number[];
  /** Services on the host the proxy offers every tenant with egress (the LLM relay). */
  platformUpstreams?: PlatformUpstream[];
  /**
   * Told each time the tenants' addresses on the bridge change, with all of them (the LLM relay
   * checks that a tenant's key comes from the tenant's own address).
   */
  onAddresses?: (tenants: ReadonlyArray<{ tenant: string; address: string }>) => void;
  /** The model registry Enterprise tenants' models come from. */
  models: ModelService;
  /** Told when a tenant's model server fails for good (for the tenant's events). */
  onModelFailure?: (tenant: string, err: Error) => void;
  /** Told when the CPU guard demotes a tenant spinning at its quota, or restores it (events). */
  onCpuClass?: (tenant: string, demoted: boolean, why: string) => void;
  /** A tenant's plan, by name (the CPU guard lifts a demoted container's quota to its plan's). */
  planOf?: (tenant: string) => Plan | undefined;
  /** The allowlist additions (operator's, each tenant's) the proxy's policy carries. */
  egressAllow?: { operator(): string[]; tenant(name: string): string[] };
}): Promise<SandboxDrivers> {
  const { settings, runtime, kms, log } = o;
  const volumeKey = (spec: { tenantId: string }) => kms.getVolumeKey(spec.tenantId);
  const volumes = new LocalVolumes({
    imagesRoot: join(settings.home, "volumes", "images"),
    mountsRoot: join(settings.home, "volumes", "mnt"),
  });
  // Tenant uids pass through volumes/ and mnt/ (search only); images stay root's.
  await mkdir(join(settings.home, "volumes"), { recursive: true, mode: 0o711 });
  await chmod(join(settings.home, "volumes"), 0o711);
  await mkdir(join(settings.home, "volumes", "images"), { recursive: true, mode: 0o700 });
  await mkdir(join(settings.home, "volumes", "mnt"), { recursive: true, mode: 0o711 });

  const network: NetworkConfig = {
    ...DEFAULT_NETWORK,
    prefix16: settings.tenantNetPrefix,
    egressPort: settings.egress.port,
    allowedUids: [0, ...(o.gatewayClientUids ?? [])],
  };
  await ensureBridge(network);

  // The egress proxy: its own process, listening on the bridge's host address only.
  const egressDir = join(settings.home, "egress");
  await mkdir(egressDir, { recursive: true, mode: 0o700 });
  await mkdir(settings.logsDir, { recursive: true, mode: 0o700 });
  const configPath = join(egressDir, "config.json");
  await writeFile(
    configPath,
    renderEgressConfig({
      listen: { host: hostAddress(network), port: network.egressPort },
      adminSocket: join(settings.runDir, "egress.sock"),
      logFile: join(settings.logsDir, "egress.jsonl"),
      policy: { tenants: [], operatorAllow: settings.egress.allow },
      ...(Object.keys(settings.egress.staticHosts).length
        ? { staticHosts: settings.egress.staticHosts }
        : {}),
      ...(settings.egress.testOnlyPermitRanges.length
        ? { testOnlyPermitRanges: settings.egress.testOnlyPermitRanges }
        : {}),
      ...(o.platformUpstreams?.length ? { platformUpstreams: o.platformUpstreams } : {}),
    }),
    { mode: 0o600 },
  );
  // Supervised: a proxy that dies is started again and given the latest policy (tenants' egress
  // depends on it); policies go out one at a time, each with the latest tenants and lists.
  const egress = await startEgressService({
    configPath,
    log,
    policyOf: (tenants) => ({
      tenants: tenants.map((t) => ({
        name: t.tenant,
        addresses: [t.address],
        airGapped: t.airGapped,
        allow: t.airGapped ? [] : (o.egressAllow?.tenant(t.tenant) ?? []),
      })),
      operatorAllow: o.egressAllow?.operator() ?? settings.egress.allow,
    }),
  });
  try {
    return await buildDrivers(egress);
  } catch (err) {
    // Nothing half-made is left running: the drivers failed to come up, so the proxy goes too.
    await egress.stop().catch(() => {});
    throw err;
  }

  async function buildDrivers(egress: EgressService): Promise<SandboxDrivers> {
    // One bridge, one ruleset, one proxy policy for both drivers; each replaces only its members.
    // The proxy's policy and the relay's source check learn the same addresses.
    const registry: EgressRegistry = {
      proxyUrl: egress.proxyUrl,
      async setTenants(tenants) {
        await egress.setTenants(tenants);
        o.onAddresses?.(tenants);
      },
    };
    const members = new NetworkMembers(network, registry, ["containers", "pools"]);
    const containers = new ContainerDriver({
      containersDir: join(settings.home, "containers"),
      secretsDir: join(settings.runDir, "secrets"),
      runtime,
      oci: await detectOciRuntime(),
      network,
      volumes: new EncryptedTenantVolumes({ volumes, volumeKey }),
      egress: registry,
      members,
      idMapBase: settings.idMapBase,
      cgroupParent: CONTAINERS_CGROUP,
      // Enterprise's on-instance model from the registry, checked (header, size, checksum) before
      // each use: a missing or corrupt file is a clear error on the tenant's status.
      localModel: localModelResolver(o.models),
      onModelFailure: (tenant, err) => o.onModelFailure?.(tenant, err),
      log,
    });
    // Starter pools: slots, uid ranges and cgroups after the dedicated containers' own.
    const pools = new PoolDriver({
      poolsDir: join(settings.home, "pools"),
      secretsDir: join(settings.runDir, "pool-secrets"),
      runtime,
      network: members,
      storage: new EncryptedPoolStorage({
        volumes,
        sizeBytes: settings.starterPoolBytes,
        volumeKey: (spec) => kms.getVolumeKey(spec.tenantId),
      }),
      idMapBase: settings.idMapBase + settings.maxSlots * 65536,
      cgroupParent: POOLS_CGROUP,
      poolSlots: { first: settings.maxSlots, count: settings.starterPoolsMax },
      poolMemoryBytes: settings.starterPoolMemoryBytes,
      log,
    });

    // What outlived an earlier control plane: rules and proxy policy back in force.
    await containers.resync();
    await pools.resync();

    // Noisy neighbours: a tenant spinning at its CPU quota goes to the idle class until it calms.
    const guard = new CpuGuard({
      targets: () =>
        scanTenantCgroups({
          cpuRoot: cpuControllerRoot(),
          containersParent: CONTAINERS_CGROUP,
          poolsParent: POOLS_CGROUP,
        }),
      log,
      onChange: (tenant, demoted, why) => o.onCpuClass?.(tenant, demoted, why),
      quotas: o.planOf && cpuGuardQuotas(o.planOf),
    });
    if (settings.cpuGuard) guard.start();

    return {
      driver: new TieredDriver({ starter: pools, premium: containers, enterprise: containers }),
      pools,
      containers,
      network,
      egress,
      async close(opts = {}) {
        await guard.stop();
        if (opts.teardown) {
          await pools
            .stopPools()
            .catch((err: unknown) => log.warn({ err }, "stopping the starter pools failed"));
          await pools.shutdown();
          await containers.shutdown();
        }
        await egress.stop();
        if (opts.teardown) {
          await removeRuleset(network).catch(() => {});
          await removeBridge(network).catch(() => {});
        }
      },
    };
  }
}
