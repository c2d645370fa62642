import type { Bundle, Observation, OperationOutcome, Patient } from '@medplum/fhirtypes';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';

interface Res<T> {
  status: number;
  body: T;
}

async function call<T = Record<string, unknown>>(
  url: string,
  opts: { token: string; method?: string; body?: unknown },
): Promise<Res<T>> {
  const res = await fetch(url, {
    method: opts.method ?? 'GET',
    headers: {
      authorization: `Bearer ${opts.token}`,
      ...(opts.body
        ? {
            'content-type':
              opts.method === 'PUT' && !url.includes('/fhir/') ? 'application/json' : 'application/fhir+json',
          }
        : {}),
    },
    body: opts.body ? JSON.stringify(opts.body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

interface TrailEvent {
  id: string;
  meta: { profile: string[] };
  type: { code: string };
  subtype: { system: string; code: string }[];
  period: { start: string };
  outcome: string;
  outcomeDesc: string;
  agent: { who: { identifier?: { value: string } }; requestor: boolean; policy?: string[] }[];
  entity: { what?: { reference: string }; role: { code: string }; query?: string; description?: string }[];
}

/**
 * "Who looked at my record" over real HTTP: a structure's reads, searches and another structure's
 * refused read land in the trail; `AuditEvent?patient=` answers an audit-dpo client of the
 * structure holding the record (granted by an operator), pages with next links, and is refused to
 * everyone else; other AuditEvent searches and /admin/audit keep working.
 */
describe('patient access trail (AuditEvent?patient=)', () => {
  let gw: TestGateway;
  let holder: { clientId: string; token: string };
  let other: { clientId: string; token: string };
  let patientId: string;
  let observationId: string;

  beforeAll(async () => {
    gw = await startTestGateway();
    holder = await gw.clientOf('msp-trail', ['system/*.cruds']);
    other = await gw.clientOf('msp-elsewhere', ['system/*.cruds']);
    const patient = await call<Patient>(`${gw.fhirUrl}/Patient`, {
      token: holder.token,
      method: 'POST',
      body: { resourceType: 'Patient', name: [{ family: 'Trail-Martin' }], birthDate: '1951-04-02' },
    });
    patientId = patient.body.id as string;
    const obs = await call<Observation>(`${gw.fhirUrl}/Observation`, {
      token: holder.token,
      method: 'POST',
      body: {
        resourceType: 'Observation',
        status: 'final',
        code: { text: 'x' },
        subject: { reference: `Patient/${patientId}` },
      },
    });
    observationId = obs.body.id as string;
    expect((await call(`${gw.fhirUrl}/Observation/${observationId}`, { token: holder.token })).status).toBe(200);
    expect(
      (await call(`${gw.fhirUrl}/Patient?family=Trail-Martin&birthdate=1951-04-02`, { token: holder.token })).status,
    ).toBe(200);
    expect((await call(`${gw.fhirUrl}/Observation/${observationId}`, { token: other.token })).status).toBe(404);
  }, 120_000);
  afterAll(async () => gw?.close());

  const trail = (token: string, query: string): Promise<Res<Bundle>> =>
    call<Bundle>(`${gw.fhirUrl}/AuditEvent?${query}`, { token });

  it('refuses the trail without the audit-dpo grant, saying who may', async () => {
    const res = await trail(holder.token, `patient=Patient/${patientId}`);
    expect(res.status).toBe(403);
    expect((res.body as unknown as OperationOutcome).resourceType).toBe('OperationOutcome');
    expect(JSON.stringify(res.body)).toContain('audit-dpo');
    expect(JSON.stringify(res.body)).toContain('médecin traitant');
  });

  it("serves the holder's DPO every access to the record, the other structure's refused read included, as ANS AuditEvents", async () => {
    const admin = await gw.token();
    const granted = await call(`${gw.baseUrl}/admin/clients/${holder.clientId}/grants`, {
      token: admin,
      method: 'PUT',
      body: { grants: ['audit-dpo'] },
    });
    expect(granted.status).toBe(200);
    let res = await trail(holder.token, `patient=${patientId}`);
    // The grant reaches the client-status cache by notification: a moment at most.
    for (let i = 0; i < 50 && res.status === 403; i++) {
      await new Promise((r) => setTimeout(r, 100));
      res = await trail(holder.token, `patient=${patientId}`);
    }
    expect(res.status).toBe(200);
    expect(res.body.type).toBe('searchset');
    const events = (res.body.entry ?? []).map((e) => e.resource as unknown as TrailEvent);
    const who = (e: TrailEvent): string | undefined => e.agent[0].who.identifier?.value;
    const denied = events.find((e) => who(e) === other.clientId);
    expect(denied).toMatchObject({ subtype: [{ code: 'read' }], outcome: '4' });
    expect(denied?.outcomeDesc).toMatch(/^deny/);
    const read = events.find((e) => who(e) === holder.clientId && e.subtype[0].code === 'read') as TrailEvent;
    expect(read.meta.profile).toEqual([
      'https://interop.esante.gouv.fr/ig/fhir/tde/StructureDefinition/tde-auditevent',
    ]);
    expect(read.type.code).toBe('rest');
    expect(read.period.start).toMatch(/^\d{4}-/);
    expect(read.agent[0]).toMatchObject({ requestor: true, policy: ['organization:Organization/msp-trail'] });
    expect(read.entity.map((e) => [e.what?.reference, e.role.code])).toEqual([
      [`Patient/${patientId}`, '1'],
      [`Observation/${observationId}`, '4'],
    ]);
    const search = events.find(
      (e) => e.subtype[0].code === 'search-type' && e.entity.some((x) => x.description === 'Patient'),
    );
    const query = search?.entity.find((x) => x.role.code === '24')?.query as string;
    expect(Buffer.from(query, 'base64').toString()).toBe('family=*&birthdate=*');
    expect(JSON.stringify(res.body)).not.toMatch(/Trail-Martin|1951/);
  });

  it('pages the trail newest first with next links', async () => {
    const first = await trail(holder.token, `patient=Patient/${patientId}&_count=1`);
    expect(first.status).toBe(200);
    expect(first.body.entry).toHaveLength(1);
    const next = first.body.link?.find((l) => l.relation === 'next')?.url as string;
    expect(next).toContain('_cursor=');
    const second = await call<Bundle>(next, { token: holder.token });
    expect(second.status).toBe(200);
    expect(Number(second.body.entry?.[0].resource?.id)).toBeLessThan(Number(first.body.entry?.[0].resource?.id));
    expect(second.body.total).toBeGreaterThanOrEqual(first.body.total as number);
  });

  it('refuses a DPO of a structure that does not hold the record, and keeps the other AuditEvent searches and /admin/audit', async () => {
    const admin = await gw.token();
    await call(`${gw.baseUrl}/admin/clients/${other.clientId}/grants`, {
      token: admin,
      method: 'PUT',
      body: { grants: ['audit-dpo'] },
    });
    await new Promise((r) => setTimeout(r, 300));
    expect((await trail(other.token, `patient=${patientId}`)).status).toBe(403);
    const stored = await call<Bundle>(`${gw.fhirUrl}/AuditEvent?_count=5`, { token: holder.token });
    expect([stored.status, stored.body.type]).toEqual([200, 'searchset']);
    const operator = await call<Bundle>(`${gw.baseUrl}/admin/audit?client=${other.clientId}`, { token: admin });
    expect(operator.status).toBe(200);
    expect((operator.body.entry ?? []).length).toBeGreaterThan(0);
  });
});
