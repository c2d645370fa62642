import type { ReviewDecision } from '@gw/ingest';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';

/** JSON over real HTTP with a bearer token. */
async function call(
  url: string,
  token: string,
  method = 'GET',
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('identity review queue over HTTP (operator and structure routes, decisions, audit)', () => {
  let gw: TestGateway;
  let admin: string;
  let msp: { clientId: string; token: string };
  let other: { clientId: string; token: string };
  let reader: { clientId: string; token: string };
  let patientId: string;
  const resolved: { source: string; decision: ReviewDecision; by: string }[] = [];
  const TRAITS = {
    identifiers: [],
    birthFamily: 'REVUE-ZÉPHYRIN',
    given: ['Anatole'],
    sex: 'male' as const,
    birthDate: '1948-07-14',
  };

  const open = (source: string, candidates: string[] = [patientId]): Promise<string> =>
    gw.core.identity.reviews.open(gw.core.db.pool, {
      owner: 'Organization/msp-review',
      source,
      traits: TRAITS,
      reason: 'traits-partial',
      candidates,
    });

  beforeAll(async () => {
    gw = await startTestGateway();
    admin = await gw.token();
    msp = await gw.clientOf('msp-review', ['system/*.cruds']);
    other = await gw.clientOf('msp-elsewhere', ['system/*.cruds']);
    reader = await gw.clientOf('msp-review', ['system/Patient.rs']);
    gw.core.identity.reviews.registerResolver('e2e:', async (source, decision, by) => {
      resolved.push({ source, decision, by: by.clientId });
      return Promise.resolve();
    });
    const created = await call(`${gw.fhirUrl}/Patient`, msp.token, 'POST', {
      resourceType: 'Patient',
      name: [{ use: 'official', family: 'REVUE-ZÉPHYRIN', given: ['Anatole'] }],
      gender: 'male',
      birthDate: '1948-07-14',
    });
    patientId = created.body.id as string;
  });
  afterAll(async () => gw.close());

  it('the structure lists and reads its own queue (paged, by status); another structure sees nothing of it', async () => {
    const first = await open(`e2e:list-1`);
    const second = await open(`e2e:list-2`);
    const page = await call(`${gw.baseUrl}/ingest/identity/reviews?status=open&_count=1`, msp.token);
    expect(page.status).toBe(200);
    expect(page.body).toMatchObject({ total: 2, offset: 0 });
    expect((page.body.reviews as { id: string }[]).map((r) => r.id)).toEqual([first]);
    const next = await call(`${gw.baseUrl}/ingest/identity/reviews?status=open&_count=1&_offset=1`, msp.token);
    expect((next.body.reviews as { id: string }[]).map((r) => r.id)).toEqual([second]);
    const one = await call(`${gw.baseUrl}/ingest/identity/reviews/${first}`, reader.token);
    expect(one.body).toMatchObject({ id: first, status: 'open', traits: { birthFamily: 'REVUE-ZÉPHYRIN' } });

    const elsewhere = await call(`${gw.baseUrl}/ingest/identity/reviews`, other.token);
    expect(elsewhere.body).toMatchObject({ total: 0, reviews: [] });
    expect((await call(`${gw.baseUrl}/ingest/identity/reviews/${first}`, other.token)).status).toBe(404);
    expect((await call(`${gw.baseUrl}/ingest/identity/reviews?status=maybe`, msp.token)).status).toBe(400);
    const all = await call(`${gw.baseUrl}/admin/identity/reviews?owner=Organization/msp-review`, admin);
    expect(all.body).toMatchObject({ total: 2 });
  });

  it('the structure accepts a candidate: the resolver acts, the decision is recorded and audited with who took it', async () => {
    const id = await open('e2e:accept');
    expect(
      (
        await call(`${gw.baseUrl}/ingest/identity/reviews/${id}/accept`, reader.token, 'POST', {
          patient: `Patient/${patientId}`,
        })
      ).status,
    ).toBe(403);
    expect(
      (await call(`${gw.baseUrl}/ingest/identity/reviews/${id}/accept`, msp.token, 'POST', { patient: 'nobody' }))
        .status,
    ).toBe(400);
    const res = await call(`${gw.baseUrl}/ingest/identity/reviews/${id}/accept`, msp.token, 'POST', {
      patient: `Patient/${patientId}`,
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      status: 'accepted',
      decision: { kind: 'accept', patientId },
      decidedBy: { clientId: msp.clientId, organization: 'Organization/msp-review' },
    });
    expect(resolved.at(-1)).toEqual({
      source: 'e2e:accept',
      decision: { kind: 'accept', patientId },
      by: msp.clientId,
    });
    const again = await call(`${gw.baseUrl}/ingest/identity/reviews/${id}/create`, msp.token, 'POST');
    expect(again.status).toBe(409);
    expect(again.body.resourceType).toBe('OperationOutcome');

    const trail = await call(`${gw.baseUrl}/admin/audit?client=${msp.clientId}&_count=50`, admin);
    const events = JSON.stringify(trail.body);
    expect(events).toContain('identity-review-accept');
    expect(events).toContain(`IdentityReview/${id}`);
    // The traits stay in the review row: neither the trail nor the logs carry them.
    expect(events).not.toContain('ZÉPHYRIN');
    expect(gw.logs.join('\n')).not.toMatch(/ZÉPHYRIN|ZEPHYRIN|1948-07-14/);
  });

  it('an operator creates or rejects; another structure cannot decide; a foreign Patient cannot be accepted', async () => {
    const created = await open('e2e:create');
    expect((await call(`${gw.baseUrl}/ingest/identity/reviews/${created}/create`, other.token, 'POST')).status).toBe(
      404,
    );
    expect((await call(`${gw.baseUrl}/admin/identity/reviews/${created}/create`, msp.token, 'POST')).status).toBe(403);
    const c = await call(`${gw.baseUrl}/admin/identity/reviews/${created}/create`, admin, 'POST');
    expect(c.body).toMatchObject({ status: 'created', decidedBy: { admin: true } });
    expect(resolved.at(-1)).toMatchObject({ source: 'e2e:create', decision: { kind: 'create' } });

    const foreign = await call(`${gw.fhirUrl}/Patient`, other.token, 'POST', {
      resourceType: 'Patient',
      gender: 'male',
    });
    const rejected = await open('e2e:reject');
    const bad = await call(`${gw.baseUrl}/admin/identity/reviews/${rejected}/accept`, admin, 'POST', {
      patient: `Patient/${foreign.body.id as string}`,
    });
    expect(bad.status).toBe(422);
    const r = await call(`${gw.baseUrl}/admin/identity/reviews/${rejected}/reject`, admin, 'POST', {
      reason: 'not our patient',
    });
    expect(r.body).toMatchObject({ status: 'rejected', decision: { kind: 'reject', reason: 'not our patient' } });
    const decided = await call(`${gw.baseUrl}/admin/identity/reviews?status=rejected`, admin);
    expect((decided.body.reviews as { id: string }[]).map((x) => x.id)).toEqual([rejected]);
    expect((await call(`${gw.baseUrl}/admin/identity/reviews/${rejected}`, admin)).body).toMatchObject({
      status: 'rejected',
    });
  });
});
