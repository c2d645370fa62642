import type { MeasureReport, MeasureReportGroupPopulation } from '@medplum/fhirtypes';
import { CODES } from '@gw/indicators';
import { MT_STATUS_EXTENSION, PRACTITIONER_FLAG_SYSTEM, RELIABILITY_EXTENSION, TASK_CODE_SYSTEM } from '@gw/fhir';
import { OWNER_TAG_SYSTEM } from '@gw/store';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { call, nir } from '../support/hl7';
import { typedOrganization } from '../support/indicators';

const MASKED = 'http://hl7.org/fhir/StructureDefinition/data-absent-reason';
const INS = 'urn:oid:1.2.250.1.213.1.4.8';
const THRESHOLD = 5;
const PERIOD = 'periodStart=2025-01-01&periodEnd=2025-12-31';

type Res = Record<string, unknown> & { resourceType: string };

/**
 * A small territory whose expected indicator values are known by construction: a CPTS with two
 * MSPs; MSP A has 40 treated diabetics (born 1950), 16 adults without an active MT and 12 hospital
 * stays; two of its patients are also known to MSP B under the same qualified INS.
 */
describe('indicators: $evaluate-measure over the store', () => {
  let gw: TestGateway;
  let cpts: string;
  let mspA: string;
  let mspB: string;
  let tokenA: string;
  let tokenB: string;
  let tokenCpts: string;
  const ids: Record<string, string> = {};

  const org = (name: string, type: string, partOf?: string): Promise<string> =>
    typedOrganization(gw, name, type, partOf);

  /**
   * Posts a transaction of `resources` (fullUrl urn:uuid:<key>) filed under organization `owner`;
   * records the created ids by key. Posted by the operator: only a writer allowed to qualify
   * identities makes a qualified INS merge records across practices (docs/indicators.md).
   */
  async function load(owner: string, resources: [string, Res][]): Promise<void> {
    const ownerTag = { system: OWNER_TAG_SYSTEM, code: `Organization/${owner}` };
    const bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: resources.map(([key, resource]) => ({
        fullUrl: `urn:uuid:${uuidFor(key)}`,
        resource: { ...resource, meta: { tag: [...((resource.meta as { tag?: [] })?.tag ?? []), ownerTag] } },
        request: { method: 'POST', url: resource.resourceType },
      })),
    };
    const res = await call<{ entry: { response: { location: string } }[] }>(gw, 'POST', gw.fhirUrl, bundle);
    expect(res.status).toBe(200);
    res.body.entry.forEach((e, i) => {
      ids[resources[i]![0]] = /([A-Za-z]+)\/([^/]+)\/_history/.exec(e.response.location)?.[2] as string;
    });
  }

  const keys = new Map<string, string>();
  function uuidFor(key: string): string {
    if (!keys.has(key)) {
      keys.set(key, `00000000-0000-4000-8000-${String(keys.size + 1).padStart(12, '0')}`);
    }
    return keys.get(key) as string;
  }
  const ref = (key: string): { reference: string } => ({ reference: `urn:uuid:${uuidFor(key)}` });

  function patient(
    key: string,
    opts: { birth: string; sex: 'male' | 'female'; gp?: string; mtStatus?: string; ins?: string },
  ): [string, Res] {
    return [
      key,
      {
        resourceType: 'Patient',
        identifier: opts.ins ? [{ system: INS, value: opts.ins }] : [{ system: 'urn:oid:1.2.250.1.999.1', value: key }],
        extension: [
          ...(opts.ins
            ? [{ url: RELIABILITY_EXTENSION, extension: [{ url: 'identityStatus', valueCoding: { code: 'QUAL' } }] }]
            : []),
          ...(opts.mtStatus ? [{ url: MT_STATUS_EXTENSION, valueCode: opts.mtStatus }] : []),
        ],
        name: [{ family: 'TEST', given: [key] }],
        gender: opts.sex,
        birthDate: opts.birth,
        ...(opts.gp ? { generalPractitioner: [ref(opts.gp)] } : {}),
      },
    ];
  }
  const subject = (p: string) => ({ subject: ref(p) });
  const obs = (key: string, p: string, code: { system: string; code: string }, date: string): [string, Res] => [
    key,
    { resourceType: 'Observation', status: 'final', code: { coding: [code] }, ...subject(p), effectiveDateTime: date },
  ];

  beforeAll(async () => {
    gw = await startTestGateway({
      GW_WORKERS_INPROCESS: 'false',
      GW_MLLP_ENABLED: 'false',
      GW_INDICATOR_SMALL_CELL: String(THRESHOLD),
      // Exact figures are what these tests check (test/security/differencing.e2e-spec.ts covers the noise).
      GW_INDICATOR_NOISE: 'false',
    });
    cpts = await org('CPTS du Val', 'CPTS');
    mspA = await org('MSP des Lilas', 'MSP', cpts);
    mspB = await org('MSP du Parc', 'MSP', cpts);
    const scopes = ['system/*.cruds'];
    tokenA = (await gw.clientOf(mspA, scopes)).token;
    tokenB = (await gw.clientOf(mspB, scopes)).token;
    tokenCpts = (await gw.clientOf(cpts, ['system/Measure.rs', 'system/MeasureReport.rs', 'system/Patient.rs'])).token;

    const a: [string, Res][] = [
      ['gpA', { resourceType: 'Practitioner', active: true, name: [{ family: 'GP', given: ['A'] }] }],
      ['gpRetired', { resourceType: 'Practitioner', active: false, name: [{ family: 'RETRAITE' }] }],
      [
        'gpFictitious',
        {
          resourceType: 'Practitioner',
          meta: { tag: [{ system: PRACTITIONER_FLAG_SYSTEM, code: 'fictitious' }] },
          name: [{ family: 'FICTIF' }],
        },
      ],
    ];
    for (let i = 1; i <= 40; i++) {
      const d = `D${i}`;
      a.push(
        patient(d, {
          birth: '1950-01-01',
          sex: i <= 3 ? 'female' : 'male',
          gp: 'gpA',
          ins: i === 30 || i === 36 ? nir('1', '50', '01', '75', '056', String(i).padStart(3, '0')) : undefined,
        }),
      );
      a.push([
        `${d}-med`,
        {
          resourceType: 'MedicationRequest',
          status: 'active',
          intent: 'order',
          medicationCodeableConcept: { coding: [CODES.metformin] },
          ...subject(d),
          authoredOn: '2025-03-01',
        },
      ]);
      if (i <= 29) {
        a.push(obs(`${d}-h1`, d, CODES.hba1c, '2025-02-01'), obs(`${d}-h2`, d, CODES.hba1c, '2025-09-01'));
      } else if (i === 30) {
        a.push(obs(`${d}-h1`, d, CODES.hba1c, '2025-02-01')); // the second one is in MSP B's record of the same person
      } else if (i <= 35) {
        a.push(
          obs(`${d}-f1`, d, CODES.fructosamine, '2025-02-01'),
          obs(`${d}-f2`, d, CODES.fructosamine, '2025-06-01'),
        );
      } else if (i === 36) {
        a.push(obs(`${d}-h1`, d, CODES.hba1c, '2024-11-01'), obs(`${d}-h2`, d, CODES.hba1c, '2025-04-01')); // one outside the year
      }
      if (i <= 25) {
        a.push([
          `${d}-flu`,
          {
            resourceType: 'Immunization',
            status: 'completed',
            vaccineCode: { coding: [CODES.fluVaccine] },
            patient: ref(d),
            occurrenceDateTime: '2025-10-15',
          },
        ]);
      }
      if (i <= 12) {
        a.push([
          `${d}-stay`,
          {
            resourceType: 'Encounter',
            status: 'finished',
            class: CODES.inpatient,
            ...subject(d),
            period: { start: '2025-05-01T08:00:00Z', end: '2025-05-03T10:00:00Z' },
          },
        ]);
        if (i <= 5) {
          a.push([
            `${d}-task`,
            {
              resourceType: 'Task',
              status: 'completed',
              intent: 'order',
              code: { coding: [{ system: TASK_CODE_SYSTEM, code: 'discharge-follow-up' }] },
              focus: ref(`${d}-stay`),
              for: ref(d),
              executionPeriod: { end: '2025-05-06T09:00:00Z' },
            },
          ]);
        } else {
          const visit = i <= 7 ? '2025-05-08T09:00:00Z' : '2025-05-20T09:00:00Z';
          a.push([
            `${d}-visit`,
            {
              resourceType: 'Encounter',
              status: 'finished',
              class: CODES.ambulatory,
              ...subject(d),
              period: { start: visit, end: visit },
            },
          ]);
        }
      }
    }
    for (let i = 1; i <= 6; i++) a.push(patient(`N${i}`, { birth: '1980-05-05', sex: 'female', mtStatus: 'none' }));
    for (let i = 1; i <= 5; i++)
      a.push(patient(`F${i}`, { birth: '1980-05-05', sex: 'male', gp: 'gpFictitious', mtStatus: 'fictitious' }));
    for (let i = 1; i <= 5; i++) a.push(patient(`R${i}`, { birth: '1980-05-05', sex: 'male', gp: 'gpRetired' }));
    await load(mspA, a);

    // MSP B knows D30 and D36 under its own records (same qualified INS); D30's second HbA1c is there.
    await load(mspB, [
      ['gpB', { resourceType: 'Practitioner', active: true, name: [{ family: 'GP', given: ['B'] }] }],
      patient('B-D30', { birth: '1950-01-01', sex: 'male', gp: 'gpB', ins: nir('1', '50', '01', '75', '056', '030') }),
      patient('B-D36', { birth: '1950-01-01', sex: 'male', gp: 'gpB', ins: nir('1', '50', '01', '75', '056', '036') }),
      obs('B-D30-h2', 'B-D30', CODES.hba1c, '2025-10-01'),
    ]);
  }, 120_000);

  afterAll(async () => gw?.close());

  async function evaluate(
    measure: string,
    query: string,
    token = tokenA,
  ): Promise<{ status: number; body: MeasureReport & { issue?: { details?: { text?: string } }[] } }> {
    return call(gw, 'GET', `${gw.fhirUrl}/Measure/${measure}/$evaluate-measure?${PERIOD}&${query}`, undefined, token);
  }
  const counts = (pops: MeasureReportGroupPopulation[] | undefined) =>
    Object.fromEntries((pops ?? []).map((p) => [p.code?.coding?.[0]?.code, p.count ?? 'masked']));

  it('serves the catalogue: every Measure readable by any client', async () => {
    const res = await call<{ total?: number; entry: { resource: { id: string } }[] }>(
      gw,
      'GET',
      `${gw.fhirUrl}/Measure?_count=50`,
      undefined,
      tokenCpts,
    );
    expect(res.status).toBe(200);
    expect(res.body.entry.map((e) => e.resource.id).sort()).toEqual([
      'cpts-mt-trouve',
      'cpts-sans-medecin-traitant',
      'cpts-suivi-sortie-7j',
      'fmt-covid-risque',
      'fmt-depistage-col-uterus',
      'fmt-depistage-colorectal',
      'fmt-depistage-sein',
      'fmt-diabete-hba1c',
      'fmt-grippe-65',
      'fmt-grippe-risque',
      'fmt-hpv',
      'fmt-meningocoque-c',
      'fmt-pneumocoque-risque',
      'fmt-ror',
      'rosp-depistage-colorectal',
      'rosp-depistage-sein',
      'rosp-diabete-fond-oeil',
      'rosp-diabete-hba1c',
      'rosp-grippe-16-64-risque',
      'rosp-grippe-65',
    ]);
    // The next boot finds the same files: nothing is written again.
    expect(await gw.core.indicators.install()).toEqual({ written: 0 });
  });

  it('diabetes HbA1c for a structure: populations, exclusion, facts from another practice count, objectives, suppressed strata', async () => {
    const res = await evaluate('rosp-diabete-hba1c', `subject=Organization/${mspA}`);
    expect(res.status).toBe(200);
    const g = res.body.group![0]!;
    // 40 treated; D31–35 excluded (2 fructosamine); D1–29 and D30 (second assay recorded by MSP B) in the numerator.
    expect(counts(g.population)).toEqual({
      'initial-population': 40,
      denominator: 40,
      'denominator-exclusion': 5,
      numerator: 30,
    });
    expect(g.measureScore?.value).toBeCloseTo(30 / 35, 4);
    expect(g.extension?.find((e) => e.url.endsWith('measure-objective-status'))?.valueCode).toBe(
      'intermediate-reached',
    );
    expect(res.body.type).toBe('summary');
    // Sex: 3 women → hidden, and the men (the only other cell) hidden as its complement; marked, not zeroed.
    const sex = g.stratifier!.find((s) => s.code?.[0]?.text === 'sex')!;
    const female = sex.stratum!.find((s) => s.value?.text === 'female')!;
    const male = sex.stratum!.find((s) => s.value?.text === 'male')!;
    expect(female.population!.every((p) => p.count === undefined && p.extension?.[0]?.url === MASKED)).toBe(true);
    expect(female.extension?.[0]?.valueCode).toBe('small');
    expect(male.extension?.[0]?.valueCode).toBe('complementary');
    expect(male.measureScore?.value).toBeUndefined();
    const band = g.stratifier!.find((s) => s.code?.[0]?.text === 'age-band')!;
    expect(band.stratum!.map((s) => [s.value?.text, counts(s.population).denominator])).toEqual([['75+', 40]]);
  });

  it('counts a patient known to two practices once at the CPTS level', async () => {
    const res = await evaluate('rosp-diabete-hba1c', `subject=Organization/${cpts}`, tokenCpts);
    expect(res.status).toBe(200);
    expect(counts(res.body.group![0]!.population)).toEqual({
      'initial-population': 40,
      denominator: 40,
      'denominator-exclusion': 5,
      numerator: 30,
    });
  });

  it('share without an active MT (population all): none, fictitious and retired MTs', async () => {
    const res = await evaluate('cpts-sans-medecin-traitant', `subject=Organization/${mspA}`);
    expect(res.body.issue).toBeUndefined();
    expect(counts(res.body.group![0]!.population)).toEqual({
      'initial-population': 56,
      denominator: 56,
      'denominator-exclusion': 0,
      numerator: 16,
    });
    expect(res.body.group![0]!.extension?.[0]?.valueCode).toBe('not-reached');
  });

  it('flu vaccination 65+ and the file-active denominator', async () => {
    const mt = await evaluate('rosp-grippe-65', `subject=Organization/${mspA}`);
    expect(counts(mt.body.group![0]!.population)).toEqual({
      'initial-population': 40,
      denominator: 40,
      'denominator-exclusion': 0,
      numerator: 25,
    });
    // File active: seen in primary care in the year (D6–D12 had a visit).
    const seen = await evaluate('rosp-grippe-65', `subject=Organization/${mspA}&population=file-active`);
    expect(counts(seen.body.group![0]!.population)).toMatchObject({ 'initial-population': 7, numerator: 7 });
  });

  it('discharges followed up within 7 days (event basis): a completed Task or a visit in time', async () => {
    const res = await evaluate('cpts-suivi-sortie-7j', `subject=Organization/${mspA}`);
    expect(counts(res.body.group![0]!.population)).toEqual({
      'initial-population': 12,
      denominator: 12,
      'denominator-exclusion': 0,
      numerator: 7,
    });
  });

  it('recall list for the structure that cares for the patients; never for a CPTS', async () => {
    const res = await evaluate('rosp-diabete-hba1c', `subject=Organization/${mspA}&reportType=subject-list`);
    expect(res.status).toBe(200);
    expect(res.body.type).toBe('subject-list');
    const list = res.body.contained?.[0] as { entry: { item: { reference: string } }[] };
    // D30's second assay is in MSP B's record: a recall list reads only what MSP A may read, so D30 is listed.
    expect(list.entry.map((e) => e.item.reference).sort()).toEqual(
      ['D30', 'D36', 'D37', 'D38', 'D39', 'D40'].map((k) => `Patient/${ids[k]}`).sort(),
    );
    // MSP B's own record of D36 is not MSP A's to list.
    expect(JSON.stringify(list)).not.toContain(ids['B-D36']);

    const forCpts = await evaluate(
      'rosp-diabete-hba1c',
      `subject=Organization/${cpts}&reportType=subject-list`,
      tokenCpts,
    );
    expect(forCpts.status).toBe(403);
    expect(forCpts.body.issue?.[0]?.details?.text).toContain('population reports only');
  });

  it('refuses what a client may not see, with an OperationOutcome saying why', async () => {
    expect((await evaluate('rosp-diabete-hba1c', `subject=Organization/${mspA}`, tokenB)).status).toBe(403);
    expect((await evaluate('no-such-measure', `subject=Organization/${mspA}`)).status).toBe(404);
    const bad = await call<{ issue: { expression?: string[] }[] }>(
      gw,
      'GET',
      `${gw.fhirUrl}/Measure/rosp-grippe-65/$evaluate-measure?periodStart=2025-13-01&periodEnd=2025-12-31&subject=Organization/${mspA}`,
      undefined,
      tokenA,
    );
    expect(bad.status).toBe(400);
    expect(bad.body.issue[0]?.expression).toEqual(['periodStart']);
    const noScope = (await gw.clientOf(mspA, ['system/Patient.rs'])).token;
    expect((await evaluate('rosp-grippe-65', `subject=Organization/${mspA}`, noScope)).status).toBe(403);
  });

  it('POST with a Parameters resource gives the same report', async () => {
    const res = await call<MeasureReport>(
      gw,
      'POST',
      `${gw.fhirUrl}/Measure/rosp-grippe-65/$evaluate-measure`,
      {
        resourceType: 'Parameters',
        parameter: [
          { name: 'periodStart', valueDate: '2025-01-01' },
          { name: 'periodEnd', valueDate: '2025-12-31' },
          { name: 'subject', valueString: `Organization/${mspA}` },
        ],
      },
      tokenA,
    );
    expect(res.status).toBe(200);
    expect(counts(res.body.group![0]!.population).numerator).toBe(25);
  });

  it('stores the monthly run: one suppressed summary report per measure and subject, filed under the subject, replaced on re-run', async () => {
    const run = await gw.core.indicators.storeMonthlyReports('2025-12-31');
    expect(run.period).toEqual({ start: '2025-01-01', end: '2025-12-31' });
    expect(run.subjects).toBe(3); // the CPTS and its two MSPs
    // The Measures in force on 2025-12-31: the eight ROSP-era ones and cpts-mt-trouve (FMT ones from 2026).
    expect(run.reports).toBe(27);
    await gw.core.indicators.storeMonthlyReports('2025-12-31');
    const mine = await call<{ entry: { resource: MeasureReport }[] }>(
      gw,
      'GET',
      `${gw.fhirUrl}/MeasureReport?subject=Organization/${mspA}&_count=100`,
      undefined,
      tokenA,
    );
    expect(mine.status).toBe(200);
    expect(mine.body.entry).toHaveLength(9);
    const hba1c = mine.body.entry.map((e) => e.resource).find((r) => r.measure?.includes('rosp-diabete-hba1c'))!;
    expect(counts(hba1c.group![0]!.population)).toEqual({
      'initial-population': 40,
      denominator: 40,
      'denominator-exclusion': 5,
      numerator: 30,
    });
    expect(hba1c.meta?.versionId).toBe('2');
    // MSP B's clients see MSP B's reports only.
    const theirs = await call<{ entry?: { resource: MeasureReport }[] }>(
      gw,
      'GET',
      `${gw.fhirUrl}/MeasureReport?subject=Organization/${mspA}`,
      undefined,
      tokenB,
    );
    expect(theirs.body.entry ?? []).toHaveLength(0);
  });
});
