import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import type { Pool } from 'pg';
import { migrate } from '@gw/platform';
import { MIGRATIONS } from '../../apps/gateway/src/core';

/** Creates a fresh database in the test server; returns its URL. */
export async function createTestDatabase(prefix = 'gw'): Promise<string> {
  const serverUrl = process.env.GW_TEST_DATABASE_URL;
  if (!serverUrl) {
    throw new Error('GW_TEST_DATABASE_URL is not set (the Jest global setup starts PostgreSQL)');
  }
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  const client = new Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Applies the gateway's whole schema (every feature's migrations) to a test database, or its versions up to `upTo`. */
export async function migrateAll(pool: Pool, opts: { upTo?: number } = {}): Promise<number[]> {
  return migrate(
    pool,
    opts.upTo === undefined ? MIGRATIONS : MIGRATIONS.filter((m) => m.version <= (opts.upTo as number)),
  );
}
