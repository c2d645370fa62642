/**
 * Bulk territory load benchmark: `demo:territory --bulk` (BulkTerritoryLoader) at several sizes,
 * each into a fresh database of an embedded PostgreSQL started by the script, then the indicator
 * catalogue evaluated on the loaded database (indicators-support.ts, as bench:indicators does).
 *
 *   npm run bench:territory-load -- --patients 100000,1000000 [--seed 1] [--as-of 2026-10-31]
 *     [--workers 2] [--runs 3] [--keep-data DIR] [--reuse] [--skip-catalogue] [--floor]
 *
 * Per size: resources/s, wall, the process's RSS peak (main and worker threads), PostgreSQL's CPU
 * and the database size, the catalogue's times. --floor then measures the write floor of the
 * loaded database (write-floor.ts): PostgreSQL copying the same rows table to table, with nothing
 * to compute, with the indexes maintained and with the indexes built after. --keep-data keeps the
 * cluster (the databases are named bench_territory_<patients>_s<seed>); --reuse evaluates a kept
 * database without loading.
 * Writes test/bench/results/territory-load-<date>-<sizes>.json.
 */
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'pg';
import { createLogger, migrate } from '@gw/platform';
import { ProfileRegistry, SearchParamRegistry, loadFhirDefinitions } from '@gw/fhir';
import { FhirRepository, OrganizationAccessPolicy } from '@gw/store';
import { MIGRATIONS } from '../../apps/gateway/src/core';
import { BulkTerritoryLoader, TerritoryGenerator } from '../../apps/gateway/src/demo/territory';
import { ROOT } from '../support/process';
import { benchPostgres, postgresTicks, round } from './bench-support';
import { evaluateAll, oneYearBefore } from './indicators-support';
import type { SizeResult } from './indicators-support';
import { writeFloor } from './write-floor';
import type { WriteFloor } from './write-floor';

const USAGE =
  'usage: --patients 100000,1000000 [--seed 1] [--as-of 2026-10-31] [--workers 2] [--runs 3] [--keep-data DIR] [--reuse] [--skip-catalogue] [--floor]';

interface LoadResult {
  patients: number;
  reused: boolean;
  seconds: number;
  resources: number;
  perSecond: number;
  byType: Record<string, number>;
  rssPeakMb: number;
  /** CPU of this process during the load: main and worker threads (generation, preparation, client side). */
  nodeCpuSeconds: number;
  postgresCpuSeconds: number;
  databaseMb: number;
  tablesMb: Record<string, number>;
  loadAverage: { atStart: number[]; atEnd: number[] };
  catalogue?: SizeResult;
  floor?: WriteFloor;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      patients: { type: 'string', default: '100000' },
      seed: { type: 'string', default: '1' },
      'as-of': { type: 'string', default: '2026-10-31' },
      workers: { type: 'string' },
      runs: { type: 'string', default: '3' },
      'keep-data': { type: 'string' },
      reuse: { type: 'boolean', default: false },
      'skip-catalogue': { type: 'boolean', default: false },
      floor: { type: 'boolean', default: false },
    },
  });
  const sizes = (values.patients ?? '').split(',').map(Number);
  if (sizes.some((n) => !Number.isInteger(n) || n < 100)) {
    throw new Error(USAGE);
  }
  const asOf = values['as-of'] as string;
  const seed = Number(values.seed);
  const { dataDir, pg } = await benchPostgres(values['keep-data'], !!values.reuse, 'gw-bench-tl-');
  const logger = createLogger('warn');
  loadFhirDefinitions();
  const profilesDir = resolve(ROOT, 'fhir-profiles');
  const profiles = ProfileRegistry.fromDirectory(profilesDir);
  const results: LoadResult[] = [];
  try {
    for (const patients of sizes) {
      const dbName = `bench_territory_${patients}_s${seed}`;
      const admin = new Pool({ connectionString: pg.superuserUrl, max: 1 });
      const exists = (await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [dbName])).rowCount === 1;
      if (exists && !values.reuse) {
        await admin.query(`DROP DATABASE ${dbName}`);
      }
      if (!exists || !values.reuse) {
        await admin.query(`CREATE DATABASE ${dbName}`);
      }
      await admin.end();
      const url = pg.superuserUrl.replace(/\/[^/]*$/, `/${dbName}`);
      const pool = new Pool({ connectionString: url, max: 4 });
      await migrate(pool, MIGRATIONS);
      const repo = new FhirRepository(pool, new SearchParamRegistry(), new OrganizationAccessPolicy(), profiles);
      const generator = new TerritoryGenerator({ seed, patients, asOf });
      const loadAverage = { atStart: loadavg().map(round), atEnd: [] as number[] };
      const pgBefore = postgresTicks(dataDir);
      const cpuBefore = process.cpuUsage();
      const started = Date.now();
      let lastReport = 0;
      const summary = await new BulkTerritoryLoader(repo, {
        databaseUrl: url,
        profilesDir,
        encounterMonths: 24,
        workers: values.workers === undefined ? undefined : Number(values.workers),
        onProgress: (p) => {
          if (Date.now() - lastReport > 30_000) {
            lastReport = Date.now();
            process.stderr.write(
              `  ${patients}: ${p.people}/${p.peopleTotal} people, ${p.resources} resources, ${round(p.resources / (p.elapsedMs / 1000))}/s, load ${loadavg()[0].toFixed(1)}\n`,
            );
          }
        },
      }).load(generator);
      const seconds = (Date.now() - started) / 1000;
      loadAverage.atEnd = loadavg().map(round);
      const cpu = process.cpuUsage(cpuBefore);
      const nodeCpuSeconds = round((cpu.user + cpu.system) / 1e6);
      const postgresCpuSeconds = round((postgresTicks(dataDir) - pgBefore) / 100);
      const reused = summary.status === 'already-loaded';
      await pool.query('VACUUM ANALYZE');
      const tables = await pool.query<{ t: string; b: string }>(
        `SELECT c.relname AS t, pg_total_relation_size(c.oid)::text AS b FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY pg_total_relation_size(c.oid) DESC LIMIT 16`,
      );
      const db = await pool.query<{ b: string }>('SELECT pg_database_size(current_database())::text AS b');
      const result: LoadResult = {
        patients,
        reused,
        seconds: round(seconds),
        resources: summary.resources,
        perSecond: round(summary.perSecond),
        byType: summary.byType,
        rssPeakMb: round(process.resourceUsage().maxRSS / 1024),
        nodeCpuSeconds,
        postgresCpuSeconds,
        databaseMb: round(Number(db.rows[0]?.b ?? 0) / 1024 / 1024),
        tablesMb: Object.fromEntries(tables.rows.map((r) => [r.t, round(Number(r.b) / 1024 / 1024)])),
        loadAverage,
      };
      process.stderr.write(
        `${patients} patients: ${reused ? 'already loaded' : `${summary.resources} resources in ${result.seconds} s (${result.perSecond}/s)`}, database ${result.databaseMb} MB\n`,
      );
      if (!values['skip-catalogue']) {
        result.catalogue = await evaluateAll({
          pool,
          repo,
          logger,
          dataDir,
          period: { start: oneYearBefore(asOf), end: asOf },
          runs: Number(values.runs),
          cptsId: generator.cpts.id,
          patients,
          load: { seconds: result.seconds, resources: summary.resources, perSecond: result.perSecond, reused },
        });
      }
      if (values.floor) {
        const resources = Number(
          (await pool.query<{ n: string }>('SELECT count(*)::text AS n FROM resource')).rows[0]?.n ?? 0,
        );
        result.floor = await writeFloor(pool, dataDir, resources);
        process.stderr.write(
          `write floor: ${result.floor.maintained.postgresCpuMsPerResource} ms/resource with the indexes maintained, ${result.floor.deferred.postgresCpuMsPerResource} ms built after, ${result.floor.read.postgresCpuMsPerResource} ms of it reading the rows\n`,
        );
      }
      results.push(result);
      process.stdout.write(`${JSON.stringify(result)}\n`);
      await pool.end();
    }
  } finally {
    await pg.stop();
  }
  const out = resolve(
    ROOT,
    'test/bench/results',
    `territory-load-${new Date().toISOString().slice(0, 10)}-${sizes.join('-')}.json`,
  );
  writeFileSync(
    out,
    `${JSON.stringify({ date: new Date().toISOString(), seed, asOf, cluster: values['keep-data'] ? 'kept (--keep-data)' : 'temporary', results }, null, 2)}\n`,
  );
  process.stdout.write(`results written to ${out}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
