import type { Tier } from "../core/tenant.ts";
import { isServiceError } from "../service/errors.ts";
import { errorOf, SocketClient, type SocketReply } from "../service/socket-client.ts";
import { isKmsFailure, kmsError } from "./errors.ts";
import { parseKeyTier, parsePurpose, parseTenantId } from "./format.ts";
import type {
  AuditEntry,
  AuditQuery,
  CallOptions,
  KmsHealth,
  StarterRotation,
  TenantKeyInfo,
  TenantKeyService,
} from "./service.types.ts";
import type { SealContext } from "./types.ts";

/**
 * Talks to the key service over its unix socket (server.ts). Implements KeyService, so the control
 * plane's seal/unseal calls go to the service without callers changing, plus the key tree.
 * Connections are kept alive; a call on a connection the service closed (it restarted) is retried
 * once on a new one (the service kit's SocketClient). Key material arrives as raw bytes;
 * intermediate buffers are zeroed.
 */
export class KmsClient implements TenantKeyService {
  readonly socketPath: string;
  readonly #client: SocketClient;

  constructor(socketPath: string, opts: { timeoutMs?: number } = {}) {
    this.socketPath = socketPath;
    this.#client = new SocketClient({
      service: "the key service",
      socketPath,
      timeoutMs: opts.timeoutMs ?? 30_000,
      keepAlive: true,
    });
  }

  /** The kit's connection errors with the key service's reasons and words. */
  #mapError(err: unknown): unknown {
    if (!isServiceError(err)) return err;
    const cause = err.cause as Error | undefined;
    switch (err.reason) {
      case "not_running":
        return kmsError(
          "unavailable",
          `the key service is not running (no socket at ${this.socketPath})`,
          cause,
        );
      case "permission_denied":
        return kmsError(
          "forbidden",
          `permission denied on ${this.socketPath}: only the control plane's uid may use the key service`,
          cause,
        );
      case "unreachable":
        return kmsError(
          "unavailable",
          `cannot reach the key service at ${this.socketPath}: ${cause?.message ?? err.message}`,
          cause,
        );
      default:
        return kmsError("unavailable", err.message, cause);
    }
  }

  async #call(
    method: string,
    path: string,
    body?: Buffer,
    opts?: CallOptions,
    type = "application/octet-stream",
  ): Promise<SocketReply> {
    let r: SocketReply;
    try {
      r = await this.#client.request({
        method,
        path,
        ...(body ? { body, contentType: type } : {}),
        signal: opts?.signal,
      });
    } catch (err) {
      throw this.#mapError(err);
    }
    if (r.status >= 400) {
      const e = errorOf(r);
      r.body.fill(0);
      throw kmsError(
        isKmsFailure(e?.reason) ? e.reason : "internal",
        typeof e?.message === "string" ? e.message : `the key service answered HTTP ${r.status}`,
      );
    }
    return r;
  }

  async #json<T>(method: string, path: string, data?: unknown, opts?: CallOptions): Promise<T> {
    const body = data === undefined ? undefined : Buffer.from(JSON.stringify(data));
    const r = await this.#call(method, path, body, opts, "application/json");
    return JSON.parse(r.body.toString("utf8")) as T;
  }

  async #bytes(path: string, body: Buffer | undefined, opts?: CallOptions): Promise<Buffer> {
    const r = await this.#call("POST", path, body, opts);
    if (!r.type.startsWith("application/octet-stream")) {
      r.body.fill(0);
      throw kmsError(
        "internal",
        `the key service answered ${r.type || "no content type"}, expected raw bytes`,
      );
    }
    return r.body;
  }

  #tenant(tenantId: string): string {
    return `/v1/tenants/${encodeURIComponent(parseTenantId(tenantId))}`;
  }

  async health(opts?: CallOptions): Promise<KmsHealth> {
    return this.#json("GET", "/v1/health", undefined, opts);
  }

  async createTenantKeys(tenantId: string, tier: Tier, opts?: CallOptions): Promise<TenantKeyInfo> {
    return this.#json("POST", `${this.#tenant(tenantId)}/keys`, { tier: parseKeyTier(tier) }, opts);
  }

  async describeTenant(tenantId: string, opts?: CallOptions): Promise<TenantKeyInfo> {
    return this.#json("GET", `${this.#tenant(tenantId)}/keys`, undefined, opts);
  }

  /** The tenant's 64-byte volume key. Zero it (`key.fill(0)`) as soon as it has been used. */
  async getVolumeKey(tenantId: string, opts?: CallOptions): Promise<Buffer> {
    const key = await this.#bytes(`${this.#tenant(tenantId)}/volume-key`, undefined, opts);
    if (key.length !== 64) {
      key.fill(0);
      throw kmsError("internal", `the key service returned a ${key.length}-byte volume key, expected 64`);
    }
    return key;
  }

  async seal(plaintext: Buffer, ctx: SealContext, opts?: CallOptions): Promise<Buffer> {
    const q = `?purpose=${encodeURIComponent(parsePurpose(ctx.purpose))}`;
    return this.#bytes(`${this.#tenant(ctx.tenantId)}/seal${q}`, plaintext, opts);
  }

  async unseal(sealed: Buffer, ctx: SealContext, opts?: CallOptions): Promise<Buffer> {
    const q = `?purpose=${encodeURIComponent(parsePurpose(ctx.purpose))}`;
    return this.#bytes(`${this.#tenant(ctx.tenantId)}/unseal${q}`, sealed, opts);
  }

  async rotateKek(tenantId: string, opts?: CallOptions): Promise<TenantKeyInfo> {
    return this.#json("POST", `${this.#tenant(tenantId)}/rotate-kek`, undefined, opts);
  }

  async rotateStarterKek(opts?: CallOptions): Promise<StarterRotation> {
    return this.#json("POST", "/v1/starter/rotate-kek", undefined, opts);
  }

  async destroyTenant(tenantId: string, opts?: CallOptions): Promise<void> {
    await this.#json("DELETE", this.#tenant(tenantId), undefined, opts);
  }

  async audit(query: AuditQuery = {}, opts?: CallOptions): Promise<AuditEntry[]> {
    const q = new URLSearchParams();
    if (query.tenant !== undefined) q.set("tenant", parseTenantId(query.tenant));
    if (query.limit !== undefined) q.set("limit", String(query.limit));
    const s = q.toString();
    return (
      await this.#json<{ entries: AuditEntry[] }>("GET", `/v1/audit${s ? `?${s}` : ""}`, undefined, opts)
    ).entries;
  }

  /** Closes kept-alive connections. The service keeps running. */
  async close(): Promise<void> {
    this.#client.close();
  }
}
