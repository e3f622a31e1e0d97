/**
 * Renders the edge's nginx and ModSecurity configuration as text. Pure: no I/O; the caller writes,
 * validates (`nginx -t`), swaps and reloads (edge.ts). Every value that reaches the text is
 * validated here first, so nothing a user typed can change the config's structure.
 */
import { createHash } from "node:crypto";
import { isIPv4, isIPv6 } from "node:net";
import { join } from "node:path";
import { ValidationError } from "../core/errors.ts";
import { parseTenantName } from "../core/tenant.ts";
import { DEFAULT_EDGE_LIMITS, type EdgeLimits, type EdgeRoute, RESERVED_LABELS } from "./types.ts";

/** Where the edge keeps its files, all below one state directory (nginx's prefix). */
export interface EdgePaths {
  /** The state directory: nginx's `-p` prefix. */
  prefix: string;
  /** Rendered config (root only). */
  conf: string;
  /** Pid file, lock file, the probe socket (root only). */
  run: string;
  /** error.log, access.log, waf-audit.log, tenants/<name>.error.log (root only). */
  logs: string;
  /** Request-body and proxy buffers, ModSecurity's temp files (owned by the edge user). */
  tmp: string;
  /** The local CA and the edge certificate, when the edge makes its own. */
  certs: string;
}

export function edgePaths(stateDir: string): EdgePaths {
  assertSafePath(stateDir, "edge state directory");
  return {
    prefix: stateDir,
    conf: join(stateDir, "conf"),
    run: join(stateDir, "run"),
    logs: join(stateDir, "logs"),
    tmp: join(stateDir, "tmp"),
    certs: join(stateDir, "certs"),
  };
}

/** Files and programs of the host's nginx installation (Debian's layout by default). */
export interface EdgeSystem {
  nginx: string;
  modsecurityModule: string;
  crsRulesDir: string;
  unicodeMapFile: string;
}

export const DEBIAN_EDGE_SYSTEM: EdgeSystem = {
  nginx: "/usr/sbin/nginx",
  modsecurityModule: "/usr/lib/nginx/modules/ngx_http_modsecurity_module.so",
  crsRulesDir: "/usr/share/modsecurity-crs/rules",
  unicodeMapFile: "/etc/nginx/unicode.mapping",
};

/** Everything one rendering needs, already resolved. */
export interface EdgeConfig {
  /** Id of this rendering; the probe socket answers it once the config serves. */
  generation: string;
  domain: string;
  listen: { host: string; port: number };
  certFile: string;
  keyFile: string;
  routes: readonly EdgeRoute[];
  apiUpstream: string | null;
  consoleUpstream: string | null;
  /**
   * The source address of the edge's connections to tenants' gateways (nginx proxy_bind), or
   * null for the kernel's choice. Gateways trust only this address as their proxy, so direct
   * clients (the control plane's probes) are never mistaken for unattributed proxied traffic.
   */
  tenantSourceAddress?: string | null;
  limits: EdgeLimits;
  waf: boolean;
  /** The CRS configuration, setup included (crs.ts tuneCrs or stockCrs), required when waf is on. */
  crsRules: string | null;
  /** The system user (and its group) nginx workers run as. */
  user: string;
  workerProcesses: number | "auto";
  /** Open-file limit for workers (at most the hard limit nginx inherits); sets worker_connections too. */
  maxOpenFiles: number;
  /** How long old workers may finish open connections (WebSockets) after a reload. */
  workerShutdownSeconds: number;
  paths: EdgePaths;
  system: EdgeSystem;
}

export interface RenderedEdge {
  /** The main nginx config: the file that is validated, swapped and reloaded. */
  nginxConf: string;
  /** Extra files for the conf directory, named by their content (write once, never changed in place). */
  files: Array<{ name: string; text: string }>;
}

// ---- validation -------------------------------------------------------------------------------

const LABEL = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?";
const DOMAIN_RE = new RegExp(`^(?=.{1,200}$)${LABEL}(?:\\.${LABEL})*$`);
const SAFE_PATH_RE = /^\/[A-Za-z0-9._/@+-]*$/;
const USER_RE = /^[a-z_][a-z0-9_-]{0,31}$/;
const GENERATION_RE = /^[A-Za-z0-9._-]{1,64}$/;

function invalid(message: string, field: string): never {
  throw new ValidationError("invalid_request", message, { details: { field } });
}

/** An absolute path made of plain characters only (it is written into nginx and ModSecurity config). */
export function assertSafePath(path: string, what: string): string {
  if (typeof path !== "string" || !SAFE_PATH_RE.test(path) || path.split("/").includes("..")) {
    invalid(
      `${what} must be an absolute path of letters, digits and . _ - + @ /, got ${JSON.stringify(path)}`,
      what,
    );
  }
  return path;
}

/** A DNS domain such as clawkeep.example.com; lower-cased, no trailing dot, no wildcard. */
export function parseDomain(input: unknown): string {
  const d = typeof input === "string" ? input.toLowerCase() : "";
  if (!DOMAIN_RE.test(d)) {
    invalid(
      `edge domain must be a DNS name like clawkeep.example.com, got ${JSON.stringify(input)}`,
      "domain",
    );
  }
  return d;
}

/** host:port where host is an IP literal ([v6] in brackets); or an object of both. */
export function parseListen(input: unknown): { host: string; port: number } {
  let host: string | undefined;
  let port: number | undefined;
  if (typeof input === "string") {
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d{1,5})$/.exec(input);
    if (m) {
      host = m[1] ?? m[2];
      port = Number(m[3]);
    }
  } else if (input && typeof input === "object") {
    const o = input as { host?: unknown; port?: unknown };
    if (typeof o.host === "string") host = o.host.replace(/^\[(.*)\]$/, "$1");
    if (typeof o.port === "number") port = o.port;
  }
  if (!host || !(isIPv4(host) || isIPv6(host)) || !Number.isInteger(port) || port! < 1 || port! > 65535) {
    invalid(
      `edge listen address must be <ip>:<port> (e.g. 0.0.0.0:443), got ${JSON.stringify(input)}`,
      "listen",
    );
  }
  return { host, port: port! };
}

function listenAddr(l: { host: string; port: number }): string {
  return isIPv6(l.host) ? `[${l.host}]:${l.port}` : `${l.host}:${l.port}`;
}

/**
 * An upstream the edge may proxy to: `http://<ip or host name>:<port>` and nothing else. Unix
 * sockets (and the host name "unix", which nginx would read as one) are refused: the admin API
 * listens on a unix socket and must never be routable.
 */
export function parseUpstream(
  input: unknown,
  field = "upstream",
): { host: string; port: number; url: string } {
  const refuse = (why: string): never =>
    invalid(`${field} must be http://<address>:<port> (${why}), got ${JSON.stringify(input)}`, field);
  if (typeof input !== "string" || input.length > 300) return refuse("a string");
  if (/unix:/i.test(input)) return refuse("unix sockets are never routed");
  let u: URL;
  try {
    u = new URL(input);
  } catch {
    return refuse("not a URL");
  }
  if (u.protocol !== "http:") refuse("plain http to a local or private address");
  if (u.username || u.password || u.search || u.hash || (u.pathname !== "/" && u.pathname !== "")) {
    refuse("no path, query or credentials");
  }
  if (!u.port) refuse("the port is required");
  const bare = u.hostname.replace(/^\[(.*)\]$/, "$1");
  const hostOk = isIPv4(bare) || isIPv6(bare) || (DOMAIN_RE.test(bare) && bare !== "unix");
  if (!hostOk) refuse("an IP address or host name");
  const host = isIPv6(bare) ? `[${bare}]` : bare;
  return { host, port: Number(u.port), url: `http://${host}:${u.port}` };
}

/** Validates and normalises routes: tenant names are DNS labels, unique, not reserved. */
export function validateRoutes(routes: readonly EdgeRoute[]): EdgeRoute[] {
  const seen = new Set<string>();
  return routes.map((r, i) => {
    const tenant = parseTenantName(r?.tenant);
    if ((RESERVED_LABELS as readonly string[]).includes(tenant)) {
      invalid(
        `tenant name ${JSON.stringify(tenant)} is reserved for the platform's own host name`,
        `routes[${i}]`,
      );
    }
    if (seen.has(tenant)) invalid(`tenant ${JSON.stringify(tenant)} is routed twice`, `routes[${i}]`);
    seen.add(tenant);
    return { tenant, upstream: parseUpstream(r.upstream, `routes[${i}].upstream`).url };
  });
}

const LIMIT_RANGES: Record<keyof EdgeLimits, [number, number]> = {
  clientRatePerSecond: [1, 1_000_000],
  clientBurst: [0, 1_000_000],
  tenantRatePerSecond: [1, 1_000_000],
  tenantBurst: [0, 1_000_000],
  clientConnections: [1, 65_535],
  tenantConnections: [1, 65_535],
  maxBodyBytes: [1024, 1024 * 1024 * 1024],
  headerTimeoutSeconds: [1, 3600],
  bodyTimeoutSeconds: [1, 3600],
  sendTimeoutSeconds: [1, 3600],
  keepaliveTimeoutSeconds: [0, 3600],
  upstreamIdleTimeoutSeconds: [1, 7 * 24 * 3600],
};

/** Fills defaults and checks every limit is a whole number in its range; unknown keys are refused. */
export function validateLimits(input: Partial<EdgeLimits> = {}): EdgeLimits {
  for (const k of Object.keys(input)) {
    if (!(k in LIMIT_RANGES)) invalid(`unknown edge limit ${JSON.stringify(k)}`, `limits.${k}`);
  }
  const out = { ...DEFAULT_EDGE_LIMITS, ...input };
  for (const [k, [min, max]] of Object.entries(LIMIT_RANGES) as Array<[keyof EdgeLimits, [number, number]]>) {
    const v = out[k];
    if (!Number.isInteger(v) || v < min || v > max) {
      invalid(
        `edge limit ${k} must be a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`,
        `limits.${k}`,
      );
    }
  }
  return out;
}

// ---- rendering --------------------------------------------------------------------------------

function checkConfig(cfg: EdgeConfig): void {
  if (!GENERATION_RE.test(cfg.generation))
    invalid(`bad generation ${JSON.stringify(cfg.generation)}`, "generation");
  if (!USER_RE.test(cfg.user))
    invalid(`edge user must be a system user name, got ${JSON.stringify(cfg.user)}`, "user");
  parseDomain(cfg.domain);
  parseListen(cfg.listen);
  validateLimits(cfg.limits);
  for (const [what, p] of Object.entries({ ...cfg.paths, certFile: cfg.certFile, keyFile: cfg.keyFile })) {
    assertSafePath(p, what);
  }
  if (cfg.waf) {
    assertSafePath(cfg.system.modsecurityModule, "modsecurityModule");
    assertSafePath(cfg.system.unicodeMapFile, "unicodeMapFile");
    if (!cfg.crsRules) invalid("the WAF is on but no CRS rules were given", "crsRules");
  }
  if (
    cfg.workerProcesses !== "auto" &&
    !(Number.isInteger(cfg.workerProcesses) && cfg.workerProcesses >= 1)
  ) {
    invalid("workerProcesses must be a positive whole number or auto", "workerProcesses");
  }
  if (!Number.isInteger(cfg.maxOpenFiles) || cfg.maxOpenFiles < 512) {
    invalid("maxOpenFiles must be a whole number of at least 512", "maxOpenFiles");
  }
  if (!Number.isInteger(cfg.workerShutdownSeconds) || cfg.workerShutdownSeconds < 1) {
    invalid("workerShutdownSeconds must be a positive whole number", "workerShutdownSeconds");
  }
}

/** ModSecurity's main configuration: engine settings, body checks, audit log, CRS setup and rules. */
export function renderModsecurity(cfg: EdgeConfig): string {
  const l = cfg.limits;
  const p = cfg.paths;
  return `# Rendered by clawkeep (src/edge/render.ts); replaced on every render. Do not edit.
SecRuleEngine On
SecRequestBodyAccess On
SecRequestBodyLimit ${l.maxBodyBytes}
SecRequestBodyNoFilesLimit ${l.maxBodyBytes}
SecRequestBodyLimitAction Reject
SecRequestBodyJsonDepthLimit 512
SecArgumentsLimit 1000
SecPcreMatchLimit 1000
SecPcreMatchLimitRecursion 1000
# Responses come from the tenant's own gateway: not inspected (costly, and nothing to block there).
SecResponseBodyAccess Off
SecTmpDir ${p.tmp}/modsec
SecDataDir ${p.tmp}/modsec
SecArgumentSeparator &
SecCookieFormat 0
SecUnicodeMapFile ${cfg.system.unicodeMapFile} 20127
SecStatusEngine Off
# Audit log: one JSON line per transaction in which a rule matched. Parts A (who, when, which
# transaction: "<tenant>:<request id>") and H (matched rules); never headers or bodies (tokens).
SecAuditEngine RelevantOnly
SecAuditLogType Serial
SecAuditLogFormat JSON
SecAuditLogParts AHZ
SecAuditLog ${p.logs}/waf-audit.log

# Body parsing and its failures (from ModSecurity's recommended configuration). The multipart
# checks are chained behind the body processor: only a multipart body sets their variables, and
# MULTIPART_STRICT_ERROR is costly to compute on every request.
SecRule REQUEST_HEADERS:Content-Type "^(?:application(?:/soap\\+|/)|text/)xml" "id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQUEST_HEADERS:Content-Type "^application/json" "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule &ARGS "@ge 1000" "id:200007,phase:2,t:none,log,deny,status:400,msg:'Failed to fully parse request body due to large argument count',severity:2"
SecRule REQBODY_ERROR "!@eq 0" "id:200002,phase:2,t:none,log,deny,status:400,msg:'Failed to parse request body.',logdata:'%{reqbody_error_msg}',severity:2"
SecRule REQBODY_PROCESSOR "@streq MULTIPART" "id:200003,phase:2,t:none,log,deny,status:400,msg:'Multipart request body failed strict validation',chain"
    SecRule MULTIPART_STRICT_ERROR "!@eq 0" "t:none"
SecRule REQBODY_PROCESSOR "@streq MULTIPART" "id:200004,phase:2,t:none,log,deny,msg:'Multipart parser detected a possible unmatched boundary.',chain"
    SecRule MULTIPART_UNMATCHED_BOUNDARY "@eq 1" "t:none"
# ModSecurity's own failures (PCRE limits in later libmodsecurity versions; 3.0.9 flags none). Named,
# not TX:/^MSC_/, which would compile a regular expression on every request.
SecRule TX:MSC_PCRE_LIMITS_EXCEEDED "!@streq 0" "id:200005,phase:2,t:none,deny,msg:'ModSecurity internal error flagged: %{MATCHED_VAR_NAME}'"

# OWASP CRS, paranoia level 1 (tuned: see src/edge/crs.ts).
${cfg.crsRules ?? ""}
`;
}

function contentName(prefix: string, text: string): string {
  return `${prefix}-${createHash("sha256").update(text).digest("hex").slice(0, 16)}.conf`;
}

/** One public host: a tenant, or the platform's api/console. */
interface Site {
  label: string;
  upstreamName: string;
  upstream: { host: string; port: number };
  /** proxy_bind: the source address of connections to the upstream. */
  bind?: string;
}

function renderSite(cfg: EdgeConfig, s: Site): string {
  const l = cfg.limits;
  const p = cfg.paths;
  const waf = cfg.waf ? `\n    modsecurity_transaction_id "${s.label}:$request_id";` : "";
  return `
  upstream ${s.upstreamName} {
    server ${s.upstream.host}:${s.upstream.port} max_fails=0;
    keepalive 16;
    # Below Node's 5 s server keep-alive, so nginx never reuses a connection the gateway is closing.
    keepalive_timeout 4s;
  }
  server {
    listen ${listenAddr(cfg.listen)} ssl;
    server_name ${s.label}.${cfg.domain};
    access_log ${p.logs}/access.log ck_access buffer=64k flush=2s;
    error_log ${p.logs}/tenants/${s.label}.error.log warn;${waf}
    add_header Strict-Transport-Security "max-age=31536000" always;
    if ($ck_misdirected) { return 421; }
    limit_req zone=ck_client_req burst=${l.clientBurst} nodelay;
    limit_req zone=ck_tenant_req burst=${l.tenantBurst} nodelay;
    limit_conn ck_client_conn ${l.clientConnections};
    limit_conn ck_tenant_conn ${l.tenantConnections};
    location / {
      proxy_pass http://${s.upstreamName};${s.bind ? `\n      proxy_bind ${s.bind};` : ""}
    }
  }
`;
}

/** Renders the whole edge. Throws ValidationError when any value is not acceptable. */
export function renderEdge(cfg: EdgeConfig): RenderedEdge {
  checkConfig(cfg);
  const routes = validateRoutes(cfg.routes);
  const l = cfg.limits;
  const p = cfg.paths;
  const sites: Site[] = [];
  if (cfg.apiUpstream) {
    sites.push({
      label: "api",
      upstreamName: "ck_api",
      upstream: parseUpstream(cfg.apiUpstream, "apiUpstream"),
    });
  }
  if (cfg.consoleUpstream) {
    sites.push({
      label: "console",
      upstreamName: "ck_console",
      upstream: parseUpstream(cfg.consoleUpstream, "consoleUpstream"),
    });
  }
  const bind = cfg.tenantSourceAddress ?? undefined;
  if (bind !== undefined && !/^\d{1,3}(\.\d{1,3}){3}$/.test(bind))
    invalid(
      `tenantSourceAddress must be an IPv4 address, got ${JSON.stringify(bind)}`,
      "tenantSourceAddress",
    );
  for (const r of routes)
    sites.push({
      label: r.tenant,
      upstreamName: `ck_t_${r.tenant}`,
      upstream: parseUpstream(r.upstream),
      ...(bind ? { bind } : {}),
    });

  const files: RenderedEdge["files"] = [];
  let wafHttp = "";
  let wafOff = "";
  let loadModule = "";
  if (cfg.waf) {
    const modsec = renderModsecurity(cfg);
    const name = contentName("modsecurity", modsec);
    files.push({ name, text: modsec });
    loadModule = `load_module ${cfg.system.modsecurityModule};\n`;
    wafHttp = `\n  modsecurity on;\n  modsecurity_rules_file ${join(p.conf, name)};\n`;
    wafOff = "\n    modsecurity off;";
  }

  const nginxConf = `# Rendered by clawkeep (src/edge/render.ts); replaced on every change. Do not edit.
# generation ${cfg.generation}
${loadModule}user ${cfg.user} ${cfg.user};
worker_processes ${cfg.workerProcesses};
worker_rlimit_nofile ${cfg.maxOpenFiles};
worker_shutdown_timeout ${cfg.workerShutdownSeconds}s;
pid ${p.run}/nginx.pid;
lock_file ${p.run}/nginx.lock;
error_log ${p.logs}/error.log warn;
pcre_jit on;

events {
  worker_connections ${Math.max(256, Math.min(16384, Math.floor(cfg.maxOpenFiles / 2)))};
}

http {
  server_tokens off;
  server_names_hash_bucket_size 256;
  server_names_hash_max_size 8192;
  default_type application/octet-stream;
  tcp_nodelay on;
  log_format ck_access escape=json '{"time":"$time_iso8601","host":"$server_name","client":"$remote_addr",'
    '"method":"$request_method","path":"$uri","status":$status,"bytes":$body_bytes_sent,'
    '"seconds":$request_time,"upstream_seconds":"$upstream_response_time","request_id":"$request_id"}';
  access_log off;
  client_body_temp_path ${p.tmp}/body;
  proxy_temp_path ${p.tmp}/proxy;
  fastcgi_temp_path ${p.tmp}/fastcgi;
  uwsgi_temp_path ${p.tmp}/uwsgi;
  scgi_temp_path ${p.tmp}/scgi;

  # TLS 1.3 only.
  ssl_certificate ${cfg.certFile};
  ssl_certificate_key ${cfg.keyFile};
  ssl_protocols TLSv1.3;
  ssl_ecdh_curve X25519:prime256v1:secp384r1;
  ssl_session_cache shared:ck_tls:10m;
  ssl_session_timeout 1h;
  ssl_session_tickets off;

  # Slow clients and big requests.
  client_header_timeout ${l.headerTimeoutSeconds}s;
  client_body_timeout ${l.bodyTimeoutSeconds}s;
  send_timeout ${l.sendTimeoutSeconds}s;
  keepalive_timeout ${l.keepaliveTimeoutSeconds}s;
  keepalive_requests 1000;
  reset_timedout_connection on;
  client_header_buffer_size 4k;
  large_client_header_buffers 4 16k;
  client_body_buffer_size 64k;
  client_max_body_size ${l.maxBodyBytes};

  # Rates and concurrency, per client address and per public host name (tenant).
  limit_req_zone $binary_remote_addr zone=ck_client_req:16m rate=${l.clientRatePerSecond}r/s;
  limit_req_zone $server_name zone=ck_tenant_req:4m rate=${l.tenantRatePerSecond}r/s;
  limit_conn_zone $binary_remote_addr zone=ck_client_conn:16m;
  limit_conn_zone $server_name zone=ck_tenant_conn:4m;
  limit_req_status 429;
  limit_conn_status 429;

  map $http_upgrade $ck_connection {
    default upgrade;
    "" "";
  }
  # A TLS name (SNI) of this domain that differs from the Host header is a misdirected request
  # (RFC 9110, 421). No SNI, or an IP literal some clients send, leaves the Host header to decide.
  map "$ssl_server_name|$host" $ck_misdirected {
    default 0;
    "~^([^|]+\\.${cfg.domain.replace(/\./g, "\\.")})\\|(?!\\1$)" 1;
  }

  proxy_http_version 1.1;
  proxy_set_header Host $host;
  proxy_set_header Upgrade $http_upgrade;
  proxy_set_header Connection $ck_connection;
  proxy_set_header X-Forwarded-For $remote_addr;
  proxy_set_header X-Forwarded-Proto https;
  proxy_set_header X-Forwarded-Host $host;
  proxy_set_header X-Real-IP $remote_addr;
  proxy_connect_timeout 5s;
  proxy_read_timeout ${l.upstreamIdleTimeoutSeconds}s;
  proxy_send_timeout ${l.upstreamIdleTimeoutSeconds}s;
  # Streams (SSE chat completions) reach the client as they are produced.
  proxy_buffering off;
  proxy_hide_header X-Powered-By;
${wafHttp}
  # The probe: root-only unix socket in the run directory; answers which config serves.
  server {
    listen unix:${p.run}/probe.sock;
    access_log off;${wafOff}
    location = /generation {
      default_type text/plain;
      return 200 "${cfg.generation}";
    }
    location / {
      return 404;
    }
  }

  # Any host name the edge does not serve.
  server {
    listen ${listenAddr(cfg.listen)} ssl default_server;
    server_name _;
    access_log off;${wafOff}
    return 421;
  }
${sites.map((s) => renderSite(cfg, s)).join("")}}
`;
  return { nginxConf, files };
}
