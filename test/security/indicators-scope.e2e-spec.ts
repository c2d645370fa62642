import type { MeasureReport, MeasureReportGroupPopulation } from '@medplum/fhirtypes';
import { CODES } from '@gw/indicators';
import { OWNER_TAG_SYSTEM } from '@gw/store';
import { RELIABILITY_EXTENSION } from '@gw/fhir';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { call, nir } from '../support/hl7';
import { typedOrganization } from '../support/indicators';

type Res = Record<string, unknown> & { resourceType: string };
const INS = 'urn:oid:1.2.250.1.213.1.4.8';
const PERIOD = 'periodStart=2025-01-01&periodEnd=2025-12-31';

/**
 * What an evaluation or an export may read. MSP A's client asks; MSP B files facts about the same
 * person (same qualified INS, written by an operator) and has patients of its own; an operator
 * (or a legacy write) put B's patients into a Group filed under A.
 */
describe('security: evaluations and exports read only what the caller may read', () => {
  let gw: TestGateway;
  let mspA: string;
  let mspB: string;
  let tokenA: string;
  const ids: Record<string, string> = {};

  /** Writes `resources` as the operator, each filed under `owner`; records the ids by key. */
  async function load(owner: string, resources: [string, Res][]): Promise<void> {
    for (const [key, r] of resources) {
      const body = { ...r, meta: { tag: [{ system: OWNER_TAG_SYSTEM, code: `Organization/${owner}` }] } };
      const res = await call<{ id: string }>(gw, 'POST', `${gw.fhirUrl}/${r.resourceType}`, body);
      expect(res.status).toBe(201);
      ids[key] = res.body.id;
    }
  }
  const patient = (key: string, ins?: string): [string, Res] => [
    key,
    {
      resourceType: 'Patient',
      identifier: [{ system: ins ? INS : 'urn:oid:1.2.250.1.999.1', value: ins ?? key }],
      ...(ins
        ? {
            extension: [
              { url: RELIABILITY_EXTENSION, extension: [{ url: 'identityStatus', valueCoding: { code: 'QUAL' } }] },
            ],
          }
        : {}),
      name: [{ family: 'TEST', given: [key] }],
      gender: 'male',
      birthDate: '1950-01-01',
    },
  ];
  const med = (key: string, p: string): [string, Res] => [
    key,
    {
      resourceType: 'MedicationRequest',
      status: 'active',
      intent: 'order',
      medicationCodeableConcept: { coding: [CODES.metformin] },
      subject: { reference: `Patient/${ids[p]}` },
      authoredOn: '2025-03-01',
    },
  ];
  const hba1c = (key: string, p: string, date: string): [string, Res] => [
    key,
    {
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [CODES.hba1c] },
      subject: { reference: `Patient/${ids[p]}` },
      effectiveDateTime: date,
    },
  ];
  const counts = (pops: MeasureReportGroupPopulation[] | undefined) =>
    Object.fromEntries((pops ?? []).map((p) => [p.code?.coding?.[0]?.code, p.count ?? 'masked']));
  const evaluate = (query: string) =>
    call<MeasureReport>(
      gw,
      'GET',
      `${gw.fhirUrl}/Measure/rosp-diabete-hba1c/$evaluate-measure?${PERIOD}&population=all&${query}`,
      undefined,
      tokenA,
    );

  beforeAll(async () => {
    gw = await startTestGateway({ GW_MLLP_ENABLED: 'false', GW_INDICATOR_SMALL_CELL: '1' });
    mspA = await typedOrganization(gw, 'MSP A', 'MSP');
    mspB = await typedOrganization(gw, 'MSP B', 'MSP');
    tokenA = (await gw.clientOf(mspA, ['system/*.cruds'])).token;
    const shared = nir('1', '50', '01', '75', '056', '901');
    for (let i = 1; i <= 12; i++) {
      await load(mspA, [patient(`A${i}`, i === 1 ? shared : undefined)]);
      await load(mspA, [med(`A${i}-med`, `A${i}`)]);
      await load(mspB, [patient(`B${i}`)]);
      await load(mspB, [med(`B${i}-med`, `B${i}`), hba1c(`B${i}-h1`, `B${i}`, '2025-02-01')]);
      await load(mspB, [hba1c(`B${i}-h2`, `B${i}`, '2025-09-01')]);
    }
    // MSP B's record of A1's person (same qualified INS) holds two HbA1c assays MSP A may not read.
    await load(mspB, [patient('B-A1', shared)]);
    await load(mspB, [hba1c('B-A1-h1', 'B-A1', '2025-02-01'), hba1c('B-A1-h2', 'B-A1', '2025-09-01')]);
    // A Group filed under A holding A's and B's patients (an operator's, or written before writes were checked).
    const members = [...Array(12).keys()].flatMap((i) => [`A${i + 1}`, `B${i + 1}`]);
    await load(mspA, [
      [
        'group',
        {
          resourceType: 'Group',
          type: 'person',
          actual: true,
          member: members.map((k) => ({ entity: { reference: `Patient/${ids[k]}` } })),
        },
      ],
      // A legacy fact filed under A about B's patient: in B1's compartment, owned by A.
      hba1c('A-about-B1', 'B1', '2025-05-01'),
    ]);
  }, 120_000);

  afterAll(async () => gw?.close());

  it("a patient's individual report uses only the caller's records: another structure's assays stay unread", async () => {
    const res = await evaluate(`subject=Patient/${ids.A1}&reportType=subject`);
    expect(res.status).toBe(200);
    expect(res.body.type).toBe('individual');
    // Before: numerator 1, read from MSP B's two assays of the same person.
    expect(counts(res.body.group![0]!.population)).toEqual({
      'initial-population': 1,
      denominator: 1,
      'denominator-exclusion': 0,
      numerator: 0,
    });
  });

  it("a recall list is computed from the caller's facts only", async () => {
    const res = await evaluate(`subject=Organization/${mspA}&reportType=subject-list`);
    expect(res.status).toBe(200);
    const list = res.body.contained?.[0] as { entry: { item: { reference: string } }[] };
    expect(list.entry.map((e) => e.item.reference)).toContain(`Patient/${ids.A1}`);
    expect(counts(res.body.group![0]!.population)).toMatchObject({ 'initial-population': 12, numerator: 0 });
  });

  it("a Group holding other structures' patients counts only the caller's, and does not say how many were left out", async () => {
    const list = await evaluate(`subject=Group/${ids.group}&reportType=subject-list`);
    expect(list.status).toBe(200);
    // Before: 24 in the initial population, 12 of them (B's) in the numerator.
    expect(counts(list.body.group![0]!.population)).toEqual({
      'initial-population': 12,
      denominator: 12,
      'denominator-exclusion': 0,
      numerator: 0,
    });
    const entries = (list.body.contained?.[0] as { entry: { item: { reference: string } }[] }).entry;
    expect(entries.map((e) => e.item.reference).sort()).toEqual(
      [...Array(12).keys()].map((i) => `Patient/${ids[`A${i + 1}`]}`).sort(),
    );
    expect(JSON.stringify(list.body)).not.toContain(ids.B1);

    const population = await evaluate(`subject=Group/${ids.group}`);
    expect(population.status).toBe(200);
    const c = counts(population.body.group![0]!.population);
    // Cell-key noise is at most 2: 12 members counted, not 24; none of B's assays in the numerator.
    expect(c['initial-population']).toBeGreaterThanOrEqual(10);
    expect(c['initial-population']).toBeLessThanOrEqual(14);
    expect(c.numerator).toBe(0);
  });

  it("Group/[id]/$export returns only the members the caller may read, and nothing in the others' compartments", async () => {
    const kick = await fetch(`${gw.fhirUrl}/Group/${ids.group}/$export`, {
      headers: { authorization: `Bearer ${tokenA}`, prefer: 'respond-async', accept: 'application/fhir+json' },
    });
    expect(kick.status).toBe(202);
    const statusUrl = kick.headers.get('content-location') as string;
    let manifest: { output: { type: string; url: string; count: number }[] } | undefined;
    for (let i = 0; i < 300 && !manifest; i++) {
      const s = await fetch(statusUrl, { headers: { authorization: `Bearer ${tokenA}` } });
      if (s.status === 200) {
        manifest = (await s.json()) as typeof manifest;
      } else {
        expect(s.status).toBe(202);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const files: Record<string, Res[]> = {};
    for (const o of manifest!.output) {
      const text = await (await fetch(o.url, { headers: { authorization: `Bearer ${tokenA}` } })).text();
      files[o.type] = text
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Res);
    }
    const patientIds = (files.Patient ?? []).map((p) => p.id as string).sort();
    expect(patientIds).toEqual([...Array(12).keys()].map((i) => ids[`A${i + 1}`]).sort());
    // Before: A's own Observation about B1 was exported through B1's membership.
    // (The Group itself is A's own resource and is exported as it is.)
    expect(JSON.stringify({ ...files, Group: undefined })).not.toContain(ids.B1);
    expect(files.Observation ?? []).toHaveLength(0);
    expect(manifest!.output.find((o) => o.type === 'Patient')?.count).toBe(12);
  });

  it("a GP's patientèle counts only the caller's own patients (the shared directory lets anyone read any GP) and only the declarations of the GP's structures", async () => {
    // A GP of the directory (readable by every client), working at B, the médecin traitant of 12 of B's patients.
    await load(mspB, [['gp', { resourceType: 'Practitioner', active: true, name: [{ family: 'MT-DE-B' }] }]]);
    await load(mspB, [
      [
        'gp-role',
        {
          resourceType: 'PractitionerRole',
          active: true,
          practitioner: { reference: `Practitioner/${ids.gp}` },
          organization: { reference: `Organization/${mspB}` },
        },
      ],
    ]);
    for (let i = 1; i <= 12; i++) {
      await load(mspB, [
        [`G${i}`, { ...patient(`G${i}`)[1], generalPractitioner: [{ reference: `Practitioner/${ids.gp}` }] }],
      ]);
      await load(mspB, [med(`G${i}-med`, `G${i}`)]);
    }
    const query = `subject=Practitioner/${ids.gp}`;
    const asOperator = await call<MeasureReport>(
      gw,
      'GET',
      `${gw.fhirUrl}/Measure/rosp-diabete-hba1c/$evaluate-measure?${PERIOD}&population=all&${query}`,
    );
    expect(counts(asOperator.body.group?.[0]?.population)['initial-population']).toBe(12);
    // MSP A reads the GP (directory) but none of the GP's patients is A's: nothing is counted.
    const asA = await evaluate(query);
    expect(asA.status).toBe(200);
    expect(counts(asA.body.group?.[0]?.population)['initial-population']).toBe(0);
    // A names B's GP as the médecin traitant of 12 of its own patients: the GP does not work at A, so
    // neither the operator's count of the GP's patientèle nor A's own changes.
    for (let i = 1; i <= 12; i++) {
      await load(mspA, [
        [`GA${i}`, { ...patient(`GA${i}`)[1], generalPractitioner: [{ reference: `Practitioner/${ids.gp}` }] }],
      ]);
      await load(mspA, [med(`GA${i}-med`, `GA${i}`)]);
    }
    const again = await call<MeasureReport>(
      gw,
      'GET',
      `${gw.fhirUrl}/Measure/rosp-diabete-hba1c/$evaluate-measure?${PERIOD}&population=all&${query}`,
    );
    expect(counts(again.body.group?.[0]?.population)['initial-population']).toBe(12);
    expect(counts((await evaluate(query)).body.group?.[0]?.population)['initial-population']).toBe(0);
  });
});
