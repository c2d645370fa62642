import type { OperationOutcome, Patient, Practitioner } from '@medplum/fhirtypes';
import { insPatient } from '../support/fixtures';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';

const GW_PATIENT = 'https://gateway.fr-primary-care.org/fhir/StructureDefinition/gw-patient';
const GW_PRACTITIONER = 'https://gateway.fr-primary-care.org/fhir/StructureDefinition/gw-practitioner';
const RELIABILITY = 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability';
const BODY_LIMIT = 65536;

function patient(nir = '280027511204588'): Patient {
  return insPatient(nir);
}

/** A patient shaped like FR Core's INS patient: qualified identity, INS-NIR, birth place. */
function frCorePatient(nir: string): Patient {
  return {
    ...patient(nir),
    meta: { profile: [GW_PATIENT] },
    extension: [
      {
        url: RELIABILITY,
        extension: [
          {
            url: 'identityStatus',
            valueCoding: {
              system: 'https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-identity-status',
              code: 'QUAL',
            },
          },
        ],
      },
      {
        url: 'http://hl7.org/fhir/StructureDefinition/patient-birthPlace',
        valueAddress: {
          extension: [
            {
              url: 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code',
              valueCoding: { code: '75112' },
            },
          ],
          city: 'Paris',
        },
      },
    ],
  };
}

interface Reply {
  status: number;
  contentType: string;
  body: OperationOutcome;
}

describe('errors: every failure is a clear OperationOutcome and writes nothing', () => {
  let gw: TestGateway;
  let token: string;

  beforeAll(async () => {
    gw = await startTestGateway({ GW_MAX_BODY_BYTES: String(BODY_LIMIT) });
    token = await gw.token();
  });
  afterAll(async () => gw.close());

  async function call(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<Reply> {
    const res = await fetch(`${gw.fhirUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json', ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    return {
      status: res.status,
      contentType: res.headers.get('content-type') ?? '',
      body: text ? JSON.parse(text) : {},
    };
  }

  /** Row counts of the store and of its index: a failed request must leave them as they were. */
  async function counts(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const table of ['resource', 'resource_history', 'sp_token', 'sp_string', 'sp_date', 'sp_reference']) {
      out[table] = Number((await gw.core.db.pool.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n);
    }
    return out;
  }

  /** Runs a failing request and checks status, FHIR content type, OperationOutcome shape and no writes. */
  async function expectFailure(status: number, run: () => Promise<Reply>): Promise<OperationOutcome> {
    const before = await counts();
    const reply = await run();
    expect({ status: reply.status, resourceType: reply.body.resourceType }).toEqual({
      status,
      resourceType: 'OperationOutcome',
    });
    expect(reply.contentType).toMatch(/^application\/fhir\+json/);
    const issues = reply.body.issue ?? [];
    expect(issues.length).toBeGreaterThan(0);
    for (const issue of issues) {
      expect(issue.severity).toMatch(/error|fatal/);
      expect(issue.details?.text ?? issue.diagnostics).toBeTruthy();
    }
    expect(await counts()).toEqual(before);
    return reply.body;
  }

  const expressions = (o: OperationOutcome): string[] => (o.issue ?? []).flatMap((i) => i.expression ?? []);
  const texts = (o: OperationOutcome): string => (o.issue ?? []).map((i) => i.details?.text ?? '').join(' | ');

  it('malformed JSON → 400 structure', async () => {
    const o = await expectFailure(400, () => call('POST', '/Patient', '{"resourceType": "Patient", "name": [}'));
    expect(o.issue?.[0].code).toBe('structure');
    expect(texts(o)).toMatch(/Malformed JSON/);
  });

  it('malformed JSON inside a transaction Bundle → 400', async () => {
    await expectFailure(400, () => call('POST', '', '{"resourceType":"Bundle","type":"transaction","entry":[{'));
  });

  it('unknown resource type /fhir/Foo → 404 not-found', async () => {
    const read = await expectFailure(404, () => call('GET', '/Foo'));
    expect(read.issue?.[0].code).toBe('not-found');
    expect(texts(read)).toMatch(/Unknown resource type "Foo"/);
    await expectFailure(404, () => call('POST', '/Foo', { resourceType: 'Foo' }));
    await expectFailure(404, () => call('GET', '/Foo/1'));
  });

  it('an R4 type with no RESTful endpoint (/fhir/Parameters) → 404 not-supported', async () => {
    const o = await expectFailure(404, () => call('POST', '/Parameters', { resourceType: 'Parameters' }));
    expect(o.issue?.[0].code).toBe('not-supported');
    expect(texts(o)).toMatch(/Parameters is not served/);
    expect((await expectFailure(404, () => call('GET', '/Parameters?_id=x'))).issue?.[0].code).toBe('not-supported');
  });

  it('body resourceType differs from the URL type → 400', async () => {
    const o = await expectFailure(400, () =>
      call('POST', '/Patient', { resourceType: 'Practitioner', name: [{ family: 'X' }] }),
    );
    expect(texts(o)).toMatch(/"Practitioner" in the body does not match "Patient"/);
    expect(expressions(o)).toEqual(['resourceType']);
  });

  it('a body that is not a JSON object → 400', async () => {
    await expectFailure(400, () => call('POST', '/Patient', '[1, 2]'));
    await expectFailure(400, () => call('POST', '/Patient', '"Patient"'));
    await expectFailure(400, () => call('POST', '/Patient'));
  });

  it('PUT whose body id differs from the URL id → 400 at Patient.id', async () => {
    const o = await expectFailure(400, () => call('PUT', '/Patient/abc', { ...patient(), id: 'xyz' }));
    expect(expressions(o)).toEqual(['Patient.id']);
    expect(texts(o)).toMatch(/"xyz" does not match the URL id "abc"/);
  });

  it('PUT without an id in the body → 400 at Patient.id', async () => {
    const o = await expectFailure(400, () => call('PUT', '/Patient/abc', patient()));
    expect(expressions(o)).toEqual(['Patient.id']);
  });

  it('a body over GW_MAX_BODY_BYTES → 413', async () => {
    const big = {
      ...patient(),
      text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml">${'x'.repeat(BODY_LIMIT)}</div>` },
    };
    const o = await expectFailure(413, () => call('POST', '/Patient', big));
    expect(o.issue?.[0].code).toBe('too-costly');
    expect(texts(o)).toMatch(/larger than the limit/);
  });

  it('an unsupported Content-Type (FHIR XML) → 415', async () => {
    const xml = '<Patient xmlns="http://hl7.org/fhir"><gender value="female"/></Patient>';
    const o = await expectFailure(415, () => call('POST', '/Patient', xml, { 'content-type': 'application/fhir+xml' }));
    expect(o.issue?.[0].code).toBe('not-supported');
    expect(texts(o)).toMatch(/application\/fhir\+json/);
  });

  it('no bearer token → 401 OperationOutcome with WWW-Authenticate', async () => {
    const res = await fetch(`${gw.fhirUrl}/Patient`, {
      method: 'POST',
      headers: { 'content-type': 'application/fhir+json' },
      body: JSON.stringify(patient()),
    });
    expect(res.status).toBe(401);
    expect(res.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(((await res.json()) as OperationOutcome).issue?.[0].code).toBe('login');
  });

  it('an impossible birthDate → 400 at Patient.birthDate', async () => {
    const o = await expectFailure(400, () => call('POST', '/Patient', { ...patient(), birthDate: '1980-13-45' }));
    expect(expressions(o)).toEqual(['Patient.birthDate']);
  });

  it('a calendar-impossible date that matches the format (1980-02-30) → 400 at Patient.birthDate', async () => {
    const o = await expectFailure(400, () => call('POST', '/Patient', { ...patient(), birthDate: '1980-02-30' }));
    expect(expressions(o)).toEqual(['Patient.birthDate']);
    expect((await call('POST', '/Patient', { ...patient('290027511252291'), birthDate: '1980-02-29' })).status).toBe(
      201,
    );
  });

  it('a code outside its required value set (gender "femme") → 400 at Patient.gender', async () => {
    const o = await expectFailure(400, () => call('POST', '/Patient', { ...patient(), gender: 'femme' }));
    expect(expressions(o)).toEqual(['Patient.gender']);
    expect(o.issue?.[0].code).toBe('code-invalid');
    expect(texts(o)).toMatch(/male, female, other, unknown/);
    const nested = await expectFailure(400, () =>
      call('POST', '/Patient', { ...patient(), telecom: [{ system: 'phone', value: '0102030405', use: 'maison' }] }),
    );
    expect(expressions(nested)).toEqual(['Patient.telecom[0].use']);
  });

  it('an id that is not a FHIR id → 400 at Patient.id', async () => {
    const o = await expectFailure(400, () => call('PUT', '/Patient/a_b%20c', { ...patient(), id: 'a_b c' }));
    expect(expressions(o)).toEqual(['Patient.id']);
    const long = 'x'.repeat(65);
    await expectFailure(400, () => call('PUT', `/Patient/${long}`, { ...patient(), id: long }));
  });

  it('an unknown property → 400 naming it', async () => {
    const o = await expectFailure(400, () => call('POST', '/Patient', { ...patient(), favouriteColour: 'blue' }));
    expect(expressions(o).join(' ')).toMatch(/favouriteColour/);
  });

  it('a bad INS on a Patient declaring gw-patient → 400 with the constraint; without meta.profile → 400 too (the INS rules apply to every Patient)', async () => {
    const bad = { ...frCorePatient('3800275112045'), meta: { profile: [GW_PATIENT] } };
    const o = await expectFailure(400, () => call('POST', '/Patient', bad));
    expect(texts(o)).toMatch(/gw-pat-10/);
    expect(expressions(o).join(' ')).toMatch(/^Patient\.identifier\[0\]/);
    const plain = await expectFailure(400, () => call('POST', '/Patient', { ...patient('3800275112045') }));
    expect(expressions(plain)).toEqual(['Patient.identifier[0]']);
    expect(texts(plain)).toMatch(/INS-NIR must be 15 characters/);
  });

  it('a valid FR Core-like INS patient declaring gw-patient is accepted', async () => {
    const res = await call('POST', '/Patient', frCorePatient('280022A11254137'));
    expect(res.status).toBe(201);
    expect((res.body as unknown as Patient).meta?.profile).toEqual([GW_PATIENT]);
  });

  it('a Practitioner declaring gw-practitioner without RPPS → 400 gw-prac-1', async () => {
    const prac: Practitioner = {
      resourceType: 'Practitioner',
      meta: { profile: [GW_PRACTITIONER] },
      identifier: [{ system: 'https://example.org/local-staff', value: 'A12' }],
      name: [{ family: 'Durand', given: ['Paul'] }],
    };
    const o = await expectFailure(400, () => call('POST', '/Practitioner', prac));
    expect(texts(o)).toMatch(/gw-prac-1/);
    const withRpps = { ...prac, identifier: [{ system: 'https://rpps.esante.gouv.fr', value: '10101010101' }] };
    expect((await call('POST', '/Practitioner', withRpps)).status).toBe(201);
  });

  it('read of a missing id → 404, of a deleted one → 410', async () => {
    await expectFailure(404, () => call('GET', '/Patient/does-not-exist'));
    const created = await call('POST', '/Patient', patient('190027511259964'));
    const id = (created.body as unknown as Patient).id as string;
    expect((await call('DELETE', `/Patient/${id}`)).status).toBe(204);
    const gone = await expectFailure(410, () => call('GET', `/Patient/${id}`));
    expect(gone.issue?.[0].code).toBe('deleted');
  });

  it('If-Match: garbage → 400 and the resource keeps its version', async () => {
    const created = await call('POST', '/Patient', patient('170027511251165'));
    const id = (created.body as unknown as Patient).id as string;
    const o = await expectFailure(400, () =>
      call('PUT', `/Patient/${id}`, { ...patient('170027511251165'), id, gender: 'male' }, { 'if-match': 'garbage' }),
    );
    expect(texts(o)).toMatch(/If-Match/);
    const read = await call('GET', `/Patient/${id}`);
    expect((read.body as unknown as Patient).meta?.versionId).toBe('1');
  });

  it('a route that does not exist → 404 OperationOutcome', async () => {
    const res = await fetch(`${gw.baseUrl}/no/such/route`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
    expect(((await res.json()) as OperationOutcome).issue?.[0].code).toBe('not-found');
    const deep = await expectFailure(404, () => call('GET', '/Patient/1/_history/1/extra/segments'));
    expect(deep.resourceType).toBe('OperationOutcome');
  });

  it('a 500 reveals nothing but the request id', async () => {
    const pool = gw.core.db.pool;
    await pool.query('ALTER TABLE sp_token RENAME TO sp_token_hidden');
    try {
      const res = await fetch(`${gw.fhirUrl}/Patient`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/fhir+json',
          'x-request-id': 'leak-check-1',
        },
        body: JSON.stringify(patient('160027511257704')),
      });
      expect(res.status).toBe(500);
      expect(res.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
      const text = await res.text();
      expect(JSON.parse(text).issue[0].code).toBe('exception');
      expect(text).toContain('leak-check-1');
      expect(text).not.toMatch(/sp_token|relation|SELECT|INSERT|at .*\.ts|node_modules/);
    } finally {
      await pool.query('ALTER TABLE sp_token_hidden RENAME TO sp_token');
    }
  });
});
