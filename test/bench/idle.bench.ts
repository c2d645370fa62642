/**
 * Idle cost and discharge pickup benchmark: what a gateway doing nothing costs in CPU, and how fast
 * a committed `encounter.discharged` event reaches a started `exchange.route-discharge` job, on each
 * queue backend (PostgreSQL, Redis).
 *
 * Starts, on loopback only: the built gateway (dist/, embedded PostgreSQL in a temporary data
 * directory, workers in process, other settings at their defaults) and, for the Redis backend, a
 * redis-server without persistence. For each backend:
 *   - idle: after `--settle` seconds from ready, the CPU (utime + stime from /proc) over `--idle`
 *     seconds of the gateway's Node process, of its PostgreSQL (postmaster and backends) and of Redis;
 *   - pickup: `--events` domain events inserted straight into the database (one transaction each,
 *     from `--clients` connections, at `--rate` events/s), as the HL7 intake records them; for
 *     each, pickup = COMMIT returned → the job's `processedOn` (BullMQ's start time of the job).
 *     The route job itself finds no Encounter and stops: only the hand-over is measured.
 *
 *   npm run bench:idle -- [--backends postgres,redis] [--idle 20] [--settle 20] [--events 2000] [--rate 200]
 *
 * Writes test/bench/results/idle-<date>.json and prints a summary.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'pg';
import { QueueService, createLogger, embeddedDatabaseUrl } from '@gw/platform';
import { freePort } from '../support/ports';
import { startRedis } from '../support/redis';
import { GATEWAY_MAIN, ROOT, run } from '../support/process';
import {
  TICK,
  alive,
  machineBusyTicks,
  percentile,
  pool,
  postgresTicks,
  procTicks,
  round,
  sleep,
} from './bench-support';

type Backend = 'postgres' | 'redis';

const args = parseArgs({
  options: {
    backends: { type: 'string', default: 'postgres,redis' },
    idle: { type: 'string', default: '20' },
    settle: { type: 'string', default: '20' },
    events: { type: 'string', default: '2000' },
    rate: { type: 'string', default: '200' },
    clients: { type: 'string', default: '4' },
  },
}).values;

async function waitReady(httpPort: number, pid: number): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline && alive(pid)) {
    const ok = await fetch(`http://127.0.0.1:${httpPort}/health/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) {
      return;
    }
    await sleep(250);
  }
  throw new Error('gateway not ready');
}

/** Cores used over `seconds` by the gateway's Node process, its PostgreSQL, Redis, and the whole machine. */
async function idleCpu(
  gatewayPid: number,
  dataDir: string,
  redisPid: number | undefined,
  seconds: number,
): Promise<Record<string, number>> {
  const snap = (): number[] => [
    procTicks(gatewayPid)?.ticks ?? 0,
    postgresTicks(dataDir),
    redisPid ? (procTicks(redisPid)?.ticks ?? 0) : 0,
    machineBusyTicks(),
  ];
  const a = snap();
  await sleep(seconds * 1000);
  const b = snap();
  const cores = b.map((v, i) => round(((v - a[i]) / TICK / seconds) * 1000) / 1000);
  return {
    node: cores[0],
    postgres: cores[1],
    redis: cores[2],
    total: round((cores[0] + cores[1] + cores[2]) * 1000) / 1000,
    machine: cores[3],
  };
}

/** Inserts events at `rate`/s from `clients` connections; returns pickup latencies in ms. */
async function pickup(
  url: string,
  queue: QueueService,
  events: number,
  rate: number,
  clients: number,
): Promise<{ latencies: Float64Array; seconds: number }> {
  const db = new Pool({ connectionString: url, max: clients });
  const committed = new Map<string, number>();
  const tag = Date.now().toString(36);
  const t0 = Date.now();
  try {
    await pool(
      Array.from({ length: events }, (_, i) => i),
      clients,
      async (i) => {
        const due = t0 + (i * 1000) / rate;
        if (due > Date.now()) {
          await sleep(due - Date.now());
        }
        const res = await db.query<{ id: string }>(
          `INSERT INTO domain_event (type, resource, version_id) VALUES ('encounter.discharged', $1, 1) RETURNING id::text`,
          [`Encounter/bench-${tag}-${i}`],
        );
        committed.set(res.rows[0]!.id, Date.now());
      },
    );
  } finally {
    await db.end();
  }
  const latencies: number[] = [];
  const pending = new Set(committed.keys());
  const deadline = Date.now() + 120_000;
  while (pending.size > 0 && Date.now() < deadline) {
    for (const id of [...pending]) {
      const job = await queue.queue('exchange-route').getJob(`discharge-${id}`);
      if (job?.processedOn) {
        latencies.push(job.processedOn - committed.get(id)!);
        pending.delete(id);
      }
    }
    if (pending.size > 0) {
      await sleep(500);
    }
  }
  if (pending.size > 0) {
    throw new Error(`${pending.size} events never picked up`);
  }
  return { latencies: Float64Array.from(latencies).sort(), seconds: (Date.now() - t0) / 1000 };
}

async function runBackend(backend: Backend): Promise<Record<string, unknown>> {
  const dataDir = mkdtempSync(join(tmpdir(), 'gw-bench-idle-'));
  chmodSync(dataDir, 0o755);
  const redis = backend === 'redis' ? await startRedis() : undefined;
  const httpPort = await freePort();
  const pgPort = await freePort();
  const gw = run(GATEWAY_MAIN, {
    GW_DATA_DIR: dataDir,
    GW_HTTP_PORT: String(httpPort),
    GW_MLLP_PORT: '0',
    GW_EMBEDDED_PG_PORT: String(pgPort),
    GW_LOG_LEVEL: 'warn',
    ...(redis ? { GW_REDIS_URL: redis.url } : {}),
  });
  let queue: QueueService | undefined;
  try {
    const pid = gw.child.pid!;
    await waitReady(httpPort, pid);
    // The gateway's role, whose random secret the first start wrote into the data directory.
    const url = embeddedDatabaseUrl(dataDir, pgPort);
    queue = new QueueService({ databaseUrl: url, redisUrl: redis?.url, logger: createLogger('silent') });
    await sleep(Number(args.settle) * 1000);
    const load = loadavg()[0];
    const idle = await idleCpu(pid, dataDir, redis?.pid, Number(args.idle));
    process.stdout.write(`${backend}: idle ${JSON.stringify(idle)} (load ${load.toFixed(2)})\n`);
    const p = await pickup(url, queue, Number(args.events), Number(args.rate), Number(args.clients));
    const out = {
      backend,
      loadAvg1mBefore: round(load),
      idleCores: idle,
      pickup: {
        events: p.latencies.length,
        rate: Number(args.rate),
        p50Ms: percentile(p.latencies, 50),
        p99Ms: percentile(p.latencies, 99),
        maxMs: p.latencies[p.latencies.length - 1],
      },
    };
    process.stdout.write(`${backend}: pickup ${JSON.stringify(out.pickup)}\n`);
    return out;
  } finally {
    await queue?.close().catch(() => undefined);
    gw.child.kill('SIGTERM');
    await Promise.race([gw.exited, sleep(30_000)]);
    if (gw.child.exitCode === null) {
      gw.child.kill('SIGKILL');
    }
    await redis?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const runs = [];
  for (const backend of String(args.backends).split(',') as Backend[]) {
    runs.push(await runBackend(backend));
  }
  const dir = resolve(ROOT, 'test/bench/results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `idle-${new Date().toISOString().slice(0, 10)}.json`);
  writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), args, runs }, null, 2));
  process.stdout.write(`written ${file}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
