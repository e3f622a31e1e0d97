import { chmod, lstat, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { connect, type Socket } from "node:net";
import { dirname, isAbsolute } from "node:path";
import type { Logger } from "../lib/log.ts";
import { KmsEngine } from "./engine.ts";
import { KmsError, type KmsFailure, kmsError } from "./errors.ts";
import { parseKeyTier, parsePurpose, parseTenantId } from "./format.ts";
import { peerCredentials, peerCredentialsAvailable } from "./peer.ts";
import type { AuditCaller, KmsHealth, KmsServeOptions } from "./service.types.ts";
import { ensurePrivateDir } from "./store.ts";

/**
 * The key service's socket API: HTTP/1.1 over a unix socket (0600, in a 0700 directory). Key
 * material and plaintext travel as raw bytes (application/octet-stream), never in JSON strings,
 * so both ends can zero them; everything else is JSON. Errors: `{"error": {"code": "kms_failed",
 * "reason", "message"}}`.
 *
 *   GET    /v1/health                         -> KmsHealth
 *   POST   /v1/tenants/:id/keys   {"tier"}    -> TenantKeyInfo (idempotent)
 *   GET    /v1/tenants/:id/keys               -> TenantKeyInfo
 *   POST   /v1/tenants/:id/volume-key         -> 64 raw bytes (x-kms-key-id)
 *   POST   /v1/tenants/:id/seal?purpose=P     raw plaintext -> raw sealed value
 *   POST   /v1/tenants/:id/unseal?purpose=P   raw sealed value -> raw plaintext
 *   POST   /v1/tenants/:id/rotate-kek         -> TenantKeyInfo
 *   DELETE /v1/tenants/:id                    -> {"destroyed": id}
 *   POST   /v1/starter/rotate-kek             -> StarterRotation
 *   GET    /v1/audit?tenant=&limit=           -> {"entries": AuditEntry[]}
 *
 * Callers are identified by SO_PEERCRED (uid, pid) where it can be read; a uid not in allowedUids
 * gets 403 even if the socket's permissions were loosened.
 */

const MAX_BODY = 1024 * 1024;

const STATUS: Record<KmsFailure, number> = {
  invalid_input: 400,
  forbidden: 403,
  unknown_tenant: 404,
  tenant_destroyed: 410,
  tier_conflict: 409,
  shared_kek: 409,
  truncated: 422,
  unknown_format: 422,
  wrong_key_version: 422,
  not_authentic: 422,
  store_corrupt: 500,
  root_key_missing: 500,
  root_key_wrong: 500,
  root_key_invalid: 500,
  already_running: 503,
  unavailable: 503,
  internal: 500,
};

export interface KmsServer {
  socket: string;
  dir: string;
  rootKeyId: string;
  peerCredentials: boolean;
  /** Stops accepting calls, finishes those in flight, zeroes the root key, removes the socket. */
  close(): Promise<void>;
  /** Settles when the server has closed (after close() or the abort signal). */
  closed: Promise<void>;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const wipe = () => {
      for (const c of chunks) c.fill(0);
    };
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        c.fill(0);
        wipe();
        req.destroy();
        reject(kmsError("invalid_input", `request body is larger than ${MAX_BODY} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      wipe();
      resolve(body);
    });
    req.on("error", (err) => {
      wipe();
      reject(err);
    });
  });
}

function sendJson(res: ServerResponse, status: number, data: unknown): void {
  const body = Buffer.from(JSON.stringify(data));
  res.writeHead(status, { "content-type": "application/json", "content-length": body.length });
  res.end(body);
}

/** Sends raw bytes and zeroes them once written (or once the connection is gone). */
function sendBytes(res: ServerResponse, bytes: Buffer, headers: Record<string, string> = {}): void {
  let wiped = false;
  const wipe = () => {
    if (!wiped) bytes.fill(0);
    wiped = true;
  };
  res.on("close", wipe);
  res.writeHead(200, {
    "content-type": "application/octet-stream",
    "content-length": bytes.length,
    ...headers,
  });
  res.end(bytes, wipe);
}

function sendError(res: ServerResponse, err: KmsError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, STATUS[err.reason], { error: { code: err.code, reason: err.reason, message: err.message } });
}

function parseJson(body: Buffer): Record<string, unknown> {
  try {
    const v = JSON.parse(body.toString("utf8") || "{}") as unknown;
    if (typeof v === "object" && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw kmsError("invalid_input", "request body must be a JSON object");
}

function strictKeys(obj: Record<string, unknown>, allowed: string[]): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) throw kmsError("invalid_input", `unknown field ${JSON.stringify(k)}`);
  }
}

/** Refuses to remove anything at the socket path but a dead socket; a live one means another service. */
async function clearStaleSocket(path: string): Promise<void> {
  let st: Awaited<ReturnType<typeof lstat>>;
  try {
    st = await lstat(path);
  } catch {
    return;
  }
  if (!st.isSocket())
    throw kmsError("invalid_input", `${path} exists and is not a socket; refusing to replace it`);
  const live = await new Promise<boolean>((resolve) => {
    const s = connect(path);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
  if (live) throw kmsError("already_running", `another process already listens on ${path}`);
  await rm(path, { force: true });
}

/**
 * Runs the key service in this process: opens (or initialises) the store, takes its lock, and
 * serves the socket API until close() or the abort signal. Used by `src/kms/main.ts serve` and
 * `clawkeep kms serve`; the control plane starts it as a child process (supervisor.ts).
 */
export async function serveKms(opts: KmsServeOptions & { log?: Logger }): Promise<KmsServer> {
  for (const [what, p] of [
    ["store directory", opts.dir],
    ["socket path", opts.socket],
  ] as const) {
    if (!isAbsolute(p) || p.includes("\0"))
      throw kmsError("invalid_input", `the ${what} must be an absolute path, got ${JSON.stringify(p)}`);
  }
  if (Buffer.byteLength(opts.socket) > 100)
    throw kmsError("invalid_input", `socket path ${opts.socket} is too long for a unix socket`);
  if (opts.rootKeyPath !== undefined && !isAbsolute(opts.rootKeyPath)) {
    throw kmsError(
      "invalid_input",
      `the root key path must be absolute, got ${JSON.stringify(opts.rootKeyPath)}`,
    );
  }
  const log = opts.log;
  const myUid = process.getuid?.() ?? 0;
  const allowed = new Set(opts.allowedUids ?? [myUid]);

  await ensurePrivateDir(dirname(opts.socket));
  const engine = await KmsEngine.open({
    dir: opts.dir,
    rootKeyPath: opts.rootKeyPath,
    auditPath: opts.auditPath,
  });
  let server: Server | undefined;
  try {
    await clearStaleSocket(opts.socket);
    const peerOk = await peerCredentialsAvailable();
    const callers = new WeakMap<Socket, Promise<AuditCaller>>();
    const callerOf = (s: Socket): Promise<AuditCaller> => {
      let c = callers.get(s);
      if (!c) {
        c = peerCredentials(s).then((p) => (p ? { uid: p.uid, pid: p.pid } : "socket"));
        callers.set(s, c);
      }
      return c;
    };

    const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
      const caller = await callerOf(req.socket);
      const call = { caller };
      if (typeof caller === "object" && !allowed.has(caller.uid)) {
        const why = `uid ${caller.uid} (pid ${caller.pid}) may not use the key service`;
        log?.warn({ uid: caller.uid, pid: caller.pid }, "refused a caller");
        await engine
          .recordRefusal(caller, `${req.method} ${(req.url ?? "").split("?")[0]}`, why)
          .catch(() => {});
        req.resume();
        res.setHeader("connection", "close");
        sendError(res, kmsError("forbidden", why));
        return;
      }
      const url = new URL(req.url ?? "/", "http://kms");
      const method = req.method ?? "GET";
      const path = url.pathname;
      const body = await readBody(req);
      try {
        if (method === "GET" && path === "/v1/health") {
          const h: KmsHealth = {
            ok: true,
            pid: process.pid,
            rootKeyId: engine.rootKeyId,
            peerCredentials: peerOk,
          };
          return sendJson(res, 200, h);
        }
        if (method === "GET" && path === "/v1/audit") {
          const tenant = url.searchParams.get("tenant") ?? undefined;
          const limitRaw = url.searchParams.get("limit");
          const limit = limitRaw === null ? undefined : Number(limitRaw);
          return sendJson(res, 200, { entries: await engine.audit({ tenant, limit }, call) });
        }
        if (method === "POST" && path === "/v1/starter/rotate-kek") {
          return sendJson(res, 200, await engine.rotateStarterKek(call));
        }
        const m = /^\/v1\/tenants\/([^/]+)(?:\/(keys|volume-key|seal|unseal|rotate-kek))?$/.exec(path);
        if (m) {
          const tenantId = parseTenantId(decodeURIComponent(m[1]!));
          const action = m[2];
          if (method === "POST" && action === "keys") {
            const json = parseJson(body);
            strictKeys(json, ["tier"]);
            return sendJson(res, 200, await engine.createTenantKeys(tenantId, parseKeyTier(json.tier), call));
          }
          if (method === "GET" && action === "keys")
            return sendJson(res, 200, await engine.describeTenant(tenantId, call));
          if (method === "POST" && action === "volume-key") {
            return sendBytes(res, await engine.getVolumeKey(tenantId, call));
          }
          if (method === "POST" && (action === "seal" || action === "unseal")) {
            const purpose = parsePurpose(url.searchParams.get("purpose"));
            const out =
              action === "seal"
                ? await engine.seal(body, { tenantId, purpose }, call)
                : await engine.unseal(body, { tenantId, purpose }, call);
            return sendBytes(res, out);
          }
          if (method === "POST" && action === "rotate-kek")
            return sendJson(res, 200, await engine.rotateKek(tenantId, call));
          if (method === "DELETE" && action === undefined) {
            await engine.destroyTenant(tenantId, call);
            return sendJson(res, 200, { destroyed: tenantId });
          }
        }
        throw kmsError("invalid_input", `no such call: ${method} ${path}`);
      } finally {
        body.fill(0);
      }
    };

    server = createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
      handle(req, res).catch((e: unknown) => {
        const err =
          e instanceof KmsError ? e : new KmsError(`internal error: ${(e as Error).message}`, e, "internal");
        if (
          err.reason === "internal" ||
          err.reason === "store_corrupt" ||
          err.reason.startsWith("root_key")
        ) {
          log?.error({ reason: err.reason, err: err.message }, "key service call failed");
        }
        sendError(res, err);
      });
    });
    const s = server;
    const oldMask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        s.once("error", reject);
        s.listen(opts.socket, () => {
          s.off("error", reject);
          resolve();
        });
      });
    } finally {
      process.umask(oldMask);
    }
    await chmod(opts.socket, 0o600);
    const ino = (await lstat(opts.socket)).ino;
    log?.info(
      {
        socket: opts.socket,
        dir: opts.dir,
        rootKeyId: engine.rootKeyId,
        peerCredentials: peerOk,
        recovered: engine.recovered,
      },
      "key service is up",
    );

    let closing: Promise<void> | undefined;
    let markClosed!: () => void;
    const closed = new Promise<void>((r) => {
      markClosed = r;
    });
    const close = (): Promise<void> => {
      closing ??= (async () => {
        await new Promise<void>((resolve) => {
          s.close(() => resolve());
          s.closeIdleConnections();
        });
        await engine.close();
        try {
          if ((await lstat(opts.socket)).ino === ino) await rm(opts.socket, { force: true });
        } catch {
          // Already gone.
        }
        log?.info({ socket: opts.socket }, "key service stopped");
        markClosed();
      })();
      return closing;
    };
    if (opts.signal) {
      if (opts.signal.aborted) await close();
      else opts.signal.addEventListener("abort", () => void close(), { once: true });
    }
    return {
      socket: opts.socket,
      dir: opts.dir,
      rootKeyId: engine.rootKeyId,
      peerCredentials: peerOk,
      close,
      closed,
    };
  } catch (err) {
    server?.close();
    await engine.close();
    throw err;
  }
}
