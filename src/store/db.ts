import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";

export type Db = Database.Database;

/** A store over the control plane's database (one per area: tenants, models, ...). */
export class SqliteStore {
  constructor(readonly db: Db) {}

  /** Runs fn in one transaction: everything it writes lands, or nothing does. */
  tx<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }
}

/**
 * Schema migrations, applied in order. Index + 1 is the schema version stored in
 * PRAGMA user_version. Append only: never edit a migration that has shipped.
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE tenants (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    tier          TEXT NOT NULL CHECK (tier IN ('starter','premium','enterprise')),
    slot          INTEGER NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL,
    trial_ends_at INTEGER NOT NULL,
    subscription  TEXT NOT NULL CHECK (subscription IN ('trial','active')),
    desired       TEXT NOT NULL,
    actual        TEXT NOT NULL,
    reason        TEXT,
    updated_at    INTEGER NOT NULL
  );
  CREATE TABLE tenant_secrets (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL,
    sealed     BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, purpose)
  );
  CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    hash         TEXT NOT NULL UNIQUE,
    label        TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
  );
  CREATE TABLE events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    at        INTEGER NOT NULL,
    type      TEXT NOT NULL,
    message   TEXT NOT NULL
  );
  CREATE INDEX events_by_tenant ON events(tenant_id, id);
  `,
  // 2: the operator's registered GGUF models (store/models.ts), the default model of a plan and
  // a tenant's own choice. A model in use cannot be removed (no cascade from models).
  `
  CREATE TABLE models (
    id            TEXT PRIMARY KEY,
    path          TEXT NOT NULL,
    size          INTEGER NOT NULL CHECK (size >= 0),
    sha256        TEXT NOT NULL CHECK (length(sha256) = 64),
    registered_at INTEGER NOT NULL,
    verified_at   INTEGER NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('ready','missing','corrupt')),
    reason        TEXT
  );
  CREATE TABLE plan_models (
    tier     TEXT PRIMARY KEY CHECK (tier IN ('starter','premium','enterprise')),
    model_id TEXT NOT NULL REFERENCES models(id)
  );
  CREATE TABLE tenant_models (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    model_id  TEXT NOT NULL REFERENCES models(id)
  );
  CREATE INDEX tenant_models_by_model ON tenant_models(model_id);
  `,
  // 3: egress allowlist additions (store/egress.ts): every tenant's (operator), one tenant's own.
  `
  CREATE TABLE operator_egress_allow (
    pattern  TEXT PRIMARY KEY,
    added_at INTEGER NOT NULL
  );
  CREATE TABLE tenant_egress_allow (
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    pattern   TEXT NOT NULL,
    added_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, pattern)
  );
  `,
  // 4: the LLM relay (store/llm.ts): tokens and requests per tenant, UTC day and model, as the
  // relay counted them; a tenant's own provider (bring your own key: its base URL and model here,
  // the key sealed in tenant_secrets). Both go with the tenant.
  `
  CREATE TABLE llm_usage (
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    day           TEXT NOT NULL CHECK (length(day) = 10),
    model         TEXT NOT NULL,
    input_tokens  INTEGER NOT NULL CHECK (input_tokens >= 0),
    output_tokens INTEGER NOT NULL CHECK (output_tokens >= 0),
    requests      INTEGER NOT NULL CHECK (requests >= 0),
    PRIMARY KEY (tenant_id, day, model)
  );
  CREATE TABLE llm_own_providers (
    tenant_id  TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    base_url   TEXT NOT NULL,
    model      TEXT,
    updated_at INTEGER NOT NULL
  );
  `,
];

export function migrate(db: Db): number {
  const current = db.pragma("user_version", { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(
      `database schema version ${current} is newer than this clawkeep knows (${MIGRATIONS.length}); upgrade clawkeep`,
    );
  }
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
  return MIGRATIONS.length;
}

/** Opens (creating if needed) the control plane's database and brings its schema up to date. */
export function openDatabase(path: string): Db {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.pragma("foreign_keys = ON");
  db.pragma("busy_timeout = 5000");
  migrate(db);
  return db;
}
