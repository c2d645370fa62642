/**
 * Care-gaps benchmark: `Measure/$care-gaps` as the service answers it (evaluation, access checks,
 * audit, the JSON text built) for one GP's patientèle and for one structure, over the whole
 * catalogue in force, in a territory of `--patients` loaded by `demo:territory`'s generator through
 * the store's write path, then optionally its indicator projection replicated to `--replicate`
 * patients. The replicas get their own GPs and structures (suffixed references), so a GP's list
 * keeps the size it has in the loaded territory (~1 000) while every table is at the large size.
 *
 *   npm run bench:care-gaps -- --patients 10000 [--replicate 1000000] [--runs 30] [--seed 1]
 *     [--as-of 2025-12-31] [--all-measures] [--catalogue 3] [--keep-data DIR] [--reuse]
 *
 * --all-measures: every Measure of the catalogue (measureId repeated), whatever its effectivePeriod
 * (the ROSP and the FMT ones together: an upper bound of one year's catalogue on the loaded facts).
 * --catalogue N: also N evaluations of the population reports of the catalogue in force on the
 * period's end (with --all-measures: every Measure), for the CPTS (every replicated structure is
 * one of its members), as `bench:indicators` times them.
 *
 * Prints p50/p99/max per list and writes test/bench/results/care-gaps-<date>.json.
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'pg';
import { createLogger, migrate } from '@gw/platform';
import { ProfileRegistry, SearchParamRegistry, loadFhirDefinitions } from '@gw/fhir';
import { AuditLog, FhirRepository, OrganizationAccessPolicy } from '@gw/store';
import type { Principal } from '@gw/store';
import { IndicatorsService } from '@gw/indicators';
import { MIGRATIONS } from '../../apps/gateway/src/core';
import { TerritoryGenerator, TerritoryLoader } from '../../apps/gateway/src/demo/territory';
import { ROOT } from '../support/process';
import { benchPostgres, percentile, round } from './bench-support';
import { evaluateAll } from './indicators-support';

const USAGE =
  'usage: --patients 10000 [--replicate 1000000] [--runs 30] [--seed 1] [--as-of 2025-12-31] [--all-measures] [--catalogue 3] [--keep-data DIR] [--reuse]';

interface ListTiming {
  subject: string;
  patientsInScope: number;
  patientsListed: number;
  items: number;
  jsonBytes: number;
  ms: { p50: number; p99: number; max: number; runs: number[] };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      patients: { type: 'string', default: '10000' },
      replicate: { type: 'string' },
      runs: { type: 'string', default: '30' },
      seed: { type: 'string', default: '1' },
      'as-of': { type: 'string', default: '2025-12-31' },
      'keep-data': { type: 'string' },
      reuse: { type: 'boolean', default: false },
      'all-measures': { type: 'boolean', default: false },
      catalogue: { type: 'string', default: '0' },
    },
  });
  const patients = Number(values.patients);
  const replicate = values.replicate ? Number(values.replicate) : 0;
  const runs = Number(values.runs);
  if (!Number.isInteger(patients) || patients < 100 || (replicate && replicate <= patients) || !(runs > 0)) {
    throw new Error(USAGE);
  }
  const asOf = values['as-of'] as string;
  const period = { start: `${asOf.slice(0, 4)}-01-01`, end: asOf };
  const catalogueRuns = Number(values.catalogue);
  const { dataDir, pg } = await benchPostgres(values['keep-data'], !!values.reuse, 'gw-bench-gaps-');
  const logger = createLogger('warn');
  loadFhirDefinitions();
  const profiles = ProfileRegistry.fromDirectory(resolve(ROOT, 'fhir-profiles'));
  const factor = replicate ? Math.round(replicate / patients) : 1;
  const dbName = `bench_gaps_${patients}_s${values.seed}_x${factor}`;
  try {
    const admin = new Pool({ connectionString: pg.superuserUrl, max: 1 });
    const exists = (await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [dbName])).rowCount === 1;
    if (!exists) {
      await admin.query(`CREATE DATABASE ${dbName}`);
    }
    await admin.end();
    const pool = new Pool({ connectionString: pg.superuserUrl.replace(/\/[^/]*$/, `/${dbName}`), max: 8 });
    await migrate(pool, MIGRATIONS);
    const repo = new FhirRepository(pool, new SearchParamRegistry(), new OrganizationAccessPolicy(), profiles);
    const started = Date.now();
    const generator = new TerritoryGenerator({ seed: Number(values.seed), patients, asOf });
    const summary = await new TerritoryLoader(repo, {}).load(generator);
    const loaded = summary.status !== 'already-loaded';
    process.stderr.write(
      `${patients} patients: ${loaded ? `${summary.resources} resources in ${round((Date.now() - started) / 1000)} s` : 'already loaded'}\n`,
    );
    if (factor > 1 && loaded) {
      const t = Date.now();
      await replicateWithOwnPractices(pool, factor);
      process.stderr.write(`projection replicated x${factor} in ${round((Date.now() - t) / 1000)} s\n`);
    }
    // Also on --reuse: databases replicated before the directory was copied.
    if (factor > 1) {
      await replicateDirectory(pool, factor);
    }
    // Also on --reuse (statistics only): a previous run may have stopped before it took them.
    await pool.query(loaded ? 'VACUUM ANALYZE' : 'ANALYZE');
    const total = Number((await pool.query<{ n: string }>('SELECT count(*) AS n FROM ind_patient')).rows[0]?.n);
    const audit = new AuditLog(pool, logger);
    const service = IndicatorsService.load(resolve(ROOT, 'fhir-profiles/measures'), pool, repo, audit, 10, logger);
    const { gp, gpStructure, structure } = await subjects(pool);
    const client = (org: string): Principal => ({
      clientId: 'bench-care-gaps',
      organization: org,
      admin: false,
      scopes: ['system/*.rs'],
    });
    const measureIds = values['all-measures'] ? service.measures().map((m) => m.id) : undefined;
    const results = [
      await timeList(service, client(gpStructure), gp, period, runs, measureIds),
      await timeList(service, client(structure), structure, period, runs, measureIds),
    ];
    const catalogue =
      catalogueRuns > 0
        ? await evaluateAll({
            pool,
            repo,
            logger,
            dataDir,
            period,
            runs: catalogueRuns,
            cptsId: generator.cpts.id,
            patients: total,
            ...(factor > 1 ? { replicatedFrom: patients } : {}),
            load: { seconds: 0, resources: 0, perSecond: 0, reused: !loaded },
            inForce: !values['all-measures'],
          })
        : undefined;
    const out = {
      date: new Date().toISOString(),
      patients,
      replicatedTo: factor > 1 ? total : undefined,
      ind_patient_rows: total,
      period,
      measures: measureIds ? measureIds.length : 'in force on the period end',
      results,
      ...(catalogue ? { catalogue } : {}),
    };
    for (const r of results) {
      process.stdout.write(
        `${r.subject}: ${r.patientsInScope} patients in scope, ${r.patientsListed} listed, ${r.items} items, ${round(r.jsonBytes / 1024)} KB: p50 ${r.ms.p50} ms, p99 ${r.ms.p99} ms, max ${r.ms.max} ms\n`,
      );
    }
    if (catalogue) {
      process.stdout.write(
        `catalogue for the CPTS (${catalogue.persons} persons, ${Object.keys(catalogue.alone).length} Measures): best ${catalogue.catalogue.bestMs} ms of ${catalogue.catalogue.runsMs.join(', ')}; persons table ${catalogue.catalogue.personsMs} ms\n`,
      );
    }
    const file = resolve(ROOT, 'test/bench/results', `care-gaps-${new Date().toISOString().slice(0, 10)}.json`);
    writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
    process.stdout.write(`results written to ${file}\n`);
    await audit.flush();
    await pool.end();
  } finally {
    await pg.stop();
  }
}

/** The GP with the most patients (and the structure holding most of them), and the largest structure. */
async function subjects(pool: Pool): Promise<{ gp: string; gpStructure: string; structure: string }> {
  const gp = await pool.query<{ gp: string; org: string }>(
    `SELECT gp, mode() WITHIN GROUP (ORDER BY owner_org) AS org FROM ind_patient
      WHERE gp IS NOT NULL AND gp NOT LIKE '%~%' AND active GROUP BY gp ORDER BY count(*) DESC LIMIT 1`,
  );
  const org = await pool.query<{ org: string }>(
    `SELECT owner_org AS org FROM ind_patient WHERE owner_org NOT LIKE '%~%' AND active
      GROUP BY owner_org ORDER BY count(*) DESC LIMIT 1`,
  );
  return { gp: gp.rows[0]!.gp, gpStructure: gp.rows[0]!.org, structure: org.rows[0]!.org };
}

async function timeList(
  service: IndicatorsService,
  p: Principal,
  subject: string,
  period: { start: string; end: string },
  runs: number,
  measureId: string[] | undefined,
): Promise<ListTiming> {
  const ms: number[] = [];
  let last = { listed: 0, items: 0, bytes: 0 };
  // One warm-up (plans, caches), then the timed runs: the JSON text is built in each.
  for (let i = 0; i <= runs; i++) {
    const t = process.hrtime.bigint();
    const answer = await service.careGaps.careGaps(p, {
      subject,
      periodStart: period.start,
      periodEnd: period.end,
      measureId,
    });
    let bytes = 0;
    for (const chunk of answer.json()) {
      bytes += chunk.length;
    }
    const elapsed = Number(process.hrtime.bigint() - t) / 1e6;
    if (i > 0) {
      ms.push(elapsed);
    }
    last = {
      listed: answer.patients.length,
      items: answer.patients.reduce((n, x) => n + x.items.length, 0),
      bytes,
    };
  }
  const sorted = Float64Array.from(ms).sort();
  const inScope = await service.evaluator.withPersons([], { period, scope: scopeOf(subject) }, async (db) => {
    const r = await db.query<{ n: string }>('SELECT count(*) AS n FROM ev_person');
    return Number(r.rows[0]?.n);
  });
  return {
    subject,
    patientsInScope: inScope,
    patientsListed: last.listed,
    items: last.items,
    jsonBytes: last.bytes,
    ms: {
      p50: round(percentile(sorted, 50)),
      p99: round(percentile(sorted, 99)),
      max: round(sorted[sorted.length - 1] ?? 0),
      runs: ms.map(round),
    },
  };
}

function scopeOf(subject: string): { kind: 'practitioner' | 'organization'; id: string } {
  const [type, id] = subject.split('/') as [string, string];
  return { kind: type === 'Practitioner' ? 'practitioner' : 'organization', id };
}

/**
 * Copies k = 1..factor-1 of every patient and fact of the indicator projection, each copy with
 * its own GP and structure references (suffixed), so GP and structure lists keep their loaded
 * sizes while the tables grow to the replicated size. The resource table is not copied.
 */
async function replicateWithOwnPractices(pool: Pool, factor: number): Promise<void> {
  await pool.query('ALTER TABLE ind_mt_period DISABLE TRIGGER ind_mt_period_owner');
  for (let k = 1; k < factor; k++) {
    await pool.query(
      `INSERT INTO ind_patient (id, owner_org, birth_date, sex, ins, link, gp, mt_status, commune, active, deceased)
       SELECT id || '~' || $1, owner_org || '~' || $1, birth_date, sex, ins || '~' || $1, link || '~' || $1,
              gp || '~' || $1, mt_status, commune, active, deceased
         FROM ind_patient WHERE id NOT LIKE '%~%'`,
      [k],
    );
    // Each copy's GPs work at its structures, so their declarations are verified as the loaded ones.
    await pool.query(
      `INSERT INTO ind_practitioner_role (id, practitioner, organization, active, started, ended, vouched)
       SELECT id || '~' || $1, practitioner || '~' || $1, organization || '~' || $1, active, started, ended, vouched
         FROM ind_practitioner_role WHERE id NOT LIKE '%~%'`,
      [k],
    );
    await pool.query(
      `INSERT INTO ind_fact (resource_type, id, patient, system, code, at, at_end, status, context)
       SELECT resource_type, id || '~' || $1, patient || '~' || $1, system, code, at, at_end, status, context || '~' || $1
         FROM ind_fact WHERE patient NOT LIKE '%~%'`,
      [k],
    );
    // The FMT facts: médecin-traitant periods (owner kept as copied: its trigger reads the resource
    // table, which is not copied) and ALD / C2S coverages.
    await pool.query(
      `INSERT INTO ind_mt_period (patient, practitioner, started, ended, source, owner_org)
       SELECT patient || '~' || $1, practitioner || '~' || $1, started, ended,
              CASE WHEN source = 'Patient' THEN source ELSE source || '~' || $1 END, owner_org || '~' || $1
         FROM ind_mt_period WHERE patient NOT LIKE '%~%'`,
      [k],
    );
    await pool.query(
      `INSERT INTO ind_coverage (coverage_id, patient, owner_org, kind, code, started, ended)
       SELECT coverage_id || '~' || $1, patient || '~' || $1, owner_org || '~' || $1, kind, code, started, ended
         FROM ind_coverage WHERE patient NOT LIKE '%~%'`,
      [k],
    );
    if (k % 10 === 0) {
      process.stderr.write(`  replicated ${k}/${factor - 1}\n`);
    }
  }
  await pool.query('ALTER TABLE ind_mt_period ENABLE TRIGGER ind_mt_period_owner');
}

/**
 * The replicas' structures and GPs in the directory the evaluation joins: each structure a member
 * of the same CPTS (so the CPTS holds every replicated patient), each GP with the loaded one's
 * flags. Once: skipped when the copies exist.
 */
async function replicateDirectory(pool: Pool, factor: number): Promise<void> {
  // Copies made before migration 38 have no owner: each copy's GP is its copied structure's own
  // practitioner, as the loaded one is (so its roles verify the copy's declarations).
  await pool.query(
    `UPDATE ind_practitioner c SET owner_org = b.owner_org || '~' || split_part(c.id, '~', 2)
       FROM ind_practitioner b
      WHERE c.id LIKE '%~%' AND c.owner_org IS NULL AND b.id = split_part(c.id, '~', 1) AND b.owner_org IS NOT NULL`,
  );
  const done = await pool.query("SELECT 1 FROM ind_organization WHERE id LIKE '%~%' LIMIT 1");
  if (done.rowCount === 1) {
    return;
  }
  await pool.query(
    `INSERT INTO ind_organization (id, name, type, part_of, communes)
     SELECT o.id || '~' || k, o.name, o.type, o.part_of, o.communes
       FROM ind_organization o, generate_series(1, $1::int - 1) k
      WHERE o.part_of IS NOT NULL AND o.id NOT LIKE '%~%'`,
    [factor],
  );
  // The owner trigger reads the resource table, which is not copied: the copies' owners are set here.
  await pool.query('ALTER TABLE ind_practitioner DISABLE TRIGGER ind_practitioner_owner');
  await pool.query(
    `INSERT INTO ind_practitioner (id, active, fictitious, owner_org)
     SELECT pr.id || '~' || k, pr.active, pr.fictitious, pr.owner_org || '~' || k
       FROM ind_practitioner pr, generate_series(1, $1::int - 1) k WHERE pr.id NOT LIKE '%~%'`,
    [factor],
  );
  await pool.query('ALTER TABLE ind_practitioner ENABLE TRIGGER ind_practitioner_owner');
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
