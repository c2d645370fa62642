import type { Bundle, DetectedIssue, MeasureReport, Parameters } from '@medplum/fhirtypes';
import { IDNATPS } from '@gw/fhir';
import {
  CARE_GAP_CLOSES_BY_EXTENSION,
  CARE_GAP_SINCE_EXTENSION,
  CARE_GAP_VALID_UNTIL_EXTENSION,
  CODES,
  GAP_STATUS_EXTENSION,
  measuresInForce,
} from '@gw/indicators';
import { OWNER_TAG_SYSTEM, SHARING_CONSENT_CATEGORY } from '@gw/store';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { call } from '../support/hl7';
import { typedOrganization } from '../support/indicators';
import { personToken, vendorClient } from '../support/persons';

const R259 = 'https://mos.esante.gouv.fr/NOS/TRE_R259-HL7RoleClass/FHIR/TRE-R259-HL7RoleClass';
const G15 = 'https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante';
const PERIOD = 'periodStart=2025-01-01&periodEnd=2025-12-31';
const FLU = 'rosp-grippe-65';
const CRC = 'rosp-depistage-colorectal';
const NO_MT = 'cpts-sans-medecin-traitant';

type Res = Record<string, unknown> & { resourceType: string; id: string };

/** One patient's gaps as read back: measure id → status, with the DetectedIssue's dates and evidence. */
interface Item {
  status: string;
  closesBy?: string;
  since?: string;
  validUntil?: string;
  evidence?: string;
  evidenceDate?: string;
  report: MeasureReport;
}

/** `Patient/<id>` → measure id → item, from a `$care-gaps` answer. */
function read(body: Parameters): Map<string, Map<string, Item>> {
  const out = new Map<string, Map<string, Item>>();
  for (const p of body.parameter ?? []) {
    expect(p.name).toBe('return');
    const bundle = p.resource as Bundle;
    expect(bundle.type).toBe('document');
    const resources = new Map((bundle.entry ?? []).map((e) => [e.fullUrl, e.resource]));
    const composition = bundle.entry?.[0]?.resource;
    if (composition?.resourceType !== 'Composition') {
      throw new Error('a document starts with its Composition');
    }
    const items = new Map<string, Item>();
    for (const section of composition.section ?? []) {
      const report = resources.get(section.focus?.reference) as MeasureReport;
      const issue = resources.get(section.entry?.[0]?.reference) as DetectedIssue | undefined;
      const ext = (url: string) => issue?.extension?.find((e) => e.url === url);
      const evidence = ext('https://gateway.fr-primary-care.org/fhir/StructureDefinition/measure-recall-evidence');
      items.set(/\/Measure\/([^|]+)/.exec(report.measure)![1]!, {
        status: section.code?.coding?.[0]?.code ?? '',
        ...(issue
          ? {
              closesBy: ext(CARE_GAP_CLOSES_BY_EXTENSION)?.valueDate,
              since: ext(CARE_GAP_SINCE_EXTENSION)?.valueDate,
              validUntil: ext(CARE_GAP_VALID_UNTIL_EXTENSION)?.valueDate,
              evidence: evidence?.extension?.find((e) => e.url === 'fact')?.valueReference?.reference,
              evidenceDate: evidence?.extension?.find((e) => e.url === 'date')?.valueDateTime?.slice(0, 10),
            }
          : {}),
        report,
      });
      if (issue) {
        expect(issue.code?.coding?.[0]?.code).toBe('CAREGAP');
        expect(issue.modifierExtension?.[0]?.url).toBe(GAP_STATUS_EXTENSION);
        expect(issue.modifierExtension?.[0]?.valueCodeableConcept?.coding?.[0]?.code).toBe(
          section.code?.coding?.[0]?.code,
        );
        expect(issue.evidence?.[0]?.detail?.[0]?.reference).toBe(section.focus?.reference);
      }
    }
    out.set(composition.subject?.reference ?? '', items);
  }
  return out;
}

/**
 * `Measure/$care-gaps` against a real gateway, over 2025 (the eight catalogue Measures in force).
 * MSP A: GP G1's patients A1 (70, vaccinated 2025-10-15, FIT 2024-06-01), A2 (75, never
 * vaccinated), A3 (65, vaccinated 2024-11-01 only, FIT 2023-03-01 lapsed on 2025-02-28), A4 (35,
 * concerned by nothing); GP G2's patient A5 (75, not vaccinated). MSP B: B1 (75), G1 its GP too (G1
 * holds a role at MSP A only, so B's declaration counts only while a test gives G1 a role at B).
 */
describe('Measure/$care-gaps', () => {
  let gw: TestGateway;
  let admin: string;
  let mspA: string;
  let mspB: string;
  let clientA: string;
  let clientB: string;
  let cptsClient: string;
  const persons: Record<string, string> = {};

  const put = async (resource: Res, owner?: string): Promise<void> => {
    const body = owner
      ? { ...resource, meta: { tag: [{ system: OWNER_TAG_SYSTEM, code: `Organization/${owner}` }] } }
      : resource;
    const res = await call(gw, 'PUT', `${gw.fhirUrl}/${resource.resourceType}/${resource.id}`, body, admin);
    if (res.status >= 300) {
      throw new Error(`PUT ${resource.resourceType}/${resource.id}: ${res.status}`);
    }
  };

  beforeAll(async () => {
    gw = await startTestGateway({ GW_WORKERS_INPROCESS: 'false', GW_MLLP_ENABLED: 'false' });
    admin = await gw.token();
    const cpts = await typedOrganization(gw, 'CPTS du Val', 'CPTS');
    mspA = await typedOrganization(gw, 'MSP des Lilas', 'MSP', cpts);
    mspB = await typedOrganization(gw, 'MSP du Parc', 'MSP', cpts);
    clientA = (await gw.clientOf(mspA, ['system/*.cruds'])).token;
    clientB = (await gw.clientOf(mspB, ['system/*.cruds'])).token;
    cptsClient = (await gw.clientOf(cpts, ['system/*.rs'])).token;
    for (const [who, idNatPs, profession] of [
      ['g1', '810000200001', '10'],
      ['g2', '810000200002', '10'],
      ['pharma', '810000200003', '21'],
    ] as const) {
      await put({
        resourceType: 'Practitioner',
        id: `cg-${who}`,
        active: true,
        identifier: [{ system: IDNATPS, value: idNatPs }],
        name: [{ family: who.toUpperCase(), given: ['Dr'] }],
      });
      await put({
        resourceType: 'PractitionerRole',
        id: `cg-role-${who}`,
        active: true,
        practitioner: { reference: `Practitioner/cg-${who}` },
        organization: { reference: `Organization/${mspA}` },
        code: [{ coding: [{ system: G15, code: profession }] }],
      });
    }
    const patient = (id: string, birthDate: string, gp: string, org: string): Promise<void> =>
      put(
        {
          resourceType: 'Patient',
          id,
          name: [{ family: 'ECART', given: [id.toUpperCase()] }],
          gender: 'female',
          birthDate,
          generalPractitioner: [{ reference: `Practitioner/${gp}` }],
        },
        org,
      );
    await patient('cg-a1', '1955-03-01', 'cg-g1', mspA);
    await patient('cg-a2', '1950-03-01', 'cg-g1', mspA);
    await patient('cg-a3', '1960-03-01', 'cg-g1', mspA);
    await patient('cg-a4', '1990-03-01', 'cg-g1', mspA);
    await patient('cg-a5', '1950-03-01', 'cg-g2', mspA);
    await patient('cg-b1', '1950-03-01', 'cg-g1', mspB);
    const flu = (id: string, p: string, date: string, org: string): Promise<void> =>
      put(
        {
          resourceType: 'Immunization',
          id,
          status: 'completed',
          vaccineCode: { coding: [CODES.fluVaccine] },
          patient: { reference: `Patient/${p}` },
          occurrenceDateTime: date,
        },
        org,
      );
    const fit = (id: string, p: string, date: string): Promise<void> =>
      put(
        {
          resourceType: 'Observation',
          id,
          status: 'final',
          code: { coding: [CODES.fit] },
          subject: { reference: `Patient/${p}` },
          effectiveDateTime: date,
        },
        mspA,
      );
    await flu('cg-flu-a1', 'cg-a1', '2025-10-15', mspA);
    await flu('cg-flu-a3', 'cg-a3', '2024-11-01', mspA);
    // Filed by MSP B: MSP A's answer may not read it (A2 stays open for A).
    await flu('cg-flu-a2-b', 'cg-a2', '2025-10-20', mspB);
    await fit('cg-fit-a1', 'cg-a1', '2024-06-01');
    await fit('cg-fit-a3', 'cg-a3', '2023-03-01');
    const vendor = await vendorClient(gw, `Organization/${mspA}`, ['system/*.cruds']);
    persons.g1 = await personToken(gw, vendor, '810000200001');
    persons.pharma = await personToken(gw, vendor, '810000200003');
  }, 120_000);

  afterAll(async () => {
    await gw?.close();
  });

  it("a GP's list for their structure: open and closed gaps with closesBy, evidence and validity", async () => {
    const res = await call<Parameters>(
      gw,
      'GET',
      `${gw.fhirUrl}/Measure/$care-gaps?${PERIOD}&subject=Practitioner/cg-g1`,
      undefined,
      clientA,
    );
    expect(res.status).toBe(200);
    const gaps = read(res.body);
    // A5 is G2's; B1 is MSP B's. A4 (35) is concerned only by "no médecin traitant", an inverse
    // measure: having one closes it.
    expect([...gaps.keys()].sort()).toEqual(['Patient/cg-a1', 'Patient/cg-a2', 'Patient/cg-a3', 'Patient/cg-a4']);
    expect([...gaps.get('Patient/cg-a4')!.entries()].map(([id, i]) => [id, i.status])).toEqual([[NO_MT, 'closed-gap']]);
    const a1 = gaps.get('Patient/cg-a1')!;
    expect(a1.get(FLU)).toMatchObject({
      status: 'closed-gap',
      evidence: 'Immunization/cg-flu-a1',
      evidenceDate: '2025-10-15',
      validUntil: '2025-12-31',
    });
    // FIT counts 2 years back from the period's end: until 2026-05-31.
    expect(a1.get(CRC)).toMatchObject({
      status: 'closed-gap',
      evidence: 'Observation/cg-fit-a1',
      validUntil: '2026-05-31',
    });
    expect(a1.get(CRC)!.report.group?.[0]?.population?.map((p) => p.count)).toEqual([1, 1, 0, 1]);
    expect(a1.get(CRC)!.report.evaluatedResource?.[0]?.reference).toBe('Observation/cg-fit-a1');
    const a2 = gaps.get('Patient/cg-a2')!;
    // MSP B's vaccination is not MSP A's to read: the gap stays open here, no evidence.
    expect(a2.get(FLU)).toMatchObject({ status: 'open-gap', closesBy: '2025-12-31', since: '2025-01-01' });
    expect(a2.get(FLU)!.evidence).toBeUndefined();
    expect(a2.has(CRC)).toBe(false);
    const a3 = gaps.get('Patient/cg-a3')!;
    expect(a3.get(FLU)).toMatchObject({
      status: 'open-gap',
      evidence: 'Immunization/cg-flu-a3',
      evidenceDate: '2024-11-01',
      closesBy: '2025-12-31',
    });
    // The FIT of 2023-03-01 counted until 2025-02-28: open since 2025-03-01.
    expect(a3.get(CRC)).toMatchObject({ status: 'open-gap', since: '2025-03-01', evidence: 'Observation/cg-fit-a3' });
    expect(a3.get(CRC)!.report.group?.[0]?.population?.map((p) => p.count)).toEqual([1, 1, 0, 0]);
  });

  it("2026: the FMT items in force, over the GP's patientèle of 31 December 2025 (CareTeam PCP periods)", async () => {
    for (const p of ['cg-a1', 'cg-a3']) {
      await put(
        {
          resourceType: 'CareTeam',
          id: `cg-team-${p}`,
          status: 'active',
          subject: { reference: `Patient/${p}` },
          participant: [
            {
              role: [{ coding: [{ system: R259, code: 'PCP' }] }],
              member: { reference: 'Practitioner/cg-g1' },
              period: { start: '2020-01-01' },
            },
          ],
        },
        mspA,
      );
    }
    await put(
      {
        resourceType: 'Immunization',
        id: 'cg-flu-a3-2026',
        status: 'completed',
        vaccineCode: { coding: [CODES.fluVaccine] },
        patient: { reference: 'Patient/cg-a3' },
        occurrenceDateTime: '2026-10-01',
      },
      mspA,
    );
    const res = await call<Parameters>(
      gw,
      'GET',
      `${gw.fhirUrl}/Measure/$care-gaps?periodStart=2026-01-01&periodEnd=2026-12-31&subject=Practitioner/cg-g1`,
      undefined,
      clientA,
    );
    expect(res.status).toBe(200);
    const gaps = read(res.body);
    const measures = new Set([...gaps.values()].flatMap((items) => [...items.keys()]));
    // Only Measures in force on 2026-12-31 (effectivePeriod), the FMT items among them.
    const inForce = new Set(
      measuresInForce([...gw.core.indicators.catalogue.measures.values()], '2026-12-31').map((m) => m.id),
    );
    expect([...measures].filter((id) => !inForce.has(id))).toEqual([]);
    expect(measures.has('fmt-grippe-65')).toBe(true);
    // A1: vaccinated in October 2025 only, open in 2026 with that last act; A3: vaccinated in 2026.
    expect(gaps.get('Patient/cg-a1')?.get('fmt-grippe-65')).toMatchObject({
      status: 'open-gap',
      since: '2026-01-01',
      closesBy: '2026-12-31',
      evidence: 'Immunization/cg-flu-a1',
      evidenceDate: '2025-10-15',
    });
    expect(gaps.get('Patient/cg-a3')?.get('fmt-grippe-65')).toMatchObject({
      status: 'closed-gap',
      evidence: 'Immunization/cg-flu-a3-2026',
      validUntil: '2026-12-31',
    });
    // A2 (76) was not in G1's patientèle on 31 December 2025 (its médecin traitant declared since).
    expect(gaps.get('Patient/cg-a2')?.has('fmt-grippe-65') ?? false).toBe(false);
  });

  it('filters by status and measureId (repeatable), GET and POST alike', async () => {
    const open = await call<Parameters>(
      gw,
      'GET',
      `${gw.fhirUrl}/Measure/$care-gaps?${PERIOD}&subject=Organization/${mspA}&status=open-gap&measureId=${FLU}&measureId=${CRC}`,
      undefined,
      clientA,
    );
    expect(open.status).toBe(200);
    const gaps = read(open.body);
    expect([...gaps.keys()].sort()).toEqual(['Patient/cg-a2', 'Patient/cg-a3', 'Patient/cg-a5']);
    for (const items of gaps.values()) {
      expect([...items.values()].every((i) => i.status === 'open-gap')).toBe(true);
    }
    expect([...gaps.get('Patient/cg-a3')!.keys()].sort()).toEqual([CRC, FLU]);
    const closed = await call<Parameters>(
      gw,
      'POST',
      `${gw.fhirUrl}/Measure/$care-gaps`,
      {
        resourceType: 'Parameters',
        parameter: [
          { name: 'periodStart', valueDate: '2025-01-01' },
          { name: 'periodEnd', valueDate: '2025-12-31' },
          { name: 'subject', valueString: `Organization/${mspA}` },
          { name: 'status', valueCode: 'closed-gap' },
          { name: 'measureId', valueString: FLU },
        ],
      },
      clientA,
    );
    expect(closed.status).toBe(200);
    expect([...read(closed.body).keys()]).toEqual(['Patient/cg-a1']);
  });

  it('one patient: every measure, not-applicable ones included', async () => {
    const res = await call<Parameters>(
      gw,
      'GET',
      `${gw.fhirUrl}/Measure/$care-gaps?${PERIOD}&subject=Patient/cg-a4`,
      undefined,
      clientA,
    );
    expect(res.status).toBe(200);
    const items = read(res.body).get('Patient/cg-a4')!;
    // Every Measure in force on the period's end (the ROSP ones end on 2025-12-31).
    const inForce = measuresInForce([...gw.core.indicators.catalogue.measures.values()], '2025-12-31');
    expect(inForce.some((m) => m.id.startsWith('fmt-'))).toBe(false);
    expect([...items.keys()].sort()).toEqual(inForce.map((m) => m.id).sort());
    expect([...items.entries()].filter(([, i]) => i.status !== 'not-applicable').map(([id]) => id)).toEqual([NO_MT]);
    expect(items.get(FLU)!.report.group?.[0]?.population?.map((p) => p.count)).toEqual([0, 0, 0, 0]);
  });

  it('a person: a GP gets their own patientèle by default; a pharmacist is refused', async () => {
    const res = await call<Parameters>(gw, 'GET', `${gw.fhirUrl}/Measure/$care-gaps?${PERIOD}`, undefined, persons.g1);
    expect(res.status).toBe(200);
    expect([...read(res.body).keys()].sort()).toEqual([
      'Patient/cg-a1',
      'Patient/cg-a2',
      'Patient/cg-a3',
      'Patient/cg-a4',
    ]);
    const refused = await call<{ resourceType: string; issue: { details?: { text?: string } }[] }>(
      gw,
      'GET',
      `${gw.fhirUrl}/Measure/$care-gaps?${PERIOD}&subject=Organization/${mspA}`,
      undefined,
      persons.pharma,
    );
    expect(refused.status).toBe(403);
    expect(refused.body.issue[0]?.details?.text).toContain('clinical content');
  });

  it("a patient's opposition to the GP takes the patient off the GP's list, not off the structure's", async () => {
    await put(
      {
        resourceType: 'Consent',
        id: 'cg-opposition-a4',
        status: 'active',
        scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
        category: [{ coding: [{ ...SHARING_CONSENT_CATEGORY }] }],
        patient: { reference: 'Patient/cg-a4' },
        policyRule: { text: 'CSP L.1110-4' },
        provision: {
          type: 'deny',
          actor: [{ role: { text: 'médecin' }, reference: { reference: 'PractitionerRole/cg-role-g1' } }],
        },
      },
      mspA,
    );
    const gp = await call<Parameters>(gw, 'GET', `${gw.fhirUrl}/Measure/$care-gaps?${PERIOD}`, undefined, persons.g1);
    expect([...read(gp.body).keys()].sort()).toEqual(['Patient/cg-a1', 'Patient/cg-a2', 'Patient/cg-a3']);
    const one = await call(
      gw,
      'GET',
      `${gw.fhirUrl}/Measure/$care-gaps?${PERIOD}&subject=Patient/cg-a4`,
      undefined,
      persons.g1,
    );
    expect(one.status).toBe(404);
    const structure = await call<Parameters>(
      gw,
      'GET',
      `${gw.fhirUrl}/Measure/$care-gaps?${PERIOD}&subject=Practitioner/cg-g1`,
      undefined,
      clientA,
    );
    expect(read(structure.body).has('Patient/cg-a4')).toBe(true);
    await call(gw, 'DELETE', `${gw.fhirUrl}/Consent/cg-opposition-a4`, undefined, admin);
  });

  it('refuses other structures, a CPTS, bad parameters; unknown measures are 404', async () => {
    const other = await call(
      gw,
      'GET',
      `${gw.fhirUrl}/Measure/$care-gaps?${PERIOD}&subject=Organization/${mspA}`,
      undefined,
      clientB,
    );
    expect(other.status).toBe(403);
    const patientOfA = await call(
      gw,
      'GET',
      `${gw.fhirUrl}/Measure/$care-gaps?${PERIOD}&subject=Patient/cg-a1`,
      undefined,
      clientB,
    );
    expect(patientOfA.status).toBe(404);
    // G1's patients as MSP B sees them. G1 works at MSP A only: B's own declaration of G1 (B1) is
    // not verified and lists nobody. Once G1 also holds a role at MSP B: B1 only (its own), never MSP A's.
    const g1ForB = async (): Promise<string[]> => {
      const res = await call<Parameters>(
        gw,
        'GET',
        `${gw.fhirUrl}/Measure/$care-gaps?${PERIOD}&subject=Practitioner/cg-g1`,
        undefined,
        clientB,
      );
      expect(res.status).toBe(200);
      return [...read(res.body).keys()];
    };
    expect(await g1ForB()).toEqual([]);
    const roleAtB = {
      resourceType: 'PractitionerRole',
      id: 'cg-role-g1-b',
      active: true,
      practitioner: { reference: 'Practitioner/cg-g1' },
      organization: { reference: `Organization/${mspB}` },
      code: [{ coding: [{ system: G15, code: '10' }] }],
    };
    await put(roleAtB, mspB);
    expect(await g1ForB()).toEqual(['Patient/cg-b1']);
    await put({ ...roleAtB, active: false }, mspB);
    expect(await g1ForB()).toEqual([]);
    const cpts = await call(gw, 'GET', `${gw.fhirUrl}/Measure/$care-gaps?${PERIOD}`, undefined, cptsClient);
    expect(cpts.status).toBe(403);
    for (const [query, status] of [
      [`${PERIOD}&status=everything`, 400],
      [`${PERIOD}&subject=Group/x`, 400],
      [`${PERIOD}&measureId=no-such-measure`, 404],
      ['periodStart=2025-01-01', 400],
    ] as const) {
      const r = await call(gw, 'GET', `${gw.fhirUrl}/Measure/$care-gaps?${query}`, undefined, clientA);
      expect([query, r.status]).toEqual([query, status]);
    }
  });

  it('audits every patient listed and logs no patient data', async () => {
    await call(gw, 'GET', `${gw.fhirUrl}/Measure/$care-gaps?${PERIOD}&subject=Practitioner/cg-g1`, undefined, clientA);
    await gw.core.audit.flush();
    const rows = await gw.core.db.pool.query<{ patients: string[]; entity: string[] }>(
      `SELECT patients, entity FROM audit_event WHERE interaction = 'operation:care-gaps' AND entity @> ARRAY['Practitioner/cg-g1']
        ORDER BY id DESC LIMIT 1`,
    );
    expect(rows.rows[0]?.patients.sort()).toEqual(['cg-a1', 'cg-a2', 'cg-a3', 'cg-a4']);
    expect(rows.rows[0]?.entity).toEqual(expect.arrayContaining([`Measure/${FLU}`, 'Patient/cg-a1']));
    const logged = gw.logs.join('');
    expect(logged).toContain('care gaps evaluated');
    expect(logged).not.toMatch(/ECART|1955-03-01/);
  });
});
