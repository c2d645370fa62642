import { Pool } from 'pg';
import { createTestDatabase, migrateAll } from '../../../../test/support/database';
import { ClientRegistry, secretKdf } from './client.registry';
import { ClientStatusCache } from './client-status.cache';

describe('ClientRegistry and ClientStatusCache (PostgreSQL)', () => {
  let url: string;
  let pool: Pool;
  let registry: ClientRegistry;

  beforeAll(async () => {
    url = await createTestDatabase('clients');
    pool = new Pool({ connectionString: url, max: 4 });
    await migrateAll(pool);
    registry = new ClientRegistry(pool, { knownGrants: ['ins-qualification'] });
  });
  afterAll(async () => pool.end());
  afterEach(() => jest.restoreAllMocks());

  it('derives a key exactly once per verification, whether the client exists, has a secret, is active or not', async () => {
    const withSecret = await registry.create({
      name: 's',
      organization: 'Organization/o1',
      scopes: ['system/*.rs'],
      withSecret: true,
    });
    const withJwks = await registry.create({
      name: 'j',
      organization: 'Organization/o1',
      scopes: ['system/*.rs'],
      jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y' }] },
    });
    const inactive = await registry.create({
      name: 'i',
      organization: 'Organization/o1',
      scopes: ['system/*.rs'],
      withSecret: true,
    });
    await registry.setActive(inactive.client.id, false);
    await registry.verifySecret('warm-up', 'x'); // the dummy hash is made once per process
    const derive = jest.spyOn(secretKdf, 'derive');
    const cases: [string, string][] = [
      ['no-such-client', 'x'],
      [withSecret.client.id, 'wrong'],
      [withJwks.client.id, 'x'],
      [inactive.client.id, inactive.secret as string],
    ];
    for (const [id, secret] of cases) {
      derive.mockClear();
      expect(await registry.verifySecret(id, secret)).toBeUndefined();
      expect(derive).toHaveBeenCalledTimes(1);
    }
    derive.mockClear();
    expect(await registry.verifySecret(withSecret.client.id, withSecret.secret as string)).toBeDefined();
    expect(derive).toHaveBeenCalledTimes(1);
  });

  it('refuses unknown grant names and keeps the known ones', async () => {
    const { client } = await registry.create({
      name: 'g',
      organization: 'Organization/o2',
      scopes: ['system/*.rs'],
      withSecret: true,
    });
    await expect(registry.setGrants(client.id, ['root'])).rejects.toThrow('Unknown grant(s): root');
    expect((await registry.setGrants(client.id, ['ins-qualification', 'ins-qualification'])).grants).toEqual([
      'ins-qualification',
    ]);
  });

  it('never deactivates the last active admin, even when two admins deactivate each other at once', async () => {
    await pool.query('UPDATE client SET active = false WHERE admin');
    const a = await registry.create({
      name: 'a',
      organization: 'Organization/op',
      scopes: ['system/*.cruds'],
      admin: true,
      withSecret: true,
    });
    const b = await registry.create({
      name: 'b',
      organization: 'Organization/op',
      scopes: ['system/*.cruds'],
      admin: true,
      withSecret: true,
    });
    const results = await Promise.allSettled([
      registry.setActive(a.client.id, false),
      registry.setActive(b.client.id, false),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(String((results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason)).toContain(
      'last active admin client',
    );
    expect(await registry.hasAdmin()).toBe(true);
  });

  it('sees a change made through another connection at once (NOTIFY), long before its entries expire', async () => {
    const { client } = await registry.create({
      name: 'c',
      organization: 'Organization/o3',
      scopes: ['system/*.rs'],
      withSecret: true,
    });
    const reads = jest.spyOn(registry, 'statusOf');
    const cache = new ClientStatusCache(registry, { databaseUrl: url, maxAgeMs: 3_600_000 });
    try {
      expect(await cache.get(client.id)).toMatchObject({ active: true, grants: [] });
      await new Promise((r) => setTimeout(r, 300)); // LISTEN is up
      expect(await cache.get(client.id)).toMatchObject({ active: true });
      const other = new Pool({ connectionString: url, max: 1 });
      await new ClientRegistry(other, { knownGrants: ['ins-qualification'] }).setGrants(client.id, [
        'ins-qualification',
      ]);
      await other.query('UPDATE client SET active = false WHERE id = $1', [client.id]);
      await other.end();
      const start = Date.now();
      while ((await cache.get(client.id))?.active !== false && Date.now() - start < 2000) {
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(await cache.get(client.id)).toMatchObject({ active: false, grants: ['ins-qualification'] });
      expect(Date.now() - start).toBeLessThan(1000);
      // Between changes, a cached status costs no read.
      reads.mockClear();
      for (let i = 0; i < 100; i++) {
        await cache.get(client.id);
      }
      expect(reads).not.toHaveBeenCalled();
    } finally {
      await cache.close();
    }
  });
});
