import { chmodSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'pg';
import { ClientRegistry, createLogger, QueueService } from '@gw/platform';
import { createTestDatabase, migrateAll } from '../support/database';
import { freePort } from '../support/ports';
import { GATEWAY_CLI, GATEWAY_MAIN, WORKER_MAIN, killAll, removeDataDirs, run } from '../support/process';

afterAll(killAll);

async function token(base: string, id: string, secret: string): Promise<string> {
  const res = await fetch(`${base}/oauth2/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: 'grant_type=client_credentials',
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { access_token: string }).access_token;
}

describe('the gateway as a new user runs it (built entry points, embedded PostgreSQL)', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'gw-embedded-'));
  chmodSync(dataDir, 0o755);
  let env: Record<string, string>;
  let base: string;

  afterAll(async () => {
    await killAll();
    await removeDataDirs([dataDir]);
  });

  beforeAll(async () => {
    const port = await freePort();
    env = {
      GW_DATA_DIR: dataDir,
      GW_HTTP_PORT: String(port),
      GW_EMBEDDED_PG_PORT: String(await freePort()),
      GW_LOG_LEVEL: 'info',
    };
    base = `http://127.0.0.1:${port}`;
  });

  it('starts with no external service, prints admin credentials once, keeps data across restarts and a SIGKILL', async () => {
    const first = run(GATEWAY_MAIN, env);
    await first.waitFor(/client_secret:/);
    const creds = JSON.parse(readFileSync(join(dataDir, 'admin-client.json'), 'utf8')) as {
      client_id: string;
      client_secret: string;
    };
    expect(first.out()).toContain(creds.client_secret);
    const t = await token(base, creds.client_id, creds.client_secret);
    const created = await fetch(`${base}/fhir/Patient`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t}`, 'content-type': 'application/fhir+json' },
      body: JSON.stringify({ resourceType: 'Patient', name: [{ family: 'Persistant' }] }),
    });
    expect(created.status).toBe(201);
    const id = ((await created.json()) as { id: string }).id;

    // The CLI attaches to the running gateway's database rather than starting another one.
    const cli = run(GATEWAY_CLI, env, [
      'client:create',
      '--org-name',
      'MSP des Lilas',
      '--finess',
      '750712184',
      '--name',
      'Logiciel MSP',
      '--scopes',
      'system/Patient.rs',
    ]);
    expect(await cli.exited).toBe(0);
    const registered = JSON.parse(cli.out().slice(cli.out().indexOf('{'))) as {
      client_id: string;
      client_secret: string;
      organization: string;
    };
    expect(registered.organization).toMatch(/^Organization\//);
    const clientToken = await token(base, registered.client_id, registered.client_secret);
    const visible = await fetch(`${base}/fhir/Patient?_total=accurate`, {
      headers: { authorization: `Bearer ${clientToken}` },
    });
    expect(visible.status).toBe(200);
    expect(((await visible.json()) as { total: number }).total).toBe(0); // the admin's patient belongs to another organization

    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);

    const second = run(GATEWAY_MAIN, env);
    await second.waitFor(/gateway ready/);
    expect(second.out()).not.toContain('client_secret');
    const t2 = await token(base, creds.client_id, creds.client_secret);
    expect((await fetch(`${base}/fhir/Patient/${id}`, { headers: { authorization: `Bearer ${t2}` } })).status).toBe(
      200,
    );

    second.child.kill('SIGKILL');
    await second.exited;
    const third = run(GATEWAY_MAIN, env);
    await third.waitFor(/gateway ready/);
    const t3 = await token(base, creds.client_id, creds.client_secret);
    expect((await fetch(`${base}/fhir/Patient/${id}`, { headers: { authorization: `Bearer ${t3}` } })).status).toBe(
      200,
    );
    third.child.kill('SIGTERM');
    expect(await third.exited).toBe(0);
    expect(existsSync(join(dataDir, 'gateway.pid'))).toBe(false);
  }, 180_000);

  it('fails fast on invalid configuration, naming the variable but not its value', async () => {
    const bad = run(GATEWAY_MAIN, { ...env, GW_HTTP_PORT: 'not-a-port-s3cret' });
    expect(await bad.exited).toBe(78);
    expect(bad.out()).toContain('GW_HTTP_PORT');
    expect(bad.out()).not.toContain('s3cret');
  });
});

describe('apps/worker out of process', () => {
  it('runs the housekeeping job enqueued by another process', async () => {
    const databaseUrl = await createTestDatabase('w');
    const pool = new Pool({ connectionString: databaseUrl });
    await migrateAll(pool);
    await pool.query(
      `INSERT INTO audit_event (recorded, client_id, interaction, outcome) VALUES (now() - interval '400 days', 'c', 'read', 200)`,
    );
    const worker = run(WORKER_MAIN, {
      GW_DATABASE_URL: databaseUrl,
      GW_WORKER_QUEUES: 'housekeeping',
      GW_LOG_LEVEL: 'info',
    });
    const producer = new QueueService({ databaseUrl, logger: createLogger('silent') });
    try {
      await worker.waitFor(/worker ready/);
      await producer.enqueue('housekeeping.purge-audit', { retentionDays: 365 }, 'worker-process-1');
      await worker.waitFor(/job done/, 30_000);
      expect(Number((await pool.query('SELECT count(*) AS n FROM audit_event')).rows[0].n)).toBe(0);
    } finally {
      worker.child.kill('SIGTERM');
      await worker.exited;
      await producer.close();
      await pool.end();
    }
  }, 60_000);

  it('refuses to start without GW_DATABASE_URL', async () => {
    const worker = run(WORKER_MAIN, {});
    expect(await worker.exited).toBe(78);
    expect(worker.out()).toContain('GW_DATABASE_URL');
  });
});

describe('client:create against an external database', () => {
  it('registers a client whose secret verifies', async () => {
    const databaseUrl = await createTestDatabase('cli');
    const cli = run(GATEWAY_CLI, { GW_DATABASE_URL: databaseUrl }, [
      'client:create',
      '--org',
      'Organization/cpts-sud',
      '--name',
      'CPTS Sud',
      '--scopes',
      'system/Measure.rs system/MeasureReport.rs',
    ]);
    expect(await cli.exited).toBe(0);
    const out = JSON.parse(cli.out().slice(cli.out().indexOf('{'))) as {
      client_id: string;
      client_secret: string;
      scopes: string;
    };
    expect(out.scopes).toBe('system/Measure.rs system/MeasureReport.rs');
    const pool = new Pool({ connectionString: databaseUrl });
    try {
      expect(await new ClientRegistry(pool).verifySecret(out.client_id, out.client_secret)).toMatchObject({
        organization: 'Organization/cpts-sud',
      });
      expect(await new ClientRegistry(pool).verifySecret(out.client_id, 'wrong')).toBeUndefined();
    } finally {
      await pool.end();
    }
  });

  it('rejects an invalid scope with a clear message', async () => {
    const databaseUrl = await createTestDatabase('cli');
    const cli = run(GATEWAY_CLI, { GW_DATABASE_URL: databaseUrl }, [
      'client:create',
      '--org',
      'Organization/x',
      '--name',
      'X',
      '--scopes',
      'patient/everything',
    ]);
    expect(await cli.exited).toBe(1);
    expect(cli.out()).toContain('Invalid scope(s): patient/everything');
  });
});
