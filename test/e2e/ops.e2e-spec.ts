import { rmSync } from 'node:fs';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { PgProcess } from '../support/pg-process';
import { freePort } from '../support/ports';
import { startRedis } from '../support/redis';

describe('operations endpoints', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway();
  });
  afterAll(async () => gw.close());

  it('answers liveness and readiness without a token', async () => {
    expect((await fetch(`${gw.baseUrl}/health/live`)).status).toBe(200);
    const ready = await fetch(`${gw.baseUrl}/health/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({
      status: 'ok',
      checks: { database: 'ok', queue: 'ok' },
      queueBackend: 'postgres',
    });
  });

  it('exposes Prometheus metrics: HTTP latency by route and status, queue depth, database pool', async () => {
    const token = await gw.token();
    await fetch(`${gw.fhirUrl}/Patient/does-not-exist`, { headers: { authorization: `Bearer ${token}` } });
    const text = await (await fetch(`${gw.baseUrl}/metrics`)).text();
    expect(text).toMatch(/http_request_duration_seconds_bucket\{[^}]*route="\/fhir\/:type\/:id"[^}]*status_code="404"/);
    expect(text).toMatch(/gateway_queue_jobs\{queue="housekeeping",state="waiting"\} \d+/);
    expect(text).toMatch(/gateway_db_pool_connections\{state="total"\} \d+/);
  });

  it('echoes a caller-provided X-Request-Id and logs the request by path only', async () => {
    const token = await gw.token();
    const res = await fetch(`${gw.fhirUrl}/Patient?identifier=urn:oid:1.2.250.1.213.1.4.10|123456789012345`, {
      headers: { authorization: `Bearer ${token}`, 'x-request-id': 'trace-abc-123' },
    });
    expect(res.headers.get('x-request-id')).toBe('trace-abc-123');
    await new Promise((r) => setTimeout(r, 50));
    const line = gw.logs.find((l) => l.includes('trace-abc-123'));
    expect(line).toBeDefined();
    expect(line).toContain('"path":"/fhir/Patient"');
    expect(gw.logs.join('\n')).not.toContain('123456789012345');
  });

  it('returns 503 from readiness when the database is gone', async () => {
    const other = await startTestGateway();
    await other.core.db.pool.end();
    const ready = await fetch(`${other.baseUrl}/health/ready`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { checks: Record<string, string> }).checks.database).toBe('down');
    await other.closeMllp();
    await other.app.close();
    await other.core.exchange.stop(); // its outbox relay would keep retrying LISTEN after the test
    await other.core.queue.close();
    rmSync(other.core.config.GW_DATA_DIR, { recursive: true, force: true });
  });
});

describe('the gateway on the Redis queue backend', () => {
  it('is ready with GW_REDIS_URL and reports the redis backend', async () => {
    const redis = await startRedis();
    const gw = await startTestGateway({ GW_REDIS_URL: redis.url });
    try {
      const body = (await (await fetch(`${gw.baseUrl}/health/ready`)).json()) as {
        queueBackend: string;
        status: string;
      };
      expect(body).toMatchObject({ status: 'ok', queueBackend: 'redis' });
    } finally {
      await gw.close();
      await redis.stop();
    }
  });
});

describe('resilience to the database', () => {
  it('keeps running while its PostgreSQL restarts, then serves again', async () => {
    const pg = new PgProcess(await freePort());
    await pg.start();
    const gw = await startTestGateway({ GW_DATABASE_URL: pg.url });
    try {
      const token = await gw.token();
      await pg.stop();
      expect((await fetch(`${gw.baseUrl}/health/ready`)).status).toBe(503);
      const down = await fetch(`${gw.fhirUrl}/Patient`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' },
        body: JSON.stringify({ resourceType: 'Patient' }),
      });
      // The token's client status cannot be read (the guard checks it on every request): 503, retry later.
      expect(down.status).toBe(503);
      expect(JSON.stringify(await down.json())).not.toMatch(/ECONNREFUSED|postgres/i);
      await pg.start();
      let status = 0;
      for (let i = 0; i < 100 && status !== 200; i++) {
        await new Promise((r) => setTimeout(r, 200));
        status = (await fetch(`${gw.baseUrl}/health/ready`)).status;
      }
      expect(status).toBe(200);
      const created = await fetch(`${gw.fhirUrl}/Patient`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' },
        body: JSON.stringify({ resourceType: 'Patient', name: [{ family: 'Retour' }] }),
      });
      expect(created.status).toBe(201);
    } finally {
      await gw.close();
      await pg.dispose();
    }
  }, 120_000);
});
