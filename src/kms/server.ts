import type { IncomingMessage, ServerResponse } from "node:http";
import { dirname, isAbsolute } from "node:path";
import type { Logger } from "../lib/log.ts";
import { isServiceError } from "../service/errors.ts";
import { peerCredentials } from "../service/peer.ts";
import { readBody, sendBytes, sendError, sendJson, serveSocket } from "../service/socket-server.ts";
import { stopOnAbort } from "../service/stop.ts";
import { KmsEngine } from "./engine.ts";
import { KmsError, type KmsFailure, kmsError } from "./errors.ts";
import { parseKeyTier, parsePurpose, parseTenantId } from "./format.ts";
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
 * Callers are identified by SO_PEERCRED (uid, pid); a uid not in allowedUids gets 403 even if the
 * socket's permissions were loosened, and so does a caller whose uid cannot be read (fail closed). The socket, its directory, the stale
 * socket check and the peer check are the service kit's (src/service/socket-server.ts).
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

function sendKmsError(res: ServerResponse, err: KmsError): void {
  sendError(res, STATUS[err.reason], { code: err.code, reason: err.reason, message: err.message });
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

/** Who called, for the audit log: uid and pid, or "socket" where peer credentials cannot be read. */
async function callerOf(req: IncomingMessage): Promise<AuditCaller> {
  const p = await peerCredentials(req.socket);
  return p ? { uid: p.uid, pid: p.pid } : "socket";
}

/** The kit's socket errors in the key service's own shape. */
function asKmsError(err: unknown): unknown {
  if (!isServiceError(err)) return err;
  const reason: KmsFailure =
    err.reason === "already_running"
      ? "already_running"
      : err.reason === "bad_socket_path"
        ? "invalid_input"
        : "unavailable";
  return kmsError(reason, err.message, err);
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

  await ensurePrivateDir(dirname(opts.socket));
  const engine = await KmsEngine.open({
    dir: opts.dir,
    rootKeyPath: opts.rootKeyPath,
    auditPath: opts.auditPath,
  });
  let peerOk = false;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const caller = await callerOf(req);
    const call = { caller };
    const url = new URL(req.url ?? "/", "http://kms");
    const method = req.method ?? "GET";
    const path = url.pathname;
    const body = await readBody(req, MAX_BODY, () =>
      kmsError("invalid_input", `request body is larger than ${MAX_BODY} bytes`),
    );
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

  try {
    const server = await serveSocket({
      service: "the key service",
      socket: opts.socket,
      handler: handle,
      allowedUids: opts.allowedUids ?? [myUid],
      keepAliveTimeout: 30_000,
      onRefused: async (caller, req, why) => {
        log?.warn({ uid: caller.uid, pid: caller.pid }, "refused a caller");
        await engine
          .recordRefusal(
            { uid: caller.uid, pid: caller.pid },
            `${req.method} ${(req.url ?? "").split("?")[0]}`,
            why,
          )
          .catch(() => {});
        return { code: "kms_failed", reason: "forbidden", message: why };
      },
      onError: (e, _req, res) => {
        const err =
          e instanceof KmsError ? e : new KmsError(`internal error: ${(e as Error).message}`, e, "internal");
        if (
          err.reason === "internal" ||
          err.reason === "store_corrupt" ||
          err.reason.startsWith("root_key")
        ) {
          log?.error({ reason: err.reason, err: err.message }, "key service call failed");
        }
        sendKmsError(res, err);
      },
    });
    peerOk = server.peerCredentials;
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

    let markClosed!: () => void;
    const closed = new Promise<void>((r) => {
      markClosed = r;
    });
    const close = await stopOnAbort(async () => {
      await server.close();
      await engine.close();
      log?.info({ socket: opts.socket }, "key service stopped");
      markClosed();
    }, opts.signal);
    return {
      socket: opts.socket,
      dir: opts.dir,
      rootKeyId: engine.rootKeyId,
      peerCredentials: peerOk,
      close,
      closed,
    };
  } catch (err) {
    await engine.close();
    throw asKmsError(err);
  }
}
