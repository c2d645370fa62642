/**
 * Indicator benchmark (issue #5): the whole measure catalogue evaluated for a CPTS territory over
 * one year, at several territory sizes. Each size gets its own database in an embedded PostgreSQL
 * started by the script (loopback), loaded with `demo:territory`'s generator through the store's
 * write path (or reused with --reuse when a previous run kept it with --keep-data).
 *
 *   npm run bench:indicators -- --sizes 10000,100000,1000000 [--seed 1] [--as-of 2026-10-31] [--runs 3] [--keep-data DIR] [--reuse]
 *
 * Measures, per size: load rate; then `--runs` evaluations of the 8 measures together (one
 * persons table, 8 aggregate queries: what the monthly run and a dashboard do) with per-measure
 * times, and each measure alone through the service (what one $evaluate-measure call costs).
 * Memory: the gateway-side heap/RSS and PostgreSQL's temporary files during evaluation.
 * --replicate N adds one more size: the last territory's projection replicated to N patients
 * (see replicateProjection), for a size the load path cannot reach in a bench run.
 * Writes test/bench/results/indicators-<date>.json.
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'pg';
import { createLogger, migrate } from '@gw/platform';
import { MIGRATIONS } from '../../apps/gateway/src/core';
import { ProfileRegistry, SearchParamRegistry, loadFhirDefinitions } from '@gw/fhir';
import { FhirRepository, OrganizationAccessPolicy } from '@gw/store';
import { TerritoryGenerator, TerritoryLoader } from '../../apps/gateway/src/demo/territory';
import type { Period } from '@gw/indicators';
import { ROOT } from '../support/process';
import { benchPostgres, round } from './bench-support';
import { evaluateAll, oneYearBefore } from './indicators-support';
import type { SizeResult } from './indicators-support';

const USAGE =
  'usage: --sizes 10000,100000 [--replicate 1000000] [--seed 1] [--as-of 2026-10-31] [--runs 3] [--keep-data DIR] [--reuse]';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sizes: { type: 'string', default: '10000,100000' },
      seed: { type: 'string', default: '1' },
      'as-of': { type: 'string', default: '2026-10-31' },
      runs: { type: 'string', default: '3' },
      'keep-data': { type: 'string' },
      reuse: { type: 'boolean', default: false },
      replicate: { type: 'string' },
    },
  });
  const sizes = (values.sizes ?? '').split(',').map(Number);
  if (sizes.some((n) => !Number.isInteger(n) || n < 100)) {
    throw new Error(USAGE);
  }
  const runs = Number(values.runs);
  const replicate = values.replicate ? Number(values.replicate) : 0;
  if (replicate && (!Number.isInteger(replicate) || replicate <= sizes[sizes.length - 1])) {
    throw new Error(`--replicate must be a patient count above the last size\n${USAGE}`);
  }
  const asOf = values['as-of'] as string;
  const period: Period = { start: oneYearBefore(asOf), end: asOf };
  const { dataDir, pg } = await benchPostgres(values['keep-data'], !!values.reuse, 'gw-bench-ind-');
  const logger = createLogger('warn');
  loadFhirDefinitions();
  const profiles = ProfileRegistry.fromDirectory(resolve(ROOT, 'fhir-profiles'));
  const results: SizeResult[] = [];
  try {
    for (const patients of sizes) {
      const dbName = `bench_ind_${patients}_s${values.seed}`;
      const admin = new Pool({ connectionString: pg.superuserUrl, max: 1 });
      const exists = (await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [dbName])).rowCount === 1;
      if (!exists) {
        await admin.query(`CREATE DATABASE ${dbName}`);
      }
      await admin.end();
      const url = pg.superuserUrl.replace(/\/[^/]*$/, `/${dbName}`);
      const pool = new Pool({ connectionString: url, max: 8 });
      await migrate(pool, MIGRATIONS);
      const repo = new FhirRepository(pool, new SearchParamRegistry(), new OrganizationAccessPolicy(), profiles);
      const generator = new TerritoryGenerator({ seed: Number(values.seed), patients, asOf });
      const started = Date.now();
      let lastReport = 0;
      const summary = await new TerritoryLoader(repo, {
        onProgress: (p) => {
          if (Date.now() - lastReport > 30_000) {
            lastReport = Date.now();
            process.stderr.write(
              `  ${patients}: ${p.people}/${p.peopleTotal} people, ${p.resources} resources, ${round(p.resources / (p.elapsedMs / 1000))}/s\n`,
            );
          }
        },
      }).load(generator);
      const loadSeconds = (Date.now() - started) / 1000;
      const reused = summary.status === 'already-loaded';
      process.stderr.write(
        `${patients} patients: ${reused ? 'already loaded' : `${summary.resources} resources in ${round(loadSeconds)} s (${round(summary.perSecond)}/s)`}\n`,
      );
      await pool.query('VACUUM ANALYZE');
      results.push(
        await evaluateAll({
          pool,
          repo,
          logger,
          dataDir,
          period,
          runs,
          cptsId: generator.cpts.id,
          patients,
          load: {
            seconds: round(loadSeconds),
            resources: summary.resources,
            perSecond: round(summary.perSecond),
            reused,
          },
        }),
      );
      process.stdout.write(`${JSON.stringify(results[results.length - 1])}\n`);
      await pool.end();
    }
    if (replicate) {
      const base = sizes[sizes.length - 1];
      const factor = Math.round(replicate / base);
      const dbName = `bench_ind_${base}_s${values.seed}_x${factor}`;
      const admin = new Pool({ connectionString: pg.superuserUrl, max: 1 });
      const started = Date.now();
      const kept =
        values.reuse && (await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [dbName])).rowCount === 1;
      if (!kept) {
        await admin.query(`DROP DATABASE IF EXISTS ${dbName}`);
        await admin.query(`CREATE DATABASE ${dbName} TEMPLATE bench_ind_${base}_s${values.seed}`);
      }
      await admin.end();
      const pool = new Pool({ connectionString: pg.superuserUrl.replace(/\/[^/]*$/, `/${dbName}`), max: 8 });
      if (kept) {
        await migrate(pool, MIGRATIONS);
      } else {
        await replicateProjection(pool, factor);
      }
      await pool.query('VACUUM ANALYZE');
      const seconds = round((Date.now() - started) / 1000);
      process.stderr.write(
        `${kept ? 'reused' : 'replicated'} the ${base}-patient projection x${factor} in ${seconds} s\n`,
      );
      const repo = new FhirRepository(pool, new SearchParamRegistry(), new OrganizationAccessPolicy(), profiles);
      const cptsId = new TerritoryGenerator({ seed: Number(values.seed), patients: base, asOf }).cpts.id;
      results.push(
        await evaluateAll({
          pool,
          repo,
          logger,
          dataDir,
          period,
          runs,
          cptsId,
          patients: base * factor,
          replicatedFrom: base,
          load: { seconds, resources: 0, perSecond: 0, reused: !!kept },
        }),
      );
      process.stdout.write(`${JSON.stringify(results[results.length - 1])}\n`);
      await pool.end();
    }
  } finally {
    await pg.stop();
  }
  printTable(results);
  const out = resolve(ROOT, 'test/bench/results', `indicators-${new Date().toISOString().slice(0, 10)}.json`);
  writeFileSync(
    out,
    `${JSON.stringify({ date: new Date().toISOString(), period, seed: Number(values.seed), results }, null, 2)}\n`,
  );
  process.stdout.write(`results written to ${out}\n`);
}

/**
 * Scales a loaded territory's indicator projection (the only tables evaluation reads) by `factor`:
 * copies k = 1..factor-1 of every patient and clinical fact under suffixed ids and INS, so the
 * persons, their facts and the cross-practice duplicates keep the same distribution and structures.
 * The resource table is not copied: this measures evaluation at that size, not the load path.
 */
async function replicateProjection(pool: Pool, factor: number): Promise<void> {
  for (let k = 1; k < factor; k++) {
    await pool.query(
      `INSERT INTO ind_patient (id, owner_org, birth_date, sex, ins, link, gp, mt_status, commune, active, deceased)
       SELECT id || '~' || $1, owner_org, birth_date, sex, ins || '~' || $1, link || '~' || $1, gp, mt_status, commune, active, deceased
         FROM ind_patient WHERE id NOT LIKE '%~%'`,
      [k],
    );
    await pool.query(
      `INSERT INTO ind_fact (resource_type, id, patient, system, code, at, at_end, status, context)
       SELECT resource_type, id || '~' || $1, patient || '~' || $1, system, code, at, at_end, status, context || '~' || $1
         FROM ind_fact WHERE patient NOT LIKE '%~%'`,
      [k],
    );
  }
}

function printTable(results: SizeResult[]): void {
  const ids = Object.keys(results[0]?.catalogue.perMeasureMs ?? {});
  const rows = [
    [
      'patients',
      'persons',
      'load /s',
      'catalogue best ms',
      'persons table ms',
      ...ids.map((i) => `${i} ms`),
      'pg temp MB',
      'gw RSS MB',
    ],
    ...results.map((r) =>
      [
        r.replicatedFrom ? `${r.patients} (replicated)` : r.patients,
        r.persons,
        r.replicatedFrom ? '-' : r.load.reused ? 'reused' : r.load.perSecond,
        r.catalogue.bestMs,
        r.catalogue.personsMs,
        ...ids.map((i) => r.catalogue.perMeasureMs[i]),
        r.memory.postgresTempMb,
        r.memory.gatewayRssMb,
      ].map(String),
    ),
  ];
  for (const row of rows) {
    process.stdout.write(`${row.join(' | ')}\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
