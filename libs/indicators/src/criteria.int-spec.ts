import { randomBytes } from 'node:crypto';
import { Client, Pool } from 'pg';
import { createTestDatabase, migrateAll } from '../../../test/support/database';
import { SqlParams, compileCriterion, factPersons, latestFactSql } from './criteria';
import type { CodeMatch, CompileContext, FactCriterion } from './criteria';

const ICD10 = 'http://hl7.org/fhir/sid/icd-10';
const CIM10 = 'https://smt.esante.gouv.fr/terminologie-cim-10';
const OTHER = 'urn:test:other';

/**
 * A ValueSet's codes as the catalogue expands them: prefixes under both names of CIM-10, one
 * prefix under another system only, one exact code. The prefixes hold LIKE's metacharacters
 * (`_`, `%`, `\`), a non-ASCII letter and two lengths.
 */
const CODES: CodeMatch[] = [
  ...['J45', 'J4_', 'J4%', 'A\\', 'É1', 'N1'].flatMap((code) => [
    { system: ICD10, code, prefix: true },
    { system: CIM10, code, prefix: true },
  ]),
  { system: OTHER, code: 'K5', prefix: true },
  { system: ICD10, code: 'Z00', prefix: false },
];

/** One Condition per person: [id, system, code]. */
const FACTS: [string, string | null, string][] = [
  ['same', ICD10, 'J45'],
  ['longer', ICD10, 'J450'],
  ['alias', CIM10, 'J45.9'],
  ['underscore', ICD10, 'J4_x'],
  ['percent', ICD10, 'J4%'],
  ['backslash', ICD10, 'A\\1'],
  ['accent', ICD10, 'É10'],
  ['short-prefix', ICD10, 'N18'],
  ['other-system', OTHER, 'K50'],
  ['exact', ICD10, 'Z00'],
  // None of these match.
  ['shorter', ICD10, 'J4'],
  ['next', ICD10, 'J46'],
  ['underscore-as-wildcard', ICD10, 'J4x1'],
  ['percent-as-wildcard', ICD10, 'J4abc'],
  ['backslash-as-escape', ICD10, 'A%x'],
  ['lower-case', ICD10, 'j450'],
  ['unaccented', ICD10, 'E10'],
  ['leading-space', ICD10, ' J45'],
  ['wrong-system', OTHER, 'J450'],
  ['prefix-of-other-system', ICD10, 'K50'],
  ['no-system', null, 'J450'],
  ['exact-is-no-prefix', ICD10, 'Z001'],
];
const MATCHING = FACTS.slice(0, 10)
  .map(([id]) => `pat:${id}`)
  .sort();

const has: FactCriterion = { resource: 'Condition', valueSet: 'vs', window: 'ever', min: 1 };

function context(persons?: string): CompileContext {
  return {
    params: new SqlParams(),
    resolve: () => CODES,
    periodStart: `'2025-01-01T00:00:00Z'`,
    periodEnd: `'2026-01-01T00:00:00Z'`,
    referenceDate: `'2025-12-31'`,
    row: 'r',
    persons,
  };
}

async function sorted(pool: Pool, sql: string, params: SqlParams): Promise<string[]> {
  const res = await pool.query<{ person: string }>(sql, params.values);
  return res.rows.map((r) => r.person).sort();
}

/** The persons a criterion's three compiled forms find: set-based scan, per-person probe, latest evidence. */
async function matches(pool: Pool): Promise<{ scan: string[]; probe: string[]; latest: string[] }> {
  const persons = 'SELECT DISTINCT person FROM ind_fact';
  const scan = context();
  const probe = context('ev_person');
  const latest = context();
  return {
    scan: await sorted(pool, `SELECT DISTINCT person FROM (${factPersons(has, scan)}) x`, scan.params),
    probe: await sorted(
      pool,
      `SELECT r.person FROM (${persons}) r WHERE ${compileCriterion({ has }, probe)}`,
      probe.params,
    ),
    latest: await sorted(
      pool,
      `SELECT r.person FROM (${persons}) r JOIN LATERAL (${latestFactSql([{ resource: 'Condition', valueSet: 'vs' }], 'r.person', latest)}) ev ON true`,
      latest.params,
    ),
  };
}

async function load(pool: Pool): Promise<void> {
  await migrateAll(pool);
  for (const [id, system, code] of FACTS) {
    await pool.query(
      `INSERT INTO ind_fact (resource_type, id, patient, system, code, at, status)
       VALUES ('Condition', $1, $1, $2, $3, '2024-05-01T00:00:00Z', 'active')`,
      [id, system, code],
    );
  }
}

describe('code prefixes of a ValueSet (PostgreSQL)', () => {
  const pools: Pool[] = [];
  afterAll(async () => Promise.all(pools.map((p) => p.end())));

  it('compiles one LIKE per distinct prefix for scans, hashed heads per prefix length for probes', () => {
    const scan = compileCriterion({ has }, context());
    expect(scan.match(/ LIKE /g)).toHaveLength(7);
    expect(scan).not.toContain('left(');
    const probe = compileCriterion({ has }, context('ev_person'));
    expect(probe).not.toContain(' LIKE ');
    expect(probe.match(/left\(f\.code, \d\) COLLATE "C" = ANY/g)).toEqual([
      'left(f.code, 3) COLLATE "C" = ANY',
      'left(f.code, 2) COLLATE "C" = ANY',
      'left(f.code, 2) COLLATE "C" = ANY',
    ]);
  });

  it('matches a prefix literally and at its boundary, as LIKE did, in a database of the C collation', async () => {
    const pool = new Pool({ connectionString: await createTestDatabase('prefix') });
    pools.push(pool);
    await load(pool);
    expect(await matches(pool)).toEqual({ scan: MATCHING, probe: MATCHING, latest: MATCHING });
  });

  it('gives the same answer in a database whose collation is not C (ICU, French)', async () => {
    const server = process.env.GW_TEST_DATABASE_URL as string;
    const name = `prefix_icu_${randomBytes(6).toString('hex')}`;
    const admin = new Client({ connectionString: server });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'fr-FR'`);
    } finally {
      await admin.end();
    }
    const url = new URL(server);
    url.pathname = `/${name}`;
    const pool = new Pool({ connectionString: url.toString() });
    pools.push(pool);
    const collation = await pool.query<{ provider: string }>(
      'SELECT datlocprovider AS provider FROM pg_database WHERE datname = current_database()',
    );
    expect(collation.rows[0]?.provider).toBe('i');
    await load(pool);
    expect(await matches(pool)).toEqual({ scan: MATCHING, probe: MATCHING, latest: MATCHING });
  });
});

/**
 * ALD and C2S criteria have two compiled forms too: the persons with a coverage in force, read once
 * and hashed (population reports), and a probe of the row's person's coverages (care gaps, a few
 * persons). Both must find the same persons, whatever the dates, numbers and owners.
 */
describe('coverage criteria, set form and per-person probe (PostgreSQL)', () => {
  /** [patient, owner, kind, code, started, ended]; the reference date is 2025-12-31. */
  const COVERAGES: [string, string, 'ald' | 'c2s', string, string | null, string | null][] = [
    ['listed', 'Organization/a', 'ald', '8', '2020-01-01', null],
    ['ends-on-the-day', 'Organization/a', 'ald', '8', null, '2025-12-31'],
    ['starts-on-the-day', 'Organization/a', 'ald', '30', '2025-12-31', '2030-01-01'],
    ['two-numbers', 'Organization/a', 'ald', '99', '2020-01-01', null],
    ['two-numbers', 'Organization/a', 'ald', '5', '2020-01-01', null],
    ['other-owner', 'Organization/b', 'ald', '8', '2020-01-01', null],
    ['c2s', 'Organization/a', 'c2s', 'C2S', '2025-06-01', '2026-05-31'],
    // None of these hold an ALD of the list in force for Organization/a.
    ['not-listed', 'Organization/a', 'ald', '99', '2020-01-01', null],
    ['ended', 'Organization/a', 'ald', '8', '2020-01-01', '2025-12-30'],
    ['future', 'Organization/a', 'ald', '8', '2026-01-01', null],
    ['c2s-ended', 'Organization/a', 'c2s', 'C2S', '2024-01-01', '2024-12-31'],
  ];
  const pools: Pool[] = [];
  afterAll(async () => Promise.all(pools.map((p) => p.end())));

  async function both(pool: Pool, criterion: Parameters<typeof compileCriterion>[0], owners?: string[]) {
    const persons = 'SELECT DISTINCT person FROM ind_coverage';
    const out: string[][] = [];
    for (const form of [undefined, 'ev_person']) {
      const ctx = context(form);
      if (owners) {
        ctx.factOwners = ctx.params.bind(owners);
      }
      out.push(
        await sorted(pool, `SELECT r.person FROM (${persons}) r WHERE ${compileCriterion(criterion, ctx)}`, ctx.params),
      );
    }
    return { set: out[0], probe: out[1] };
  }

  it('finds the same persons with an ALD of the list or a C2S in force on the reference date', async () => {
    const pool = new Pool({ connectionString: await createTestDatabase('coverage') });
    pools.push(pool);
    await migrateAll(pool);
    for (const [i, [patient, owner, kind, code, started, ended]] of COVERAGES.entries()) {
      await pool.query(
        `INSERT INTO ind_coverage (coverage_id, patient, owner_org, kind, code, started, ended) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        [`c${i}`, patient, owner, kind, code, started, ended],
      );
    }
    const ald = { ald: { numbers: ['5', '8', '30'] } };
    const probe = compileCriterion(ald, context('ev_person'));
    expect(probe).toContain('c.person = r.person');
    expect(compileCriterion(ald, context())).not.toContain('c.person = r.person');
    const aldPersons = [
      'pat:ends-on-the-day',
      'pat:listed',
      'pat:other-owner',
      'pat:starts-on-the-day',
      'pat:two-numbers',
    ];
    expect(await both(pool, ald)).toEqual({ set: aldPersons, probe: aldPersons });
    const own = aldPersons.filter((p) => p !== 'pat:other-owner');
    expect(await both(pool, ald, ['Organization/a'])).toEqual({ set: own, probe: own });
    expect(await both(pool, { c2s: {} })).toEqual({ set: ['pat:c2s'], probe: ['pat:c2s'] });
  });
});
