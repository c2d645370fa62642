import { Pool } from 'pg';
import { createLogger, QueueService } from '@gw/platform';
import { registerHousekeepingJobs } from '@gw/store';
import { createTestDatabase, migrateAll } from '../../../../test/support/database';
import { startRedis } from '../../../../test/support/redis';

type Backend = 'postgres' | 'redis';

async function waitFor<T>(fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) {
      return v;
    }
    if (Date.now() > deadline) {
      throw new Error('timed out');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.each<Backend>(['postgres', 'redis'])('job queue on the %s backend', (backend) => {
  let pool: Pool;
  let databaseUrl: string;
  let redis: { url: string; stop: () => Promise<void> } | undefined;
  const logger = createLogger('silent');

  beforeAll(async () => {
    databaseUrl = await createTestDatabase('q');
    pool = new Pool({ connectionString: databaseUrl });
    await migrateAll(pool);
    if (backend === 'redis') {
      redis = await startRedis();
    }
  });
  afterAll(async () => {
    await pool.end();
    await redis?.stop();
  });

  function newQueue(): QueueService {
    const q = new QueueService({ databaseUrl, redisUrl: redis?.url, logger });
    registerHousekeepingJobs(q, pool);
    return q;
  }

  it('runs the audit purge: deletes rows past retention and keeps recent ones', async () => {
    await pool.query(
      `INSERT INTO audit_event (recorded, client_id, interaction, outcome) VALUES (now() - interval '40 days', 'c', 'read', 200), (now(), 'c', 'read', 200)`,
    );
    const q = newQueue();
    q.startWorkers('housekeeping');
    try {
      await q.enqueue('housekeeping.purge-audit', { retentionDays: 30 }, `purge-${backend}-1`);
      const remaining = await waitFor(async () => {
        const counts = await q.queue('housekeeping').getJobCounts('completed');
        return counts.completed >= 1
          ? Number((await pool.query('SELECT count(*) AS n FROM audit_event')).rows[0].n)
          : undefined;
      });
      expect(remaining).toBe(1);
      const job = await q.queue('housekeeping').getJob(`purge-${backend}-1`);
      expect(job?.returnvalue).toEqual({ status: 'success', detail: { auditDeleted: 1, assertionIdsDeleted: 0 } });
    } finally {
      await q.close();
    }
  });

  it('does not run a job twice when it is enqueued again with the same id', async () => {
    const q = newQueue();
    const total = async (): Promise<number> => {
      const c = await q.queue('housekeeping').getJobCounts('waiting', 'active', 'completed', 'delayed');
      return c.waiting + c.active + c.completed + c.delayed;
    };
    try {
      const before = await total();
      await q.enqueue('housekeeping.purge-audit', { retentionDays: 30 }, `dup-${backend}`);
      await q.enqueue('housekeeping.purge-audit', { retentionDays: 30 }, `dup-${backend}`);
      expect(await total()).toBe(before + 1);
    } finally {
      await q.close();
    }
  });

  it('keeps a job enqueued while no worker runs, and a later worker process picks it up', async () => {
    const producer = newQueue();
    await producer.enqueue('housekeeping.purge-audit', { retentionDays: 1 }, `later-${backend}`);
    await producer.close();
    const consumer = newQueue();
    consumer.startWorkers('housekeeping');
    try {
      const state = await waitFor(async () => {
        const s = await (await consumer.queue('housekeeping').getJob(`later-${backend}`))?.getState();
        return s === 'completed' ? s : undefined;
      });
      expect(state).toBe('completed');
    } finally {
      await consumer.close();
    }
  });
});

describe('job catalogue', () => {
  it('refuses to start when a job has no handler, and refuses a second handler', () => {
    const q = new QueueService({ databaseUrl: 'postgres://unused', logger: createLogger('silent') });
    expect(() => q.verifyHandlers()).toThrow(/No handler for job\(s\): housekeeping.purge-audit/);
    const handler = async () => ({ status: 'success' as const });
    q.register('housekeeping.purge-audit', handler);
    expect(() => q.register('housekeeping.purge-audit', handler)).toThrow(/two handlers/);
    expect(() => q.startWorkers('nope')).toThrow(/Unknown queue/);
  });
});
