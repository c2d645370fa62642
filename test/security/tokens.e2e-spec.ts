import { request } from 'node:http';
import { randomBytes } from 'node:crypto';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { GATEWAY_CLI, killAll, run } from '../support/process';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown>;
}

/** One HTTP call over a fresh connection, optionally from a given loopback address (127.0.0.0/8 all reach 127.0.0.1). */
function call(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string; from?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: opts.method ?? 'GET', headers: opts.headers, localAddress: opts.from, agent: false },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += String(d)));
        res.on('end', () => {
          let body: Record<string, unknown> = {};
          try {
            body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
          } catch {
            body = { text };
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        });
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

const basic = (id: string, secret: string): string => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

/** Polls `f` until it returns true, for at most `ms`; returns the time it took. */
async function within(ms: number, f: () => Promise<boolean>): Promise<number> {
  const start = Date.now();
  while (!(await f())) {
    if (Date.now() - start > ms) {
      throw new Error(`not within ${ms} ms`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return Date.now() - start;
}

describe('tokens and clients under attack', () => {
  let gw: TestGateway;
  let adminToken: string;
  const tokenRequest = (auth: string, from?: string): Promise<Reply> =>
    call(`${gw.baseUrl}/oauth2/token`, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
      from,
    });
  const admin = (method: string, path: string, body?: unknown): Promise<Reply> =>
    call(`${gw.baseUrl}/admin/${path}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const read = (token: string): Promise<Reply> =>
    call(`${gw.fhirUrl}/Patient?_count=1`, { headers: { authorization: `Bearer ${token}` } });

  beforeAll(async () => {
    gw = await startTestGateway();
    adminToken = await gw.token();
  });
  afterAll(async () => {
    await killAll();
    await gw.close();
  });

  it('refuses the live token of a client deactivated through the admin API within 2 s, and no new token is issued', async () => {
    const c = await gw.clientOf('org-revoked', ['system/*.rs']);
    expect((await read(c.token)).status).toBe(200);

    const deactivated = await admin('POST', `clients/${c.clientId}/deactivate`);
    expect(deactivated.status).toBe(200);
    expect(deactivated.body).toMatchObject({ id: c.clientId, active: false });
    const took = await within(2000, async () => (await read(c.token)).status === 401);
    const refused = await read(c.token);
    expect(JSON.stringify(refused.body)).toContain('The client is deactivated');
    expect(took).toBeLessThan(2000);
    const again = await tokenRequest(basic(c.clientId, c.secret));
    expect(again.status).toBe(401);
    expect(again.body.error).toBe('invalid_client');

    // Activated again: a new token works (the old one too, it has not expired).
    expect((await admin('POST', `clients/${c.clientId}/activate`)).status).toBe(200);
    await within(2000, async () => (await tokenRequest(basic(c.clientId, c.secret))).status === 200);
    const listed = (await admin('GET', 'clients')).body as unknown as { id: string; active: boolean }[];
    expect(listed.find((x) => x.id === c.clientId)).toMatchObject({ active: true, grants: [] });
  });

  it('takes a deactivation made by the CLI (another process) into account within seconds', async () => {
    const c = await gw.clientOf('org-cli-revoked', ['system/*.rs']);
    expect((await read(c.token)).status).toBe(200);
    const cli = run(
      GATEWAY_CLI,
      {
        GW_DATABASE_URL: gw.core.config.GW_DATABASE_URL as string,
        GW_DATA_DIR: gw.core.config.GW_DATA_DIR,
        GW_LOG_LEVEL: 'warn',
      },
      ['client:deactivate', c.clientId],
    );
    expect(await cli.exited).toBe(0);
    expect(cli.out()).toContain('"active":false');
    const took = await within(3000, async () => (await read(c.token)).status === 401);
    expect(took).toBeLessThan(3000);
  }, 60_000);

  it('refuses to deactivate the last active admin client (409)', async () => {
    const res = await admin('POST', `clients/${gw.admin.clientId}/deactivate`);
    expect(res.status).toBe(409);
    expect(JSON.stringify(res.body)).toContain('last active admin client');
    expect((await read(adminToken)).status).toBe(200);
  });

  it('sets operator grants, refusing unknown names, and audits client changes', async () => {
    const c = await gw.clientOf('org-granted', ['system/*.rs']);
    const bad = await admin('PUT', `clients/${c.clientId}/grants`, { grants: ['cpts-territory-owner'] });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain('Unknown grant(s): cpts-territory-owner');
    const ok = await admin('PUT', `clients/${c.clientId}/grants`, { grants: ['ins-qualification'] });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ grants: ['ins-qualification'] });
    expect((await admin('PUT', 'clients/no-such-client/grants', { grants: [] })).status).toBe(404);
    await gw.core.audit.flush();
    const audit = await admin('GET', `audit?client=${gw.admin.clientId}&_count=1000`);
    const subtypes = JSON.stringify(audit.body);
    expect(subtypes).toContain('client-grants');
    expect(subtypes).toContain('client-deactivate');
  });

  it('gives the same status and body for an unknown client id and a wrong secret', async () => {
    const c = await gw.clientOf('org-oracle', ['system/*.rs']);
    const unknown = await tokenRequest(basic(`gw-${randomBytes(9).toString('base64url')}`, 'nope'), '127.0.0.9');
    const wrong = await tokenRequest(basic(c.clientId, 'nope'), '127.0.0.9');
    expect(unknown.status).toBe(401);
    expect(wrong.status).toBe(unknown.status);
    expect(wrong.body).toEqual(unknown.body);
  });

  it('limits a wrong-secret flood on one client id (429, Retry-After) while another client still gets tokens', async () => {
    const victim = await gw.clientOf('org-flooded', ['system/*.rs']);
    const other = await gw.clientOf('org-bystander', ['system/*.rs']);
    const statuses: number[] = [];
    for (let i = 0; i < 15; i++) {
      statuses.push((await tokenRequest(basic(victim.clientId, `guess-${i}`), '127.0.0.10')).status);
    }
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(401));
    expect(statuses.slice(10)).toEqual(Array(5).fill(429));
    // Locked for a while, even with the right secret and from another address: no more guesses.
    const locked = await tokenRequest(basic(victim.clientId, victim.secret), '127.0.0.11');
    expect(locked.status).toBe(429);
    expect(locked.body.error).toBe('invalid_client');
    expect(Number(locked.headers['retry-after'])).toBeGreaterThan(0);
    // Another client, even from the flooding address, is not affected.
    expect((await tokenRequest(basic(other.clientId, other.secret), '127.0.0.10')).status).toBe(200);
  });

  it('limits a flood of made-up client ids from one address while other addresses still get tokens', async () => {
    const good = await gw.clientOf('org-good', ['system/*.rs']);
    const statuses: number[] = [];
    for (let i = 0; i < 35; i++) {
      statuses.push((await tokenRequest(basic(`made-up-${i}`, 'x'), '127.0.0.20')).status);
    }
    expect(statuses.filter((s) => s === 401)).toHaveLength(30);
    expect(statuses.slice(30)).toEqual(Array(5).fill(429));
    expect((await tokenRequest(basic(good.clientId, good.secret), '127.0.0.20')).status).toBe(429);
    expect((await tokenRequest(basic(good.clientId, good.secret), '127.0.0.21')).status).toBe(200);
  });
});
