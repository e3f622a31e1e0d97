import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Settings } from "../config/settings.ts";
import { renderEgressConfig } from "../egress/config.ts";
import { type EgressProcess, startEgressProcess } from "../egress/process.ts";
import type { TenantKeyService } from "../kms/service.types.ts";
import type { Logger } from "../lib/log.ts";
import { verifyModelFile } from "../llm/model-server/verify.ts";
import type { OpenClawRuntime } from "../openclaw/runtime.ts";
import { HostProcessDriver } from "../runtime/host/driver.ts";
import { ContainerDriver, detectOciRuntime } from "../runtime/local/driver.ts";
import {
  DEFAULT_NETWORK,
  ensureBridge,
  hostAddress,
  type NetworkConfig,
  removeBridge,
  removeRuleset,
} from "../runtime/local/network.ts";
import { StarterPoolVolumes } from "../runtime/local/pool-volumes.ts";
import type { EgressRegistry } from "../runtime/local/types.ts";
import { EncryptedTenantVolumes, LocalVolumes } from "../runtime/local/volume.ts";
import { TieredDriver } from "../runtime/tiered.ts";

export interface SandboxDrivers {
  driver: TieredDriver;
  host: HostProcessDriver;
  containers: ContainerDriver;
  network: NetworkConfig;
  egress: () => EgressProcess;
  /**
   * Stops the egress proxy. With teardown (tests, uninstall; only once every gateway is stopped):
   * also unmounts the Starter pool and the secrets tmpfs and removes the bridge and the ruleset.
   */
  close(opts?: { teardown?: boolean }): Promise<void>;
}

/**
 * The drivers of the tiers as the product promises them: Starter tenants as host processes on
 * the encrypted Starter pool volume (each directory under its own key); Premium and Enterprise in
 * containers with their own encrypted volume, network namespace and cgroup, egress only through
 * the egress proxy process (Enterprise: none at all).
 */
export async function buildSandboxDrivers(o: {
  settings: Settings;
  runtime: OpenClawRuntime;
  kms: TenantKeyService;
  log: Logger;
  /** uids besides root allowed to reach tenant gateways (the edge's). */
  gatewayClientUids?: number[];
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

  const pool = new StarterPoolVolumes({
    volumes,
    image: join(settings.home, "volumes", "images", "starter-pool.img"),
    mountpoint: join(settings.home, "volumes", "mnt", "starter-pool"),
    sizeBytes: settings.starterPoolBytes,
    volumeKey,
  });
  const host = new HostProcessDriver({
    tenantsDir: pool.tenantsDir,
    runDir: settings.runDir,
    runtime,
    portBase: settings.portBase,
    portStride: settings.portStride,
    uidBase: settings.uidBase,
    gatewayHost: settings.gatewayHost,
    volumes: pool,
    log,
  });

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
    }),
    { mode: 0o600 },
  );
  let proc = await startEgressProcess({ configPath });
  let closing = false;
  let lastTenants: Parameters<EgressRegistry["setTenants"]>[0] = [];
  const registry: EgressRegistry = {
    proxyUrl: `http://${hostAddress(network)}:${network.egressPort}`,
    async setTenants(tenants) {
      lastTenants = tenants;
      await proc.admin.setPolicy({
        tenants: tenants.map((t) => ({ name: t.tenant, addresses: [t.address], airGapped: t.airGapped })),
        operatorAllow: settings.egress.allow,
      });
    },
  };
  // A proxy that dies is started again with the policy it had: tenants' egress depends on it.
  const watch = (p: EgressProcess): void => {
    void p.exited.then(async (code) => {
      if (closing) return;
      log.error({ code, stderr: p.stderrTail() }, "egress proxy exited; restarting it");
      await new Promise((r) => setTimeout(r, 1000));
      if (closing) return;
      try {
        proc = await startEgressProcess({ configPath });
        watch(proc);
        await registry.setTenants(lastTenants);
      } catch (err) {
        log.error({ err }, "egress proxy restart failed");
      }
    });
  };
  watch(proc);

  // Enterprise's on-instance model: checked (GGUF header, size, checksum when given) before use,
  // so a missing or corrupt file is a clear error at start, not a gateway that cannot answer.
  let model: { path: string; id: string; sha256?: string; size: number } | undefined;
  if (settings.enterpriseModel) {
    const m = settings.enterpriseModel;
    const v = await verifyModelFile(m.path, m.sha256 ? { sha256: m.sha256 } : {});
    model = { ...m, size: v.size, ...(v.sha256 ? { sha256: v.sha256 } : {}) };
    log.info({ model: m.id, path: m.path, bytes: v.size }, "enterprise model verified");
  } else {
    log.warn("no CLAWKEEP_ENTERPRISE_MODEL: Enterprise tenants have no model to answer with");
  }

  const containers = new ContainerDriver({
    containersDir: join(settings.home, "containers"),
    secretsDir: join(settings.runDir, "secrets"),
    runtime,
    oci: await detectOciRuntime(),
    network,
    volumes: new EncryptedTenantVolumes({ volumes, volumeKey }),
    egress: registry,
    idMapBase: settings.idMapBase,
    cgroupParent: "clawkeep",
    localModel: async () => model,
    log,
  });
  // Containers that outlived an earlier control plane: rules and proxy policy back in force.
  await containers.resync();

  return {
    driver: new TieredDriver({ starter: host, premium: containers, enterprise: containers }),
    host,
    containers,
    network,
    egress: () => proc,
    async close(opts = {}) {
      closing = true;
      await proc.stop();
      if (opts.teardown) {
        await pool.unmount().catch((err: unknown) => log.warn({ err }, "starter pool unmount failed"));
        await containers.shutdown();
        await removeRuleset(network).catch(() => {});
        await removeBridge(network).catch(() => {});
      }
    },
  };
}
