import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { startRedis } from '../support/redis';
import { WORKER_MAIN, killAll, run } from '../support/process';

type Res = Record<string, unknown> & { resourceType: string; id?: string };
interface Manifest {
  transactionTime: string;
  request: string;
  requiresAccessToken: boolean;
  output: { type: string; url: string; count: number }[];
  error: { type: string; url: string; count: number }[];
}

const ASYNC = { prefer: 'respond-async', accept: 'application/fhir+json' };

async function http(
  method: string,
  url: string,
  token: string | undefined,
  headers: Record<string, string> = {},
  body?: unknown,
): Promise<{ status: number; headers: Headers; text: string; json: () => Record<string, unknown> }> {
  const res = await fetch(url, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/fhir+json' }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) as Record<string, unknown> };
}

function issueText(r: { json: () => Record<string, unknown> }): string {
  const o = r.json() as { resourceType: string; issue: { details?: { text?: string } }[] };
  expect(o.resourceType).toBe('OperationOutcome');
  return o.issue.map((i) => i.details?.text ?? '').join(' | ');
}

/** Kick-off (202 + Content-Location), then polls the status URL until it stops answering 202. */
async function runExport(
  gw: TestGateway,
  token: string,
  groupId: string,
  query = '',
): Promise<{ statusUrl: string; manifest: Manifest }> {
  const kick = await http('GET', `${gw.fhirUrl}/Group/${groupId}/$export${query}`, token, ASYNC);
  expect(kick.status).toBe(202);
  const statusUrl = kick.headers.get('content-location') as string;
  expect(statusUrl).toMatch(/\/fhir\/\$export-status\/[0-9a-f-]{36}$/);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const s = await http('GET', statusUrl, token);
    if (s.status === 200) {
      expect(s.headers.get('content-type')).toMatch(/application\/json/);
      return { statusUrl, manifest: s.json() as unknown as Manifest };
    }
    expect(s.status).toBe(202);
    expect(s.headers.get('x-progress')).toBeTruthy();
    expect(s.headers.get('retry-after')).toBeTruthy();
    if (Date.now() > deadline) {
      throw new Error('export did not complete in 30 s');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Closes a test gateway; keep-alive sockets left by fetch are dropped first (a close once waited
 * for Fastify's 72 s keep-alive timeout here).
 */

/** Downloads one NDJSON file and parses every line. */
async function download(url: string, token: string): Promise<Res[]> {
  const res = await http('GET', url, token);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('application/fhir+ndjson');
  expect(res.text.endsWith('\n')).toBe(true);
  return res.text
    .trimEnd()
    .split('\n')
    .map((line) => JSON.parse(line) as Res);
}

async function files(manifest: Manifest, token: string): Promise<Record<string, Res[]>> {
  const out: Record<string, Res[]> = {};
  for (const o of manifest.output) {
    out[o.type] = await download(o.url, token);
    expect(out[o.type].length).toBe(o.count);
    expect(out[o.type].every((r) => r.resourceType === o.type)).toBe(true);
  }
  return out;
}

/**
 * Organization A has a Group of five Patients: three active members (p1..p3), one member marked
 * inactive (p4) and one whose membership period ended (p5); p6 is not a member. Each patient has
 * an Observation, an Encounter and a Condition; one Communication and one CareTeam involve p1 and
 * p2 together (they must come once).
 */
async function seed(gw: TestGateway, token: string): Promise<{ groupId: string; ids: Record<string, string> }> {
  const ids: Record<string, string> = {};
  const create = async (key: string, r: Res): Promise<string> => {
    const res = await http('POST', `${gw.fhirUrl}/${r.resourceType}`, token, {}, r);
    expect(res.status).toBe(201);
    ids[key] = res.json().id as string;
    return ids[key];
  };
  for (let i = 1; i <= 6; i++) {
    const p = await create(`p${i}`, {
      resourceType: 'Patient',
      name: [{ family: `EXPORT${i}` }],
      gender: 'female',
      birthDate: '1970-01-01',
    });
    const ref = { reference: `Patient/${p}` };
    await create(`obs${i}`, {
      resourceType: 'Observation',
      status: 'final',
      code: { text: 'weight' },
      subject: ref,
      valueQuantity: { value: 60 + i, unit: 'kg' },
    });
    await create(`enc${i}`, {
      resourceType: 'Encounter',
      status: 'finished',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
      subject: ref,
    });
    await create(`cond${i}`, { resourceType: 'Condition', subject: ref, code: { text: 'hypertension' } });
  }
  const p1 = { reference: `Patient/${ids.p1}` };
  const p2 = { reference: `Patient/${ids.p2}` };
  await create('comm', { resourceType: 'Communication', status: 'completed', subject: p1, recipient: [p2] });
  await create('team', {
    resourceType: 'CareTeam',
    status: 'active',
    subject: p1,
    participant: [{ member: p1 }, { member: p2 }],
  });
  const groupId = await create('group', {
    resourceType: 'Group',
    type: 'person',
    actual: true,
    member: [
      { entity: p1 },
      { entity: p2, period: { start: '2020-01-01' } },
      { entity: { reference: `Patient/${ids.p3}` } },
      { entity: { reference: `Patient/${ids.p4}` }, inactive: true },
      { entity: { reference: `Patient/${ids.p5}` }, period: { start: '2019-01-01', end: '2020-12-31' } },
    ],
  });
  return { groupId, ids };
}

describe('bulk export: Group/[id]/$export (postgres queue)', () => {
  let gw: TestGateway;
  let tokenA: string;
  let clientA: string;
  let tokenB: string;
  let groupId: string;
  let ids: Record<string, string>;

  beforeAll(async () => {
    gw = await startTestGateway({ GW_MLLP_ENABLED: 'false' });
    const a = await gw.clientOf('org-export-a', ['system/*.cruds']);
    tokenA = a.token;
    clientA = a.clientId;
    tokenB = (await gw.clientOf('org-export-b', ['system/*.cruds'])).token;
    ({ groupId, ids } = await seed(gw, tokenA));
  }, 120_000);

  afterAll(async () => {
    await gw?.close();
  }, 120_000);

  it('exports the active members and their compartment, each resource once, to authenticated NDJSON files', async () => {
    const { manifest } = await runExport(gw, tokenA, groupId);
    expect(manifest.requiresAccessToken).toBe(true);
    expect(Number.isNaN(Date.parse(manifest.transactionTime))).toBe(false);
    expect(manifest.request).toBe(`${gw.fhirUrl}/Group/${groupId}/$export`);
    expect(manifest.error).toEqual([]);
    const counts = Object.fromEntries(manifest.output.map((o) => [o.type, o.count]));
    // The Group itself is in p1..p3's compartment (Group.member).
    expect(counts).toEqual({
      Patient: 3,
      CareTeam: 1,
      Communication: 1,
      Condition: 3,
      Encounter: 3,
      Group: 1,
      Observation: 3,
    });
    const got = await files(manifest, tokenA);
    const members = [ids.p1, ids.p2, ids.p3].sort();
    expect(got.Patient.map((p) => p.id).sort()).toEqual(members);
    expect(got.Observation.map((o) => (o.subject as { reference: string }).reference).sort()).toEqual(
      members.map((m) => `Patient/${m}`).sort(),
    );
    const outsiders = [ids.p4, ids.p5, ids.p6];
    const all = Object.values(got)
      .flat()
      .map((r) => JSON.stringify(r));
    for (const id of outsiders) {
      expect(all.filter((line) => line.includes(id) && !line.includes('"resourceType":"Group"'))).toEqual([]);
    }
  });

  it('limits the export to _type and to resources changed after _since', async () => {
    const typed = await runExport(
      gw,
      tokenA,
      groupId,
      '?_type=Patient,Observation&_outputFormat=application%2Ffhir%2Bndjson',
    );
    expect(typed.manifest.output.map((o) => o.type).sort()).toEqual(['Observation', 'Patient']);

    const since = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 20));
    const obs = {
      resourceType: 'Observation',
      status: 'amended',
      code: { text: 'weight' },
      subject: { reference: `Patient/${ids.p2}` },
      valueQuantity: { value: 70, unit: 'kg' },
    };
    expect(
      (await http('PUT', `${gw.fhirUrl}/Observation/${ids.obs2}`, tokenA, {}, { ...obs, id: ids.obs2 })).status,
    ).toBe(200);
    const { manifest } = await runExport(gw, tokenA, groupId, `?_since=${encodeURIComponent(since)}`);
    expect(manifest.output.map((o) => [o.type, o.count])).toEqual([['Observation', 1]]);
    const [changed] = await download(manifest.output[0].url, tokenA);
    expect(changed.id).toBe(ids.obs2);
  });

  it('accepts POST with a Parameters resource', async () => {
    const res = await http('POST', `${gw.fhirUrl}/Group/${groupId}/$export`, tokenA, ASYNC, {
      resourceType: 'Parameters',
      parameter: [
        { name: '_type', valueString: 'Condition' },
        { name: '_outputFormat', valueString: 'ndjson' },
      ],
    });
    expect(res.status).toBe(202);
    expect(res.headers.get('content-location')).toContain('/fhir/$export-status/');
  });

  it('refuses bad requests with an OperationOutcome', async () => {
    const base = `${gw.fhirUrl}/Group/${groupId}/$export`;
    const badAccept = await http('GET', base, tokenA, { ...ASYNC, accept: 'text/csv' });
    expect(badAccept.status).toBe(400);
    expect(issueText(badAccept)).toContain('Accept');
    const noPrefer = await http('GET', base, tokenA, { accept: 'application/fhir+json' });
    expect(noPrefer.status).toBe(400);
    expect(issueText(noPrefer)).toContain('respond-async');
    const badType = await http('GET', `${base}?_type=Patient,Frobnicator`, tokenA, ASYNC);
    expect(badType.status).toBe(400);
    expect(issueText(badType)).toContain('Frobnicator');
    const notCompartment = await http('GET', `${base}?_type=Organization`, tokenA, ASYNC);
    expect(notCompartment.status).toBe(400);
    const badSince = await http('GET', `${base}?_since=yesterday`, tokenA, ASYNC);
    expect(badSince.status).toBe(400);
    expect(issueText(badSince)).toContain('_since');
    const badFormat = await http('GET', `${base}?_outputFormat=text%2Fcsv`, tokenA, ASYNC);
    expect(badFormat.status).toBe(400);
    expect(issueText(badFormat)).toContain('_outputFormat');
    const unsupported = await http('GET', `${base}?_typeFilter=Observation%3Fcode%3Dx`, tokenA, ASYNC);
    expect(unsupported.status).toBe(400);
    expect(issueText(unsupported)).toContain('_typeFilter');
    const missing = await http('GET', `${gw.fhirUrl}/Group/no-such-group/$export`, tokenA, ASYNC);
    expect(missing.status).toBe(404);
    expect((await http('GET', base, undefined, ASYNC)).status).toBe(401);
  });

  it('denies another organization the Group, the status and the files', async () => {
    const kick = await http('GET', `${gw.fhirUrl}/Group/${groupId}/$export`, tokenB, ASYNC);
    expect(kick.status).toBe(404);
    issueText(kick);
    const { statusUrl, manifest } = await runExport(gw, tokenA, groupId, '?_type=Patient');
    expect((await http('GET', statusUrl, tokenB)).status).toBe(404);
    expect((await http('DELETE', statusUrl, tokenB)).status).toBe(404);
    expect((await http('GET', manifest.output[0].url, tokenB)).status).toBe(404);
    expect((await http('GET', manifest.output[0].url, undefined)).status).toBe(401);
    // The admin client may look at any export.
    expect((await http('GET', statusUrl, await gw.token())).status).toBe(200);
  });

  it('refuses an explicit _type outside the scopes, and skips such types (reported in error) without _type', async () => {
    const narrow = await gw.core.clients.create({
      name: 'narrow',
      organization: 'Organization/org-export-a',
      scopes: ['system/Group.rs', 'system/Patient.rs'],
      withSecret: true,
    });
    const token = await gw.token(narrow.client.id, narrow.secret as string);
    const denied = await http('GET', `${gw.fhirUrl}/Group/${groupId}/$export?_type=Observation`, token, ASYNC);
    expect(denied.status).toBe(403);
    expect(issueText(denied)).toContain('Observation');
    const { manifest } = await runExport(gw, token, groupId);
    expect(manifest.output.map((o) => o.type)).toEqual(['Patient', 'Group']);
    expect(manifest.error).toHaveLength(1);
    const outcomes = await download(manifest.error[0].url, token);
    expect(outcomes.every((o) => o.resourceType === 'OperationOutcome')).toBe(true);
    expect(JSON.stringify(outcomes)).toContain('Observation not exported');
    const noGroup = await gw.core.clients.create({
      name: 'no group',
      organization: 'Organization/org-export-a',
      scopes: ['system/Patient.rs'],
      withSecret: true,
    });
    const res = await http(
      'GET',
      `${gw.fhirUrl}/Group/${groupId}/$export`,
      await gw.token(noGroup.client.id, noGroup.secret as string),
      ASYNC,
    );
    expect(res.status).toBe(403);
  });

  it('cancels on DELETE: the status is gone and the files are removed', async () => {
    const { statusUrl, manifest } = await runExport(gw, tokenA, groupId, '?_type=Patient');
    const del = await http('DELETE', statusUrl, tokenA);
    expect(del.status).toBe(202);
    expect((await http('GET', statusUrl, tokenA)).status).toBe(404);
    expect((await http('GET', manifest.output[0].url, tokenA)).status).toBe(404);
    const kick = await http('GET', `${gw.fhirUrl}/Group/${groupId}/$export`, tokenA, ASYNC);
    const url = kick.headers.get('content-location') as string;
    expect((await http('DELETE', url, tokenA)).status).toBe(202);
    expect((await http('GET', url, tokenA)).status).toBe(404);
  });

  it('audits kick-offs and downloads, and sweeps exports past retention', async () => {
    const { statusUrl, manifest } = await runExport(gw, tokenA, groupId, '?_type=Patient');
    await download(manifest.output[0].url, tokenA);
    await gw.core.audit.flush();
    const audit = await gw.core.db.pool.query<{ interaction: string; entity: string[] }>(
      `SELECT interaction, entity FROM audit_event WHERE client_id = $1 AND interaction IN ('bulk-export', 'bulk-download')`,
      [clientA],
    );
    expect(audit.rows.some((r) => r.interaction === 'bulk-export' && r.entity.includes(`Group/${groupId}`))).toBe(true);
    expect(audit.rows.some((r) => r.interaction === 'bulk-download')).toBe(true);
    const id = statusUrl.split('/').pop() as string;
    await gw.core.db.pool.query(`UPDATE bulk_export SET expires_at = now() - interval '1 minute' WHERE id = $1`, [id]);
    const swept = await gw.core.bulk.sweep();
    expect(swept.status).toBe('success');
    expect((await gw.core.db.pool.query('SELECT 1 FROM bulk_export WHERE id = $1', [id])).rowCount).toBe(0);
    expect((await http('GET', statusUrl, tokenA)).status).toBe(404);
  });

  it('declares the operation in the CapabilityStatement', async () => {
    const cs = (await http('GET', `${gw.fhirUrl}/metadata`, undefined)).json() as {
      instantiates?: string[];
      rest: { resource: { type: string; operation?: { name: string; definition: string }[] }[] }[];
    };
    const group = cs.rest[0].resource.find((r) => r.type === 'Group');
    expect(cs.instantiates).toContain('http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data');
    expect(group?.operation).toEqual([
      { name: 'export', definition: 'http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export' },
    ]);
  });
});

describe('bulk export on the Redis queue backend', () => {
  let gw: TestGateway;
  let redis: { url: string; stop: () => Promise<void> };

  beforeAll(async () => {
    redis = await startRedis();
    gw = await startTestGateway({ GW_MLLP_ENABLED: 'false', GW_REDIS_URL: redis.url });
  }, 120_000);

  afterAll(async () => {
    await gw?.close();
    await redis?.stop();
  }, 120_000);

  it('runs the export job and serves the files', async () => {
    const { token } = await gw.clientOf('org-export-r', ['system/*.cruds']);
    const { groupId } = await seed(gw, token);
    const { manifest } = await runExport(gw, token, groupId, '?_type=Patient,Encounter');
    expect(manifest.output.map((o) => [o.type, o.count])).toEqual([
      ['Patient', 3],
      ['Encounter', 3],
    ]);
    expect((await files(manifest, token)).Encounter).toHaveLength(3);
  });
});

describe('bulk export run by apps/worker out of process', () => {
  let gw: TestGateway;

  beforeAll(async () => {
    gw = await startTestGateway({ GW_MLLP_ENABLED: 'false', GW_WORKERS_INPROCESS: 'false' });
  }, 120_000);

  afterAll(async () => {
    await killAll();
    await gw?.close();
  }, 120_000);

  it('writes the files into the shared GW_DATA_DIR, served by the gateway', async () => {
    const worker = run(WORKER_MAIN, {
      GW_DATABASE_URL: gw.core.db.url,
      GW_DATA_DIR: gw.core.config.GW_DATA_DIR,
      GW_WORKER_QUEUES: 'bulk-export',
      GW_LOG_LEVEL: 'info',
    });
    try {
      await worker.waitFor(/worker ready/);
      const { token } = await gw.clientOf('org-export-w', ['system/*.cruds']);
      const { groupId } = await seed(gw, token);
      const { manifest } = await runExport(gw, token, groupId, '?_type=Patient,Condition');
      expect(manifest.output.map((o) => [o.type, o.count])).toEqual([
        ['Patient', 3],
        ['Condition', 3],
      ]);
      expect((await files(manifest, token)).Patient).toHaveLength(3);
      expect(worker.out()).toMatch(/"job":"bulk.export"[^\n]*job done/);
    } finally {
      worker.child.kill('SIGTERM');
      await worker.exited;
    }
  });
});
