/**
 * Sharing benchmark (issue #14): what the équipe-de-soins access policy costs a search, at 100k
 * and 1M resources: the same queries for an admin, the MSP's system client (today's rule), and
 * persons: a GP of the MSP (structure team), a nurse of a cabinet infirmier (care circle), a
 * pharmacist (consent) and a secretary (non-health staff).
 *
 *   npm run bench:sharing -- --size 1000000 [--seed 1] [--as-of YYYY-MM-DD] [--iterations 100]
 *                            [--budget-seconds 150] [--min-runs 20] [--warmup 10] [--verify 30] [--keep-data DIR] [--reuse]
 *                            [--variant gateway|covering|stats|stats-covering|prefilter|stats-prefilter]
 *
 * Fill: a deterministic territory (test/bench/sharing-data.ts); the structures and the first
 * --verify patients are written through the store's write path (FhirRepository: validation,
 * projection, policy-maintained rows), every other resource goes through the same preparation
 * (prepareCreate: stamping, search-index extraction) and is COPYed into the same tables. The COPY
 * path is checked against the write path: the verification patients are COPYed into a scratch
 * schema too and every row must match (else the run stops).
 * Measure: in-process FhirRepository.search with Principal objects (the gateway's repository,
 * policy and statement timeout; no HTTP, no token), sequential (one search at a time), warm,
 * principals interleaved per iteration so that machine noise falls on all of them alike.
 * Writes test/bench/results/sharing-<date>-<size>.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'pg';
import type { PoolClient, QueryResult } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { Resource } from '@medplum/fhirtypes';
import { ProfileRegistry, SearchParamRegistry, loadFhirDefinitions, parseSearchRequest } from '@gw/fhir';
import { migrate } from '@gw/platform';
import { CareAccessPolicy, FhirRepository, rebuildSharingProjection } from '@gw/store';
import type { AccessPolicy, NewVersion, Principal, WriteContext } from '@gw/store';
import { MIGRATIONS } from '../../apps/gateway/src/core';
import { ROOT } from '../support/process';
import { benchPostgres, machineBusyTicks, percentile, postgresTicks, round } from './bench-support';
import { buildLayout, buildPatient, by } from './sharing-data';
import { VARIANTS } from './sharing-variants';
import type { Variant } from './sharing-variants';
import type { BenchLayout, BenchRole, PatientFacts } from './sharing-data';

const MEAN_PER_PATIENT = 20;
const PATIENTS_PER_BATCH = 400;

const LOADER: WriteContext = {
  principal: {
    clientId: 'sharing-bench-loader',
    organization: 'Organization/sharing-bench-loader',
    admin: true,
    scopes: ['system/*.cruds'],
  },
};

/** The gateway's policy, with its default profession matrix (the fill, and the reference of a variant). */
function policy(): AccessPolicy {
  return new CareAccessPolicy();
}

/** GW_SHARING_ENCOUNTER_MONTHS at its default. */
const ENCOUNTER_MONTHS = 24;

/** Columns the COPY path writes, per table (the write path's persistVersions writes the same). */
const COLUMNS: Record<string, string[]> = {
  resource: [
    'resource_type',
    'id',
    'version_id',
    'last_updated',
    'deleted',
    'owner_org',
    'content',
    'patient_id',
    'restricted',
  ],
  resource_history: [
    'resource_type',
    'id',
    'version_id',
    'last_updated',
    'deleted',
    'owner_org',
    'client_id',
    'request_id',
    'content',
    'agent',
  ],
  sp_token: ['resource_type', 'id', 'code', 'system', 'value'],
  sp_string: ['resource_type', 'id', 'code', 'value', 'raw'],
  sp_date: ['resource_type', 'id', 'code', 'low', 'high'],
  sp_reference: ['resource_type', 'id', 'code', 'target_type', 'target_id'],
  sp_number: ['resource_type', 'id', 'code', 'value', 'system', 'unit'],
  care_access: [
    'patient_id',
    'grantee',
    'basis',
    'classes',
    'resource_ref',
    'valid',
    'role',
    'source',
    'recognised_by',
    'recognised_at',
  ],
  care_opposition: ['patient_id', 'actor', 'classes', 'valid', 'source'],
};
/** Tables whose rows belong to a source resource (`Type/id` in column source), not to (resource_type, id). */
const BY_SOURCE = new Set(['care_access', 'care_opposition']);
const TABLES = Object.keys(COLUMNS);
/** Columns that differ between two preparations of the same resource (the write time). */
const VOLATILE = new Set(['last_updated', 'content', 'recognised_at']);

type Lines = Record<string, string[]>;

function esc(v: string | number | boolean | null | undefined): string {
  if (v === null || v === undefined) {
    return '\\N';
  }
  if (typeof v === 'boolean') {
    return v ? 't' : 'f';
  }
  return String(v).replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r');
}

/** The rows persistVersions writes for these versions, as COPY text lines. */
function linesOf(versions: NewVersion[]): Lines {
  const out: Lines = Object.fromEntries(TABLES.map((t) => [t, []]));
  const row = (...f: (string | number | boolean | null | undefined)[]): string => f.map(esc).join('\t');
  for (const v of versions) {
    const key = [v.resourceType, v.id] as const;
    out.resource.push(
      row(
        ...key,
        v.versionId,
        v.lastUpdated,
        v.deleted,
        v.ownerOrg,
        v.json,
        v.patientId ?? null,
        v.restricted ?? false,
      ),
    );
    out.resource_history.push(
      row(
        ...key,
        v.versionId,
        v.lastUpdated,
        v.deleted,
        v.ownerOrg,
        v.clientId,
        v.requestId ?? null,
        v.json,
        v.agent ?? null,
      ),
    );
    // New resources: no earlier rows of these sources to replace (persistVersions' sharingCtes deletes them first).
    for (const a of v.sharing?.access ?? []) {
      out.care_access.push(
        row(
          a.patientId,
          a.grantee,
          a.basis,
          pgArray(a.classes),
          a.resourceRef,
          range(a.from, a.to),
          a.role,
          v.sharing?.source,
          a.recognisedBy,
          a.recognisedAt,
        ),
      );
    }
    for (const o of v.sharing?.oppositions ?? []) {
      out.care_opposition.push(row(o.patientId, o.actor, pgArray(o.classes), range(o.from, o.to), v.sharing?.source));
    }
    v.rows.tokens.forEach((r) => out.sp_token.push(row(...key, r.code, r.system, r.value)));
    v.rows.strings.forEach((r) => out.sp_string.push(row(...key, r.code, r.value, r.raw)));
    v.rows.dates.forEach((r) => out.sp_date.push(row(...key, r.code, r.low, r.high)));
    v.rows.references.forEach((r) => out.sp_reference.push(row(...key, r.code, r.targetType, r.targetId)));
    v.rows.numbers.forEach((r) => out.sp_number.push(row(...key, r.code, r.value, r.system, r.unit)));
  }
  return out;
}

/** A text[] literal of type names (no quoting needed), or NULL. */
function pgArray(values: string[] | null): string | null {
  return values ? `{${values.join(',')}}` : null;
}

/** tstzrange(from, to, '[)') as a literal: an absent bound is unbounded. */
function range(from: string | null, to: string | null): string {
  return `${from ? `[${from}` : '('},${to ?? ''})`;
}

async function copyLines(client: PoolClient, lines: Lines, schema = 'public'): Promise<void> {
  for (const t of TABLES) {
    if (lines[t].length === 0) {
      continue;
    }
    await new Promise<void>((done, fail) => {
      const stream = client.query(copyFrom(`COPY ${schema}.${t} (${COLUMNS[t].join(', ')}) FROM STDIN`));
      stream.on('finish', () => done());
      stream.on('error', fail);
      stream.end(`${lines[t].join('\n')}\n`);
    });
  }
}

interface Fill {
  resources: number;
  patients: number;
  seconds: number;
  perSecond: number;
  writePath: number;
  verifiedRows: Record<string, number>;
}

/**
 * Fills the database to about `size` resources. Patients [0, verify) and the structures go through
 * the write path; the rest is prepared the same way and COPYed, in batches, one COPY in flight while
 * the next batch is prepared.
 */
async function fill(
  pool: Pool,
  repo: FhirRepository,
  layout: BenchLayout,
  opts: { seed: number; size: number; asOf: string; verify: number },
): Promise<{ fill: Fill; facts: PatientFacts[] }> {
  const started = Date.now();
  const facts: PatientFacts[] = [];
  const sample: Resource[] = [...layout.resources];
  let resources = 0;
  let patients = 0;
  const nextPatient = (): Resource[] => {
    const p = buildPatient(layout, opts.seed, patients, opts.asOf, MEAN_PER_PATIENT);
    facts.push(p.facts);
    patients++;
    resources += p.resources.length;
    return p.resources;
  };
  while (patients < opts.verify) {
    sample.push(...nextPatient());
  }
  resources += layout.resources.length;
  await repo.withTransaction(async (tx) => {
    await repo.persist(
      tx,
      sample.map((r) => repo.prepareCreate(r, LOADER, r.id as string)),
    );
  });
  const verifiedRows = await verifyCopyPath(pool, repo, sample);
  const client = await pool.connect();
  let inFlight: Promise<void> = Promise.resolve();
  let lastReport = Date.now();
  try {
    while (resources < opts.size) {
      const batch: Resource[] = [];
      for (let i = 0; i < PATIENTS_PER_BATCH && resources < opts.size; i++) {
        batch.push(...nextPatient());
      }
      const lines = linesOf(batch.map((r) => repo.prepareCreate(r, LOADER, r.id as string)));
      await inFlight;
      inFlight = copyLines(client, lines);
      if (Date.now() - lastReport > 20_000) {
        lastReport = Date.now();
        process.stderr.write(
          `  fill: ${resources} resources, ${patients} patients, ${Math.round(resources / ((Date.now() - started) / 1000))}/s\n`,
        );
      }
    }
    await inFlight;
  } finally {
    client.release();
  }
  const seconds = (Date.now() - started) / 1000;
  return {
    facts,
    fill: {
      resources,
      patients,
      seconds: round(seconds),
      perSecond: Math.round(resources / seconds),
      writePath: sample.length,
      verifiedRows,
    },
  };
}

/**
 * The COPY path must write what the write path wrote: the same resources, prepared again and
 * COPYed into a scratch schema, are compared with the stored rows, every column but the write time.
 */
async function verifyCopyPath(pool: Pool, repo: FhirRepository, sample: Resource[]): Promise<Record<string, number>> {
  await pool.query('DROP SCHEMA IF EXISTS bench_verify CASCADE; CREATE SCHEMA bench_verify');
  for (const t of TABLES) {
    await pool.query(`CREATE TABLE bench_verify.${t} (LIKE public.${t} INCLUDING DEFAULTS)`);
  }
  const client = await pool.connect();
  try {
    await copyLines(client, linesOf(sample.map((r) => repo.prepareCreate(r, LOADER, r.id as string))), 'bench_verify');
  } finally {
    client.release();
  }
  const counts: Record<string, number> = {};
  const keys = 'SELECT DISTINCT resource_type, id FROM bench_verify.resource';
  const sources = `SELECT resource_type || '/' || id FROM bench_verify.resource`;
  for (const t of TABLES) {
    const cols = COLUMNS[t].filter((c) => !VOLATILE.has(c)).join(', ');
    const mine = BY_SOURCE.has(t) ? `source IN (${sources})` : `(resource_type, id) IN (${keys})`;
    const stored = `SELECT ${cols} FROM public.${t} WHERE ${mine}`;
    const copied = `SELECT ${cols} FROM bench_verify.${t}`;
    const diff = await pool.query<{ n: string }>(
      `SELECT (SELECT count(*) FROM ((${stored}) EXCEPT ALL (${copied})) a) + (SELECT count(*) FROM ((${copied}) EXCEPT ALL (${stored})) b) AS n`,
    );
    const n = Number(diff.rows[0].n);
    if (n !== 0) {
      throw new Error(`COPY path differs from the write path: ${n} rows of ${t} differ`);
    }
    counts[t] = Number((await pool.query<{ n: string }>(`SELECT count(*) AS n FROM bench_verify.${t}`)).rows[0].n);
  }
  await pool.query('DROP SCHEMA bench_verify CASCADE');
  return counts;
}

function person(r: BenchRole, clientId: string): Principal {
  return {
    clientId,
    organization: r.org,
    admin: false,
    scopes: ['system/*.cruds'],
    person: {
      practitioner: r.practitioner,
      role: r.role,
      profession: r.profession,
      health: r.health,
      idNatPs: r.idNatPs,
      purpose: 'TREAT',
    },
  };
}

function principals(layout: BenchLayout): Record<string, Principal> {
  const msp = layout.msps[0];
  const nursing = layout.nursingOf[0];
  const pharmacy = layout.pharmaciesOf[0][0];
  return {
    admin: { clientId: 'admin', organization: 'Organization/operator', admin: true, scopes: ['system/*.cruds'] },
    'msp-system': { clientId: 'msp-1', organization: msp.ref, admin: false, scopes: ['system/*.cruds'] },
    gp: person(
      by((r) => r.profession === '10', msp),
      'msp-1',
    ),
    'nurse-outside': person(
      by((r) => r.profession === '60', nursing),
      'nursing-1',
    ),
    pharmacist: person(
      by((r) => r.profession === '21', pharmacy),
      'pharmacy-1',
    ),
    secretary: person(
      by((r) => !r.health, msp),
      'msp-1',
    ),
  };
}

interface QueryDef {
  name: string;
  type: string;
  /** The query of iteration i (the same for every principal). */
  params: (i: number) => [string, string][];
}

function queries(facts: PatientFacts[], asOf: string): QueryDef[] {
  // Patients of the first MSP: the GP's own, some with the nurse in their care circle, some with a
  // consent to the pharmacy, some neither (the same list for every principal).
  const mine = facts.filter((f) => f.msp === 0);
  const pick = (pred: (f: PatientFacts) => boolean, n: number): PatientFacts[] => mine.filter(pred).slice(0, n);
  const patients = [
    ...pick((f) => f.careCircle && f.opposition === 'none', 20),
    ...pick((f) => f.consent && !f.careCircle && f.opposition === 'none', 15),
    ...pick((f) => f.opposition !== 'none', 5),
    ...pick((f) => !f.careCircle && !f.consent && f.opposition === 'none', 10),
  ].map((f) => f.id);
  const families = ['MARTIN', 'BERNARD', 'DUBOIS', 'MOREAU', 'GIRARD', 'ROUX', 'FAURE', 'BLANC', 'PERRIN', 'ROBIN'];
  const since = new Date(Date.parse(`${asOf}T00:00:00Z`) - 90 * 86_400_000).toISOString().slice(0, 10);
  return [
    { name: 'Observation?patient=X', type: 'Observation', params: (i) => [['patient', patients[i % patients.length]]] },
    {
      // What a pharmacist's consent and the matrix let them read: the treatment.
      name: 'MedicationStatement?patient=X',
      type: 'MedicationStatement',
      params: (i) => [['patient', patients[i % patients.length]]],
    },
    {
      name: 'Observation?code=loinc|29463-7&_count=20',
      type: 'Observation',
      params: () => [
        ['code', 'http://loinc.org|29463-7'],
        ['_count', '20'],
      ],
    },
    { name: 'Patient?family=F', type: 'Patient', params: (i) => [['family', families[i % families.length]]] },
    {
      name: `Encounter?date=ge${since}&_count=50&_total=accurate`,
      type: 'Encounter',
      params: () => [
        ['date', `ge${since}`],
        ['_count', '50'],
        ['_total', 'accurate'],
      ],
    },
  ];
}

interface Timing {
  p50ms: number;
  p95ms: number;
  p99ms: number;
  maxMs: number;
  meanMs: number;
  runs: number;
  /** Mean rows returned (matches on the page). */
  rows: number;
  /** Mean Bundle.total when asked for. */
  total?: number;
  /** Searches cancelled by the statement timeout (an error for the client). */
  timeouts?: number;
}

async function measure(
  repo: FhirRepository,
  who: Record<string, Principal>,
  defs: QueryDef[],
  loops: { iterations: number; budgetSeconds: number; minRuns: number; warmup: number },
): Promise<Record<string, Record<string, Timing>>> {
  const { iterations, budgetSeconds, minRuns } = loops;
  const out: Record<string, Record<string, Timing>> = {};
  const limits = { defaultCount: 20, maxCount: 1000 };
  for (const q of defs) {
    const times: Record<string, number[]> = Object.fromEntries(Object.keys(who).map((k) => [k, []]));
    const rows: Record<string, number> = Object.fromEntries(Object.keys(who).map((k) => [k, 0]));
    const totals: Record<string, number> = Object.fromEntries(Object.keys(who).map((k) => [k, 0]));
    const timeouts: Record<string, number> = Object.fromEntries(Object.keys(who).map((k) => [k, 0]));
    const warm = loops.warmup;
    const started = Date.now();
    for (let i = 0; i < warm + iterations; i++) {
      // Bounded: a slow query stops at its time budget once it has --min-runs measured runs per principal.
      if (i >= warm + minRuns && Date.now() - started > budgetSeconds * 1000) {
        break;
      }
      for (const [name, p] of Object.entries(who)) {
        const req = parseSearchRequest(q.type, q.params(i), limits);
        const t = process.hrtime.bigint();
        let r: { matches: unknown[]; total?: number } = { matches: [] };
        try {
          r = await repo.search(p, req, true);
        } catch (err) {
          // The gateway's statement_timeout (30 s) cancelled it: the client gets an error, counted here.
          if ((err as { code?: string }).code !== '57014') {
            throw err;
          }
          timeouts[name]++;
        }
        const ms = Number(process.hrtime.bigint() - t) / 1e6;
        if (i >= warm) {
          times[name].push(ms);
          rows[name] += r.matches.length;
          totals[name] += r.total ?? 0;
        }
      }
    }
    out[q.name] = {};
    for (const name of Object.keys(who)) {
      const s = Float64Array.from(times[name]).sort();
      out[q.name][name] = {
        p50ms: round(percentile(s, 50)),
        p95ms: round(percentile(s, 95)),
        p99ms: round(percentile(s, 99)),
        maxMs: round(s[s.length - 1] ?? 0),
        meanMs: round(s.reduce((a, b) => a + b, 0) / Math.max(1, s.length)),
        runs: s.length,
        ...(timeouts[name] > 0 ? { timeouts: timeouts[name] } : {}),
        rows: round(rows[name] / Math.max(1, s.length)),
        ...(q.name.includes('_total') ? { total: round(totals[name] / Math.max(1, s.length)) } : {}),
      };
    }
    process.stderr.write(`${q.name}\n`);
    for (const [name, t] of Object.entries(out[q.name])) {
      process.stderr.write(
        `  ${name.padEnd(14)} p50 ${t.p50ms} p95 ${t.p95ms} p99 ${t.p99ms} ms, rows ${t.rows}${t.total !== undefined ? `, total ${t.total}` : ''}\n`,
      );
    }
  }
  return out;
}

/** The SQL of one search as the repository sends it, then EXPLAIN (ANALYZE, BUFFERS) of it. */
async function explain(
  url: string,
  registry: SearchParamRegistry,
  variant: Variant,
  p: Principal,
  q: QueryDef,
): Promise<{ sql: string; plan: string[] }> {
  const captured: { text: string; values: unknown[] }[] = [];
  const spy = new Pool({ connectionString: url, max: 1 });
  const original = spy.query.bind(spy) as (text: string, values?: unknown[]) => Promise<QueryResult>;
  (spy as unknown as { query: (text: string, values?: unknown[]) => Promise<QueryResult> }).query = (text, values) => {
    captured.push({ text, values: values ?? [] });
    return original(text, values);
  };
  try {
    const repo = new FhirRepository(spy, registry, variant.policy());
    await repo.search(p, parseSearchRequest(q.type, q.params(0), { defaultCount: 20, maxCount: 1000 }), true);
    const main = captured.find((c) => c.text.includes('FROM resource r')) ?? captured[0];
    const res = await original(`EXPLAIN (ANALYZE, BUFFERS) ${main.text}`, main.values);
    return {
      sql: main.text,
      plan: res.rows.map((r: Record<string, string>) => r['QUERY PLAN']),
    };
  } finally {
    await spy.end();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      size: { type: 'string', default: '1000000' },
      seed: { type: 'string', default: '1' },
      'as-of': { type: 'string', default: new Date().toISOString().slice(0, 10) },
      iterations: { type: 'string', default: '100' },
      'budget-seconds': { type: 'string', default: '150' },
      'min-runs': { type: 'string', default: '20' },
      warmup: { type: 'string', default: '10' },
      verify: { type: 'string', default: '30' },
      'keep-data': { type: 'string' },
      reuse: { type: 'boolean', default: false },
      explain: { type: 'boolean', default: true },
      variant: { type: 'string', default: 'gateway' },
    },
  });
  const size = Number(values.size);
  const seed = Number(values.seed);
  const asOf = values['as-of'] as string;
  const iterations = Number(values.iterations);
  const variant = VARIANTS[values.variant as string];
  if (!variant) {
    throw new Error(`--variant: one of ${Object.keys(VARIANTS).join(', ')}`);
  }
  if (!Number.isInteger(size) || size < 10_000 || !Number.isInteger(iterations) || iterations < 1) {
    throw new Error('usage: --size N (≥ 10000) [--seed 1] [--as-of YYYY-MM-DD] [--iterations 100] [--verify 30]');
  }
  const { dataDir, pg } = await benchPostgres(values['keep-data'], !!values.reuse, 'gw-bench-share-');
  loadFhirDefinitions();
  const profiles = ProfileRegistry.fromDirectory(resolve(ROOT, 'fhir-profiles'));
  const registry = new SearchParamRegistry();
  const layout = buildLayout(seed);
  const results: Record<string, unknown> = {
    date: new Date().toISOString(),
    command: `npm run bench:sharing -- ${process.argv.slice(2).join(' ')}`,
    machine: `${cpus().length} cores, embedded PostgreSQL 18 (default settings of the gateway), the bench and the database on the same machine; load average at start ${loadavg()
      .map((l) => round(l))
      .join(' ')}`,
    path: 'in-process FhirRepository.search with Principal objects (no HTTP, no token), one search at a time',
    size,
    seed,
    asOf,
    variant: variant.name,
  };
  try {
    const dbName = `bench_sharing_${size}_s${seed}_${asOf.replace(/-/g, '')}`;
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
    // What the gateway does at start after migration 19 (nothing to project in a new database).
    await rebuildSharingProjection(pool, ENCOUNTER_MONTHS);
    const repo = new FhirRepository(pool, registry, policy(), profiles, 30_000, { encounterMonths: ENCOUNTER_MONTHS });
    let facts: PatientFacts[];
    if (values.reuse && exists) {
      facts = regenerateFacts(layout, seed, asOf, size);
      results.fill = { reused: true };
    } else {
      const f = await fill(pool, repo, layout, { seed, size, asOf, verify: Number(values.verify) });
      facts = f.facts;
      const t = Date.now();
      await pool.query('VACUUM ANALYZE');
      results.fill = { ...f.fill, vacuumAnalyzeSeconds: round((Date.now() - t) / 1000) };
      process.stderr.write(`filled: ${JSON.stringify(results.fill)}\n`);
    }
    results.counts = Object.fromEntries(
      (
        await pool.query<{ resource_type: string; n: string }>(
          'SELECT resource_type, count(*) AS n FROM resource GROUP BY 1 ORDER BY 2 DESC',
        )
      ).rows.map((r) => [r.resource_type, Number(r.n)]),
    );
    results.careAccess = Object.fromEntries(
      (
        await pool.query<{ basis: string; n: string }>(
          'SELECT basis, count(*) AS n FROM care_access GROUP BY 1 ORDER BY 2 DESC',
        )
      ).rows.map((r) => [r.basis, Number(r.n)]),
    );
    results.careOppositions = Number(
      (await pool.query<{ n: string }>('SELECT count(*) AS n FROM care_opposition')).rows[0].n,
    );
    results.restricted = Number(
      (await pool.query<{ n: string }>('SELECT count(*) AS n FROM resource WHERE restricted')).rows[0].n,
    );
    results.patients = facts.length;
    const who = principals(layout);
    const defs = queries(facts, asOf);
    for (const sql of variant.createSql) {
      await pool.query(sql);
    }
    try {
      const measured =
        variant.name === 'gateway' ? repo : new FhirRepository(pool, registry, variant.policy(), profiles, 30_000);
      if (measured !== repo) {
        const reference = new FhirRepository(pool, registry, policy(), profiles);
        results.sameAnswers = await sameAnswers(reference, measured, who, defs);
      }
      const busy0 = machineBusyTicks();
      const pg0 = postgresTicks(dataDir);
      const t0 = Date.now();
      results.searches = await measure(measured, who, defs, {
        iterations,
        budgetSeconds: Number(values['budget-seconds']),
        minRuns: Number(values['min-runs']),
        warmup: Number(values.warmup),
      });
      const wall = (Date.now() - t0) / 1000;
      results.cores = {
        machine: round((machineBusyTicks() - busy0) / 100 / wall),
        postgres: round((postgresTicks(dataDir) - pg0) / 100 / wall),
        seconds: round(wall),
      };
      if (values.explain) {
        results.explain = await explainSlowest(
          url,
          registry,
          variant,
          who,
          defs,
          results.searches as Record<string, Record<string, Timing>>,
        );
      }
    } finally {
      for (const sql of variant.dropSql) {
        await pool.query(sql);
      }
    }
    await pool.end();
  } finally {
    await pg.stop();
  }
  const outDir = resolve(ROOT, 'test/bench/results');
  mkdirSync(outDir, { recursive: true });
  const suffix = variant.name === 'gateway' ? '' : `-${variant.name}`;
  const file = join(outDir, `sharing-${new Date().toISOString().slice(0, 10)}-${size}${suffix}.json`);
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`results written to ${file}\n`);
}

/**
 * EXPLAIN (ANALYZE, BUFFERS) of the person query that costs most over the admin's (p50 difference:
 * p99 on a shared machine is one outlier), next to the admin's plan of the same query.
 */
async function explainSlowest(
  url: string,
  registry: SearchParamRegistry,
  variant: Variant,
  who: Record<string, Principal>,
  defs: QueryDef[],
  searches: Record<string, Record<string, Timing>>,
): Promise<Record<string, unknown>> {
  let worst: { query: QueryDef; principal: string; extraMs: number } | undefined;
  for (const q of defs) {
    for (const name of Object.keys(who)) {
      if (!who[name].person) {
        continue;
      }
      const extraMs = searches[q.name][name].p50ms - searches[q.name].admin.p50ms;
      if (!worst || extraMs > worst.extraMs) {
        worst = { query: q, principal: name, extraMs };
      }
    }
  }
  if (!worst) {
    return {};
  }
  return {
    query: worst.query.name,
    principal: worst.principal,
    p50OverAdminMs: round(worst.extraMs),
    person: await explain(url, registry, variant, who[worst.principal], worst.query),
    admin: await explain(url, registry, variant, who.admin, worst.query),
  };
}

/**
 * A variant must answer exactly as the gateway's policy: the same ids in the same order and the
 * same total, for the first 5 distinct queries of each kind and every principal (else the run
 * stops). `reference` runs without a statement timeout: the gateway's policy may need more than 30 s.
 */
async function sameAnswers(
  reference: FhirRepository,
  variant: FhirRepository,
  who: Record<string, Principal>,
  defs: QueryDef[],
): Promise<number> {
  let compared = 0;
  const limits = { defaultCount: 20, maxCount: 1000 };
  for (const q of defs) {
    const distinct = [...new Set([0, 1, 2, 3, 4].map((i) => JSON.stringify(q.params(i))))].length;
    for (let i = 0; i < distinct; i++) {
      for (const [name, p] of Object.entries(who)) {
        const answer = async (repo: FhirRepository): Promise<string> => {
          const r = await repo.search(p, parseSearchRequest(q.type, q.params(i), limits), true);
          return JSON.stringify([r.total, r.hasMore, r.matches.map((m) => m.id)]);
        };
        const [a, b] = [await answer(reference), await answer(variant)];
        if (a !== b) {
          throw new Error(
            `the variant answers ${q.name} (iteration ${i}) for ${name} differently: ${b} instead of ${a}`,
          );
        }
        compared++;
      }
    }
  }
  return compared;
}

/** The facts of a kept database's patients, drawn again (same seed, size and date: same patients). */
function regenerateFacts(layout: BenchLayout, seed: number, asOf: string, size: number): PatientFacts[] {
  const facts: PatientFacts[] = [];
  let resources = layout.resources.length;
  for (let i = 0; resources < size; i++) {
    const p = buildPatient(layout, seed, i, asOf, MEAN_PER_PATIENT);
    facts.push(p.facts);
    resources += p.resources.length;
  }
  return facts;
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
