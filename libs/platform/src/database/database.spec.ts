import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { embeddedTuning, firstUnreachableAncestor, startEmbeddedPostgres, usableMemory } from './database';

describe('embedded PostgreSQL data directory under a private parent', () => {
  let root: string;

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'gw-private-')); // mode 0700, as mktemp -d makes it
  });

  afterEach(() => {
    chmodSync(root, 0o755);
    rmSync(root, { recursive: true, force: true });
  });

  it('names the first folder another user cannot enter', () => {
    mkdirSync(join(root, 'a', 'b'), { recursive: true });
    chmodSync(root, 0o700);
    const stranger = { uid: 54_321, gid: 54_321 };
    expect(firstUnreachableAncestor(join(root, 'a', 'b', 'postgres'), stranger)).toBe(root);
    chmodSync(root, 0o711);
    expect(firstUnreachableAncestor(join(root, 'a', 'b', 'postgres'), stranger)).toBeUndefined();
    // Folders not created yet are made by the gateway itself (0755): they do not block.
    expect(firstUnreachableAncestor(join(root, 'x', 'y', 'postgres'), stranger)).toBeUndefined();
  });

  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  (asRoot ? it : it.skip)(
    'as root, refuses at once with what to do instead of a bare initdb "Permission denied"',
    async () => {
      chmodSync(root, 0o700);
      const started = Date.now();
      await expect(startEmbeddedPostgres(join(root, 'data'), 1)).rejects.toThrow(
        new RegExp(
          `cannot enter ${root.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(mode 0700\\).*chmod o\\+x.*GW_DATABASE_URL`,
        ),
      );
      expect(Date.now() - started).toBeLessThan(5000);
    },
  );
});

describe('the embedded PostgreSQL tuning', () => {
  const GB = 1024 ** 3;
  const sharedBuffers = (memory: number): string | undefined =>
    embeddedTuning(memory).find((f) => f.startsWith('shared_buffers='));

  it('gives shared buffers a sixth of the memory, between 512 MB and 4 GB', () => {
    expect(sharedBuffers(2 * GB)).toBe('shared_buffers=512MB');
    expect(sharedBuffers(12 * GB)).toBe('shared_buffers=2048MB');
    expect(sharedBuffers(24 * GB)).toBe('shared_buffers=4096MB');
    expect(sharedBuffers(256 * GB)).toBe('shared_buffers=4096MB');
  });

  it("sizes them by a container's memory limit, not the host's memory", () => {
    expect(usableMemory(64 * GB, 3 * GB)).toBe(3 * GB);
    // No limit: Node gives 0, undefined or 2^64 depending on the platform.
    expect(usableMemory(24 * GB, 2 ** 64)).toBe(24 * GB);
    expect(usableMemory(24 * GB, 0)).toBe(24 * GB);
    expect(usableMemory(24 * GB, undefined)).toBe(24 * GB);
    expect(sharedBuffers(usableMemory(64 * GB, 3 * GB))).toBe('shared_buffers=512MB');
  });

  it('is a list of -c flags PostgreSQL takes as they are', () => {
    const flags = embeddedTuning(8 * GB);
    expect(flags.filter((_, i) => i % 2 === 0).every((f) => f === '-c')).toBe(true);
    expect(flags.filter((_, i) => i % 2 === 1)).toEqual([
      'shared_buffers=1365MB',
      'wal_buffers=64MB',
      'max_wal_size=4GB',
      'checkpoint_timeout=15min',
    ]);
  });
});
