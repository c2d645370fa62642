import { Client } from 'fhir-kit-client';
import type {
  Bundle,
  BundleEntry,
  Encounter,
  OperationOutcome,
  Organization,
  Patient,
  Practitioner,
  Resource,
} from '@medplum/fhirtypes';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { nir } from '../support/hl7';

const INS_TEST = 'urn:oid:1.2.250.1.213.1.4.10';
const RPPS = 'https://rpps.esante.gouv.fr';
const FINESS = 'https://finess.esante.gouv.fr';

function patient(nir: string, extra: Partial<Patient> = {}): Patient {
  return {
    resourceType: 'Patient',
    identifier: [{ system: INS_TEST, value: nir }],
    name: [{ use: 'official', family: 'Bernard', given: ['Louise'] }],
    gender: 'female',
    birthDate: '1975-06-12',
    ...extra,
  };
}

function practitioner(rpps: string): Practitioner {
  return {
    resourceType: 'Practitioner',
    identifier: [{ system: RPPS, value: rpps }],
    name: [{ family: 'Durand', given: ['Paul'] }],
  };
}

function organization(finess: string): Organization {
  return { resourceType: 'Organization', identifier: [{ system: FINESS, value: finess }], name: 'MSP des Tilleuls' };
}

function encounter(subject: string, extra: Partial<Encounter> = {}): Encounter {
  return {
    resourceType: 'Encounter',
    status: 'finished',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
    subject: { reference: subject },
    period: { start: '2024-03-04T09:00:00+01:00', end: '2024-03-04T09:20:00+01:00' },
    ...extra,
  };
}

const post = (fullUrl: string, resource: Resource, ifNoneExist?: string): BundleEntry => ({
  fullUrl,
  resource,
  request: { method: 'POST', url: resource.resourceType, ...(ifNoneExist ? { ifNoneExist } : {}) },
});

const bundle = (type: 'transaction' | 'batch', entry: BundleEntry[]): Bundle => ({
  resourceType: 'Bundle',
  type,
  entry,
});

/** `Type/id` from a response location such as `http://…/fhir/Patient/123/_history/1`. */
function refOf(location: string | undefined): string {
  const m = /([A-Za-z]+\/[A-Za-z0-9\-.]+)\/_history\/\d+$/.exec(location ?? '');
  if (!m) {
    throw new Error(`not a version location: ${location}`);
  }
  return m[1];
}

describe('batch and transaction Bundles', () => {
  let gw: TestGateway;
  let fhir: Client;
  let token: string;

  beforeAll(async () => {
    gw = await startTestGateway();
    token = await gw.token();
    fhir = new Client({ baseUrl: gw.fhirUrl, bearerToken: token });
  });
  afterAll(async () => gw.close());

  /** POST on the base; `body` and `outcome` are the same JSON, typed for a success or a failure. */
  async function send(
    body: unknown,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; contentType: string; body: Bundle; outcome: OperationOutcome }> {
    const res = await fetch(gw.fhirUrl, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json', ...headers },
      body: JSON.stringify(body),
    });
    const json = await res.json();
    return {
      status: res.status,
      contentType: res.headers.get('content-type') ?? '',
      body: json as Bundle,
      outcome: json as OperationOutcome,
    };
  }

  async function counts(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const table of ['resource', 'resource_history', 'sp_token', 'sp_string', 'sp_reference']) {
      out[table] = Number((await gw.core.db.pool.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n);
    }
    return out;
  }

  async function create<T extends Resource>(resource: T): Promise<T> {
    return (await fhir.create({ resourceType: resource.resourceType, body: resource as never })) as unknown as T;
  }

  async function search(resourceType: string, searchParams: Record<string, string>): Promise<Bundle> {
    return (await fhir.search({ resourceType, searchParams })) as unknown as Bundle;
  }

  async function read<T extends Resource>(ref: string): Promise<T> {
    const [resourceType, id] = ref.split('/');
    return (await fhir.read({ resourceType, id })) as unknown as T;
  }

  const expressions = (o: OperationOutcome): string[] => (o.issue ?? []).flatMap((i) => i.expression ?? []);

  it('creates Organization, Practitioner, Patient and Encounter linked by urn:uuid, rewriting every reference', async () => {
    const [org, prac, pat] = [
      'urn:uuid:0d1b7c0e-1f0a-4c51-9a61-6f7f0c1e0a01',
      'urn:uuid:0d1b7c0e-1f0a-4c51-9a61-6f7f0c1e0a02',
      'urn:uuid:0d1b7c0e-1f0a-4c51-9a61-6f7f0c1e0a03',
    ];
    const res = await send(
      bundle('transaction', [
        post(
          'urn:uuid:0d1b7c0e-1f0a-4c51-9a61-6f7f0c1e0a04',
          encounter(pat, { participant: [{ individual: { reference: prac } }], serviceProvider: { reference: org } }),
        ),
        post(
          pat,
          patient('275067511253306', {
            generalPractitioner: [{ reference: prac }],
            managingOrganization: { reference: org },
          }),
        ),
        post(prac, practitioner('10003456789')),
        post(org, organization('750012345')),
      ]),
    );
    expect(res.status).toBe(200);
    expect(res.contentType).toMatch(/^application\/fhir\+json/);
    expect(res.body.type).toBe('transaction-response');
    const entries = res.body.entry ?? [];
    expect(entries.map((e) => e.response?.status)).toEqual([
      '201 Created',
      '201 Created',
      '201 Created',
      '201 Created',
    ]);
    const [encRef, patRef, pracRef, orgRef] = entries.map((e) => refOf(e.response?.location));
    expect([encRef, patRef, pracRef, orgRef].map((r) => r.split('/')[0])).toEqual([
      'Encounter',
      'Patient',
      'Practitioner',
      'Organization',
    ]);
    expect(entries.every((e) => e.response?.etag === 'W/"1"' && e.response.lastModified)).toBe(true);

    const storedPatient = await read<Patient>(patRef);
    expect(storedPatient.generalPractitioner?.[0].reference).toBe(pracRef);
    expect(storedPatient.managingOrganization?.reference).toBe(orgRef);
    const storedEncounter = await read<Encounter>(encRef);
    expect(storedEncounter.subject?.reference).toBe(patRef);
    expect(storedEncounter.participant?.[0].individual?.reference).toBe(pracRef);
    expect(storedEncounter.serviceProvider?.reference).toBe(orgRef);
    expect((await read<Organization>(orgRef)).name).toBe('MSP des Tilleuls');

    // The search index holds the rewritten references too.
    const bySubject = await search('Encounter', { subject: patRef });
    expect(bySubject.entry?.map((e) => `Encounter/${e.resource?.id}`)).toEqual([encRef]);
    const byGp = await search('Patient', { 'general-practitioner': pracRef });
    expect(byGp.entry?.map((e) => `Patient/${e.resource?.id}`)).toEqual([patRef]);
  });

  it('rejects a transaction whose 4th entry is invalid with 400 at Bundle.entry[3] and writes nothing', async () => {
    const before = await counts();
    const res = await send(
      bundle('transaction', [
        post('urn:uuid:1a000000-0000-4000-8000-000000000001', organization('750098765')),
        post('urn:uuid:1a000000-0000-4000-8000-000000000002', practitioner('10009876543')),
        post('urn:uuid:1a000000-0000-4000-8000-000000000003', patient('175067511251178')),
        post('urn:uuid:1a000000-0000-4000-8000-000000000004', patient('275067511259937', { birthDate: '1975-13-45' })),
      ]),
    );
    expect(res.status).toBe(400);
    expect(res.contentType).toMatch(/^application\/fhir\+json/);
    expect(res.outcome.resourceType).toBe('OperationOutcome');
    expect(expressions(res.outcome).length).toBeGreaterThan(0);
    expect(expressions(res.outcome).every((e) => e.startsWith('Bundle.entry[3]'))).toBe(true);
    expect(expressions(res.outcome)).toContain('Bundle.entry[3].resource.birthDate');
    expect(res.outcome.issue?.[0].details?.text).toMatch(/^Bundle\.entry\[3\]: /);
    expect(await counts()).toEqual(before);
  });

  it('rolls back creates already written when a later-processed PUT fails', async () => {
    const before = await counts();
    const res = await send(
      bundle('transaction', [
        {
          resource: { ...patient('175067511252267'), id: 'other' },
          request: { method: 'PUT', url: 'Patient/some-id' },
        },
        post('urn:uuid:1b000000-0000-4000-8000-000000000001', organization('750011111')),
        post('urn:uuid:1b000000-0000-4000-8000-000000000002', practitioner('10001111111')),
      ]),
    );
    expect(res.status).toBe(400);
    expect(expressions(res.outcome)).toEqual(['Bundle.entry[0].resource.id']);
    expect(await counts()).toEqual(before);
  });

  it('rejects an entry without request.method/url with an expression naming it', async () => {
    const before = await counts();
    const res = await send(
      bundle('transaction', [
        post('urn:uuid:1c000000-0000-4000-8000-000000000001', organization('750022222')),
        { resource: patient('175067511254445') },
      ]),
    );
    expect(res.status).toBe(400);
    expect(expressions(res.outcome)).toEqual(['Bundle.entry[1].request']);
    expect(await counts()).toEqual(before);
  });

  it('names the entry of a resourceType mismatch or a bad search, and refuses two writes of one resource', async () => {
    const before = await counts();
    const mismatch = await send(
      bundle('transaction', [{ resource: organization('750066666'), request: { method: 'POST', url: 'Patient' } }]),
    );
    expect(mismatch.status).toBe(400);
    expect(expressions(mismatch.outcome)).toEqual(['Bundle.entry[0].resource.resourceType']);
    const badSearch = await send(
      bundle('transaction', [{ request: { method: 'GET', url: 'Patient?birthdate=yesterday' } }]),
    );
    expect(badSearch.status).toBe(400);
    expect(expressions(badSearch.outcome)).toEqual(['Bundle.entry[0].request.url']);
    expect(badSearch.outcome.issue?.[0].details?.text).toMatch(/birthdate/);
    const twice = await send(
      bundle('transaction', [
        { resource: { ...patient('175067511257712'), id: 'twice' }, request: { method: 'PUT', url: 'Patient/twice' } },
        { request: { method: 'DELETE', url: 'Patient/twice' } },
      ]),
    );
    expect(twice.status).toBe(400);
    expect(expressions(twice.outcome)).toEqual(['Bundle.entry[1].request.url']);
    expect(await counts()).toEqual(before);
  });

  it('ifNoneExist reuses the existing resource and references point at it', async () => {
    const existing = await create<Practitioner>(practitioner('10002222222'));
    const pracUrn = 'urn:uuid:2a000000-0000-4000-8000-000000000001';
    const orgUrn = 'urn:uuid:2a000000-0000-4000-8000-000000000002';
    const res = await send(
      bundle('transaction', [
        post(pracUrn, practitioner('10002222222'), `identifier=${RPPS}|10002222222`),
        post(orgUrn, organization('750033333'), `identifier=${FINESS}|750033333`),
        post(
          'urn:uuid:2a000000-0000-4000-8000-000000000003',
          patient('175067511255534', {
            generalPractitioner: [{ reference: pracUrn }],
            managingOrganization: { reference: orgUrn },
          }),
        ),
      ]),
    );
    expect(res.status).toBe(200);
    const entries = res.body.entry ?? [];
    expect(entries.map((e) => e.response?.status)).toEqual(['200 OK', '201 Created', '201 Created']);
    expect(refOf(entries[0].response?.location)).toBe(`Practitioner/${existing.id}`);
    const stored = await read<Patient>(refOf(entries[2].response?.location));
    expect(stored.generalPractitioner?.[0].reference).toBe(`Practitioner/${existing.id}`);
    expect(stored.managingOrganization?.reference).toBe(refOf(entries[1].response?.location));
    const found = await search('Practitioner', { identifier: `${RPPS}|10002222222`, _total: 'accurate' });
    expect(found.total).toBe(1);
  });

  it('two entries with the same ifNoneExist in one transaction create one resource', async () => {
    const urns = ['urn:uuid:2b000000-0000-4000-8000-000000000001', 'urn:uuid:2b000000-0000-4000-8000-000000000002'];
    const res = await send(
      bundle('transaction', [
        post(urns[0], practitioner('10003333333'), `identifier=${RPPS}|10003333333`),
        post(urns[1], practitioner('10003333333'), `identifier=${RPPS}|10003333333`),
        post(
          'urn:uuid:2b000000-0000-4000-8000-000000000003',
          patient('175067511256623', { generalPractitioner: [{ reference: urns[0] }, { reference: urns[1] }] }),
        ),
      ]),
    );
    expect(res.status).toBe(200);
    const entries = res.body.entry ?? [];
    expect(refOf(entries[0].response?.location)).toBe(refOf(entries[1].response?.location));
    const found = await search('Practitioner', { identifier: `${RPPS}|10003333333`, _total: 'accurate' });
    expect(found.total).toBe(1);
    const stored = await read<Patient>(refOf(entries[2].response?.location));
    expect(new Set(stored.generalPractitioner?.map((g) => g.reference))).toEqual(
      new Set([refOf(entries[0].response?.location)]),
    );
  });

  it('conditional PUT inside a transaction updates the match, or creates and can be referenced', async () => {
    const existing = await create<Patient>(patient('275067511257759'));
    const newUrn = 'urn:uuid:3a000000-0000-4000-8000-000000000001';
    const res = await send(
      bundle('transaction', [
        {
          resource: patient('275067511257759', { birthDate: '1975-06-13' }),
          request: { method: 'PUT', url: `Patient?identifier=${INS_TEST}|275067511257759` },
        },
        {
          fullUrl: newUrn,
          resource: patient('175067511258801'),
          request: { method: 'PUT', url: `Patient?identifier=${INS_TEST}|175067511258801` },
        },
        post('urn:uuid:3a000000-0000-4000-8000-000000000002', encounter(newUrn)),
      ]),
    );
    expect(res.status).toBe(200);
    const entries = res.body.entry ?? [];
    expect(entries.map((e) => e.response?.status)).toEqual(['200 OK', '201 Created', '201 Created']);
    expect(refOf(entries[0].response?.location)).toBe(`Patient/${existing.id}`);
    expect(entries[0].response?.etag).toBe('W/"2"');
    expect((await read<Patient>(`Patient/${existing.id}`)).birthDate).toBe('1975-06-13');
    const created = refOf(entries[1].response?.location);
    expect((await read<Encounter>(refOf(entries[2].response?.location))).subject?.reference).toBe(created);
  });

  it('processes DELETE before GET whatever the entry order, and returns what GET read', async () => {
    const a = await create<Patient>(patient('175067511259987'));
    const b = await create<Patient>(patient('275067511250039'));
    const res = await send(
      bundle('transaction', [
        { request: { method: 'GET', url: `Patient?identifier=${INS_TEST}|175067511259987` } },
        { request: { method: 'GET', url: `Patient/${b.id}` } },
        { request: { method: 'DELETE', url: `Patient/${a.id}` } },
      ]),
    );
    expect(res.status).toBe(200);
    const entries = res.body.entry ?? [];
    expect(entries.map((e) => e.response?.status)).toEqual(['200 OK', '200 OK', '204 No Content']);
    const search = entries[0].resource as Bundle;
    expect(search?.type).toBe('searchset');
    expect(search.entry ?? []).toHaveLength(0);
    expect((entries[1].resource as Patient)?.id).toBe(b.id);
    const gone = await fetch(`${gw.fhirUrl}/Patient/${a.id}`, { headers: { authorization: `Bearer ${token}` } });
    expect(gone.status).toBe(410);
  });

  it('a batch runs every entry on its own: one failure, the others succeed', async () => {
    const before = await counts();
    const res = await send(
      bundle('batch', [
        post('urn:uuid:4a000000-0000-4000-8000-000000000001', patient('175067511260086')),
        post(
          'urn:uuid:4a000000-0000-4000-8000-000000000002',
          patient('275067511261125', { gender: 'femme' as Patient['gender'] }),
        ),
        { request: { method: 'GET', url: 'Patient/does-not-exist' } },
        { resource: organization('750044444') },
        post('urn:uuid:4a000000-0000-4000-8000-000000000003', organization('750055555')),
      ]),
    );
    expect(res.status).toBe(200);
    expect(res.body.type).toBe('batch-response');
    const entries = res.body.entry ?? [];
    expect(entries.map((e) => e.response?.status)).toEqual([
      '201 Created',
      '400 Bad Request',
      '404 Not Found',
      '400 Bad Request',
      '201 Created',
    ]);
    const outcome = entries[1].response?.outcome as OperationOutcome;
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(expressions(outcome)).toEqual(['Patient.gender']);
    expect((entries[2].response?.outcome as OperationOutcome).issue?.[0].code).toBe('not-found');
    expect(expressions(entries[3].response?.outcome as OperationOutcome)).toEqual(['Bundle.entry[3].request']);
    expect(entries[0].response?.outcome).toBeUndefined();
    expect((await read<Patient>(refOf(entries[0].response?.location))).identifier?.[0].value).toBe('175067511260086');
    expect((await read<Organization>(refOf(entries[4].response?.location))).name).toBe('MSP des Tilleuls');
    const after = await counts();
    expect(after.resource - before.resource).toBe(2);
  });

  it('refuses a Bundle of type collection (and other non-batch shapes) with 400 and writes nothing', async () => {
    const before = await counts();
    const collection = await send({
      resourceType: 'Bundle',
      type: 'collection',
      entry: [{ resource: patient('175067511262264') }],
    });
    expect(collection.status).toBe(400);
    expect(collection.contentType).toMatch(/^application\/fhir\+json/);
    expect(expressions(collection.outcome)).toEqual(['Bundle.type']);
    const notArray = await send({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: { request: { method: 'POST', url: 'Patient' } },
    });
    expect(notArray.status).toBe(400);
    expect(expressions(notArray.outcome)).toEqual(['Bundle.entry']);
    const nullEntry = await send({ resourceType: 'Bundle', type: 'transaction', entry: [null] });
    expect(nullEntry.status).toBe(400);
    expect(expressions(nullEntry.outcome)).toEqual(['Bundle.entry[0]']);
    const postWithId = await send(
      bundle('transaction', [
        { resource: patient('175067511263353'), request: { method: 'POST', url: 'Patient/abc' } },
      ]),
    );
    expect(postWithId.status).toBe(400);
    expect(expressions(postWithId.outcome)).toEqual(['Bundle.entry[0].request.url']);
    const nested = await send(
      bundle('batch', [{ resource: bundle('batch', []), request: { method: 'POST', url: '/' } }]),
    );
    expect(nested.body.entry?.[0].response?.status).toBe('400 Bad Request');
    expect(await counts()).toEqual(before);
  });

  it('returns written resources when asked with Prefer: return=representation', async () => {
    const res = await send(
      bundle('transaction', [post('urn:uuid:5a000000-0000-4000-8000-000000000001', patient('275067511264489'))]),
      { prefer: 'return=representation' },
    );
    const created = res.body.entry?.[0].resource as Patient;
    expect(created.resourceType).toBe('Patient');
    expect(created.meta?.versionId).toBe('1');
  });

  it('handles a 100-entry transaction (50 patients, 50 encounters referencing them)', async () => {
    const before = await counts();
    const entries: BundleEntry[] = [];
    for (let i = 0; i < 50; i++) {
      const urn = `urn:uuid:6a000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
      entries.push(post(urn, patient(nir('1', '75', '06', '75', '112', String(i).padStart(3, '0')))));
      entries.push(post(`urn:uuid:6b000000-0000-4000-8000-${String(i).padStart(12, '0')}`, encounter(urn)));
    }
    const started = Date.now();
    const res = await send(bundle('transaction', entries));
    const ms = Date.now() - started;
    expect(res.status).toBe(200);
    const out = res.body.entry ?? [];
    expect(out).toHaveLength(100);
    expect(out.every((e) => e.response?.status === '201 Created')).toBe(true);
    const after = await counts();
    expect(after.resource - before.resource).toBe(100);
    const enc = await read<Encounter>(refOf(out[99].response?.location));
    expect(enc.subject?.reference).toBe(refOf(out[98].response?.location));
    expect(ms).toBeLessThan(10000);
  });
});
