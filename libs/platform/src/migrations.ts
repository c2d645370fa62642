import type { Pool } from 'pg';

/**
 * Versioned schema migrations, applied in order at boot under an advisory lock so that several
 * replicas starting together apply each one exactly once. Never edit a shipped migration: add one.
 */
export const MIGRATIONS: { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: 'fhir store, search index, clients, audit',
    sql: `
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Current version of every resource; the exact JSON served is kept as text (no re-serialisation).
CREATE TABLE resource (
  resource_type text NOT NULL,
  id text NOT NULL,
  version_id integer NOT NULL,
  last_updated timestamptz NOT NULL,
  deleted boolean NOT NULL DEFAULT false,
  owner_org text,
  content text,
  PRIMARY KEY (resource_type, id)
);
CREATE INDEX resource_last_updated_idx ON resource (resource_type, last_updated);

-- Every version ever written, with who wrote it (the durable write audit).
CREATE TABLE resource_history (
  resource_type text NOT NULL,
  id text NOT NULL,
  version_id integer NOT NULL,
  last_updated timestamptz NOT NULL,
  deleted boolean NOT NULL DEFAULT false,
  owner_org text,
  client_id text,
  request_id text,
  content text,
  PRIMARY KEY (resource_type, id, version_id)
);
CREATE INDEX resource_history_type_time_idx ON resource_history (resource_type, last_updated);

-- Search index, one table per parameter kind, rows for the current version only.
CREATE TABLE sp_token (
  resource_type text NOT NULL, id text NOT NULL, code text NOT NULL,
  system text, value text
);
CREATE INDEX sp_token_search_idx ON sp_token (resource_type, code, value, system);
CREATE INDEX sp_token_owner_idx ON sp_token (resource_type, id);

CREATE TABLE sp_string (
  resource_type text NOT NULL, id text NOT NULL, code text NOT NULL,
  value text NOT NULL, raw text NOT NULL
);
CREATE INDEX sp_string_search_idx ON sp_string (resource_type, code, value text_pattern_ops);
CREATE INDEX sp_string_trgm_idx ON sp_string USING gin (value gin_trgm_ops);
CREATE INDEX sp_string_owner_idx ON sp_string (resource_type, id);

CREATE TABLE sp_date (
  resource_type text NOT NULL, id text NOT NULL, code text NOT NULL,
  low timestamptz NOT NULL, high timestamptz NOT NULL
);
CREATE INDEX sp_date_low_idx ON sp_date (resource_type, code, low);
CREATE INDEX sp_date_high_idx ON sp_date (resource_type, code, high);
CREATE INDEX sp_date_owner_idx ON sp_date (resource_type, id);

CREATE TABLE sp_reference (
  resource_type text NOT NULL, id text NOT NULL, code text NOT NULL,
  target_type text NOT NULL, target_id text NOT NULL
);
CREATE INDEX sp_reference_search_idx ON sp_reference (resource_type, code, target_id, target_type);
CREATE INDEX sp_reference_target_idx ON sp_reference (target_type, target_id);
CREATE INDEX sp_reference_owner_idx ON sp_reference (resource_type, id);

CREATE TABLE sp_number (
  resource_type text NOT NULL, id text NOT NULL, code text NOT NULL,
  value numeric NOT NULL, system text, unit text
);
CREATE INDEX sp_number_search_idx ON sp_number (resource_type, code, value);
CREATE INDEX sp_number_owner_idx ON sp_number (resource_type, id);

-- OAuth2 clients (SMART Backend Services). Secrets are stored as scrypt hashes only.
CREATE TABLE client (
  id text PRIMARY KEY,
  name text NOT NULL,
  organization text NOT NULL,
  scopes text NOT NULL,
  admin boolean NOT NULL DEFAULT false,
  secret_hash text,
  jwks jsonb,
  active boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- client_assertion jti already seen (replay protection), kept until they expire.
CREATE TABLE client_assertion_jti (
  jti text PRIMARY KEY,
  client_id text NOT NULL,
  expires_at timestamptz NOT NULL
);

CREATE TABLE signing_key (
  kid text PRIMARY KEY,
  alg text NOT NULL,
  private_jwk jsonb NOT NULL,
  public_jwk jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Access audit: who read, searched or wrote what (resource ids, never patient data).
CREATE TABLE audit_event (
  id bigserial PRIMARY KEY,
  recorded timestamptz NOT NULL DEFAULT now(),
  client_id text,
  organization text,
  interaction text NOT NULL,
  resource_type text,
  entity text[],
  outcome integer NOT NULL,
  request_id text
);
CREATE INDEX audit_event_recorded_idx ON audit_event (recorded);
`,
  },
];

const LOCK_KEY = 7_402_118; // arbitrary, stable: "gateway schema migrations"

/** Applies pending migrations; returns the versions applied by this call. */
export async function migrate(pool: Pool): Promise<number[]> {
  const client = await pool.connect();
  const applied: number[] = [];
  try {
    await client.query('SELECT pg_advisory_lock($1)', [LOCK_KEY]);
    await client.query(
      'CREATE TABLE IF NOT EXISTS schema_migration (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    const done = new Set(
      (await client.query<{ version: number }>('SELECT version FROM schema_migration')).rows.map((r) => r.version),
    );
    for (const m of MIGRATIONS) {
      if (done.has(m.version)) {
        continue;
      }
      await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query('INSERT INTO schema_migration (version, name) VALUES ($1, $2)', [m.version, m.name]);
        await client.query('COMMIT');
        applied.push(m.version);
      } catch (err) {
        await client.query('ROLLBACK');
        throw err;
      }
    }
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [LOCK_KEY]).catch(() => undefined);
    client.release();
  }
  return applied;
}
