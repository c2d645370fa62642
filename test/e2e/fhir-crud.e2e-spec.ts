import { Client } from 'fhir-kit-client';
import type { FhirResource } from 'fhir-kit-client';
import type { Bundle, OperationOutcome, Patient } from '@medplum/fhirtypes';
import { INS_TEST, insPatient } from '../support/fixtures';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';

function patient(nir: string, family = 'Martin'): Patient & FhirResource {
  return insPatient(nir, family) as Patient & FhirResource;
}

/** HTTP status of a fhir-kit-client failure. */
async function statusOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (err) {
    return (err as { response?: { status: number } }).response?.status ?? -1;
  }
}

describe('FHIR REST interactions through a real FHIR client', () => {
  let gw: TestGateway;
  let fhir: Client;
  let token: string;

  beforeAll(async () => {
    gw = await startTestGateway();
    token = await gw.token();
    fhir = new Client({ baseUrl: gw.fhirUrl, bearerToken: token });
  });
  afterAll(async () => gw.close());

  it('creates, reads, versions, updates and deletes a Patient', async () => {
    const created = (await fhir.create({ resourceType: 'Patient', body: patient('280027511204588') })) as Patient;
    expect(created.id).toBeDefined();
    expect(created.meta?.versionId).toBe('1');
    expect(created.meta?.lastUpdated).toBeDefined();
    expect(created.meta?.source).toContain(gw.admin.clientId);

    const read = (await fhir.read({ resourceType: 'Patient', id: created.id as string })) as Patient;
    expect(read.name?.[0].family).toBe('Martin');

    const updated = (await fhir.update({
      resourceType: 'Patient',
      id: created.id as string,
      body: { ...read, gender: 'female', birthDate: '1980-02-28' } as FhirResource,
    })) as Patient;
    expect(updated.meta?.versionId).toBe('2');
    const v1 = (await fhir.vread({ resourceType: 'Patient', id: created.id as string, version: '1' })) as Patient;
    expect(v1.birthDate).toBe('1980-02-27');

    const history = (await fhir.history({ resourceType: 'Patient', id: created.id as string })) as unknown as Bundle;
    expect(history.type).toBe('history');
    expect(history.entry?.map((e) => e.response?.etag)).toEqual(['W/"2"', 'W/"1"']);

    await fhir.delete({ resourceType: 'Patient', id: created.id as string });
    expect(await statusOf(fhir.read({ resourceType: 'Patient', id: created.id as string }))).toBe(410);
    const v2 = (await fhir.vread({ resourceType: 'Patient', id: created.id as string, version: '2' })) as Patient;
    expect(v2.birthDate).toBe('1980-02-28');
  });

  it('refuses an update whose If-Match names a stale version with 412, and keeps the data', async () => {
    const created = (await fhir.create({ resourceType: 'Patient', body: patient('180027511251259') })) as Patient;
    const id = created.id as string;
    await fhir.update({
      resourceType: 'Patient',
      id,
      body: { ...created, birthDate: '1981-01-01' } as FhirResource,
      options: { headers: { 'If-Match': 'W/"1"' } },
    });
    const stale = fhir.update({
      resourceType: 'Patient',
      id,
      body: { ...created, birthDate: '1999-01-01' } as FhirResource,
      options: { headers: { 'If-Match': 'W/"1"' } },
    });
    expect(await statusOf(stale)).toBe(412);
    const current = (await fhir.read({ resourceType: 'Patient', id })) as Patient;
    expect(current.birthDate).toBe('1981-01-01');
    expect(current.meta?.versionId).toBe('2');
  });

  it('never duplicates on concurrent identical conditional creates', async () => {
    const nir = '290017511257720';
    const attempts = await Promise.all(
      Array.from({ length: 20 }, () =>
        fetch(`${gw.fhirUrl}/Patient`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${token}`,
            'content-type': 'application/fhir+json',
            'if-none-exist': `identifier=${INS_TEST}|${nir}`,
          },
          body: JSON.stringify(patient(nir, 'Concurrent')),
        }),
      ),
    );
    const statuses = attempts.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 200)).toHaveLength(19);
    const ids = new Set(await Promise.all(attempts.map(async (r) => ((await r.json()) as Patient).id)));
    expect(ids.size).toBe(1);
    const found = (await fhir.search({
      resourceType: 'Patient',
      searchParams: { identifier: `${INS_TEST}|${nir}`, _total: 'accurate' },
    })) as unknown as Bundle;
    expect(found.total).toBe(1);
  });

  it('conditional update creates when nothing matches, then updates the match', async () => {
    const nir = '170017511253327';
    const first = (await fhir.update({
      resourceType: 'Patient',
      searchParams: { identifier: `${INS_TEST}|${nir}` },
      body: patient(nir, 'Cond'),
    })) as Patient;
    expect(first.meta?.versionId).toBe('1');
    const second = (await fhir.update({
      resourceType: 'Patient',
      searchParams: { identifier: `${INS_TEST}|${nir}` },
      body: { ...patient(nir, 'Cond'), gender: 'male' },
    })) as Patient;
    expect(second.id).toBe(first.id);
    expect(second.meta?.versionId).toBe('2');
  });

  it('creates no new version for an update identical to the current version: 200 with it, history unchanged', async () => {
    const created = (await fhir.create({
      resourceType: 'Patient',
      body: patient('180027511204640', 'Same'),
    })) as Patient;
    const id = created.id as string;
    // Same content, other key order, stale meta: still the same resource.
    const body = {
      birthDate: created.birthDate,
      ...created,
      meta: {
        versionId: '7',
        lastUpdated: '2001-01-01T00:00:00Z',
        tag: created.meta?.tag,
        source: created.meta?.source,
      },
    };
    const res = await fetch(`${gw.fhirUrl}/Patient/${id}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' },
      body: JSON.stringify(body),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('etag')).toBe('W/"1"');
    const same = (await res.json()) as Patient;
    expect(same.meta?.versionId).toBe('1');
    expect(same.meta?.lastUpdated).toBe(created.meta?.lastUpdated);
    const history = (await fhir.history({ resourceType: 'Patient', id })) as unknown as Bundle;
    expect(history.total).toBe(1);
    // A real change still makes a version.
    const changed = (await fhir.update({
      resourceType: 'Patient',
      id,
      body: { ...created, gender: 'other' } as FhirResource,
    })) as Patient;
    expect(changed.meta?.versionId).toBe('2');
  });

  it('answers a request for XML (Accept or _format) with 406 and an OperationOutcome in JSON', async () => {
    const created = (await fhir.create({
      resourceType: 'Patient',
      body: patient('280027511204786', 'Xml'),
    })) as Patient;
    const asks: [string, Record<string, string>][] = [
      [`Patient/${created.id}`, { accept: 'application/fhir+xml' }],
      [`Patient/${created.id}?_format=xml`, {}],
      [`Patient?_format=${encodeURIComponent('application/fhir+xml')}`, {}],
      ['metadata', { accept: 'application/xml' }],
    ];
    for (const [path, headers] of asks) {
      const res = await fetch(`${gw.fhirUrl}/${path}`, { headers: { authorization: `Bearer ${token}`, ...headers } });
      expect(res.status).toBe(406);
      expect(res.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
      const outcome = (await res.json()) as OperationOutcome;
      expect(outcome.resourceType).toBe('OperationOutcome');
      expect(outcome.issue[0].code).toBe('not-supported');
    }
    // JSON among the acceptable types, or _format=json, is served.
    for (const [path, headers] of [
      [`Patient/${created.id}`, { accept: 'application/fhir+xml;q=0.9, application/fhir+json;q=0.5' }],
      [`Patient/${created.id}?_format=json`, { accept: 'application/fhir+xml' }],
    ] as [string, Record<string, string>][]) {
      const res = await fetch(`${gw.fhirUrl}/${path}`, { headers: { authorization: `Bearer ${token}`, ...headers } });
      expect(res.status).toBe(200);
    }
  });

  it('lists type history newest first', async () => {
    const history = (await fhir.history({ resourceType: 'Patient' })) as unknown as Bundle;
    expect(history.entry?.length).toBeGreaterThan(3);
    const times = history.entry?.map((e) => e.response?.lastModified as string) ?? [];
    expect([...times].sort().reverse()).toEqual(times);
  });
});
