import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bundle, MeasureReport, MeasureReportGroupPopulation } from '@medplum/fhirtypes';
import { Terminology } from '@gw/ingest';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { call } from '../support/hl7';

/** The ANS CI-SIS examples, read in place next to the repository (see their SOURCES.md). */
const SAMPLES = join(__dirname, '../../../shared/samples/ans-cda');
const sample = (name: string): Buffer => readFileSync(join(SAMPLES, name));
/** The OPH report's retinography (NGAP AMY) is of 2021-11-04: inside the fundus measure's two years back from 2022's end. */
const PERIOD = 'periodStart=2022-01-01&periodEnd=2022-12-31';

type Res = Record<string, unknown> & { resourceType: string };

/**
 * The indicator catalogue counts facts as the practice intake stores them (ANS canonical code
 * systems, NGAP by its OID) and facts stored under the legacy names (http://www.whocc.no/atc, the
 * CCAM OID) alike.
 */
describe('indicator catalogue over documents ingested from the ANS CDA examples', () => {
  let gw: TestGateway;
  let token: string;

  beforeAll(async () => {
    gw = await startTestGateway({
      GW_WORKERS_INPROCESS: 'false',
      GW_MLLP_ENABLED: 'false',
      GW_INDICATOR_NOISE: 'false',
    });
    token = (await gw.clientOf('msp-catalogue-codes', ['system/*.cruds'])).token;
  });
  afterAll(async () => gw?.close());

  /** Files a sample; the Patient it created, if it created one (a known patient is matched, not re-created). */
  const ingest = async (name: string): Promise<string | undefined> => {
    const res = await fetch(`${gw.baseUrl}/ingest/documents`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/hl7-cda+xml' },
      body: sample(name),
    });
    const body = (await res.json()) as Bundle;
    expect(res.status).toBe(201);
    return body.entry?.find((e) => e.fullUrl?.startsWith('Patient/'))?.fullUrl;
  };

  const create = async (resource: Res): Promise<string> => {
    const res = await call<{ id: string }>(gw, 'POST', `${gw.fhirUrl}/${resource.resourceType}`, resource, token);
    expect(res.status).toBe(201);
    return res.body.id;
  };

  /** A treated type 2 diabetic: the Condition and the antidiabetic prescription of the test setup. */
  const diabetic = async (patient: string, atcSystem: string, cimSystem: string): Promise<void> => {
    await create({
      resourceType: 'Condition',
      subject: { reference: patient },
      clinicalStatus: { coding: [{ system: Terminology.CONDITION_CLINICAL, code: 'active' }] },
      code: { coding: [{ system: cimSystem, code: 'E11.9' }] },
      onsetDateTime: '2015-06-01',
    });
    await create({
      resourceType: 'MedicationRequest',
      status: 'active',
      intent: 'order',
      subject: { reference: patient },
      medicationCodeableConcept: { coding: [{ system: atcSystem, code: 'A10BA02' }] },
      authoredOn: '2022-03-01',
    });
  };

  /** One patient's report (population all: these test patients have no declared médecin traitant). */
  const report = async (measure: string, patient: string): Promise<Record<string, number | undefined>> => {
    const res = await call<MeasureReport>(
      gw,
      'GET',
      `${gw.fhirUrl}/Measure/${measure}/$evaluate-measure?${PERIOD}&subject=${patient}&reportType=subject&population=all`,
      undefined,
      token,
    );
    expect(res.status).toBe(200);
    expect(res.body.type).toBe('individual');
    const pops: MeasureReportGroupPopulation[] = res.body.group?.[0]?.population ?? [];
    return Object.fromEntries(pops.map((p) => [p.code?.coding?.[0]?.code as string, p.count]));
  };

  it('OPH-CR-RTN: the NGAP AMY retinography counts in the diabetic fundus measure; VAC vaccines are not flu vaccines', async () => {
    const patient = (await ingest('OPH-CR-RTN_2022.01.xml')) as string;
    expect(patient).toMatch(/^Patient\//);
    // Before the diabetes is known the patient is outside the measure, whatever the retinography.
    expect(await report('rosp-diabete-fond-oeil', patient)).toMatchObject({ 'initial-population': 0, numerator: 0 });

    await diabetic(patient, Terminology.ATC, Terminology.CIM_10);
    expect(await report('rosp-diabete-fond-oeil', patient)).toMatchObject({
      'initial-population': 1,
      denominator: 1,
      numerator: 1,
    });

    // The same person's vaccination record (same INS, same practice): its ATC vaccines (J07A…) are
    // stored under the ANS canonical, and none is an influenza vaccine (J07BB), so the canonical
    // CIM-10 diabetes puts the patient in the flu "at risk" denominator, not the numerator.
    expect(await ingest('VAC_2023.01.xml')).toBeUndefined();
    const imm = await call<Bundle>(gw, 'GET', `${gw.fhirUrl}/Immunization?patient=${patient}`, undefined, token);
    expect(imm.body.entry).toHaveLength(4);
    expect(await report('rosp-grippe-16-64-risque', patient)).toMatchObject({ denominator: 1, numerator: 0 });
    await create({
      resourceType: 'Immunization',
      status: 'completed',
      patient: { reference: patient },
      vaccineCode: { coding: [{ system: Terminology.ATC, code: 'J07BB02' }] },
      occurrenceDateTime: '2022-10-20',
    });
    expect(await report('rosp-grippe-16-64-risque', patient)).toMatchObject({ denominator: 1, numerator: 1 });
  });

  it('facts stored under the legacy system names (WHO ATC URL, CCAM OID, HL7 ICD-10) still count', async () => {
    const patient = `Patient/${await create({
      resourceType: 'Patient',
      identifier: [{ system: 'urn:oid:1.2.250.1.999.1', value: 'legacy-1' }],
      gender: 'female',
      birthDate: '1960-05-05',
    })}`;
    await diabetic(patient, 'http://www.whocc.no/atc', 'http://hl7.org/fhir/sid/icd-10');
    expect(await report('rosp-diabete-fond-oeil', patient)).toMatchObject({ denominator: 1, numerator: 0 });
    await create({
      resourceType: 'Procedure',
      status: 'completed',
      subject: { reference: patient },
      code: { coding: [{ system: 'urn:oid:1.2.250.1.213.2.5', code: 'BGQP002' }] },
      performedDateTime: '2022-02-14',
    });
    expect(await report('rosp-diabete-fond-oeil', patient)).toMatchObject({ denominator: 1, numerator: 1 });
    expect(await report('rosp-grippe-16-64-risque', patient)).toMatchObject({ denominator: 1 });
  });
});
