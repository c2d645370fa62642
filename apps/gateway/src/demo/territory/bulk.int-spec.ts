import { resolve } from 'node:path';
import { Pool } from 'pg';
import type { PoolClient } from 'pg';
import { ProfileRegistry, SearchParamRegistry, loadFhirDefinitions, parseSearchRequest } from '@gw/fhir';
import { AuditLog, FhirRepository, OrganizationAccessPolicy } from '@gw/store';
import { IndicatorsService } from '@gw/indicators';
import { createLogger } from '@gw/platform';
import { createTestDatabase, migrateAll } from '../../../../../test/support/database';
import { ROOT } from '../../../../../test/support/process';
import { BulkTerritoryLoader } from './bulk';
import { TerritoryGenerator } from './generator';
import { TerritoryLoader } from './loader';

const OPTIONS = { seed: 5, patients: 300, asOf: '2026-10-31' };
/**
 * Values each database draws for itself whatever is loaded (a random secret, a default route's
 * uuid) or numbers in its own order (event ids: transactions commit in another order): left out.
 */
const PER_DATABASE: Record<string, string> = {
  ind_cell_key: `to_jsonb(x) - 'secret'`,
  exchange_route: `to_jsonb(x) - 'id'`,
  domain_event: `to_jsonb(x) - 'id'`,
  // The routing mark of an event, named by the event's resource instead of its id.
  exchange_routing: `to_jsonb(x) - 'event_id' || jsonb_build_object('event', (SELECT e.resource FROM domain_event e WHERE e.id = x.event_id))`,
};
const ISO = /\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}(?::?\d{2})?)?/g;

/**
 * Every table of the schema (whatever feature added it) as a sorted list of its rows, the instants
 * of the load itself (meta.lastUpdated, last_updated, recognised_at…) replaced by a marker: the two
 * paths write at different times, nothing else may differ.
 */
async function fingerprint(
  db: Pool | PoolClient,
  window: { from: number; to: number },
): Promise<Map<string, string[]>> {
  const tables = (
    await db.query<{ t: string }>(`SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)
  ).rows.map((r) => r.t);
  const out = new Map<string, string[]>();
  for (const t of tables) {
    const rows = (
      await db.query<{ j: string }>(`SELECT (${PER_DATABASE[t] ?? 'to_jsonb(x)'})::text AS j FROM "${t}" x`)
    ).rows.map((r) =>
      r.j.replace(ISO, (m) => {
        const at = Date.parse(m.replace(' ', 'T'));
        return at >= window.from && at <= window.to ? '<load>' : m;
      }),
    );
    out.set(t, rows.sort());
  }
  return out;
}

function differences(a: Map<string, string[]>, b: Map<string, string[]>): string[] {
  const out: string[] = [];
  for (const t of new Set([...a.keys(), ...b.keys()])) {
    const ra = a.get(t) ?? [];
    const rb = b.get(t) ?? [];
    if (ra.length !== rb.length) {
      out.push(`${t}: ${ra.length} rows vs ${rb.length}`);
      continue;
    }
    const i = ra.findIndex((r, k) => r !== rb[k]);
    if (i >= 0) {
      out.push(`${t}: row ${i} differs\n  ${ra[i]?.slice(0, 400)}\n  ${rb[i]?.slice(0, 400)}`);
    }
  }
  return out;
}

/**
 * The bulk load (`demo:territory --bulk`) against the write path: the same territory loaded both
 * ways into two databases gives the same rows in every table (resources, history, search index,
 * indicator projection, sharing projection, events, routing marks…), the same search and read
 * answers and the same catalogue results.
 */
describe('bulk territory load (PostgreSQL)', () => {
  const pools: Pool[] = [];
  const repos: FhirRepository[] = [];
  // The instants of the test's own writes (migrations, loads) on both databases.
  const window = { from: Date.now() - 1000, to: 0 };
  const generator = new TerritoryGenerator(OPTIONS);
  let urls: string[];

  beforeAll(async () => {
    loadFhirDefinitions();
    const profiles = ProfileRegistry.fromDirectory(resolve(ROOT, 'fhir-profiles'));
    urls = [await createTestDatabase('territory_write'), await createTestDatabase('territory_bulk')];
    for (const url of urls) {
      const pool = new Pool({ connectionString: url, max: 4 });
      await migrateAll(pool);
      pools.push(pool);
      repos.push(new FhirRepository(pool, new SearchParamRegistry(), new OrganizationAccessPolicy(), profiles));
    }
    await new TerritoryLoader(repos[0] as FhirRepository, { batchSize: 400 }).load(generator);
    await new BulkTerritoryLoader(repos[1] as FhirRepository, {
      databaseUrl: urls[1] as string,
      profilesDir: resolve(ROOT, 'fhir-profiles'),
      encounterMonths: 24,
      workers: 0,
      chunkPersons: 70,
      batchSize: 500,
    }).load(generator);
    window.to = Date.now() + 1000;
  }, 300_000);

  afterAll(async () => Promise.all(pools.map((p) => p.end())));

  it('stores exactly what the write path stores, in every table', async () => {
    const [a, b] = await Promise.all(pools.map((p) => fingerprint(p, window)));
    expect(differences(a as Map<string, string[]>, b as Map<string, string[]>)).toEqual([]);
    // The comparison sees what matters: the territory is there, with its projections and FMT facts.
    const count = async (sql: string): Promise<number> =>
      Number((await (pools[1] as Pool).query<{ n: string }>(sql)).rows[0]?.n);
    expect(await count(`SELECT count(*) AS n FROM resource WHERE resource_type = 'Coverage'`)).toBeGreaterThan(50);
    expect(
      await count(`SELECT count(*) AS n FROM resource WHERE resource_type = 'MedicationDispense'`),
    ).toBeGreaterThan(5);
    expect(await count(`SELECT count(*) AS n FROM ind_fact`)).toBeGreaterThan(1000);
    expect(await count(`SELECT count(*) AS n FROM care_access`)).toBeGreaterThan(1000);
    expect(await count(`SELECT count(*) AS n FROM sp_token`)).toBeGreaterThan(10000);
    expect(await count(`SELECT count(*) AS n FROM exchange_routing`)).toBeGreaterThan(0);
    // The FMT facts reach the FMT projection (ALD/C2S coverage, MT periods, dispensations).
    expect(await count(`SELECT count(*) AS n FROM ind_coverage`)).toBeGreaterThan(50);
    expect(await count(`SELECT count(*) AS n FROM ind_mt_period`)).toBeGreaterThan(100);
    // The GPs hold their PractitionerRoles at their structures: nearly every declaration is verified
    // (not those of a person's second record at another structure, nor of a departed GP's).
    expect(await count(`SELECT count(*) AS n FROM ind_practitioner_role`)).toBeGreaterThan(10);
    const verified = await count(`SELECT count(*) AS n FROM ind_mt_period_review WHERE verified`);
    const unverified = await count(`SELECT count(*) AS n FROM ind_mt_period_review WHERE NOT verified`);
    expect(verified).toBeGreaterThan(100);
    expect(unverified).toBeLessThan(verified / 5);
    expect(
      await count(`SELECT count(*) AS n FROM ind_fact WHERE resource_type = 'MedicationDispense'`),
    ).toBeGreaterThan(5);
  });

  it('sees a path that forgets a table', async () => {
    const client = await (pools[1] as Pool).connect();
    try {
      await client.query('BEGIN');
      await client.query('DELETE FROM care_access');
      const [a, b] = [await fingerprint(pools[0] as Pool, window), await fingerprint(client, window)];
      expect(differences(a, b)).toEqual([expect.stringMatching(/^care_access: \d+ rows vs 0$/)]);
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  });

  it('answers searches, reads and the catalogue the same way', async () => {
    const admin = { clientId: 'cmp', organization: 'Organization/cmp', admin: true, scopes: ['system/*.rs'] };
    const patient = (
      await (pools[0] as Pool).query<{ id: string }>(
        `SELECT patient_id AS id FROM resource WHERE resource_type = 'Coverage' ORDER BY id LIMIT 1`,
      )
    ).rows[0]?.id as string;
    const answers = await Promise.all(
      repos.map(async (repo) => {
        const found = await repo.search(
          admin,
          parseSearchRequest('Coverage', [['beneficiary', `Patient/${patient}`]], { defaultCount: 50, maxCount: 100 }),
          true,
        );
        const read = await repo.read(admin, 'Patient', patient);
        return {
          search: found.matches.map((m) => m.json?.replace(ISO, '<t>')),
          read: read.json?.replace(/"lastUpdated":"[^"]+"/, ''),
        };
      }),
    );
    expect(answers[0]?.search.length).toBeGreaterThan(0);
    expect(answers[1]).toEqual(answers[0]);
    const logger = createLogger('silent');
    const results = await Promise.all(
      pools.map(async (pool, i) => {
        const service = IndicatorsService.load(
          resolve(ROOT, 'fhir-profiles/measures'),
          pool,
          repos[i] as FhirRepository,
          new AuditLog(pool, logger),
          1,
          logger,
        );
        const r = await service.evaluator.evaluate(service.measures(), {
          period: { start: '2025-11-01', end: '2026-10-31' },
          scope: { kind: 'cpts', id: generator.cpts.id },
        });
        return r.results.map((m) => ({ id: m.measure.id, total: m.total }));
      }),
    );
    expect(results[0]?.length).toBeGreaterThan(0);
    expect(results[1]).toEqual(results[0]);
  });
});
