import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bundle, DocumentReference, Observation, OperationOutcome, Patient, Resource } from '@medplum/fhirtypes';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { send } from '../support/security';

const FIXTURES = join(__dirname, '../fixtures/hprim');
/** Two patients of lab 750000001 (windows-1252): DUBOIS-TEST (known below) and LEGRAND-TEST (never known). */
const BIOMED = readFileSync(join(FIXTURES, 'biomed-2-patients.hpr'));
/** One patient (MOREAU-TEST, UTF-8) no structure knows. */
const CALANQUES = readFileSync(join(FIXTURES, 'calanques-utf8.hpr'));
const LOINC = 'http://loinc.org';

/** 201: a Bundle; 202 and errors: an OperationOutcome. */
type Answer = Omit<Bundle, 'resourceType'> & Pick<OperationOutcome, 'issue'> & { resourceType: string };

/** HPRIM files through the one intake route, filed by the real pipeline, read back through FHIR. */
describe('HPRIM through POST /ingest/documents', () => {
  let gw: TestGateway;
  let token: string;
  let dubois: string;

  beforeAll(async () => {
    gw = await startTestGateway();
    token = (await gw.clientOf('msp-hprim-e2e', ['system/*.cruds'])).token;
    const created = await send(gw.baseUrl, 'POST', '/fhir/Patient', {
      token,
      body: {
        resourceType: 'Patient',
        identifier: [{ system: 'urn:oid:1.2.250.1.213.1.4.8', value: '261057505612350' }],
        name: [{ use: 'official', family: 'DUBOIS-TEST', given: ['Hélène', 'Marie'] }],
        gender: 'female',
        birthDate: '1961-05-12',
      },
    });
    expect(created.status).toBe(201);
    dubois = `Patient/${created.json<{ id: string }>().id}`;
    // HbA1c and creatinine are mapped before the file comes; GLY, DFGE, ASPS are not.
    for (const [code, body] of [
      ['HBA1C', { loinc: '4548-4', display: 'Hemoglobin A1c/Hemoglobin.total in Blood' }],
      ['CREA', { loinc: '2160-0', display: 'Creatinine [Mass/volume] in Serum or Plasma', unit: 'umol/L' }],
    ] as const) {
      const put = await send(gw.baseUrl, 'PUT', `/ingest/lab-codes/750000001/${code}`, { token, body });
      expect(put.status).toBe(201);
    }
  }, 60_000);
  afterAll(async () => gw?.close());

  const post = async (body: Buffer, contentType: string): Promise<{ status: number; body: Answer }> => {
    const res = await fetch(`${gw.baseUrl}/ingest/documents`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': contentType },
      body,
    });
    return { status: res.status, body: (await res.json()) as Answer };
  };
  const search = async <T extends Resource>(query: string): Promise<T[]> => {
    const res = await fetch(`${gw.fhirUrl}/${query}`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    return ((await res.json()) as Bundle<T>).entry?.map((e) => e.resource as T) ?? [];
  };
  const loincs = (obs: Observation[]): string[] =>
    obs.flatMap((o) => (o.code.coding ?? []).filter((c) => c.system === LOINC).map((c) => c.code as string)).sort();

  it('files the known patient’s mapped results, holds the rest, never creates the unknown patient', async () => {
    const res = await post(BIOMED, 'text/plain; charset=windows-1252');
    // One part filed (201 with its Bundle), the other held for identity review.
    expect(res.status === 201 ? 201 : JSON.stringify(res.body)).toBe(201);
    const outcome = res.body.entry?.at(-1)?.response?.outcome as OperationOutcome;
    const texts = outcome.issue.map((i) => i.diagnostics ?? '');
    expect(texts).toContainEqual(expect.stringMatching(/^1 document\(s\) filed, 1 held for identity review/));
    expect(texts).toContainEqual(expect.stringMatching(/^3 result\(s\) held until their lab codes are mapped/));

    const observations = await search<Observation>(`Observation?subject=${dubois}`);
    expect(loincs(observations)).toEqual(['2160-0', '4548-4']);
    const creatinine = observations.find((o) => loincs([o])[0] === '2160-0');
    expect(creatinine?.valueQuantity).toMatchObject({ value: 78, system: 'http://unitsofmeasure.org', code: 'umol/L' });
    expect(await search<Patient>('Patient?family=LEGRAND-TEST')).toEqual([]);

    const unmapped = await send(gw.baseUrl, 'GET', '/ingest/lab-codes/unmapped', { token });
    expect(unmapped.json<{ code: string }[]>().map((u) => u.code)).toEqual([
      'ASPS',
      'DFGE',
      'GLY',
      'K',
      'LEUCO',
      'VXYZ',
    ]);
  });

  it('files a held result once its code is mapped, as the next version of the document', async () => {
    const put = await send(gw.baseUrl, 'PUT', '/ingest/lab-codes/750000001/GLY', {
      token,
      body: { loinc: '2345-7', display: 'Glucose [Mass/volume] in Serum or Plasma', unit: 'mg/dL', factor: 100 },
    });
    expect(put.status === 201 ? 201 : put.text).toBe(201);
    expect(put.json()).toMatchObject({ filed: { parts: 1, results: 1, failed: 0 } });

    const observations = await search<Observation>(`Observation?subject=${dubois}`);
    // Version 2 holds every result mapped by then; version 1's facts are replaced, not doubled.
    expect(loincs(observations)).toEqual(['2160-0', '2345-7', '4548-4']);
    const glucose = observations.find((o) => loincs([o])[0] === '2345-7');
    expect(glucose?.valueQuantity).toMatchObject({ value: 132, code: 'mg/dL' });
    const docs = await search<DocumentReference>(`DocumentReference?subject=${dubois}`);
    expect(docs.map((d) => d.status).sort()).toEqual(['current', 'superseded']);
    const current = docs.find((d) => d.status === 'current');
    expect(current?.relatesTo?.[0]).toMatchObject({ code: 'replaces' });

    const unmapped = await send(gw.baseUrl, 'GET', '/ingest/lab-codes/unmapped', { token });
    expect(unmapped.json<{ code: string }[]>().map((u) => u.code)).not.toContain('GLY');
  });

  it('files a part of a patient still in identity review again into the open review, not a second one', async () => {
    const openReviews = async (): Promise<{ id: string; source: string; traits: { birthFamily?: string } }[]> => {
      const res = await send(gw.baseUrl, 'GET', '/ingest/identity/reviews?status=open', { token });
      expect(res.status).toBe(200);
      return res.json<{ reviews: { id: string; source: string; traits: { birthFamily?: string } }[] }>().reviews;
    };
    const legrand = (await openReviews()).filter((r) => r.traits.birthFamily === 'LEGRAND-TEST');
    expect(legrand).toHaveLength(1);
    // LEGRAND-TEST's part (held for identity review since the first test) has K; mapping it files the part again.
    const put = await send(gw.baseUrl, 'PUT', '/ingest/lab-codes/750000001/K', {
      token,
      body: { loinc: '2823-3', display: 'Potassium [Moles/volume] in Serum or Plasma', unit: 'mmol/L' },
    });
    expect(put.status === 201 ? 201 : put.text).toBe(201);
    const after = (await openReviews()).filter((r) => r.traits.birthFamily === 'LEGRAND-TEST');
    expect(after.map((r) => r.id)).toEqual([legrand[0].id]);
    // Deciding the one review files the newest version: the potassium is there.
    const created = await send(gw.baseUrl, 'POST', `/ingest/identity/reviews/${legrand[0].id}/create`, { token });
    expect(created.status === 200 ? 200 : created.text).toBe(200);
    const [patient] = await search<Patient>('Patient?family=LEGRAND-TEST');
    expect(loincs(await search<Observation>(`Observation?subject=Patient/${patient.id}`))).toEqual(['2823-3']);
    const docs = await search<DocumentReference>(`DocumentReference?subject=Patient/${patient.id}`);
    expect(docs.map((d) => d.status)).toEqual(['current']);
  });

  it('answers 202 for a file of an unknown patient: held for identity review, no Patient created', async () => {
    const res = await post(CALANQUES, 'text/plain');
    expect(res.status).toBe(202);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(res.body.issue.map((i) => i.diagnostics).join(' ')).toMatch(/identity review queue/);
    expect(await search<Patient>('Patient?family=MOREAU-TEST')).toEqual([]);
    expect(await search<Patient>('Patient?family=DUBOIS-TEST')).toHaveLength(1);
    expect(gw.logs.join('')).not.toMatch(/DUBOIS|LEGRAND|MOREAU|261057505612350/);
  });

  it('refuses a text body that is not HPRIM (415), writing nothing', async () => {
    const res = await post(Buffer.from('Bonjour, voici les résultats.\n'), 'text/plain');
    expect(res.status).toBe(415);
  });
});
