/**
 * The edge: clawkeep's own nginx master (with ModSecurity and the tuned OWASP CRS), run from its
 * own state directory with its own config, pid file and prefix. It never touches the system nginx
 * service or /etc/nginx/sites-*.
 *
 * Every config change goes: render (pure) -> conf/nginx.conf.next -> `nginx -t` -> keep the
 * current file as nginx.conf.prev -> rename -> SIGHUP -> wait until the probe socket answers the
 * new generation. A change refused by `nginx -t` never reaches nginx.conf; a reload that fails
 * (nginx logs [emerg] and keeps its old workers) or does not show up in time restores the previous
 * file, so disk and memory agree again, and throws EdgeConfigError. Changes are serialised.
 */
import {
  chmod,
  chown,
  copyFile,
  mkdir,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import { request } from "node:http";
import { dirname, join } from "node:path";
import { ValidationError } from "../core/errors.ts";
import { execFile } from "../lib/exec.ts";
import type { Logger } from "../lib/log.ts";
import { procInfo } from "../lib/procfs.ts";
import { ensureLocalCertificate } from "./certs.ts";
import { readCrsFiles, tuneCrs } from "./crs.ts";
import { EdgeConfigError, EdgeError } from "./errors.ts";
import { readBlockedEvents } from "./logs.ts";
import {
  assertSafePath,
  DEBIAN_EDGE_SYSTEM,
  type EdgeConfig,
  type EdgePaths,
  type EdgeSystem,
  edgePaths,
  parseDomain,
  parseListen,
  parseUpstream,
  type RenderedEdge,
  renderEdge,
  validateLimits,
  validateRoutes,
} from "./render.ts";
import type { BlockedEvent, EdgeController, EdgeLimits, EdgeRoute, EdgeStatus } from "./types.ts";
import { ensureSystemUser } from "./user.ts";

/** `*.clawkeep.localhost` resolves to loopback in browsers, so the default works with no DNS. */
export const DEFAULT_EDGE_DOMAIN = "clawkeep.localhost";
export const DEFAULT_EDGE_USER = "clawkeep-edge";

export interface EdgeOptions {
  /** Everything of the edge lives below this directory (e.g. <CLAWKEEP_HOME>/edge). */
  stateDir: string;
  domain?: string;
  /** Where clients connect: "<ip>:<port>" or {host, port}. */
  listen: string | { host: string; port: number };
  /** The operator's own certificate and key; without them the edge makes a local CA and a wildcard certificate. */
  tls?: { certFile: string; keyFile: string };
  /** The platform's public API and the console (http://<address>:<port>), served at api.<domain> and console.<domain>. */
  apiUpstream?: string | null;
  consoleUpstream?: string | null;
  /** Source address of connections to tenants' gateways (see EdgeConfig.tenantSourceAddress). */
  tenantSourceAddress?: string | null;
  limits?: Partial<EdgeLimits>;
  /** ModSecurity with the OWASP CRS; on unless set false. */
  waf?: boolean;
  /** System user for nginx workers; created when missing. */
  user?: string;
  workerProcesses?: number | "auto";
  workerShutdownSeconds?: number;
  system?: Partial<EdgeSystem>;
  /** How long a reload may take to show up on the probe socket. */
  reloadTimeoutMs?: number;
  /** Replaces renderEdge: for tests that simulate a broken rendering. */
  render?: (cfg: EdgeConfig) => RenderedEdge;
  log?: Logger;
}

interface Prepared {
  maxOpenFiles: number;
  certFile: string;
  keyFile: string;
  caFile: string | null;
  crsRules: string | null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function aborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new EdgeError("edge operation aborted", { cause: signal.reason });
}

async function fileExists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function writeAtomic(path: string, text: string, mode: number): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, text, { mode });
  await chmod(tmp, mode);
  await rename(tmp, path);
}

/** Pids of the live children of `pid` (nginx workers of a master). */
async function childrenOf(pid: number): Promise<number[]> {
  const out: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const st = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    const rest = st.slice(st.lastIndexOf(")") + 2).split(" ");
    if (rest[0] !== "Z" && Number(rest[1]) === pid) out.push(Number(entry));
  }
  return out;
}

/** SIGKILLs a leftover nginx worker; a pid that now names another program is left alone. */
async function killIfNginx(pid: number): Promise<void> {
  const cmd = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  if (!cmd.startsWith("nginx: ") || !(await procInfo(pid))) return;
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // Gone meanwhile.
  }
}

export class Edge implements EdgeController {
  readonly paths: EdgePaths;
  readonly domain: string;
  readonly listen: { host: string; port: number };
  readonly waf: boolean;
  readonly user: string;
  readonly limits: EdgeLimits;
  readonly system: EdgeSystem;
  readonly #opts: EdgeOptions;
  readonly #confFile: string;
  #routes: EdgeRoute[] = [];
  #generation: string | null = null;
  #prepared: Prepared | null = null;
  #queue: Promise<unknown> = Promise.resolve();
  #counter = 0;

  /** Validates every option; throws ValidationError before anything touches the host. */
  constructor(opts: EdgeOptions) {
    this.#opts = opts;
    this.paths = edgePaths(opts.stateDir);
    this.domain = parseDomain(opts.domain ?? DEFAULT_EDGE_DOMAIN);
    this.listen = parseListen(opts.listen);
    this.waf = opts.waf ?? true;
    this.user = opts.user ?? DEFAULT_EDGE_USER;
    this.limits = validateLimits(opts.limits);
    this.system = { ...DEBIAN_EDGE_SYSTEM, ...opts.system };
    for (const [k, v] of Object.entries(this.system)) assertSafePath(v, k);
    if (opts.tls) {
      assertSafePath(opts.tls.certFile, "tls.certFile");
      assertSafePath(opts.tls.keyFile, "tls.keyFile");
    }
    if (opts.apiUpstream) parseUpstream(opts.apiUpstream, "apiUpstream");
    if (opts.consoleUpstream) parseUpstream(opts.consoleUpstream, "consoleUpstream");
    this.#confFile = join(this.paths.conf, "nginx.conf");
  }

  /** Runs one change at a time, in call order. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => {});
    return run;
  }

  tenantUrl(tenant: string): string {
    const port = this.listen.port === 443 ? "" : `:${this.listen.port}`;
    return `https://${tenant}.${this.domain}${port}/`;
  }

  /** The CA file clients should trust when the edge made its own certificate; null with an operator's certificate. */
  get caFile(): string | null {
    return this.#prepared?.caFile ?? (this.#opts.tls ? null : join(this.paths.certs, "ca.crt"));
  }

  get routes(): readonly EdgeRoute[] {
    return this.#routes;
  }

  /**
   * Prepares the host (nginx present, edge user, directories, certificate, tuned CRS) and makes
   * the edge serve: adopts a master that already runs from this state directory (reloading it with
   * the current settings), or starts one. Routes start as the last ones applied (conf/routes.json)
   * until setRoutes() replaces them. Calling it on a running edge re-applies the config.
   */
  start(signal?: AbortSignal): Promise<void> {
    return this.#serial(async () => {
      await this.#prepare(signal);
      if (this.#generation === null) this.#routes = await this.#loadRoutes();
      await this.#apply(this.#routes, signal);
      this.#opts.log?.info(
        {
          edge: this.paths.prefix,
          listen: this.listen,
          domain: this.domain,
          waf: this.waf,
          tenants: this.#routes.length,
        },
        "edge is serving",
      );
    });
  }

  /** Replaces the full set of tenant routes atomically. Throws (and keeps serving the old set) on any failure. */
  async setRoutes(routes: readonly EdgeRoute[], signal?: AbortSignal): Promise<void> {
    const valid = validateRoutes(routes);
    return this.#serial(async () => {
      if (!this.#prepared) throw new EdgeError("the edge is not started: call start() first");
      await this.#apply(valid, signal);
    });
  }

  /** Stops nginx: graceful (SIGQUIT), then fast (SIGTERM), then SIGKILL. Stopping a stopped edge is not an error. */
  stop(signal?: AbortSignal): Promise<void> {
    return this.#serial(async () => {
      const pid = await this.#masterPid();
      if (pid !== null) {
        const workers = await childrenOf(pid);
        const steps: Array<[NodeJS.Signals, number]> = [
          ["SIGQUIT", 5000],
          ["SIGTERM", 5000],
          ["SIGKILL", 2000],
        ];
        for (const [sig, waitMs] of steps) {
          try {
            process.kill(pid, sig);
          } catch {
            // Already gone.
          }
          if (sig === "SIGKILL") for (const w of workers) await killIfNginx(w);
          const deadline = Date.now() + waitMs;
          while (Date.now() < deadline && (await procInfo(pid))) {
            if (signal?.aborted) break;
            await sleep(25);
          }
          if (!(await procInfo(pid)) || signal?.aborted) break;
        }
        if (await procInfo(pid)) throw new EdgeError(`nginx master ${pid} did not stop`);
        for (const w of workers) await killIfNginx(w);
      }
      await rm(join(this.paths.run, "nginx.pid"), { force: true });
      await rm(join(this.paths.run, "probe.sock"), { force: true });
      this.#generation = null;
    });
  }

  async status(): Promise<EdgeStatus> {
    const pid = await this.#masterPid();
    const workers: EdgeStatus["workers"] = [];
    if (pid !== null) {
      for (const w of await childrenOf(pid)) {
        const info = await procInfo(w);
        if (info) workers.push({ pid: w, uid: info.uid });
      }
    }
    return {
      running: pid !== null,
      pid,
      workers,
      generation: pid === null ? null : await this.#probe().catch(() => null),
      tenants: this.#routes.map((r) => r.tenant),
      domain: this.domain,
      listen: this.listen,
      waf: this.waf,
      caFile: this.caFile,
    };
  }

  blockedEvents(tenant: string, opts: { limit?: number } = {}): Promise<BlockedEvent[]> {
    return readBlockedEvents(this.paths, tenant, opts);
  }

  /** Makes nginx reopen its log files (after rotation). */
  async reopenLogs(): Promise<void> {
    const pid = await this.#masterPid();
    if (pid !== null) process.kill(pid, "SIGUSR1");
  }

  // ---- internals ------------------------------------------------------------------------------

  async #prepare(signal?: AbortSignal): Promise<void> {
    const sys = this.system;
    const need: Array<[string, string]> = [[sys.nginx, "nginx"]];
    if (this.waf) {
      need.push(
        [sys.modsecurityModule, "libnginx-mod-http-modsecurity"],
        [sys.unicodeMapFile, "libnginx-mod-http-modsecurity"],
        [sys.crsRulesDir, "modsecurity-crs"],
      );
    }
    for (const [path, pkg] of need) {
      if (!(await fileExists(path))) {
        throw new EdgeError(
          `${path} is missing: install the Debian package ${pkg} (scripts/deps.sh installs it)`,
        );
      }
    }
    if (process.getuid?.() !== 0) {
      throw new EdgeError(
        "the edge must be started as root (nginx binds the port and drops workers to the edge user)",
      );
    }
    const user = await ensureSystemUser(this.user, signal);
    const p = this.paths;
    await mkdir(p.prefix, { recursive: true, mode: 0o711 });
    await chmod(p.prefix, 0o711);
    for (const d of [p.conf, p.run, p.logs, join(p.logs, "tenants")]) {
      await mkdir(d, { recursive: true, mode: 0o700 });
      await chmod(d, 0o700);
    }
    for (const d of [p.tmp, join(p.tmp, "modsec")]) {
      await mkdir(d, { recursive: true, mode: 0o700 });
      await chown(d, user.uid, user.gid);
      await chmod(d, 0o700);
    }
    // Workers (the edge user) must reach tmp/ to buffer request bodies.
    for (let dir = p.prefix; dir !== "/"; dir = dirname(dir)) {
      const st = await stat(dir);
      if ((st.mode & 0o001) === 0 && st.uid !== user.uid) {
        throw new ValidationError(
          "invalid_request",
          `${dir} (mode ${(st.mode & 0o777).toString(8)}) is not traversable by the edge user ${this.user}: ` +
            `chmod o+x it or put the edge state directory elsewhere`,
          { details: { field: "stateDir" } },
        );
      }
    }
    aborted(signal);
    let certFile: string;
    let keyFile: string;
    let caFile: string | null = null;
    if (this.#opts.tls) {
      ({ certFile, keyFile } = this.#opts.tls);
      for (const f of [certFile, keyFile]) {
        if (!(await fileExists(f))) throw new EdgeError(`TLS file ${f} does not exist`);
      }
    } else {
      const cert = await ensureLocalCertificate({
        dir: p.certs,
        domain: this.domain,
        ...(signal ? { signal } : {}),
      });
      ({ certFile, keyFile, caFile } = cert);
      if (cert.made !== "none")
        this.#opts.log?.info({ caFile, made: cert.made }, "edge made its local certificate");
    }
    let crsRules: string | null = null;
    if (this.waf) {
      const tuned = tuneCrs(await readCrsFiles(sys.crsRulesDir), sys.crsRulesDir);
      if (!tuned.tuned) {
        this.#opts.log?.warn(
          { version: tuned.version, why: tuned.untunedBecause },
          "OWASP CRS loaded untuned (correct, but several times slower)",
        );
      }
      crsRules = tuned.text;
    }
    // nginx inherits our limits; asking for more than the hard limit fails in every worker.
    const limits = await readFile("/proc/self/limits", "utf8").catch(() => "");
    const hard = Number(/^Max open files\s+\S+\s+(\d+)/m.exec(limits)?.[1] ?? 4096);
    const maxOpenFiles = Math.max(512, Math.min(65536, hard));
    this.#prepared = { maxOpenFiles, certFile, keyFile, caFile, crsRules };
  }

  #config(routes: readonly EdgeRoute[], generation: string): EdgeConfig {
    const prep = this.#prepared!;
    return {
      generation,
      domain: this.domain,
      listen: this.listen,
      certFile: prep.certFile,
      keyFile: prep.keyFile,
      routes,
      apiUpstream: this.#opts.apiUpstream ?? null,
      consoleUpstream: this.#opts.consoleUpstream ?? null,
      tenantSourceAddress: this.#opts.tenantSourceAddress ?? null,
      limits: this.limits,
      waf: this.waf,
      crsRules: prep.crsRules,
      user: this.user,
      workerProcesses: this.#opts.workerProcesses ?? "auto",
      maxOpenFiles: prep.maxOpenFiles,
      workerShutdownSeconds: this.#opts.workerShutdownSeconds ?? 300,
      paths: this.paths,
      system: this.system,
    };
  }

  async #loadRoutes(): Promise<EdgeRoute[]> {
    const text = await readFile(join(this.paths.conf, "routes.json"), "utf8").catch(() => null);
    if (text === null) return [];
    try {
      return validateRoutes((JSON.parse(text) as { routes: EdgeRoute[] }).routes ?? []);
    } catch (err) {
      this.#opts.log?.warn({ err }, "ignoring unreadable edge routes.json; starting with no tenant routes");
      return [];
    }
  }

  async #apply(routes: EdgeRoute[], signal?: AbortSignal): Promise<void> {
    aborted(signal);
    const generation = `${Date.now().toString(36)}-${++this.#counter}-${process.pid.toString(36)}`;
    const rendered = (this.#opts.render ?? renderEdge)(this.#config(routes, generation));
    const conf = this.#confFile;
    const next = `${conf}.next`;
    const prev = `${conf}.prev`;
    for (const f of rendered.files) {
      const path = join(this.paths.conf, f.name);
      if (!(await fileExists(path))) await writeAtomic(path, f.text, 0o600);
    }
    await writeAtomic(next, rendered.nginxConf, 0o600);
    try {
      await execFile(
        [this.system.nginx, "-t", "-q", "-c", next, "-p", `${this.paths.prefix}/`, "-e", "stderr"],
        {
          ...(signal ? { signal } : {}),
        },
      );
    } catch (err) {
      await rm(next, { force: true });
      const said = (err as { stderr?: string }).stderr?.trim() ?? String(err);
      throw new EdgeConfigError(
        `nginx refused the new edge config; the previous one keeps serving:\n${said}`,
        {
          cause: err,
          details: { nginx: said },
        },
      );
    }

    const pid = await this.#masterPid();
    const hadPrev = await fileExists(conf);
    if (hadPrev) await copyFile(conf, prev);
    const errLog = join(this.paths.logs, "error.log");
    const errOffset = await stat(errLog).then(
      (s) => s.size,
      () => 0,
    );
    await rename(next, conf);
    try {
      if (pid !== null) {
        process.kill(pid, "SIGHUP");
      } else {
        await rm(join(this.paths.run, "probe.sock"), { force: true });
        await rm(join(this.paths.run, "nginx.pid"), { force: true });
        await execFile([this.system.nginx, "-c", conf, "-p", `${this.paths.prefix}/`, "-e", errLog], {
          ...(signal ? { signal } : {}),
        });
      }
      await this.#waitGeneration(generation, errLog, errOffset, signal);
    } catch (err) {
      if (hadPrev) await rename(prev, conf);
      else await rm(conf, { force: true });
      const refused = err instanceof EdgeConfigError;
      if (pid !== null && !refused && (await procInfo(pid))) {
        // Unknown outcome (timeout or abort): make memory match the restored file again.
        try {
          process.kill(pid, "SIGHUP");
        } catch {}
      }
      if (refused) throw err;
      const said = (err as { stderr?: string }).stderr?.trim() ?? (err as Error).message;
      throw new EdgeConfigError(
        pid !== null
          ? `the edge did not take the new config (${said}); the previous config was restored`
          : `nginx did not start: ${said}`,
        { cause: err, details: { nginx: said } },
      );
    }
    this.#routes = routes;
    this.#generation = generation;
    await writeAtomic(
      join(this.paths.conf, "routes.json"),
      `${JSON.stringify({ routes, generation }, null, 2)}\n`,
      0o600,
    );
    await this.#prune();
  }

  /** Waits until the probe answers `generation`; fails fast when nginx logs [emerg] after `offset`. */
  async #waitGeneration(
    generation: string,
    errLog: string,
    offset: number,
    signal?: AbortSignal,
  ): Promise<void> {
    const deadline = Date.now() + (this.#opts.reloadTimeoutMs ?? 15_000);
    for (;;) {
      aborted(signal);
      if ((await this.#probe().catch(() => null)) === generation) return;
      const fresh = await readFile(errLog)
        .then((b) => b.subarray(offset).toString("utf8"))
        .catch(() => "");
      const bad = fresh.split("\n").filter((l) => / \[emerg\] /.test(l));
      if (bad.length > 0) {
        // nginx may still be retrying (bind() is tried 5 times, 500 ms apart): wait until the failed
        // attempt is over, so its later lines are not taken for the next change's failure.
        await this.#waitQuiet(errLog, signal);
        const said = bad.slice(-5).join("\n");
        throw new EdgeConfigError(`nginx refused to reload; the previous config keeps serving:\n${said}`, {
          details: { nginx: said },
        });
      }
      if (Date.now() > deadline)
        throw new EdgeError(`the edge did not serve generation ${generation} in time`);
      await sleep(40);
    }
  }

  /** Waits until a file has not grown for 800 ms (at most 10 s). */
  async #waitQuiet(path: string, signal?: AbortSignal): Promise<void> {
    const size = () =>
      stat(path).then(
        (st) => st.size,
        () => 0,
      );
    let last = await size();
    let quietSince = Date.now();
    const deadline = Date.now() + 10_000;
    while (Date.now() - quietSince < 800 && Date.now() < deadline && !signal?.aborted) {
      await sleep(100);
      const now = await size();
      if (now !== last) {
        last = now;
        quietSince = Date.now();
      }
    }
  }

  /** The generation the edge serves, asked over the root-only probe socket. */
  #probe(): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = request(
        { socketPath: join(this.paths.run, "probe.sock"), path: "/generation", timeout: 2000 },
        (res) => {
          let body = "";
          res.setEncoding("utf8").on("data", (d: string) => {
            body += d;
          });
          res.on("end", () =>
            res.statusCode === 200 ? resolve(body.trim()) : reject(new Error(`probe ${res.statusCode}`)),
          );
        },
      );
      req.on("timeout", () => req.destroy(new Error("probe timed out")));
      req.on("error", reject);
      req.end();
    });
  }

  /** The live nginx master started from this state directory, or null. */
  async #masterPid(): Promise<number | null> {
    const raw = await readFile(join(this.paths.run, "nginx.pid"), "utf8").catch(() => "");
    const pid = Number(raw.trim());
    if (!Number.isInteger(pid) || pid <= 1) return null;
    if (!(await procInfo(pid))) return null;
    const cmd = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    return cmd.includes("nginx: master process") && cmd.includes(` -c ${this.#confFile}`) ? pid : null;
  }

  /** Removes content-named files no current or previous config refers to. */
  async #prune(): Promise<void> {
    const refs = [
      await readFile(this.#confFile, "utf8").catch(() => ""),
      await readFile(`${this.#confFile}.prev`, "utf8").catch(() => ""),
    ].join("\n");
    for (const name of await readdir(this.paths.conf)) {
      if (/^modsecurity-[0-9a-f]{16}\.conf$/.test(name) && !refs.includes(name)) {
        await rm(join(this.paths.conf, name), { force: true });
      }
    }
  }
}
