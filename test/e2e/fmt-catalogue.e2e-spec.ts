import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Bundle, Extension, MeasureReport, MeasureReportGroupPopulation } from '@medplum/fhirtypes';
import { Terminology } from '@gw/ingest';
import { REPORT_BENCHMARK_EXTENSION } from '@gw/indicators';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { call } from '../support/hl7';
import { typedOrganization } from '../support/indicators';
import { GATEWAY_CLI, ROOT, killAll, run } from '../support/process';
import { tempDir } from '../support/temp-dir';

/** The ANS CI-SIS examples, read in place next to the repository (see their SOURCES.md). */
const SAMPLES = join(__dirname, '../../../shared/samples/ans-cda');
const BENCHMARKS = resolve(ROOT, 'fhir-profiles/benchmarks/ald-sans-medecin-traitant.csv');
const Y2026 = 'periodStart=2026-01-01&periodEnd=2026-12-31';
const GW_SYSTEMS = 'https://gateway.fr-primary-care.org/fhir/CodeSystem';
const ALD_SYSTEM = `${GW_SYSTEMS}/ald`;
const TASK_SYSTEM = `${GW_SYSTEMS}/exchange-task`;

type Res = Record<string, unknown> & { resourceType: string };
type Counts = Record<string, number | undefined>;

/**
 * The 2026 catalogue (forfait médecin traitant items, CPTS measures) over documents ingested from
 * the ANS CDA examples and facts posted through FHIR (Coverage for ALD/C2S, MedicationDispense):
 * each FMT Measure evaluated for 2026, on both sides of its age, ALD, count and window limits. The
 * benchmark loader runs as the real CLI (build first: npm run build).
 */
describe('2026 indicator catalogue (FMT items, CPTS) over ingested and posted data', () => {
  let gw: TestGateway;
  let token: string;
  /** The structure of the FMT items' patients (not in the CPTS). */
  let msp: string;
  let cpts: string;
  /** A client of the CPTS's member structure: the CPTS tests' patients are its own, apart from the others. */
  let tokenCpts: string;
  let admin: string;
  /** The ANS test patient (born 1979-03-28, female), created by the first document ingested. */
  let ansPatient: string;

  beforeAll(async () => {
    gw = await startTestGateway({
      GW_WORKERS_INPROCESS: 'false',
      GW_MLLP_ENABLED: 'false',
      GW_INDICATOR_NOISE: 'false',
      GW_INDICATOR_SMALL_CELL: '1',
    });
    msp = await typedOrganization(gw, 'MSP des items FMT', 'MSP');
    token = (await gw.clientOf(msp, ['system/*.cruds'])).token;
    cpts = await typedOrganization(gw, 'CPTS du Berry', 'CPTS');
    const member = await typedOrganization(gw, 'MSP de Bourges', 'MSP', cpts);
    tokenCpts = (await gw.clientOf(member, ['system/*.cruds'])).token;
    admin = await gw.token();
    // Bourges (Cher, 18) and Châteauroux (Indre, 36): the territory's two départements.
    await gw.core.cpts.grant(
      cpts,
      { communes: ['18033', '36044'], members: [`Organization/${member}`] },
      {
        principal: { clientId: 'test-operator', organization: 'Organization/gateway', admin: true, scopes: [] },
      },
    );
  });
  afterAll(async () => {
    await killAll();
    await gw?.close();
  });

  const create = async (resource: Res, as = token): Promise<string> => {
    const res = await call<{ id: string }>(gw, 'POST', `${gw.fhirUrl}/${resource.resourceType}`, resource, as);
    if (res.status !== 201) throw new Error(`POST ${resource.resourceType}: ${res.status} ${JSON.stringify(res.body)}`);
    return `${resource.resourceType}/${res.body.id}`;
  };
  const ingest = async (name: string): Promise<string | undefined> => {
    const res = await fetch(`${gw.baseUrl}/ingest/documents`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/hl7-cda+xml' },
      body: readFileSync(join(SAMPLES, name)),
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as Bundle).entry?.find((e) => e.fullUrl?.startsWith('Patient/'))?.fullUrl;
  };
  let serial = 0;
  const person = (birthDate: string, gender: 'male' | 'female', extra: Record<string, unknown> = {}, as = token) =>
    create(
      {
        resourceType: 'Patient',
        identifier: [{ system: 'urn:oid:1.2.250.1.999.1', value: `fmt-${(serial += 1)}` }],
        gender,
        birthDate,
        ...extra,
      },
      as,
    );
  const ald = (patient: string, numbers: string[], as = token) =>
    create(
      {
        resourceType: 'Coverage',
        status: 'active',
        beneficiary: { reference: patient },
        payor: [{ display: 'Assurance Maladie' }],
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'PUBLICPOL' }] },
        costToBeneficiary: [
          {
            // R4 makes value[x] 1..1: the ALD exemption leaves nothing to pay (ticket modérateur).
            valueMoney: { value: 0, currency: 'EUR' },
            exception: numbers.map((n) => ({
              type: { coding: [{ system: ALD_SYSTEM, code: n }] },
              period: { start: '2020-01-01' },
            })),
          },
        ],
      },
      as,
    );
  const dispense = (patient: string, atc: string, when: string) =>
    create({
      resourceType: 'MedicationDispense',
      status: 'completed',
      subject: { reference: patient },
      medicationCodeableConcept: { coding: [{ system: Terminology.ATC, code: atc }] },
      whenHandedOver: when,
    });
  const vaccine = (patient: string, atc: string, when: string) =>
    create({
      resourceType: 'Immunization',
      status: 'completed',
      patient: { reference: patient },
      vaccineCode: { coding: [{ system: Terminology.ATC, code: atc }] },
      occurrenceDateTime: when,
    });
  const observation = (patient: string, system: string, code: string, when: string) =>
    create({
      resourceType: 'Observation',
      status: 'final',
      subject: { reference: patient },
      code: { coding: [{ system, code }] },
      effectiveDateTime: when,
    });
  const procedure = (patient: string, code: string, when: string) =>
    create({
      resourceType: 'Procedure',
      status: 'completed',
      subject: { reference: patient },
      code: { coding: [{ system: Terminology.CCAM, code }] },
      performedDateTime: when,
    });

  /** One patient's report for 2026 (population all: the patientèle at 31 Dec 2025 is fmt-engine's to test). */
  const report = async (measure: string, patient: string, period = Y2026): Promise<Counts> => {
    const res = await call<MeasureReport>(
      gw,
      'GET',
      `${gw.fhirUrl}/Measure/${measure}/$evaluate-measure?${period}&subject=${patient}&reportType=subject&population=all`,
      undefined,
      token,
    );
    expect(res.status).toBe(200);
    const pops: MeasureReportGroupPopulation[] = res.body.group?.[0]?.population ?? [];
    return Object.fromEntries(pops.map((p) => [p.code?.coding?.[0]?.code as string, p.count]));
  };

  it('cervical screening: the ANS CCU report (HPV-HR test of January 2024) counts for a woman of 47 in 2026, not in 2029', async () => {
    const patient = (await ingest('BIO-CR-BIO_2024.01_DEP-CCU-tout-structure.xml')) as string;
    expect(patient).toMatch(/^Patient\//);
    ansPatient = patient;
    expect(await report('fmt-depistage-col-uterus', patient)).toMatchObject({
      'initial-population': 1,
      denominator: 1,
      numerator: 1,
    });
    // Five years back from the end of 2029 is January 2025: the 2024 test is too old.
    expect(
      await report('fmt-depistage-col-uterus', patient, 'periodStart=2029-01-01&periodEnd=2029-12-31'),
    ).toMatchObject({
      'initial-population': 1,
      numerator: 0,
    });
    // Cytology alone does not validate the item from 30: a 27-year-old with one does; none at 24.
    const young = await person('1999-06-01', 'female');
    await observation(young, 'http://loinc.org', '10524-7', '2025-02-01');
    expect(await report('fmt-depistage-col-uterus', young)).toMatchObject({ denominator: 1, numerator: 1 });
    const tooYoung = await person('2002-06-01', 'female');
    expect(await report('fmt-depistage-col-uterus', tooYoung)).toMatchObject({ 'initial-population': 0 });
  });

  it('flu for the at-risk under 65: ALD 8 of the list yes, ALD 31 no; 4 bronchodilator dispensations in 12 months, not 3', async () => {
    // The same person's retinography report: matched to the record the CCU report created.
    expect(await ingest('OPH-CR-RTN_2022.01.xml')).toBeUndefined();
    const patient = ansPatient;
    // The ANS test patient (born 1979) has no ALD yet: outside every at-risk item.
    expect(await report('fmt-grippe-risque', patient)).toMatchObject({ 'initial-population': 0 });
    await ald(patient, ['31']);
    expect(await report('fmt-grippe-risque', patient)).toMatchObject({ 'initial-population': 0 });
    await ald(patient, ['8']);
    expect(await report('fmt-grippe-risque', patient)).toMatchObject({ denominator: 1, numerator: 0 });
    expect(await report('fmt-covid-risque', patient)).toMatchObject({ denominator: 1, numerator: 0 });
    expect(await report('fmt-pneumocoque-risque', patient)).toMatchObject({ denominator: 1, numerator: 0 });
    expect(await report('fmt-grippe-65', patient)).toMatchObject({ 'initial-population': 0 });
    // The flu vaccine dispensed at the pharmacy in October validates the item.
    await dispense(patient, 'J07BB02', '2026-10-15T10:00:00+02:00');
    expect(await report('fmt-grippe-risque', patient)).toMatchObject({ denominator: 1, numerator: 1 });
    await vaccine(patient, 'J07AL02', '2019-04-02');
    expect(await report('fmt-pneumocoque-risque', patient)).toMatchObject({ numerator: 1 });

    const asthmatic = await person('1980-05-05', 'male');
    await dispense(asthmatic, 'R03AC02', '2025-06-01T09:00:00+02:00'); // more than 12 months before the end of 2026
    await dispense(asthmatic, 'R03AC02', '2026-02-01T09:00:00+01:00');
    await dispense(asthmatic, 'R03AC02', '2026-05-01T09:00:00+02:00');
    await dispense(asthmatic, 'R03BA02', '2026-08-01T09:00:00+02:00');
    expect(await report('fmt-grippe-risque', asthmatic)).toMatchObject({ 'initial-population': 0 });
    await dispense(asthmatic, 'R03AC02', '2026-11-01T09:00:00+01:00');
    expect(await report('fmt-grippe-risque', asthmatic)).toMatchObject({ denominator: 1, numerator: 0 });
    await vaccine(asthmatic, 'J07BN01', '2026-10-20');
    expect(await report('fmt-covid-risque', asthmatic)).toMatchObject({ denominator: 1, numerator: 1 });
  });

  it('children: two ROR doses from 12 months, a meningococcal C dose from 12 months (not at 5), HPV between 11 and 14', async () => {
    const child = await person('2024-03-15', 'female'); // 33 months at the end of 2026
    await vaccine(child, 'J07BD52', '2025-03-20');
    expect(await report('fmt-ror', child)).toMatchObject({ denominator: 1, numerator: 0 });
    await vaccine(child, 'J07BD52', '2025-08-20');
    expect(await report('fmt-ror', child)).toMatchObject({ denominator: 1, numerator: 1 });
    await vaccine(child, 'J07AH08', '2024-08-20'); // at 5 months: the infant dose, not the one the item asks
    expect(await report('fmt-meningocoque-c', child)).toMatchObject({ denominator: 1, numerator: 0 });
    await vaccine(child, 'J07AH08', '2025-03-20');
    expect(await report('fmt-meningocoque-c', child)).toMatchObject({ numerator: 1 });
    const older = await person('2023-06-01', 'male'); // 42 months: past the item's ages
    expect(await report('fmt-ror', older)).toMatchObject({ 'initial-population': 0 });

    const teen = await person('2011-02-01', 'male'); // 15 in 2026
    await vaccine(teen, 'J07BM03', '2026-04-01'); // at 15: too late for the item
    expect(await report('fmt-hpv', teen)).toMatchObject({ denominator: 1, numerator: 0 });
    await vaccine(teen, 'J07BM03', '2023-05-01'); // at 12
    expect(await report('fmt-hpv', teen)).toMatchObject({ numerator: 1 });
  });

  it('breast and colorectal screening, HbA1c follow-up: windows, exclusion and counts', async () => {
    const woman = await person('1966-04-01', 'female');
    await procedure(woman, 'QEQK004', '2025-03-10');
    expect(await report('fmt-depistage-sein', woman)).toMatchObject({ denominator: 1, numerator: 1 });
    expect(await report('fmt-depistage-colorectal', woman)).toMatchObject({ denominator: 1, numerator: 0 });
    await observation(woman, 'http://loinc.org', '29771-3', '2024-11-02'); // 2 years back from 2026-12-31: too old
    expect(await report('fmt-depistage-colorectal', woman)).toMatchObject({ numerator: 0 });
    await observation(woman, 'http://loinc.org', '29771-3', '2025-06-02');
    expect(await report('fmt-depistage-colorectal', woman)).toMatchObject({ numerator: 1 });
    const scoped = await person('1960-01-01', 'male');
    await procedure(scoped, 'HHQE002', '2023-09-01');
    expect(await report('fmt-depistage-colorectal', scoped)).toMatchObject({
      denominator: 1,
      'denominator-exclusion': 1,
    });

    const diabetic = await person('1955-09-09', 'male');
    await dispense(diabetic, 'A10BA02', '2026-03-01T09:00:00+01:00');
    await observation(diabetic, 'http://loinc.org', '4548-4', '2026-03-15');
    expect(await report('fmt-diabete-hba1c', diabetic)).toMatchObject({ denominator: 1, numerator: 0 });
    await observation(diabetic, 'http://loinc.org', '4548-4', '2026-09-15');
    expect(await report('fmt-diabete-hba1c', diabetic)).toMatchObject({ denominator: 1, numerator: 1 });
    expect(await report('fmt-grippe-65', diabetic)).toMatchObject({ denominator: 1, numerator: 0 });
  });

  it('a structure’s population report counts the patientèle of 31 December 2025, not a médecin traitant declared since', async () => {
    const gp = await create({ resourceType: 'Practitioner', active: true, name: [{ family: 'DÉCLARÉ' }] });
    const since2020 = await person('1950-06-06', 'female');
    await create({
      resourceType: 'CareTeam',
      status: 'active',
      subject: { reference: since2020 },
      participant: [
        {
          role: [{ coding: [{ system: Terminology.TRE_R259, code: 'PCP' }] }],
          member: { reference: gp },
          period: { start: '2020-01-01' },
        },
      ],
    });
    // Declared today (in 2026), through Patient.generalPractitioner: not in the patientèle of 31 Dec 2025.
    await person('1951-07-07', 'male', { generalPractitioner: [{ reference: gp }] });
    const evaluate = async (): Promise<Counts> => {
      const res = await call<MeasureReport>(
        gw,
        'GET',
        `${gw.fhirUrl}/Measure/fmt-grippe-65/$evaluate-measure?${Y2026}&subject=Organization/${msp}`,
        undefined,
        admin,
      );
      expect(res.status).toBe(200);
      return Object.fromEntries(
        (res.body.group?.[0]?.population ?? []).map((p) => [p.code?.coding?.[0]?.code as string, p.count]),
      );
    };
    expect(await evaluate()).toMatchObject({ denominator: 1, numerator: 0 });
    await vaccine(since2020, 'J07BB02', '2026-11-02');
    expect(await evaluate()).toMatchObject({ denominator: 1, numerator: 1 });
  });

  it('CPTS: patients who found a médecin traitant after a completed find-mt Task', async () => {
    const gp = await create(
      { resourceType: 'Practitioner', active: true, name: [{ family: 'GÉNÉRALISTE' }] },
      tokenCpts,
    );
    const found = await person('1950-02-02', 'female', { generalPractitioner: [{ reference: gp }] }, tokenCpts);
    const notFound = await person('1951-03-03', 'male', {}, tokenCpts);
    const pending = await person('1952-04-04', 'female', { generalPractitioner: [{ reference: gp }] }, tokenCpts);
    const task = (patient: string, status: string) =>
      create(
        {
          resourceType: 'Task',
          status,
          intent: 'order',
          code: { coding: [{ system: TASK_SYSTEM, code: 'find-mt' }] },
          for: { reference: patient },
          authoredOn: '2026-03-01T10:00:00+01:00',
          ...(status === 'completed' ? { executionPeriod: { start: '2026-03-01', end: '2026-04-15' } } : {}),
        },
        tokenCpts,
      );
    await task(found, 'completed');
    await task(notFound, 'completed');
    await task(pending, 'in-progress');
    const res = await call<MeasureReport>(
      gw,
      'GET',
      `${gw.fhirUrl}/Measure/cpts-mt-trouve/$evaluate-measure?${Y2026}&subject=Organization/${cpts}`,
      undefined,
      admin,
    );
    expect(res.status).toBe(200);
    const pops = Object.fromEntries(
      (res.body.group?.[0]?.population ?? []).map((p) => [p.code?.coding?.[0]?.code, p.count]),
    );
    expect(pops).toMatchObject({ 'initial-population': 2, denominator: 2, numerator: 1 });
  });

  it('CPTS without médecin traitant: the published benchmarks beside the territory (France, Cher, Indre), loaded by the CLI', async () => {
    const cli = (file: string) =>
      run(GATEWAY_CLI, { GW_DATABASE_URL: gw.core.config.GW_DATABASE_URL as string, GW_LOG_LEVEL: 'warn' }, [
        'indicators:load-benchmarks',
        file,
      ]);
    const bad = join(tempDir('gw-bench-'), 'bad.csv');
    writeFileSync(
      bad,
      'indicator;territory_level;territory_code;date;percent;source_url;note\nx;departement;20;2024-12-31;3;https://example.org\n',
    );
    const refused = cli(bad);
    expect(await refused.exited).toBe(2);
    expect(refused.out()).toContain('line 2: territory_code "20" is not a departement code');
    const loaded = cli(BENCHMARKS);
    expect(await loaded.exited).toBe(0);
    expect(loaded.out()).toContain('"rows":8,"inserted":8');

    // Two ALD patients without a médecin traitant, one with: the ALD stratum is 2/3.
    const gp = await create({ resourceType: 'Practitioner', active: true, name: [{ family: 'TRAITANT' }] }, tokenCpts);
    for (const [birth, hasGp] of [
      ['1940-01-01', false],
      ['1945-01-01', false],
      ['1948-01-01', true],
    ] as const) {
      const p = await person(birth, 'male', hasGp ? { generalPractitioner: [{ reference: gp }] } : {}, tokenCpts);
      await ald(p, ['5'], tokenCpts);
    }
    const evaluate = async (period: string): Promise<MeasureReport> => {
      const res = await call<MeasureReport>(
        gw,
        'GET',
        `${gw.fhirUrl}/Measure/cpts-sans-medecin-traitant/$evaluate-measure?${period}&subject=Organization/${cpts}`,
        undefined,
        admin,
      );
      expect(res.status).toBe(200);
      return res.body;
    };
    const figures = (r: MeasureReport) =>
      (r.group?.[0]?.extension ?? [])
        .filter((e: Extension) => e.url === REPORT_BENCHMARK_EXTENSION)
        .map((e) => {
          const get = (u: string) => e.extension?.find((x) => x.url === u);
          return `${get('territory')?.valueString} ${get('value')?.valueQuantity?.value} ${get('date')?.valueDate} ${get('stratum')?.valueString}`;
        })
        .sort();
    const r2026 = await evaluate(Y2026);
    // The latest figure of each territory by the end of the period; Seine-Saint-Denis is not the CPTS's.
    expect(figures(r2026)).toEqual([
      '18 9 2023-05-10 ald:yes',
      '36 8.6 2023-05-10 ald:yes',
      'FR 3.8 2024-12-31 ald:yes',
    ]);
    const aldStratum = r2026.group?.[0]?.stratifier
      ?.find((s) => s.code?.[0]?.coding?.[0]?.code === 'ald')
      ?.stratum?.find((s) => s.value?.coding?.[0]?.code === 'yes');
    expect(aldStratum?.measureScore?.value).toBeCloseTo(2 / 3, 3);
    // For 2023 the national figure is the ministry's of May 2023, not the Cnam's of December 2024.
    expect(figures(await evaluate('periodStart=2023-01-01&periodEnd=2023-12-31'))).toContain(
      'FR 6.2 2023-05-10 ald:yes',
    );
  });
});
