import { randomUUID } from 'node:crypto';
import { Pool } from 'pg';
import { createTestDatabase, migrateAll } from '../../../../test/support/database';
import { DeliveryStore } from './delivery.store';

describe('DeliveryStore outcome (PostgreSQL)', () => {
  let pool: Pool;
  let store: DeliveryStore;
  let eventId: string;

  beforeAll(async () => {
    pool = new Pool({ connectionString: await createTestDatabase('dlv') });
    await migrateAll(pool);
    store = new DeliveryStore(pool);
    const ev = await pool.query<{ id: string }>(
      `INSERT INTO domain_event (type, resource, version_id) VALUES ('encounter.discharged', 'Encounter/e1', 1) RETURNING id::text`,
    );
    eventId = ev.rows[0]!.id;
  });
  afterAll(async () => pool.end());

  async function pending(destination: string): Promise<string> {
    const id = randomUUID();
    await store.insert(pool, [
      {
        id,
        eventId,
        channel: 'mssante',
        destination,
        recipient: null,
        communication: null,
        task: null,
        status: 'pending',
      },
    ]);
    return id;
  }

  it('a "sent" recorded after the MDN keeps the MDN outcome and its reason, and still stamps sent_at', async () => {
    const processed = await pending('a@x.mssante.fr');
    await store.setStatus(pool, processed, 'processed', { acknowledged: true, error: null });
    await store.setStatus(pool, processed, 'sent', { remoteId: '<m1@gw>', error: null, sent: true });
    expect(await store.get(processed)).toMatchObject({
      status: 'processed',
      remoteId: '<m1@gw>',
      sentAt: expect.any(String),
      acknowledgedAt: expect.any(String),
    });

    const failed = await pending('b@x.mssante.fr');
    await store.setStatus(pool, failed, 'failed', { acknowledged: true, error: 'Accusé de réception : deleted' });
    await store.setStatus(pool, failed, 'sent', { error: null, sent: true });
    expect(await store.get(failed)).toMatchObject({ status: 'failed', lastError: 'Accusé de réception : deleted' });
  });

  it('other transitions apply as asked (pending → sent → processed, pending → dead with reason)', async () => {
    const id = await pending('c@x.mssante.fr');
    await store.setStatus(pool, id, 'sent', { error: null, sent: true });
    expect((await store.get(id))?.status).toBe('sent');
    await store.setStatus(pool, id, 'processed', { acknowledged: true, error: null });
    expect((await store.get(id))?.status).toBe('processed');

    const dead = await pending('d@x.mssante.fr');
    await store.setStatus(pool, dead, 'dead', { error: '550 mailbox unknown' });
    expect(await store.get(dead)).toMatchObject({ status: 'dead', lastError: '550 mailbox unknown', sentAt: null });
  });

  it('one attempt at a time holds a pending delivery; an outcome or a release ends the lease, an expired lease is taken over', async () => {
    const id = await pending('e@x.mssante.fr');
    expect(await store.claim(id, 60_000)).toBe(true);
    expect(await store.claim(id, 60_000)).toBe(false); // a duplicate job while the first is sending
    await store.release(id); // the first attempt failed and will be retried
    expect(await store.claim(id, 60_000)).toBe(true);
    await store.setStatus(pool, id, 'sent', { error: null, sent: true });
    expect(await store.claim(id, 60_000)).toBe(false); // no longer pending

    const stalled = await pending('f@x.mssante.fr');
    expect(await store.claim(stalled, 50)).toBe(true); // its worker dies mid-send
    await new Promise((r) => setTimeout(r, 120));
    expect(await store.claim(stalled, 60_000)).toBe(true);
  });
});
