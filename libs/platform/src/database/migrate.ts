import type { Pool } from 'pg';

/**
 * One feature's part of a schema version. Versions form one global sequence, recorded in
 * `schema_migration`, so an installed database knows what it has whatever the feature. A version
 * may have parts from several features (versions 1–3 were written before each feature owned its
 * schema): they are applied together, in one transaction, in the order the list gives them.
 * Never edit a shipped migration: add a version.
 */
export interface Migration {
  version: number;
  /** The feature whose tables this part creates or changes (one feature per table family). */
  feature: string;
  name: string;
  sql: string;
}

/** A version and its parts, as applied. */
export interface SchemaVersion {
  version: number;
  name: string;
  parts: Migration[];
}

/**
 * Groups migrations by version in version order (features' lists are concatenated in any order);
 * throws when a feature gives two parts of one version.
 */
export function planMigrations(migrations: readonly Migration[]): SchemaVersion[] {
  const byVersion = new Map<number, Migration[]>();
  for (const m of migrations) {
    const parts = byVersion.get(m.version) ?? [];
    if (parts.some((p) => p.feature === m.feature)) {
      throw new Error(`Schema version ${m.version} has two parts from feature ${m.feature}`);
    }
    parts.push(m);
    byVersion.set(m.version, parts);
  }
  return [...byVersion.entries()]
    .sort(([a], [b]) => a - b)
    .map(([version, parts]) => ({ version, name: parts.map((p) => `${p.feature}: ${p.name}`).join('; '), parts }));
}

/** A list of SQL string literals for an `IN (…)`, from TypeScript constants. */
export function sqlList(values: readonly string[]): string {
  return values.map(sqlString).join(', ');
}

/** A SQL string literal (standard_conforming_strings: only quotes are doubled). */
export function sqlString(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

const LOCK_KEY = 7_402_118; // arbitrary, stable: "gateway schema migrations"

/**
 * Applies the versions not yet recorded, under an advisory lock so that several replicas starting
 * together apply each exactly once; returns the versions applied by this call.
 */
export async function migrate(pool: Pool, migrations: readonly Migration[]): Promise<number[]> {
  const plan = planMigrations(migrations);
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
    for (const v of plan) {
      if (done.has(v.version)) {
        continue;
      }
      await client.query('BEGIN');
      try {
        for (const part of v.parts) {
          await client.query(part.sql);
        }
        await client.query('INSERT INTO schema_migration (version, name) VALUES ($1, $2)', [v.version, v.name]);
        await client.query('COMMIT');
        applied.push(v.version);
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
