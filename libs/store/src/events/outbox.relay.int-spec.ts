import { Pool } from 'pg';
import { QueueService, createLogger } from '@gw/platform';
import { createTestDatabase, migrateAll } from '../../../../test/support/database';
import { OutboxRelay } from './outbox.relay';
import type { OutboxEvent } from './outbox.relay';

describe('OutboxRelay (PostgreSQL)', () => {
  let url: string;
  let pool: Pool;
  let queue: QueueService;
  let relay: OutboxRelay;
  let checkouts = 0;

  beforeAll(async () => {
    url = await createTestDatabase('relay');
    pool = new Pool({ connectionString: url, max: 4 });
    await migrateAll(pool);
    pool.on('acquire', () => checkouts++);
    const logger = createLogger('silent');
    queue = new QueueService({ databaseUrl: url, logger });
    // As the exchange engine registers it: discharge events become routing jobs.
    const ids = (events: OutboxEvent[]): string[] =>
      events.filter((e) => e.type === 'encounter.discharged').map((e) => e.id);
    relay = new OutboxRelay(
      pool,
      url,
      {
        published: (events) =>
          queue.enqueueMany(
            'exchange.route-discharge',
            ids(events).map((id) => ({ payload: { eventId: id }, jobId: `discharge-${id}` })),
          ),
        withdrawn: (events) =>
          queue.enqueueMany(
            'exchange.withdraw-discharge',
            ids(events).map((id) => ({ payload: { eventId: id }, jobId: `withdraw-${id}` })),
          ),
      },
      logger,
    );
    await relay.start();
  });
  afterAll(async () => {
    await relay.stop();
    await queue.close();
    await pool.end();
  });

  it('stays quiet when there is nothing to dispatch (no self-wake from its own UPDATE)', async () => {
    await new Promise((r) => setTimeout(r, 500));
    const before = checkouts;
    await new Promise((r) => setTimeout(r, 3000));
    // A relay woken by its own statement-level NOTIFY runs hundreds of passes a second.
    expect(checkouts - before).toBeLessThanOrEqual(2);
  });

  it('hands a committed discharge event to the queue within a second (NOTIFY, not the safety poll)', async () => {
    const started = Date.now();
    const ev = await pool.query<{ id: string }>(
      `INSERT INTO domain_event (type, resource, version_id) VALUES ('encounter.discharged', 'Encounter/r1', 1) RETURNING id::text`,
    );
    const jobId = `discharge-${ev.rows[0]!.id}`;
    let job;
    while (!job && Date.now() - started < 5000) {
      job = await queue.queue('exchange-route').getJob(jobId);
      if (!job) {
        await new Promise((r) => setTimeout(r, 25));
      }
    }
    expect(job?.name).toBe('exchange.route-discharge');
    expect(Date.now() - started).toBeLessThan(1000);
    // The job is enqueued inside the relay's transaction, which then marks the event and commits.
    let dispatched = false;
    while (!dispatched && Date.now() - started < 5000) {
      const row = await pool.query<{ dispatched: boolean }>(
        'SELECT dispatched_at IS NOT NULL AS dispatched FROM domain_event WHERE id = $1',
        [ev.rows[0]!.id],
      );
      dispatched = row.rows[0]!.dispatched;
    }
    expect(dispatched).toBe(true);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('hands an event over again within a second when a pass failed, without waiting for the 30 s safety poll', async () => {
    // A second relay on its own database, whose handler fails once (a deadlock, a queue hiccup).
    const dbUrl = await createTestDatabase('relayfail');
    const db = new Pool({ connectionString: dbUrl, max: 4 });
    await migrateAll(db);
    const handed: string[] = [];
    let failures = 0;
    const flaky = new OutboxRelay(
      db,
      dbUrl,
      {
        published: async (events) => {
          if (failures++ === 0) {
            throw new Error('deadlock detected');
          }
          handed.push(...events.map((e) => e.id));
        },
        withdrawn: async () => undefined,
      },
      createLogger('silent'),
    );
    await flaky.start();
    try {
      const ev = await db.query<{ id: string }>(
        `INSERT INTO domain_event (type, resource, version_id) VALUES ('encounter.discharged', 'Encounter/f1', 1) RETURNING id::text`,
      );
      const started = Date.now();
      while (!handed.includes(ev.rows[0]!.id) && Date.now() - started < 10_000) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(handed).toContain(ev.rows[0]!.id);
      expect(failures).toBeGreaterThanOrEqual(2);
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      await flaky.stop();
      await db.end();
    }
  });

  it('picks up an event whose row was locked when its NOTIFY came, within a second of the unlock', async () => {
    const dbUrl = await createTestDatabase('relaylock');
    const db = new Pool({ connectionString: dbUrl, max: 4 });
    await migrateAll(db);
    const ev = await db.query<{ id: string }>(
      `INSERT INTO domain_event (type, resource, version_id) VALUES ('encounter.discharged', 'Encounter/l1', 1) RETURNING id::text`,
    );
    // Another transaction holds the row (as a write still in flight on it would).
    const holder = await db.connect();
    await holder.query('BEGIN');
    await holder.query('SELECT 1 FROM domain_event WHERE id = $1 FOR UPDATE', [ev.rows[0]!.id]);
    const handed: string[] = [];
    const relay2 = new OutboxRelay(
      db,
      dbUrl,
      { published: async (events) => void handed.push(...events.map((e) => e.id)), withdrawn: async () => undefined },
      createLogger('silent'),
    );
    await relay2.start();
    try {
      await new Promise((r) => setTimeout(r, 300));
      await db.query("NOTIFY gw_domain_event, ''");
      await new Promise((r) => setTimeout(r, 300));
      expect(handed).toEqual([]); // skipped while locked
      await holder.query('COMMIT');
      const unlocked = Date.now();
      while (!handed.includes(ev.rows[0]!.id) && Date.now() - unlocked < 10_000) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(handed).toContain(ev.rows[0]!.id);
      expect(Date.now() - unlocked).toBeLessThan(3000);
    } finally {
      holder.release();
      await relay2.stop();
      await db.end();
    }
  });
});
