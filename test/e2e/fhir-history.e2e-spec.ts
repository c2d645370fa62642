import { setTimeout as sleep } from 'node:timers/promises';
import type { Bundle, Observation, OperationOutcome, Patient } from '@medplum/fhirtypes';
import { SERVED_RESOURCE_TYPES } from '@gw/fhir';
import { insPatient } from '../support/fixtures';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';

interface HttpResult<T> {
  status: number;
  body: T;
}

describe('FHIR history: system, type and instance, paged, _since and _at', () => {
  let gw: TestGateway;
  let token: string;

  const call = async <T = Bundle>(url: string, init: RequestInit = {}, bearer = token): Promise<HttpResult<T>> => {
    const res = await fetch(url.startsWith('http') ? url : `${gw.fhirUrl}/${url}`, {
      ...init,
      headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/fhir+json', ...init.headers },
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
  };
  const write = async <T extends Patient | Observation>(resource: T): Promise<T> => {
    // A few ms apart, so that each version has its own lastUpdated.
    await sleep(3);
    const res = await call<T>(resource.id ? `${resource.resourceType}/${resource.id}` : resource.resourceType, {
      method: resource.id ? 'PUT' : 'POST',
      body: JSON.stringify(resource),
    });
    expect([200, 201]).toContain(res.status);
    return res.body;
  };
  /** Follows `next` links from `url`; returns every page. */
  const allPages = async (url: string, bearer = token): Promise<Bundle[]> => {
    const pages: Bundle[] = [];
    let next: string | undefined = url;
    while (next) {
      const page: HttpResult<Bundle> = await call<Bundle>(next, {}, bearer);
      expect(page.status).toBe(200);
      pages.push(page.body);
      next = page.body.link?.find((l) => l.relation === 'next')?.url;
      expect(pages.length).toBeLessThan(50);
    }
    return pages;
  };
  const versionsOf = (pages: Bundle[]): string[] =>
    pages.flatMap((p) => (p.entry ?? []).map((e) => `${e.fullUrl}|${e.response?.etag}`));

  let patient: Patient;
  const patientVersions: Patient[] = [];

  beforeAll(async () => {
    gw = await startTestGateway();
    token = await gw.token();
    patient = await write(insPatient('280027511204984', 'Histoire'));
    patientVersions.push(patient);
    for (const birthDate of ['1980-02-01', '1980-02-02', '1980-02-03', '1980-02-04']) {
      patientVersions.push(await write({ ...patient, birthDate }));
    }
    for (let i = 0; i < 3; i++) {
      await write<Observation>({
        resourceType: 'Observation',
        status: 'final',
        code: { text: `obs ${i}` },
        subject: { reference: `Patient/${patient.id}` },
      });
    }
  });
  afterAll(async () => gw.close());

  it('pages instance history with _count and next links, total counting every version', async () => {
    const pages = await allPages(`Patient/${patient.id}/_history?_count=2`);
    expect(pages.map((p) => p.entry?.length)).toEqual([2, 2, 1]);
    expect(pages.every((p) => p.total === 5)).toBe(true);
    expect(pages.flatMap((p) => p.entry?.map((e) => e.response?.etag))).toEqual([
      'W/"5"',
      'W/"4"',
      'W/"3"',
      'W/"2"',
      'W/"1"',
    ]);
    expect(pages[1].link?.find((l) => l.relation === 'previous')?.url).toMatch(/_count=2/);
    expect(pages[0].link?.find((l) => l.relation === 'self')?.url).toBe(
      `${gw.fhirUrl}/Patient/${patient.id}/_history?_count=2`,
    );
  });

  it('gives type history the total of all versions of the type, not the page size', async () => {
    const first = await call(`Patient/_history?_count=2`);
    expect(first.status).toBe(200);
    expect(first.body.entry).toHaveLength(2);
    expect(first.body.total).toBe(5);
    const obs = await allPages('Observation/_history?_count=2');
    expect(obs[0].total).toBe(3);
    expect(versionsOf(obs)).toHaveLength(3);
  });

  it('serves system history: every type, newest first, paged without loss or repetition', async () => {
    const pages = await allPages('_history?_count=3');
    const seen = versionsOf(pages);
    // Besides this file's writes, what the gateway wrote at boot (operator Organization, measure catalogue).
    const { rows } = await gw.core.db.pool.query<{ n: string }>(
      'SELECT count(*) AS n FROM resource_history WHERE resource_type = ANY($1)',
      [[...SERVED_RESOURCE_TYPES]],
    );
    const all = Number(rows[0].n);
    expect(all).toBeGreaterThan(8);
    const countOnly = await call('_history?_count=0');
    expect(countOnly.body.total).toBe(all);
    expect(countOnly.body.entry).toEqual([]);
    expect(pages[0].type).toBe('history');
    expect(pages.every((p) => p.total === all)).toBe(true);
    expect(seen).toHaveLength(all);
    expect(new Set(seen).size).toBe(all);
    const ofType = (t: string): number => seen.filter((v) => v.startsWith(`${gw.fhirUrl}/${t}/`)).length;
    expect([ofType('Patient'), ofType('Observation'), ofType('Organization') > 0]).toEqual([5, 3, true]);
    const times = pages.flatMap((p) => p.entry?.map((e) => e.response?.lastModified as string) ?? []);
    expect([...times].sort().reverse()).toEqual(times);
  });

  it('honours _since on system, type and instance history', async () => {
    const since = patientVersions[3].meta?.lastUpdated as string;
    const instance = await call(`Patient/${patient.id}/_history?_since=${encodeURIComponent(since)}`);
    expect(instance.body.entry?.map((e) => e.response?.etag)).toEqual(['W/"5"', 'W/"4"']);
    expect(instance.body.total).toBe(2);
    const type = await call(`Patient/_history?_since=${encodeURIComponent(since)}`);
    expect(type.body.total).toBe(2);
    const system = await allPages(`_history?_since=${encodeURIComponent(since)}&_count=2`);
    expect(system[0].total).toBe(5); // Patient v4, v5 and the 3 Observations
    expect(versionsOf(system)).toHaveLength(5);
    expect(system[0].link?.find((l) => l.relation === 'next')?.url).toContain(`_since=${encodeURIComponent(since)}`);
  });

  it('honours _at: the versions current at that instant or during that period', async () => {
    const at = patientVersions[1].meta?.lastUpdated as string;
    const instance = await call(`Patient/${patient.id}/_history?_at=${encodeURIComponent(at)}`);
    expect(instance.body.entry?.map((e) => e.response?.etag)).toEqual(['W/"2"']);
    expect(instance.body.total).toBe(1);
    const year = await call(`Patient/${patient.id}/_history?_at=${at.slice(0, 4)}`);
    expect(year.body.total).toBe(5);
    const before = await call(`Patient/${patient.id}/_history?_at=2001`);
    expect(before.body.total).toBe(0);
    expect(before.body.entry).toEqual([]);
  });

  it('refuses a malformed _since, _at or _count with 400 and an OperationOutcome', async () => {
    for (const q of ['_since=yesterday', '_at=2024-13', '_count=-1']) {
      const res = await call<OperationOutcome>(`_history?${q}`);
      expect(res.status).toBe(400);
      expect(res.body.resourceType).toBe('OperationOutcome');
    }
  });

  it("shows a client only its organization's entries and the types its scopes allow in system history", async () => {
    const other = await gw.clientOf('history-org', ['system/Observation.cruds']);
    await call(
      'Observation',
      { method: 'POST', body: JSON.stringify({ resourceType: 'Observation', status: 'final', code: { text: 'own' } }) },
      other.token,
    );
    const pages = await allPages('_history', other.token);
    expect(pages[0].total).toBe(1);
    expect(pages[0].entry?.map((e) => (e.resource as Observation).code?.text)).toEqual(['own']);
    const none = await gw.clientOf('history-org-2', ['system/Patient.c']);
    expect((await call<OperationOutcome>('_history', {}, none.token)).status).toBe(403);
  });
});
