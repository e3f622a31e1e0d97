/**
 * Blocked requests per tenant, read back from the edge's logs:
 * - WAF blocks from ModSecurity's JSON audit log (logs/waf-audit.log). Each transaction id is
 *   "<tenant>:<request id>" (modsecurity_transaction_id), so every record names its tenant.
 * - Rate and connection limits from the tenant's own nginx error log (logs/tenants/<tenant>.error.log).
 * Parsers are pure; readBlockedEvents does the reading (the last few MB of each file).
 */
import { open } from "node:fs/promises";
import { join } from "node:path";
import { parseTenantName } from "../core/tenant.ts";
import type { EdgePaths } from "./render.ts";
import { type BlockedEvent, RESERVED_LABELS } from "./types.ts";

/** Rules whose match means the request was refused: CRS's blocking evaluation and the body checks. */
const BLOCKING_RULE = /^(?:949\d{3}|2000\d{2})$/;

function isoTime(raw: string): string {
  const t = new Date(raw);
  return Number.isNaN(t.getTime()) ? raw : t.toISOString();
}

interface AuditRecord {
  transaction?: {
    client_ip?: string;
    time_stamp?: string;
    unique_id?: string;
    request?: { method?: string; uri?: string };
    response?: { http_code?: number };
    messages?: Array<{ message?: string; details?: { ruleId?: string; data?: string } }>;
  };
}

/** WAF blocks of one tenant in ModSecurity JSON audit log text (one JSON object per line). */
export function parseAuditLog(text: string, tenant: string): BlockedEvent[] {
  const out: BlockedEvent[] = [];
  const prefix = `${tenant}:`;
  for (const line of text.split("\n")) {
    if (!line.includes(prefix)) continue;
    let rec: AuditRecord;
    try {
      rec = JSON.parse(line) as AuditRecord;
    } catch {
      continue;
    }
    const t = rec.transaction;
    if (!t?.unique_id?.startsWith(prefix)) continue;
    const status = t.response?.http_code ?? 0;
    const rules = (t.messages ?? []).map((m) => ({
      id: String(m.details?.ruleId ?? ""),
      message: String(m.message ?? ""),
      data: String(m.details?.data ?? ""),
    }));
    if (status < 400 || !rules.some((r) => BLOCKING_RULE.test(r.id))) continue;
    out.push({
      time: isoTime(t.time_stamp ?? ""),
      tenant,
      kind: "waf",
      status,
      client: t.client_ip ?? "",
      method: t.request?.method ?? null,
      uri: t.request?.uri ?? null,
      rules,
    });
  }
  return out;
}

const LIMIT_LINE =
  /^(\d{4})\/(\d\d)\/(\d\d) (\d\d:\d\d:\d\d) \[\w+\] [^:]*: (?:\*\d+ )?limiting (requests|connections)[^,]*(?:, excess: [\d.]+ by zone "[^"]*")?, client: ([^,]+), server: [^,]*(?:, request: "(\S+) (\S+)[^"]*")?/;

/** Rate and connection refusals in one tenant's nginx error log text. */
export function parseLimitLog(text: string, tenant: string): BlockedEvent[] {
  const out: BlockedEvent[] = [];
  for (const line of text.split("\n")) {
    const m = LIMIT_LINE.exec(line);
    if (!m) continue;
    out.push({
      time: isoTime(`${m[1]}-${m[2]}-${m[3]}T${m[4]}`),
      tenant,
      kind: m[5] === "requests" ? "rate" : "connections",
      status: 429,
      client: m[6]!,
      method: m[7] ?? null,
      uri: m[8] ?? null,
      rules: [],
    });
  }
  return out;
}

/** The last `maxBytes` of a file (from a line start), or "" when it does not exist. */
async function tail(path: string, maxBytes: number): Promise<string> {
  const fh = await open(path, "r").catch(() => null);
  if (!fh) return "";
  try {
    const { size } = await fh.stat();
    const start = Math.max(0, size - maxBytes);
    const buf = Buffer.alloc(size - start);
    await fh.read(buf, 0, buf.length, start);
    const text = buf.toString("utf8");
    return start === 0 ? text : text.slice(text.indexOf("\n") + 1);
  } finally {
    await fh.close();
  }
}

/** Blocked requests of one tenant (or "api"/"console"), oldest first, at most `limit` (default 100). */
export async function readBlockedEvents(
  paths: EdgePaths,
  tenant: string,
  opts: { limit?: number; maxBytes?: number } = {},
): Promise<BlockedEvent[]> {
  const label = (RESERVED_LABELS as readonly string[]).includes(tenant) ? tenant : parseTenantName(tenant);
  const maxBytes = opts.maxBytes ?? 8 * 1024 * 1024;
  const [audit, limits] = await Promise.all([
    tail(join(paths.logs, "waf-audit.log"), maxBytes),
    tail(join(paths.logs, "tenants", `${label}.error.log`), maxBytes),
  ]);
  const events = [...parseAuditLog(audit, label), ...parseLimitLog(limits, label)];
  events.sort((a, b) => a.time.localeCompare(b.time));
  return events.slice(-(opts.limit ?? 100));
}
