import { ClientStatusCache } from './client-status.cache';
import type { ClientStatus } from './client.registry';

const ACTIVE: ClientStatus = { active: true, admin: false, organization: 'Organization/a', grants: [] };

/** A registry whose database can be taken down; the clock is the test's. */
function setup(): {
  cache: ClientStatusCache;
  registry: { down: boolean; status: ClientStatus };
  clock: { t: number };
} {
  const registry = { down: false, status: ACTIVE };
  const clock = { t: 0 };
  const cache = new ClientStatusCache(
    {
      statusOf: async () => {
        if (registry.down) {
          throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
        }
        return registry.status;
      },
    },
    { maxAgeMs: 2000, now: () => clock.t },
  );
  return { cache, registry, clock };
}

describe('ClientStatusCache during a database outage', () => {
  it('keeps the last known status of a client when the registry cannot be read', async () => {
    const { cache, registry, clock } = setup();
    expect(await cache.get('c1')).toEqual(ACTIVE);
    registry.down = true;
    clock.t = 10_000; // expired: a read is attempted, and fails
    expect(await cache.get('c1')).toEqual(ACTIVE);
  });

  it('fails for a client never seen, or whose status was invalidated (a change was announced)', async () => {
    const { cache, registry, clock } = setup();
    expect(await cache.get('c1')).toEqual(ACTIVE);
    registry.down = true;
    clock.t = 10_000;
    await expect(cache.get('c2')).rejects.toThrow('ECONNREFUSED');
    cache.invalidate('c1');
    await expect(cache.get('c1')).rejects.toThrow('ECONNREFUSED');
  });

  it('reads the current status again once the registry is back', async () => {
    const { cache, registry, clock } = setup();
    await cache.get('c1');
    registry.down = true;
    clock.t = 10_000;
    await cache.get('c1');
    registry.down = false;
    registry.status = { ...ACTIVE, active: false };
    clock.t = 20_000;
    expect((await cache.get('c1'))?.active).toBe(false);
  });
});
