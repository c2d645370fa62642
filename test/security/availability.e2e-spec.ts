import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';

const ASYNC = { prefer: 'respond-async', accept: 'application/fhir+json' };

async function call(
  method: string,
  url: string,
  token: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; json: () => Record<string, unknown> }> {
  const res = await fetch(url, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/fhir+json' }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: () => JSON.parse(text) as Record<string, unknown> };
}

describe('availability attacks', () => {
  let gw: TestGateway;
  let token: string;

  beforeAll(async () => {
    gw = await startTestGateway();
    token = (await gw.clientOf('org-avail', ['system/*.cruds'])).token;
  }, 60_000);

  afterAll(async () => {
    await gw?.close();
  });

  async function group(): Promise<string> {
    const members: { entity: { reference: string } }[] = [];
    for (let i = 0; i < 3; i++) {
      const p = await call('POST', `${gw.fhirUrl}/Patient`, token, {
        resourceType: 'Patient',
        name: [{ family: `AVAIL${i}` }],
      });
      expect(p.status).toBe(201);
      const id = p.json().id as string;
      members.push({ entity: { reference: `Patient/${id}` } });
      for (const code of ['weight', 'height']) {
        await call('POST', `${gw.fhirUrl}/Observation`, token, {
          resourceType: 'Observation',
          status: 'final',
          code: { text: code },
          subject: { reference: `Patient/${id}` },
        });
      }
    }
    const g = await call('POST', `${gw.fhirUrl}/Group`, token, {
      resourceType: 'Group',
      type: 'person',
      actual: true,
      member: members,
    });
    expect(g.status).toBe(201);
    return g.json().id as string;
  }

  it('survives bulk exports cancelled right after their kick-off, and a new export still completes', async () => {
    const groupId = await group();
    for (let i = 0; i < 20; i++) {
      const kick = await call('GET', `${gw.fhirUrl}/Group/${groupId}/$export`, token, undefined, ASYNC);
      expect(kick.status).toBe(202);
      const statusUrl = kick.headers.get('content-location') as string;
      // Let the job start (it creates the directory and opens a file) before the cancel removes it.
      await new Promise((r) => setTimeout(r, i % 4 === 0 ? 0 : i * 2));
      const del = await call('DELETE', statusUrl, token);
      expect(del.status).toBe(202);
    }
    await new Promise((r) => setTimeout(r, 500));
    expect((await fetch(`${gw.baseUrl}/health/live`)).status).toBe(200);
    const kick = await call('GET', `${gw.fhirUrl}/Group/${groupId}/$export`, token, undefined, ASYNC);
    const statusUrl = kick.headers.get('content-location') as string;
    const deadline = Date.now() + 30_000;
    let status = 202;
    while (status === 202 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      status = (await call('GET', statusUrl, token)).status;
    }
    expect(status).toBe(200);
  }, 90_000);
});
