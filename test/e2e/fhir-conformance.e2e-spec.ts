import type { Bundle, BundleEntry, OperationOutcome, Resource } from '@medplum/fhirtypes';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { nir } from '../support/hl7';

const INS_TEST = 'urn:oid:1.2.250.1.213.1.4.10';
const SNOMED = 'http://snomed.info/sct';
const LOINC = 'http://loinc.org';

/** urn:uuid fullUrls, as Synthea writes them. */
const uuid = (n: number): string => `urn:uuid:5a1f3c2e-7b1d-4e0a-9c3f-${String(n).padStart(12, '0')}`;

const post = (fullUrl: string, resource: Resource): BundleEntry => ({
  fullUrl,
  resource,
  request: { method: 'POST', url: resource.resourceType },
});

/** A transaction shaped like a Synthea patient bundle: a record spread over clinical and claim resources. */
function syntheaBundle(patientNir: string): Bundle {
  const [pat, org, prac, enc, cond, rep, plan, goal, claim, eob, imm] = Array.from({ length: 11 }, (_, i) =>
    uuid(i + 1),
  );
  const coding = (
    system: string,
    code: string,
    display: string,
  ): { coding: { system: string; code: string; display: string }[]; text: string } => ({
    coding: [{ system, code, display }],
    text: display,
  });
  const claimType = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/claim-type', code: 'professional' }] };
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      post(pat, {
        resourceType: 'Patient',
        identifier: [{ system: INS_TEST, value: patientNir }],
        name: [{ use: 'official', family: 'Lefèvre', given: ['Anne'] }],
        gender: 'female',
        birthDate: '1962-04-09',
      }),
      post(org, { resourceType: 'Organization', name: 'Cabinet du Parc', active: true }),
      post(prac, { resourceType: 'Practitioner', name: [{ family: 'Morel', given: ['Luc'] }] }),
      post(enc, {
        resourceType: 'Encounter',
        status: 'finished',
        class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
        type: [coding(SNOMED, '185345009', 'Encounter for symptom')],
        subject: { reference: pat },
        participant: [{ individual: { reference: prac } }],
        period: { start: '2024-02-01T09:00:00+01:00', end: '2024-02-01T09:30:00+01:00' },
        serviceProvider: { reference: org },
      }),
      post(cond, {
        resourceType: 'Condition',
        clinicalStatus: {
          coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }],
        },
        verificationStatus: {
          coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'confirmed' }],
        },
        code: coding(SNOMED, '44054006', 'Diabetes'),
        subject: { reference: pat },
        encounter: { reference: enc },
        onsetDateTime: '2024-02-01T09:00:00+01:00',
      }),
      post(rep, {
        resourceType: 'DiagnosticReport',
        status: 'final',
        code: coding(LOINC, '51990-0', 'Basic metabolic panel'),
        subject: { reference: pat },
        encounter: { reference: enc },
        effectiveDateTime: '2024-02-01T09:00:00+01:00',
        issued: '2024-02-01T09:00:00.000+01:00',
        presentedForm: [{ contentType: 'text/plain', data: 'R2x5Y8OpbWllIDogMS4yMCBnL0wK\nSGJBMWMgOiA3LjEgJQo=' }],
      }),
      post(plan, {
        resourceType: 'CarePlan',
        status: 'active',
        intent: 'order',
        category: [coding(SNOMED, '698360004', 'Diabetes self management plan')],
        subject: { reference: pat },
        encounter: { reference: enc },
        addresses: [{ reference: cond }],
        goal: [{ reference: goal }],
        period: { start: '2024-02-01T09:00:00+01:00' },
      }),
      post(goal, {
        resourceType: 'Goal',
        lifecycleStatus: 'active',
        description: { text: 'Hemoglobin A1c total in Blood < 7.0' },
        subject: { reference: pat },
        addresses: [{ reference: cond }],
      }),
      post(claim, {
        resourceType: 'Claim',
        status: 'active',
        type: claimType,
        use: 'claim',
        patient: { reference: pat },
        billablePeriod: { start: '2024-02-01T09:00:00+01:00', end: '2024-02-01T09:30:00+01:00' },
        created: '2024-02-01T09:30:00+01:00',
        provider: { reference: org },
        priority: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/processpriority', code: 'normal' }] },
        insurance: [{ sequence: 1, focal: true, coverage: { display: 'Assurance Maladie' } }],
        item: [
          {
            sequence: 1,
            productOrService: coding(SNOMED, '185345009', 'Encounter for symptom'),
            encounter: [{ reference: enc }],
            net: { value: 25.0, currency: 'EUR' },
          },
        ],
        total: { value: 25.0, currency: 'EUR' },
      }),
      post(eob, {
        resourceType: 'ExplanationOfBenefit',
        status: 'active',
        type: claimType,
        use: 'claim',
        patient: { reference: pat },
        created: '2024-02-01T09:30:00+01:00',
        insurer: { display: 'Assurance Maladie' },
        provider: { reference: prac },
        claim: { reference: claim },
        outcome: 'complete',
        insurance: [{ focal: true, coverage: { display: 'Assurance Maladie' } }],
        total: [
          {
            category: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/adjudication', code: 'submitted' }] },
            amount: { value: 25.0, currency: 'EUR' },
          },
        ],
      }),
      post(imm, {
        resourceType: 'Immunization',
        status: 'completed',
        vaccineCode: {
          coding: [
            {
              system: 'http://hl7.org/fhir/sid/cvx',
              code: '140',
              display: 'Influenza, seasonal, injectable, preservative free',
            },
          ],
        },
        patient: { reference: pat },
        encounter: { reference: enc },
        occurrenceDateTime: '2024-02-01T09:15:00+01:00',
        primarySource: true,
      }),
    ],
  };
}

describe('conformance: real-world shapes of FHIR R4 data', () => {
  let gw: TestGateway;
  let token: string;

  beforeAll(async () => {
    gw = await startTestGateway();
    token = await gw.token();
  });
  afterAll(async () => gw.close());

  /** Sends `body` as text, exactly as given (decimals written by hand survive only that way). */
  async function call(
    method: string,
    path: string,
    body?: string,
  ): Promise<{ status: number; text: string; json: Record<string, unknown> }> {
    const res = await fetch(`${gw.fhirUrl}/${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined ? { 'content-type': 'application/fhir+json' } : {}),
      },
      body,
    });
    const text = await res.text();
    return { status: res.status, text, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  }

  const expressions = (o: OperationOutcome): string[] => (o.issue ?? []).flatMap((i) => i.expression ?? []);

  it('takes a Synthea-shaped transaction whole: every entry created, urn:uuid references rewritten, each pointing at the patient', async () => {
    const res = await call('POST', '', JSON.stringify(syntheaBundle(nir('2', '62', '04', '75', '111', '023'))));
    expect(res.status).toBe(200);
    const entries = (res.json as unknown as Bundle).entry ?? [];
    expect(entries.map((e) => e.response?.status)).toEqual(Array(11).fill('201 Created'));
    const refs = entries.map((e) => /([A-Za-z]+\/[^/]+)\/_history\/1$/.exec(e.response?.location ?? '')?.[1] as string);
    const patientRef = refs[0];
    for (const [i, type] of [
      'DiagnosticReport',
      'CarePlan',
      'Goal',
      'Claim',
      'ExplanationOfBenefit',
      'Immunization',
      'Condition',
      'Encounter',
    ].entries()) {
      expect(refs).toContainEqual(expect.stringMatching(new RegExp(`^${type}/`)));
      const read = await call('GET', refs.find((r) => r.startsWith(`${type}/`)) as string);
      expect({
        i,
        type,
        status: read.status,
        patient: read.text.includes(`"reference":"${patientRef}"`),
        urn: read.text.includes('urn:uuid'),
      }).toEqual({ i, type, status: 200, patient: true, urn: false });
    }
    // Searchable with their R4 parameters.
    const claims = await call('GET', `Claim?patient=${patientRef}`);
    expect(((claims.json as unknown as Bundle).entry ?? []).length).toBe(1);
    const plans = await call('GET', `CarePlan?subject=${patientRef}&status=active`);
    expect(((plans.json as unknown as Bundle).entry ?? []).length).toBe(1);
    const eobs = await call('GET', `ExplanationOfBenefit?patient=${patientRef}`);
    expect(((eobs.json as unknown as Bundle).entry ?? []).length).toBe(1);
  });

  it('accepts base64Binary content wrapped over several lines (legal in R4) and serves it as sent', async () => {
    const data = 'SGVsbG8gZnJvbSBhIE1JTUUtd3JhcHBlZCBk\r\nb2N1bWVudCBib2R5Lg==';
    const body = {
      resourceType: 'DocumentReference',
      status: 'current',
      content: [{ attachment: { contentType: 'text/plain', data } }],
    };
    const res = await call('POST', 'DocumentReference', JSON.stringify(body));
    expect(res.status).toBe(201);
    const read = await call('GET', `DocumentReference/${String(res.json.id)}`);
    expect((read.json as { content: { attachment: { data: string } }[] }).content[0].attachment.data).toBe(data);
    const broken = await call(
      'POST',
      'DocumentReference',
      JSON.stringify({ ...body, content: [{ attachment: { data: 'SGVs\nbG8*' } }] }),
    );
    expect(broken.status).toBe(400);
    expect(expressions(broken.json as unknown as OperationOutcome)).toContain(
      'DocumentReference.content[0].attachment.data',
    );
  });

  describe('decimal precision (R4: the precision of a decimal is significant)', () => {
    const observation = (values: string[]): string =>
      `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"${LOINC}","code":"2345-7"}]},"valueQuantity":{"value":${values[0]},"unit":"g/L","system":"http://unitsofmeasure.org","code":"g/L"},` +
      `"referenceRange":[{"low":{"value":${values[1]},"unit":"g/L"},"high":{"value":${values[2]},"unit":"g/L"}}]}`;

    it('serves 1.00, 0.10 and 1e2 back exactly as written: read, vread, search, transaction', async () => {
      const created = await call('POST', 'Observation', observation(['1.00', '0.10', '1e2']));
      expect(created.status).toBe(201);
      const id = String(created.json.id);
      for (const text of [
        created.text,
        (await call('GET', `Observation/${id}`)).text,
        (await call('GET', `Observation/${id}/_history/1`)).text,
      ]) {
        expect(text).toContain('"valueQuantity":{"value":1.00,');
        expect(text).toContain('"low":{"value":0.10,');
        expect(text).toContain('"high":{"value":1e2,');
      }
      const summary = await call('GET', `Observation/${id}?_elements=value`);
      expect(summary.text).toContain('"value":1.00');
      const tx = await call(
        'POST',
        '',
        `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":${observation(['2.50', '0.0', '3.000'])},"request":{"method":"POST","url":"Observation"}}]}`,
      );
      expect(tx.status).toBe(200);
      const txRef = /Observation\/[^/]+/.exec(
        String((tx.json as unknown as Bundle).entry?.[0].response?.location),
      )?.[0] as string;
      expect((await call('GET', txRef)).text).toContain('"valueQuantity":{"value":2.50,');
    });

    it('searches decimals by value, whatever their precision', async () => {
      const created = await call('POST', 'Observation', observation(['7.250', '0.10', '9']));
      const id = String(created.json.id);
      for (const q of [
        'value-quantity=7.25',
        'value-quantity=7.250',
        'value-quantity=gt7.2',
        'value-quantity=7.25|http://unitsofmeasure.org|g/L',
      ]) {
        const found = await call('GET', `Observation?${q}&_id=${id}`);
        expect({ q, n: ((found.json as unknown as Bundle).entry ?? []).length }).toEqual({ q, n: 1 });
        expect(found.text).toContain('"value":7.250');
      }
      expect(
        ((await call('GET', `Observation?value-quantity=8&_id=${id}`)).json as unknown as Bundle).entry ?? [],
      ).toHaveLength(0);
    });

    it('a change of precision only (1.0 → 1.00) is a new version; the same text again is not', async () => {
      const created = await call('POST', 'Observation', observation(['1.0', '0.1', '2']));
      const id = String(created.json.id);
      const withId = (values: string[]): string =>
        observation(values).replace('{"resourceType":"Observation",', `{"resourceType":"Observation","id":"${id}",`);
      const changed = await call('PUT', `Observation/${id}`, withId(['1.00', '0.1', '2']));
      expect((changed.json.meta as { versionId: string }).versionId).toBe('2');
      expect(changed.text).toContain('"value":1.00,');
      const same = await call('PUT', `Observation/${id}`, withId(['1.00', '0.1', '2']));
      expect((same.json.meta as { versionId: string }).versionId).toBe('2');
    });
  });

  describe('conditional references (R4 http.html#trules), resolved at write time', () => {
    const patientBody = (value: string, family: string): string =>
      JSON.stringify({
        resourceType: 'Patient',
        identifier: [{ system: INS_TEST, value }],
        name: [{ family, given: ['Paul'] }],
        gender: 'male',
        birthDate: '1971-05-02',
      });
    const encounterBody = (subject: string): Record<string, unknown> => ({
      resourceType: 'Encounter',
      status: 'finished',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
      subject: { reference: subject },
    });
    const storedCount = async (type: string): Promise<number> =>
      Number(
        (
          await gw.core.db.pool.query<{ n: string }>(
            'SELECT count(*) AS n FROM resource_history WHERE resource_type = $1',
            [type],
          )
        ).rows[0].n,
      );

    it('a create with Patient?identifier=… stores the one match as Patient/id, never the query', async () => {
      const value = nir('1', '71', '05', '69', '123', '045');
      const pat = await call('POST', 'Patient', patientBody(value, 'Conditionnel'));
      expect(pat.status).toBe(201);
      const created = await call(
        'POST',
        'Encounter',
        JSON.stringify(encounterBody(`Patient?identifier=${INS_TEST}|${value}`)),
      );
      expect(created.status).toBe(201);
      expect((created.json.subject as { reference: string }).reference).toBe(`Patient/${String(pat.json.id)}`);
      const found = await call('GET', `Encounter?subject=Patient/${String(pat.json.id)}`);
      expect(((found.json as unknown as Bundle).entry ?? []).map((e) => e.resource?.id)).toEqual([created.json.id]);
    });

    it('no match → 400 and several → 412, naming the element, writing nothing', async () => {
      for (const v of [nir('1', '70', '01', '13', '055', '101'), nir('1', '70', '01', '13', '055', '102')]) {
        expect((await call('POST', 'Patient', patientBody(v, 'Homonyme'))).status).toBe(201);
      }
      const before = await storedCount('Encounter');
      const none = await call(
        'POST',
        'Encounter',
        JSON.stringify(encounterBody(`Patient?identifier=${INS_TEST}|${nir('1', '70', '01', '13', '055', '999')}`)),
      );
      expect(none.status).toBe(400);
      expect(expressions(none.json as unknown as OperationOutcome)).toEqual(['Encounter.subject']);
      const several = await call('POST', 'Encounter', JSON.stringify(encounterBody('Patient?family=Homonyme')));
      expect(several.status).toBe(412);
      expect((several.json as unknown as OperationOutcome).issue?.[0].code).toBe('multiple-matches');
      expect(expressions(several.json as unknown as OperationOutcome)).toEqual(['Encounter.subject']);
      const update = await call(
        'PUT',
        'Encounter/cond-ref-1',
        JSON.stringify({ ...encounterBody('Patient?family=Personne'), id: 'cond-ref-1' }),
      );
      expect(update.status).toBe(400);
      expect(await storedCount('Encounter')).toBe(before);
    });

    it('in a transaction, resolves against the entries written with it; a failing one names its entry and writes nothing', async () => {
      const value = nir('2', '80', '12', '33', '063', '007');
      const tx = (subject: string): string =>
        JSON.stringify({
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [
            { request: { method: 'POST', url: 'Encounter' }, resource: encounterBody(subject) },
            {
              request: { method: 'POST', url: 'Patient' },
              resource: JSON.parse(patientBody(value, 'Transaction')) as Resource,
            },
          ],
        });
      const before = { patients: await storedCount('Patient'), encounters: await storedCount('Encounter') };
      const failed = await call('POST', '', tx('Patient?family=Transaction&birthdate=1900-01-01'));
      expect(failed.status).toBe(400);
      expect(expressions(failed.json as unknown as OperationOutcome)).toEqual(['Bundle.entry[0].resource.subject']);
      expect({ patients: await storedCount('Patient'), encounters: await storedCount('Encounter') }).toEqual(before);

      const ok = await call('POST', '', tx(`Patient?identifier=${INS_TEST}|${value}`));
      expect(ok.status).toBe(200);
      const [encLocation, patLocation] = ((ok.json as unknown as Bundle).entry ?? []).map(
        (e) => e.response?.location ?? '',
      );
      const patRef = /Patient\/[^/]+/.exec(patLocation)?.[0];
      const enc = await call('GET', /Encounter\/[^/]+/.exec(encLocation)?.[0] as string);
      expect((enc.json.subject as { reference: string }).reference).toBe(patRef);
    });
  });
});
