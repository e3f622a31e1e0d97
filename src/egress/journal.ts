import { createWriteStream, type WriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { EgressError } from "./errors.ts";
import type { DenyReason } from "./policy.ts";

/**
 * One line of the connection log. It names the destination (host, port, address) and never
 * carries a URL path, a header or a body: paths hold secrets (api.telegram.org/bot<token>/...).
 */
export interface ConnectionLogEntry {
  /** When the connection arrived (ISO 8601). */
  time: string;
  /** Null when the source address belongs to no tenant. */
  tenant: string | null;
  /** The client's source address. */
  source: string;
  /** CONNECT, or the method of a plain HTTP request. */
  method: string;
  host: string | null;
  port: number | null;
  /** The address the proxy connected to (allow), or the one it refused (forbidden-address). */
  address: string | null;
  /** Bytes sent to the destination (TCP payload, request headers included). */
  bytesUp: number;
  /** Bytes received from the destination. */
  bytesDown: number;
  verdict: "allow" | "deny";
  /** "allowlisted" when allowed; the deny reason otherwise. */
  reason: "allowlisted" | DenyReason;
  /** Why, in words (deny), or what the destination answered (allowed plain HTTP). */
  detail?: string;
  /** HTTP status the client got from the proxy (deny) or the destination (plain HTTP). */
  status?: number;
  /** How an allowed connection failed or was cut: connect-failed, idle-timeout, policy-revoked, ... */
  error?: string;
  durationMs: number;
}

export interface TenantCounters {
  tenant: string;
  allowed: number;
  denied: number;
  bytesUp: number;
  bytesDown: number;
  /** Connections open now (being set up or carrying data). */
  active: number;
}

interface TenantRecord {
  counters: Omit<TenantCounters, "active" | "tenant">;
  recent: ConnectionLogEntry[];
}

/**
 * The per-proxy connection log: an append-only JSON-lines file (mode 0600), plus, in memory,
 * the recent entries and the counters of each tenant. Counters start at zero with the process.
 */
export class ConnectionJournal {
  readonly path: string;
  readonly #file: WriteStream;
  readonly #recentSize: number;
  readonly #tenants = new Map<string, TenantRecord>();
  readonly #unknown: ConnectionLogEntry[] = [];
  #unknownDenied = 0;
  #closed = false;
  #failure: Error | null = null;

  private constructor(path: string, file: WriteStream, recentSize: number) {
    this.path = path;
    this.#file = file;
    this.#recentSize = recentSize;
    file.on("error", (err) => {
      this.#failure ??= err;
    });
  }

  /** Set once a write to the file failed (disk full, file gone): the proxy then refuses new connections. */
  get failure(): Error | null {
    return this.#failure;
  }

  /** Opens (creating when missing) the log file for appending. Existing lines are kept. */
  static async open(path: string, recentSize = 1000): Promise<ConnectionJournal> {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const file = createWriteStream(path, { flags: "a", mode: 0o600 });
    await new Promise<void>((resolve, reject) => {
      file.once("open", () => resolve());
      file.once("error", (err) =>
        reject(new EgressError("runtime_failed", `cannot open egress log ${path}`, { cause: err })),
      );
    });
    return new ConnectionJournal(path, file, recentSize);
  }

  #record(tenant: string): TenantRecord {
    let r = this.#tenants.get(tenant);
    if (!r) {
      r = { counters: { allowed: 0, denied: 0, bytesUp: 0, bytesDown: 0 }, recent: [] };
      this.#tenants.set(tenant, r);
    }
    return r;
  }

  /** Makes a tenant known (zero counters), so asking for its counters before any traffic works. */
  touch(tenant: string): void {
    this.#record(tenant);
  }

  knows(tenant: string): boolean {
    return this.#tenants.has(tenant);
  }

  write(entry: ConnectionLogEntry): void {
    if (!this.#closed && !this.#failure) this.#file.write(`${JSON.stringify(entry)}\n`);
    const ring = entry.tenant === null ? this.#unknown : this.#record(entry.tenant).recent;
    ring.push(entry);
    if (ring.length > this.#recentSize) ring.splice(0, ring.length - this.#recentSize);
    if (entry.tenant === null) {
      this.#unknownDenied++;
      return;
    }
    const c = this.#record(entry.tenant).counters;
    if (entry.verdict === "allow") c.allowed++;
    else c.denied++;
    c.bytesUp += entry.bytesUp;
    c.bytesDown += entry.bytesDown;
  }

  /** The tenant's most recent entries, oldest first. */
  recent(tenant: string, limit = 100): ConnectionLogEntry[] {
    const ring = this.#tenants.get(tenant)?.recent ?? [];
    return ring.slice(Math.max(0, ring.length - limit));
  }

  /** Recent entries whose source address belonged to no tenant, oldest first. */
  recentUnknown(limit = 100): ConnectionLogEntry[] {
    return this.#unknown.slice(Math.max(0, this.#unknown.length - limit));
  }

  counters(tenant: string, active: number): TenantCounters {
    const c = this.#tenants.get(tenant)?.counters ?? { allowed: 0, denied: 0, bytesUp: 0, bytesDown: 0 };
    return { tenant, ...c, active };
  }

  tenantNames(): string[] {
    return [...this.#tenants.keys()].sort();
  }

  get unknownSourceDenied(): number {
    return this.#unknownDenied;
  }

  /** Flushes and closes the file. Entries written afterwards are kept in memory only. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#failure || this.#file.destroyed) {
      this.#file.destroy();
      return;
    }
    await new Promise<void>((resolve) => {
      this.#file.once("error", () => resolve());
      this.#file.end(() => resolve());
    });
  }
}
