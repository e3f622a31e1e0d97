import { type FileHandle, open, readFile } from "node:fs/promises";
import type { AuditEntry, AuditQuery } from "./service.types.ts";

/**
 * The append-only audit log: one JSON line per key-service call (time, caller, tenant, operation,
 * key id, ok/error). The file is opened O_APPEND, mode 0600, and only ever appended to. Entries for
 * calls that change keys are fsynced before the call returns. Never holds key material: entries are
 * built from ids and error messages, which never contain keys.
 */
export class AuditLog {
  readonly path: string;
  readonly #fh: FileHandle;

  private constructor(path: string, fh: FileHandle) {
    this.path = path;
    this.#fh = fh;
  }

  static async open(path: string): Promise<AuditLog> {
    const fh = await open(path, "a", 0o600);
    await fh.chmod(0o600);
    return new AuditLog(path, fh);
  }

  async append(entry: AuditEntry, opts: { sync?: boolean } = {}): Promise<void> {
    await this.#fh.write(`${JSON.stringify(entry)}\n`);
    if (opts.sync) await this.#fh.datasync();
  }

  /** The newest entries matching the query, oldest first. A torn last line (a killed writer) is skipped. */
  async read(q: AuditQuery = {}): Promise<AuditEntry[]> {
    const limit = q.limit ?? 1000;
    const out: AuditEntry[] = [];
    for (const line of (await readFile(this.path, "utf8")).split("\n")) {
      if (!line) continue;
      let e: AuditEntry;
      try {
        e = JSON.parse(line) as AuditEntry;
      } catch {
        continue;
      }
      if (q.tenant !== undefined && e.tenant !== q.tenant) continue;
      out.push(e);
    }
    return out.slice(Math.max(0, out.length - limit));
  }

  async close(): Promise<void> {
    await this.#fh.close();
  }
}
