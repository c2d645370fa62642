import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Pool } from 'pg';
import { Terminology } from '@gw/ingest';
import { createTestDatabase, migrateAll } from '../../../test/support/database';
import { MeasureCatalogue, PATIENTELE_DATE_EXTENSION, STRATIFIER_SYSTEM } from './catalogue';
import { CRITERIA_LANGUAGE } from './criteria';
import { MeasureEvaluator } from './evaluator';
import type { EvaluateOptions, MeasureCounts } from './evaluator';
import { ALD_SYSTEM, COVERAGE_TYPE_SYSTEM } from './fmt-projection.schema';
import { loadDrugAtc, parseMapFile } from './drug-atc.loader';
import { tempDir } from '../../../test/support/temp-dir';

const GW = 'https://gateway.fr-primary-care.org';
const ORG = 'Organization/o1';
const SHIPPED_MAP = parseMapFile(
  readFileSync(resolve(__dirname, '../../../fhir-profiles/drug-atc/drug-atc.tsv'), 'utf8'),
  'drug-atc.tsv',
);

/** Writes a resource row as the store does (the projection trigger runs on it), at a given time, filed under `owner`. */
async function write(
  pool: Pool,
  type: string,
  id: string,
  content: object | null,
  at: string,
  owner = ORG,
): Promise<void> {
  await pool.query(
    `INSERT INTO resource (resource_type, id, version_id, last_updated, deleted, owner_org, content)
     VALUES ($1, $2, 1, $3, $4, $5, $6)
     ON CONFLICT (resource_type, id) DO UPDATE SET version_id = resource.version_id + 1, last_updated = $3,
       deleted = $4, owner_org = $5, content = $6`,
    [
      type,
      id,
      at,
      content === null,
      owner,
      content === null ? null : JSON.stringify({ resourceType: type, id, ...content }),
    ],
  );
}

const patient = (birthDate: string, gp?: string, extra: object = {}) => ({
  birthDate,
  gender: 'female',
  ...(gp ? { generalPractitioner: [{ reference: `Practitioner/${gp}` }] } : {}),
  ...extra,
});
const ald = (patientId: string, n: string, start: string, end?: string) => ({
  status: 'active',
  beneficiary: { reference: `Patient/${patientId}` },
  payor: [{ display: 'CPAM' }],
  type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'PUBLICPOL' }] },
  costToBeneficiary: [
    {
      exception: [{ type: { coding: [{ system: ALD_SYSTEM, code: n }] }, period: { start, ...(end ? { end } : {}) } }],
    },
  ],
});
const c2s = (patientId: string, start: string, end?: string) => ({
  status: 'active',
  beneficiary: { reference: `Patient/${patientId}` },
  payor: [{ display: 'CPAM' }],
  type: { coding: [{ system: COVERAGE_TYPE_SYSTEM, code: 'C2S' }] },
  period: { start, ...(end ? { end } : {}) },
});
const careTeam = (patientId: string, gp: string, start: string, end?: string) => ({
  status: 'active',
  subject: { reference: `Patient/${patientId}` },
  participant: [
    {
      role: [{ coding: [{ system: Terminology.TRE_R259, code: 'PCP' }] }],
      member: { reference: `Practitioner/${gp}` },
      period: { start, ...(end ? { end } : {}) },
    },
  ],
});
const role = (gp: string, org: string, period?: { start?: string; end?: string }, active = true) => ({
  active,
  practitioner: { reference: `Practitioner/${gp}` },
  organization: { reference: org },
  ...(period ? { period } : {}),
});
/** The role-trust tag the store puts on a role an operator wrote or vouched for. */
const VOUCHED = { meta: { tag: [{ system: `${GW}/fhir/CodeSystem/role-trust`, code: 'operator-vouched' }] } };
const practitioner = { active: true, name: [{ family: 'MT' }] };
/** A dispensation coded only by its CIP13 (the BDPM OID the CDA documents use). */
const dispense = (patientId: string, cip: string, when: string) => ({
  status: 'completed',
  subject: { reference: `Patient/${patientId}` },
  medicationCodeableConcept: { coding: [{ system: 'urn:oid:1.2.250.1.213.2.3.3', code: cip }] },
  whenHandedOver: when,
});

const periods = async (pool: Pool, patientId: string) =>
  (
    await pool.query<{ practitioner: string; started: string; ended: string | null; source: string }>(
      `SELECT practitioner, to_char(started, 'YYYY-MM-DD') AS started, to_char(ended, 'YYYY-MM-DD') AS ended, source
         FROM ind_mt_period WHERE patient = $1 ORDER BY started, source`,
      [patientId],
    )
  ).rows;

describe('FMT projection (PostgreSQL): médecin traitant periods, coverages, dispensations', () => {
  let pool: Pool;

  beforeAll(async () => {
    pool = new Pool({ connectionString: await createTestDatabase('fmtproj') });
    await migrateAll(pool, { upTo: 28 });
    // A Patient whose history predates migration 29: GP d1, the same GP again, then GP d2.
    const versions: [string, string][] = [
      ['2024-03-01T10:00:00Z', 'd1'],
      ['2025-06-15T10:00:00Z', 'd1'],
      ['2025-09-10T10:00:00Z', 'd2'],
    ];
    for (const [i, [at, gp]] of versions.entries()) {
      await pool.query(
        `INSERT INTO resource_history (resource_type, id, version_id, last_updated, owner_org, content) VALUES ('Patient', 'h1', $1, $2, $3, $4)`,
        [i + 1, at, ORG, JSON.stringify({ resourceType: 'Patient', id: 'h1', ...patient('1960-01-01', gp) })],
      );
    }
    await write(pool, 'Patient', 'h1', patient('1960-01-01', 'd2'), '2025-09-10T10:00:00Z');
    await write(pool, 'Coverage', 'old-ald', ald('h1', '8', '2020-01-01'), '2025-01-01T00:00:00Z');
    await write(pool, 'PractitionerRole', 'old-role', role('d2', ORG, { start: '2025-01-01' }), '2025-01-01T00:00:00Z');
    await write(pool, 'Practitioner', 'd2', practitioner, '2025-01-01T00:00:00Z');
    await write(pool, 'Practitioner', 'elsewhere', practitioner, '2025-01-01T00:00:00Z', 'Organization/o2');
    await write(pool, 'PractitionerRole', 'foreign-role', role('elsewhere', ORG), '2025-01-01T00:00:00Z');
    await migrateAll(pool);
  });
  afterAll(async () => pool.end());

  it('migration 29 backfills GP periods from the Patient history and the coverages already stored', async () => {
    expect(await periods(pool, 'h1')).toEqual([
      { practitioner: 'Practitioner/d1', started: '2024-03-01', ended: '2025-09-09', source: 'Patient' },
      { practitioner: 'Practitioner/d2', started: '2025-09-10', ended: null, source: 'Patient' },
    ]);
    const cov = await pool.query('SELECT kind, code FROM ind_coverage WHERE patient = $1', ['h1']);
    expect(cov.rows).toEqual([{ kind: 'ald', code: '8' }]);
  });

  it("migration 35 files the stored periods under their record's organization and projects the stored roles", async () => {
    const owners = await pool.query(`SELECT DISTINCT owner_org FROM ind_mt_period WHERE patient = 'h1'`);
    expect(owners.rows).toEqual([{ owner_org: ORG }]);
    const roles = await pool.query(
      `SELECT practitioner, organization, active, to_char(started, 'YYYY-MM-DD') AS started, ended FROM ind_practitioner_role`,
    );
    expect(roles.rows).toContainEqual({
      practitioner: 'Practitioner/d2',
      organization: ORG,
      active: true,
      started: '2025-01-01',
      ended: null,
    });
  });

  it('migration 38 fills the practitioners’ owner and re-projects the stored roles with no vouch: only own practitioners verify', async () => {
    const owners = await pool.query(`SELECT id, owner_org FROM ind_practitioner ORDER BY id`);
    expect(owners.rows).toEqual([
      { id: 'd2', owner_org: ORG },
      { id: 'elsewhere', owner_org: 'Organization/o2' },
    ]);
    const roles = await pool.query(`SELECT id, vouched FROM ind_practitioner_role ORDER BY id`);
    expect(roles.rows).toEqual([
      { id: 'foreign-role', vouched: false },
      { id: 'old-role', vouched: false },
    ]);
    const review = await pool.query(
      `SELECT DISTINCT verified FROM ind_mt_period_review WHERE practitioner = 'Practitioner/d2'`,
    );
    expect(review.rows).toEqual([{ verified: true }]);
  });

  it('a Patient write with another GP closes the open period the day before and opens a new one', async () => {
    await write(pool, 'Patient', 'h1', patient('1960-01-01', 'd3'), '2026-02-01T08:00:00Z');
    await write(pool, 'Patient', 'h1', patient('1960-01-01', 'd3', { gender: 'male' }), '2026-03-01T08:00:00Z');
    expect((await periods(pool, 'h1')).slice(1)).toEqual([
      { practitioner: 'Practitioner/d2', started: '2025-09-10', ended: '2026-01-31', source: 'Patient' },
      { practitioner: 'Practitioner/d3', started: '2026-02-01', ended: null, source: 'Patient' },
    ]);
    await write(pool, 'Patient', 'h1', patient('1960-01-01'), '2026-04-10T08:00:00Z');
    expect((await periods(pool, 'h1')).at(-1)).toMatchObject({ practitioner: 'Practitioner/d3', ended: '2026-04-09' });
  });

  it('CareTeam PCP participants are periods of their own, replaced on each write and gone when deleted; undated: from their first write', async () => {
    await write(pool, 'Patient', 'c1', patient('1980-01-01'), '2026-01-01T00:00:00Z');
    await write(pool, 'CareTeam', 'ct1', careTeam('c1', 'd1', '2023-01-01', '2025-06-30'), '2026-01-02T00:00:00Z');
    expect(await periods(pool, 'c1')).toEqual([
      { practitioner: 'Practitioner/d1', started: '2023-01-01', ended: '2025-06-30', source: 'CareTeam/ct1' },
    ]);
    await write(pool, 'CareTeam', 'ct1', careTeam('c1', 'd4', '2025-07-01'), '2026-01-03T00:00:00Z');
    expect(await periods(pool, 'c1')).toEqual([
      { practitioner: 'Practitioner/d4', started: '2025-07-01', ended: null, source: 'CareTeam/ct1' },
    ]);
    await write(pool, 'CareTeam', 'ct1', null, '2026-01-04T00:00:00Z');
    expect(await periods(pool, 'c1')).toEqual([]);
    // No start date: from the day of the first write naming the participant, kept by later rewrites.
    const undated = careTeam('c1', 'd5', '');
    delete (undated.participant[0] as { period?: unknown }).period;
    await write(pool, 'CareTeam', 'ct2', undated, '2026-02-10T15:00:00Z');
    await write(pool, 'CareTeam', 'ct2', { ...undated, name: 'renamed' }, '2026-03-01T00:00:00Z');
    expect(await periods(pool, 'c1')).toEqual([
      { practitioner: 'Practitioner/d5', started: '2026-02-10', ended: null, source: 'CareTeam/ct2' },
    ]);
  });

  it('a CareTeam write reaches its own periods through the source index, not a scan of every period', async () => {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      // Whatever the table's size now: the plan the trigger's statement gets once it is large.
      await client.query('SET LOCAL enable_seqscan = off');
      const plan = await client.query(`EXPLAIN (FORMAT JSON) DELETE FROM ind_mt_period WHERE source = 'CareTeam/ct1'`);
      await client.query('ROLLBACK');
      expect(JSON.stringify(plan.rows[0])).toContain('"Index Name":"ind_mt_period_source_idx"');
    } finally {
      client.release();
    }
  });

  it('coverages: several ALD of one Coverage, C2S, only while active; they follow the person of their record', async () => {
    await write(pool, 'Patient', 'a1', patient('1970-01-01'), '2026-01-01T00:00:00Z');
    await write(
      pool,
      'Patient',
      'b2',
      patient('1970-01-01', undefined, { link: [{ type: 'seealso', other: { reference: 'Patient/a1' } }] }),
      '2026-01-01T00:00:00Z',
    );
    const two = ald('b2', '8', '2021-01-01');
    two.costToBeneficiary[0]!.exception.push({
      type: { coding: [{ system: ALD_SYSTEM, code: '30' }] },
      period: { start: '2022-01-01', end: '2026-06-30' },
    });
    await write(pool, 'Coverage', 'cov2', two, '2026-01-02T00:00:00Z');
    await write(pool, 'Coverage', 'cov3', c2s('b2', '2026-01-01', '2026-12-31'), '2026-01-02T00:00:00Z');
    const rows = async () =>
      (
        await pool.query(
          `SELECT kind, code, person, to_char(ended, 'YYYY-MM-DD') AS ended FROM ind_coverage WHERE patient = 'b2' ORDER BY kind, code`,
        )
      ).rows;
    expect(await rows()).toEqual([
      { kind: 'ald', code: '30', person: 'pat:a1', ended: '2026-06-30' },
      { kind: 'ald', code: '8', person: 'pat:a1', ended: null },
      { kind: 'c2s', code: 'C2S', person: 'pat:a1', ended: '2026-12-31' },
    ]);
    await write(pool, 'Coverage', 'cov3', { ...c2s('b2', '2026-01-01'), status: 'cancelled' }, '2026-01-03T00:00:00Z');
    expect((await rows()).map((r: { kind: string }) => r.kind)).toEqual(['ald', 'ald']);
  });

  it('a MedicationDispense is a fact dated whenHandedOver (else whenPrepared), with its person and owner', async () => {
    await write(
      pool,
      'MedicationDispense',
      'md1',
      dispense('a1', '3400932857241', '2026-02-03T10:00:00Z'),
      '2026-02-03T10:00:00Z',
    );
    const prepared: Record<string, unknown> = {
      ...dispense('a1', '3400936924642', '2026-02-04'),
      whenPrepared: '2026-02-04',
    };
    delete prepared.whenHandedOver;
    await write(pool, 'MedicationDispense', 'md2', prepared, '2026-02-04T10:00:00Z');
    const res = await pool.query(
      `SELECT id, code, at, status, person, owner_org FROM ind_fact WHERE resource_type = 'MedicationDispense' ORDER BY id`,
    );
    expect(res.rows).toEqual([
      {
        id: 'md1',
        code: '3400932857241',
        at: new Date('2026-02-03T10:00:00Z'),
        status: 'completed',
        person: 'pat:a1',
        owner_org: ORG,
      },
      {
        id: 'md2',
        code: '3400936924642',
        at: new Date('2026-02-04T00:00:00Z'),
        status: 'completed',
        person: 'pat:a1',
        owner_org: ORG,
      },
    ]);
  });
});

/** A catalogue folder with the test ValueSet and the given Measures (criteria as JSON objects). */
function catalogue(
  measures: { id: string; ip: object; num: object; population?: string; fmt?: boolean; strata?: string[] }[],
): MeasureCatalogue {
  const dir = tempDir('gw-fmt-');
  writeFileSync(
    join(dir, 'ValueSet-tetanos.json'),
    JSON.stringify({
      resourceType: 'ValueSet',
      id: 'tetanos',
      url: `${GW}/fhir/ValueSet/tetanos`,
      status: 'active',
      compose: {
        include: [{ system: Terminology.ATC, filter: [{ property: 'concept', op: 'is-a', value: 'J07AM' }] }],
      },
    }),
  );
  const pop = (code: string, c: object) => ({
    code: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/measure-population', code }] },
    criteria: { language: CRITERIA_LANGUAGE, expression: JSON.stringify(c) },
  });
  for (const m of measures) {
    writeFileSync(
      join(dir, `Measure-${m.id}.json`),
      JSON.stringify({
        resourceType: 'Measure',
        id: m.id,
        url: `${GW}/fhir/Measure/${m.id}`,
        status: 'active',
        effectivePeriod: { start: '2017-01-01' },
        relatedArtifact: [{ type: 'documentation', display: 'test Measure' }],
        scoring: { coding: [{ code: 'proportion' }] },
        extension: [
          { url: `${GW}/fhir/StructureDefinition/measure-denominator-population`, valueCode: m.population ?? 'all' },
          ...(m.fmt ? [{ url: PATIENTELE_DATE_EXTENSION, valueCode: 'previous-year-end' }] : []),
        ],
        group: [
          {
            population: [pop('initial-population', m.ip), pop('denominator', m.ip), pop('numerator', m.num)],
            stratifier: (m.strata ?? []).map((code) => ({ code: { coding: [{ system: STRATIFIER_SYSTEM, code }] } })),
          },
        ],
      }),
    );
  }
  return MeasureCatalogue.fromDirectory(dir);
}

describe('FMT criteria atoms (PostgreSQL)', () => {
  let pool: Pool;
  const period = { start: '2026-01-01', end: '2026-12-31' };

  beforeAll(async () => {
    pool = new Pool({ connectionString: await createTestDatabase('fmtatoms') });
    await migrateAll(pool);
    // a: 21 months old at the period end, ALD 8 open, tetanus vaccine dispensed at 6 months (CIP only), MT d1 by CareTeam since 2024.
    await write(pool, 'Patient', 'a', patient('2025-03-15'), '2025-03-20T00:00:00Z');
    await write(pool, 'Coverage', 'a-ald', ald('a', '8', '2025-04-01'), '2025-04-01T00:00:00Z');
    await write(
      pool,
      'MedicationDispense',
      'a-md',
      dispense('a', '3400932857241', '2025-09-20T10:00:00Z'),
      '2025-09-20T10:00:00Z',
    );
    await write(pool, 'CareTeam', 'a-ct', careTeam('a', 'd1', '2025-04-01'), '2025-04-01T00:00:00Z');
    // b: 76, C2S for 2026, ALD 30 ended mid-2026; GP d1 declared in November 2025, d2 since March 2026.
    await write(pool, 'Patient', 'b', patient('1950-05-01', 'd1'), '2025-11-01T09:00:00Z');
    await write(pool, 'Patient', 'b', patient('1950-05-01', 'd2'), '2026-03-01T09:00:00Z');
    await write(pool, 'Coverage', 'b-c2s', c2s('b', '2026-01-01', '2026-12-31'), '2026-01-01T00:00:00Z');
    await write(pool, 'Coverage', 'b-ald', ald('b', '30', '2019-01-01', '2026-06-30'), '2026-01-01T00:00:00Z');
    // c: 36, MT d2 declared in February 2026 (not in the patientèle of 31 December 2025).
    await write(pool, 'Patient', 'c', patient('1990-01-01', 'd2'), '2026-02-01T09:00:00Z');
    // d1 and d2 are o1's own practitioners and work there, so its declarations count for them.
    await write(pool, 'Practitioner', 'd1', practitioner, '2020-01-01T00:00:00Z');
    await write(pool, 'Practitioner', 'd2', practitioner, '2020-01-01T00:00:00Z');
    await write(pool, 'PractitionerRole', 'd1-o1', role('d1', ORG), '2020-01-01T00:00:00Z');
    await write(pool, 'PractitionerRole', 'd2-o1', role('d2', ORG), '2020-01-01T00:00:00Z');
    // The shipped CIS/CIP → ATC map (the CNAM-HR sample puts CIP13 3400932857241 under J07AM01), as installed at boot.
    expect(await loadDrugAtc(pool, SHIPPED_MAP)).toBe(SHIPPED_MAP.length);
    expect(await loadDrugAtc(pool, SHIPPED_MAP)).toBe(0);
  });
  afterAll(async () => pool.end());

  const numerator = async (num: object, opts: Partial<EvaluateOptions> = {}): Promise<number> => {
    const cat = catalogue([{ id: 'm', ip: { all: [{ sex: 'female' }] }, num }]);
    const { results } = await new MeasureEvaluator(pool, cat).evaluate([cat.get('m')!], {
      period,
      scope: { kind: 'all' },
      ...opts,
    });
    return (results[0] as MeasureCounts).total.numerator;
  };

  it('ald: an exemption in force on the period end, optionally of given numbers', async () => {
    expect(await numerator({ ald: {} })).toBe(1);
    expect(await numerator({ ald: { numbers: ['8'] } })).toBe(1);
    expect(await numerator({ ald: { numbers: ['30'] } })).toBe(0);
    expect(await numerator({ ald: { numbers: ['30'] } }, { period: { start: '2025-07-01', end: '2026-06-30' } })).toBe(
      1,
    );
  });

  it('c2s: a C2S coverage in force on the period end', async () => {
    expect(await numerator({ c2s: {} })).toBe(1);
    expect(await numerator({ c2s: {} }, { period: { start: '2025-01-01', end: '2025-12-31' } })).toBe(0);
  });

  it('age in months at the period end', async () => {
    expect(await numerator({ age: { min: 21, max: 21, unit: 'months' } })).toBe(1);
    expect(await numerator({ age: { min: 22, unit: 'months' } })).toBe(2);
    expect(await numerator({ age: { min: 70 } })).toBe(1);
  });

  it('MedicationDispense coded by CIP matches an ATC ValueSet through the map; window ageMonths', async () => {
    const has = (window: unknown) => ({
      has: { resource: 'MedicationDispense', valueSet: `${GW}/fhir/ValueSet/tetanos`, window },
    });
    expect(await numerator(has('ever'))).toBe(1);
    expect(await numerator(has('period'))).toBe(0);
    expect(await numerator(has({ ageMonths: { min: 6, max: 11 } }))).toBe(1);
    expect(await numerator(has({ ageMonths: { min: 0, max: 5 } }))).toBe(0);
    await pool.query(`DELETE FROM ind_drug_atc`);
    try {
      expect(await numerator(has('ever'))).toBe(0);
    } finally {
      await loadDrugAtc(pool, SHIPPED_MAP);
    }
  });

  it('the FMT patientèle is the MT population on 31 December of the year before, for a structure and for a GP', async () => {
    const cat = catalogue([
      { id: 'fmt', ip: { sex: 'female' }, num: { sex: 'female' }, population: 'mt', fmt: true },
      { id: 'today', ip: { sex: 'female' }, num: { sex: 'female' }, population: 'all' },
    ]);
    const ev = new MeasureEvaluator(pool, cat);
    const run = async (scope: EvaluateOptions['scope']) =>
      (await ev.evaluate([cat.get('fmt')!, cat.get('today')!], { period, scope })).results.map(
        (r) => r.total.initialPopulation,
      );
    // a (CareTeam d1) and b (d1 from November 2025); c declared d2 only in 2026.
    expect(await run({ kind: 'organization', id: 'o1' })).toEqual([2, 3]);
    // d1's FMT patientèle holds b though b's MT is now d2; d1's current patients (Patient.gp): none.
    expect(await run({ kind: 'practitioner', id: 'd1' })).toEqual([2, 0]);
    expect(await run({ kind: 'practitioner', id: 'd2' })).toEqual([0, 2]);
    // Reproducible for a past date: the 2025 FMT reads 31 December 2024 (a's CareTeam starts in 2025).
    const past = await ev.evaluate([cat.get('fmt')!], {
      period: { start: '2025-01-01', end: '2025-12-31' },
      scope: { kind: 'all' },
    });
    expect(past.results[0]!.total.initialPopulation).toBe(0);
  });

  it('stratifiers ald, age70 and c2s when the Measure names them', async () => {
    const cat = catalogue([
      { id: 's', ip: { sex: 'female' }, num: { sex: 'female' }, strata: ['ald', 'age70', 'c2s'] },
    ]);
    // u: no birth date (age70 unknown), no coverage; removed after this test.
    await write(pool, 'Patient', 'u', { gender: 'female' }, '2026-01-01T00:00:00Z');
    try {
      const { results } = await new MeasureEvaluator(pool, cat).evaluate([cat.get('s')!], {
        period,
        scope: { kind: 'all' },
      });
      const strata = results[0]!.strata;
      const keys = (s: keyof typeof strata) => strata[s].map((x) => [x.key, x.initialPopulation]);
      expect(results[0]!.total.initialPopulation).toBe(4);
      expect(keys('ald')).toEqual([
        ['yes', 1],
        ['no', 3],
      ]);
      expect(keys('age70')).toEqual([
        ['yes', 1],
        ['unknown', 1],
        ['no', 2],
      ]);
      expect(keys('c2s')).toEqual([
        ['yes', 1],
        ['no', 3],
      ]);
    } finally {
      await write(pool, 'Patient', 'u', null, '2026-01-02T00:00:00Z');
    }
    expect(cat.get('s')!.stratifiers).toEqual(['structure', 'age-band', 'sex', 'ald', 'age70', 'c2s']);
  });

  it('a territory-wide scope evaluated in two lanes gives what one lane gives, in the Measures order', async () => {
    const cat = catalogue([
      { id: 'women', ip: { sex: 'female' }, num: { ald: {} }, strata: ['ald', 'age70', 'c2s'] },
      { id: 'fmt', ip: { sex: 'female' }, num: { c2s: {} }, population: 'mt', fmt: true },
      { id: 'old', ip: { age: { min: 70 } }, num: { sex: 'female' } },
    ]);
    const measures = ['women', 'fmt', 'old'].map((id) => cat.get(id)!);
    const opts = { period, scope: { kind: 'all' as const } };
    const counts = (r: { results: MeasureCounts[] }) =>
      r.results.map(({ measure, total, strata }) => ({ id: measure.id, total, strata }));
    const one = await new MeasureEvaluator(pool, cat, 1).evaluate(measures, opts);
    const two = await new MeasureEvaluator(pool, cat, 2).evaluate(measures, opts);
    expect(counts(two)).toEqual(counts(one));
    expect(counts(two).map((r) => r.id)).toEqual(['women', 'fmt', 'old']);
    expect(two.persons).toBe(one.persons);
    // Two lanes on a pool of one connection: the second finds nothing left and gives way.
    const single = new Pool({ connectionString: pool.options.connectionString, max: 1 });
    try {
      expect(counts(await new MeasureEvaluator(single, cat, 2).evaluate(measures, opts))).toEqual(counts(one));
    } finally {
      await single.end();
    }
  });
});

describe('Whose médecin-traitant declaration counts for a GP (PostgreSQL)', () => {
  let pool: Pool;
  const period = { start: '2026-01-01', end: '2026-12-31' };
  const A = 'Organization/oa';
  const B = 'Organization/ob';
  const cat = catalogue([
    // Everyone is recalled (nobody is male): the recall list is the persons the GP's list holds.
    { id: 'fmt', ip: { sex: 'female' }, num: { sex: 'male' }, population: 'mt', fmt: true },
    { id: 'today', ip: { sex: 'female' }, num: { sex: 'male' }, population: 'all' },
  ]);

  beforeAll(async () => {
    pool = new Pool({ connectionString: await createTestDatabase('mtverify') });
    await migrateAll(pool);
    // gb is B's own practitioner and works at B only. A declares gb on two of its own patients
    // (CareTeam, Patient.generalPractitioner), B on two of its own, the same two ways.
    await write(pool, 'Practitioner', 'gb', practitioner, '2020-01-01T00:00:00Z', B);
    await write(pool, 'PractitionerRole', 'gb-ob', role('gb', B), '2020-01-01T00:00:00Z', B);
    await write(pool, 'Patient', 'pa1', patient('1980-01-01'), '2024-01-01T00:00:00Z', A);
    await write(pool, 'CareTeam', 'ct-a', careTeam('pa1', 'gb', '2024-01-01'), '2024-01-01T00:00:00Z', A);
    await write(pool, 'Patient', 'pa2', patient('1981-01-01', 'gb'), '2025-06-01T00:00:00Z', A);
    await write(pool, 'Patient', 'pb1', patient('1982-01-01'), '2024-01-01T00:00:00Z', B);
    await write(pool, 'CareTeam', 'ct-b', careTeam('pb1', 'gb', '2024-01-01'), '2024-01-01T00:00:00Z', B);
    await write(pool, 'Patient', 'pb2', patient('1983-01-01', 'gb'), '2025-05-01T00:00:00Z', B);
  });
  afterAll(async () => pool.end());

  /** The GP's list for each Measure (the recall list: what the care-gaps GP list builds on), sorted. */
  const lists = async (
    measures: string[],
    p = period,
    scope: EvaluateOptions['scope'] = { kind: 'practitioner', id: 'gb' },
  ) =>
    (
      await new MeasureEvaluator(pool, cat).evaluate(
        measures.map((m) => cat.get(m)!),
        { period: p, scope, recallFor: '*' },
      )
    ).results.map((r) => (r.recall ?? []).map((e) => e.patientId).sort());

  it("another structure's declaration is not in the GP's patientèle nor in today's list; the GP's structure's counts", async () => {
    expect(await lists(['fmt', 'today'])).toEqual([['pb1', 'pb2'], ['pb2']]);
    // Today's médecin traitant alone (no FMT Measure in the evaluation): the same rule.
    expect(await lists(['today'])).toEqual([['pb2']]);
    const counts = await new MeasureEvaluator(pool, cat).evaluate([cat.get('fmt')!], {
      period,
      scope: { kind: 'practitioner', id: 'gb' },
    });
    expect(counts.results[0]!.total.initialPopulation).toBe(2);
  });

  it('unverified periods stay in the table, flagged for review', async () => {
    const res = await pool.query<{ patient: string; source: string; owner_org: string; verified: boolean }>(
      `SELECT patient, source, owner_org, verified FROM ind_mt_period_review WHERE practitioner = 'Practitioner/gb' ORDER BY patient`,
    );
    expect(res.rows).toEqual([
      { patient: 'pa1', source: 'CareTeam/ct-a', owner_org: A, verified: false },
      { patient: 'pa2', source: 'Patient', owner_org: A, verified: false },
      { patient: 'pb1', source: 'CareTeam/ct-b', owner_org: B, verified: true },
      { patient: 'pb2', source: 'Patient', owner_org: B, verified: true },
    ]);
  });

  it("A's own role for B's GP verifies nothing until an operator vouches for it; withdrawn, it stops", async () => {
    await write(pool, 'PractitionerRole', 'gb-oa-claim', role('gb', A), '2026-01-02T00:00:00Z', A);
    expect(await lists(['fmt', 'today'])).toEqual([['pb1', 'pb2'], ['pb2']]);
    await write(pool, 'PractitionerRole', 'gb-oa-claim', { ...role('gb', A), ...VOUCHED }, '2026-01-03T00:00:00Z', A);
    expect(await lists(['fmt', 'today'])).toEqual([
      ['pa1', 'pa2', 'pb1', 'pb2'],
      ['pa2', 'pb2'],
    ]);
    await write(pool, 'PractitionerRole', 'gb-oa-claim', role('gb', A), '2026-01-04T00:00:00Z', A);
    expect(await lists(['fmt', 'today'])).toEqual([['pb1', 'pb2'], ['pb2']]);
    await write(pool, 'PractitionerRole', 'gb-oa-claim', null, '2026-01-04T00:00:00Z', A);
  });

  it("B's role for its own GP stops verifying once the directory import takes the Practitioner over, unless vouched", async () => {
    await write(pool, 'Practitioner', 'gb', practitioner, '2026-01-02T00:00:00Z', 'Organization/gateway-directory');
    try {
      expect(await lists(['fmt', 'today'])).toEqual([[], []]);
      await write(pool, 'PractitionerRole', 'gb-ob', { ...role('gb', B), ...VOUCHED }, '2026-01-02T00:00:00Z', B);
      expect(await lists(['fmt', 'today'])).toEqual([['pb1', 'pb2'], ['pb2']]);
    } finally {
      await write(pool, 'Practitioner', 'gb', practitioner, '2026-01-02T00:00:00Z', B);
      await write(pool, 'PractitionerRole', 'gb-ob', role('gb', B), '2026-01-02T00:00:00Z', B);
    }
  });

  it("A's declarations count once the GP holds an active role at A covering the day, and stop after its end", async () => {
    const fmt2025 = { start: '2025-01-01', end: '2025-12-31' };
    // An inactive role proves nothing.
    await write(
      pool,
      'PractitionerRole',
      'gb-oa',
      role('gb', A, { start: '2024-06-01' }, false),
      '2026-01-05T00:00:00Z',
      A,
    );
    expect(await lists(['fmt', 'today'])).toEqual([['pb1', 'pb2'], ['pb2']]);
    // Granted later (written in 2026, vouched for), from June 2024: the earlier declarations count (CareTeam and Patient).
    await write(
      pool,
      'PractitionerRole',
      'gb-oa',
      { ...role('gb', A, { start: '2024-06-01' }), ...VOUCHED },
      '2026-01-06T00:00:00Z',
      A,
    );
    expect(await lists(['fmt', 'today'])).toEqual([
      ['pa1', 'pa2', 'pb1', 'pb2'],
      ['pa2', 'pb2'],
    ]);
    // Ended on 30 November 2025: not on 31 December 2025 (FMT 2026) nor on the 2026 period end…
    await write(
      pool,
      'PractitionerRole',
      'gb-oa',
      { ...role('gb', A, { start: '2024-06-01', end: '2025-11-30' }), ...VOUCHED },
      '2026-01-07T00:00:00Z',
      A,
    );
    expect(await lists(['fmt', 'today'])).toEqual([['pb1', 'pb2'], ['pb2']]);
    // …but it held on 31 December 2024: A's CareTeam counts in the 2025 FMT patientèle (pa2 and pb2
    // were declared in 2025); today's MT is checked on the period's end (31 December 2025): not pa2.
    expect(await lists(['fmt', 'today'], fmt2025)).toEqual([['pa1', 'pb1'], ['pb2']]);
    expect(await lists(['today'], { start: '2025-01-01', end: '2025-11-30' })).toEqual([['pa2', 'pb2']]);
    // Before it started (31 December 2023): nothing of A.
    expect(await lists(['today'], { start: '2023-01-01', end: '2023-12-31' })).toEqual([['pb2']]);
    // Deleted: nothing of A again.
    await write(pool, 'PractitionerRole', 'gb-oa', null, '2026-01-08T00:00:00Z', A);
    expect(await lists(['fmt', 'today'], fmt2025)).toEqual([['pb1'], ['pb2']]);
  });

  it("a structure's own FMT population still counts its patients whose declared MT works elsewhere", async () => {
    // Not keyed by a GP: whether A's patient has a médecin traitant is A's own record (see docs/indicators.md).
    expect(await lists(['fmt'], period, { kind: 'organization', id: 'oa' })).toEqual([['pa1', 'pa2']]);
  });
});
