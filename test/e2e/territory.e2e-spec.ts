import type { MeasureReport } from '@medplum/fhirtypes';
import { TerritoryGenerator, TerritoryLoader } from '../../apps/gateway/src/demo/territory';
import type { LoadSummary } from '../../apps/gateway/src/demo/territory';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { call } from '../support/hl7';

// The year 2025: the last one the ROSP Measures are in force (their effectivePeriod ends on 2025-12-31).
const OPTIONS = { seed: 3, patients: 600, asOf: '2025-12-31' };
const PERIOD = 'periodStart=2025-01-01&periodEnd=2025-12-31';
const MEASURES = [
  'cpts-sans-medecin-traitant',
  'cpts-suivi-sortie-7j',
  'rosp-depistage-colorectal',
  'rosp-depistage-sein',
  'rosp-diabete-fond-oeil',
  'rosp-diabete-hba1c',
  'rosp-grippe-16-64-risque',
  'rosp-grippe-65',
];

/**
 * `demo:territory`'s generator and loader against a real gateway (workers and outbox relay on):
 * what lands in the store, idempotency, the patients known to two practices, no exchange traffic
 * for the historic discharges, and plausible scores for the whole catalogue.
 */
describe('synthetic territory loaded through the store', () => {
  let gw: TestGateway;
  let summary: LoadSummary;
  const generator = new TerritoryGenerator(OPTIONS);
  const db = () => gw.core.db.pool;

  beforeAll(async () => {
    // Small-cell suppression off: the test reads every count of a small territory.
    gw = await startTestGateway({ GW_MLLP_ENABLED: 'false', GW_INDICATOR_SMALL_CELL: '1' });
    summary = await new TerritoryLoader(gw.core.repo, { batchSize: 300 }).load(generator);
  }, 120_000);

  afterAll(async () => gw?.close());

  it('loads every resource the generator made, counted by type', async () => {
    expect(summary.status).toBe('loaded');
    expect(summary.people).toBe(600);
    const rows = (
      await db().query<{ t: string; n: string }>(
        'SELECT resource_type AS t, count(*) AS n FROM resource WHERE NOT deleted GROUP BY 1',
      )
    ).rows;
    const stored = Object.fromEntries(rows.map((r) => [r.t, Number(r.n)]));
    // Organizations also include the gateway's own (the test clients').
    const { Organization: orgCount, ...others } = summary.byType;
    expect(stored.Organization).toBeGreaterThanOrEqual(orgCount as number);
    expect(Object.fromEntries(Object.keys(others).map((t) => [t, stored[t]]))).toEqual(others);
    expect(summary.byType.Organization).toBe(generator.organizations().length + 1);
    expect(summary.byType.Patient).toBeGreaterThan(600);
    for (const type of [
      'Practitioner',
      'PractitionerRole',
      'CareTeam',
      'Condition',
      'MedicationRequest',
      'Observation',
      'Immunization',
      'Procedure',
      'Encounter',
      'Task',
    ]) {
      expect(summary.byType[type]).toBeGreaterThan(0);
    }
    const orgs = (
      await db().query<{ type: string; n: string }>(
        'SELECT type, count(*) AS n FROM ind_organization WHERE part_of = $1 GROUP BY type',
        [generator.cpts.id],
      )
    ).rows;
    expect(Object.fromEntries(orgs.map((o) => [o.type, Number(o.n)]))).toEqual({ MSP: 2, CDS: 1, cabinet: 2 });
    const cpts = (
      await db().query<{ communes: string[] }>('SELECT communes FROM ind_organization WHERE id = $1', [
        generator.cpts.id,
      ])
    ).rows[0];
    expect(cpts?.communes.length).toBeGreaterThanOrEqual(3);
  });

  it('is deterministic and idempotent: same seed, same ids; a second load is "already-loaded"', async () => {
    const again = new TerritoryGenerator(OPTIONS);
    expect(again.cpts.id).toBe(generator.cpts.id);
    const ids = [...again.people()]
      .slice(0, 40)
      .flatMap((p) => p.resources.filter((r) => r.resourceType === 'Patient').map((r) => r.id as string));
    const found = await db().query('SELECT id FROM resource WHERE resource_type = $1 AND id = ANY($2::text[])', [
      'Patient',
      ids,
    ]);
    expect(found.rowCount).toBe(ids.length);
    const second = await new TerritoryLoader(gw.core.repo).load(again);
    expect(second).toMatchObject({ status: 'already-loaded', resources: 0 });
  });

  it('knows ~3 % of the persons in two structures under different local ids and the same qualified INS', async () => {
    const dup = await db().query<{ ins: string; owners: number; records: number }>(
      `SELECT ins, count(DISTINCT owner_org)::int AS owners, count(*)::int AS records FROM ind_patient
        WHERE ins IS NOT NULL AND owner_org IN (SELECT 'Organization/' || id FROM ind_organization WHERE part_of = $1) GROUP BY ins HAVING count(*) > 1`,
      [generator.cpts.id],
    );
    const expected = [...generator.people()].filter((p) => p.facts.duplicate).length;
    expect(dup.rowCount).toBe(expected);
    expect(expected).toBeGreaterThan(5);
    expect(dup.rows.every((r) => r.owners === 2 && r.records === 2)).toBe(true);
    const persons = await db().query<{ n: number }>(
      `SELECT count(DISTINCT person_key)::int AS n FROM ind_patient WHERE owner_org IN (SELECT 'Organization/' || id FROM ind_organization WHERE part_of = $1)`,
      [generator.cpts.id],
    );
    expect(persons.rows[0]?.n).toBe(600);
  });

  it('routes none of the historic discharges (no Task, Communication or delivery from the exchange layer)', async () => {
    await new Promise((r) => setTimeout(r, 1500)); // the outbox relay polls every second
    const events = await db().query<{ n: number; undispatched: number }>(
      `SELECT count(*)::int AS n, count(*) FILTER (WHERE dispatched_at IS NULL)::int AS undispatched FROM domain_event WHERE type = 'encounter.discharged'`,
    );
    expect(events.rows[0]).toEqual({ n: summary.historicDischarges, undispatched: 0 });
    expect(summary.historicDischarges).toBeGreaterThan(10);
    const routings = await db().query<{ outcome: string; n: number }>(
      'SELECT outcome, count(*)::int AS n FROM exchange_routing GROUP BY 1',
    );
    expect(routings.rows).toEqual([{ outcome: 'historic-load', n: summary.historicDischarges }]);
    expect((await db().query('SELECT 1 FROM exchange_delivery')).rowCount).toBe(0);
    expect((await db().query(`SELECT 1 FROM resource WHERE resource_type = 'Communication'`)).rowCount).toBe(0);
  });

  it('gives each of the 8 measures a plausible score for the CPTS (strictly between 0 and 1)', async () => {
    const scores: Record<string, number | undefined> = {};
    for (const m of MEASURES) {
      const res = await call<MeasureReport>(
        gw,
        'GET',
        `${gw.fhirUrl}/Measure/${m}/$evaluate-measure?${PERIOD}&subject=Organization/${generator.cpts.id}`,
      );
      expect(res.status).toBe(200);
      scores[m] = res.body.group?.[0]?.measureScore?.value;
    }
    process.stdout.write(`territory scores: ${JSON.stringify(scores)}\n`);
    for (const m of MEASURES) {
      expect(scores[m]).toBeGreaterThan(0);
      expect(scores[m]).toBeLessThan(1);
    }
  });

  it('resumes an interrupted load: what was committed is kept, the rest written, the CPTS last', async () => {
    const options = { seed: 4, patients: 120, asOf: '2026-10-31' };
    class Interrupted extends TerritoryGenerator {
      override *people(from = 0): ReturnType<TerritoryGenerator['people']> {
        for (const p of super.people(from)) {
          if (p.facts.index === 80) {
            throw new Error('interrupted');
          }
          yield p;
        }
      }
    }
    await expect(new TerritoryLoader(gw.core.repo, { batchSize: 100 }).load(new Interrupted(options))).rejects.toThrow(
      'interrupted',
    );
    const whole = new TerritoryGenerator(options);
    expect(
      (await db().query('SELECT 1 FROM resource WHERE resource_type = $1 AND id = $2', ['Organization', whole.cpts.id]))
        .rowCount,
    ).toBe(0);
    const resumed = await new TerritoryLoader(gw.core.repo, { batchSize: 100 }).load(whole);
    expect(resumed).toMatchObject({ status: 'loaded', resumed: true });
    const ids = [...whole.people()].flatMap((p) => p.resources.map((r) => r.id as string));
    const stored = await db().query('SELECT 1 FROM resource WHERE id = ANY($1::text[])', [ids]);
    expect(stored.rowCount).toBe(ids.length);
    expect(resumed.resources).toBeLessThan(ids.length);
  });
});
