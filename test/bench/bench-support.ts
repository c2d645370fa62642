import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startEmbeddedPostgres } from '../../libs/platform/src/database/database';
import { postmasterPid } from '../support/process';
import { freePort } from '../support/ports';

/** Pieces both benchmarks need: CPU shares from /proc, percentiles, bounded parallelism, liveness. */

export const TICK = 100;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function round(n: number): number {
  return Math.round(n * 100) / 100;
}

export function percentile(sorted: Float64Array, p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Runs `f` over `items` with at most `concurrency` calls in flight. */
export async function pool<T>(items: T[], concurrency: number, f: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) {
        await f(items[next++]);
      }
    }),
  );
}

export { alive } from '../support/process';

export function tcpOpen(port: number): Promise<boolean> {
  return new Promise((done) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      done(true);
    });
    s.once('error', () => done(false));
  });
}

/** utime + stime of a process (with `reaped`, plus cutime + cstime: its children that exited and were waited for). */
export function procTicks(pid: number, reaped = false): { ticks: number; ppid: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) + (reaped ? Number(f[13]) + Number(f[14]) : 0) };
  } catch {
    return undefined;
  }
}

/** CPU ticks of the postmaster of `dataDir` and its backends, live and exited (a closed pool connection keeps counting). */
export function postgresTicks(dataDir: string): number {
  const pm = postmasterPid(dataDir);
  if (!pm) {
    return 0;
  }
  let ticks = procTicks(pm, true)?.ticks ?? 0;
  for (const entry of readdirSync('/proc')) {
    if (/^\d+$/.test(entry)) {
      const t = procTicks(Number(entry));
      if (t && t.ppid === pm) {
        ticks += t.ticks;
      }
    }
  }
  return ticks;
}

/** Busy ticks of the whole machine (all but idle and iowait). */
export function machineBusyTicks(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return cpu.reduce((a, b) => a + b, 0) - cpu[3] - (cpu[4] ?? 0);
}

/** A client-credentials access token from the gateway at `base` (client_secret_basic). */
export async function clientToken(base: string, id: string, secret: string): Promise<string> {
  const res = await fetch(`${base}/oauth2/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: 'grant_type=client_credentials',
  });
  return ((await res.json()) as { access_token: string }).access_token;
}

/**
 * The embedded PostgreSQL of a database benchmark, started: in `keepData` (kept across runs, so
 * `--reuse` evaluates it again without loading) or in a fresh temporary folder named `tmpPrefix…`,
 * which `pg.stop()` removes (a temporary cluster of a large load is gigabytes).
 */
export async function benchPostgres(
  keepData: string | undefined,
  reuse: boolean,
  tmpPrefix: string,
): Promise<{ dataDir: string; pg: Awaited<ReturnType<typeof startEmbeddedPostgres>> }> {
  const dataDir = keepData ? resolve(keepData) : mkdtempSync(join(tmpdir(), tmpPrefix));
  mkdirSync(dataDir, { recursive: true });
  chmodSync(dataDir, 0o755);
  if (reuse && !existsSync(join(dataDir, 'postgres', 'PG_VERSION'))) {
    throw new Error(`--reuse: no database kept in ${dataDir}`);
  }
  const pg = await startEmbeddedPostgres(dataDir, await freePort());
  const stop = async (): Promise<void> => {
    await pg.stop();
    if (!keepData) {
      rmSync(dataDir, { recursive: true, force: true });
    }
  };
  return { dataDir, pg: { ...pg, stop } };
}
