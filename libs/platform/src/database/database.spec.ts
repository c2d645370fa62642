import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { firstUnreachableAncestor, startEmbeddedPostgres } from './database';

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
