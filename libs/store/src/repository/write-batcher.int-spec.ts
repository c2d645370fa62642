import { Pool } from 'pg';
import { createTestDatabase, migrateAll } from '../../../../test/support/database';
import type { NewVersion } from './persist';
import { WriteBatcher } from './write-batcher';

function version(id: string, lastUpdated = new Date().toISOString()): NewVersion {
  return {
    resourceType: 'Patient',
    id,
    versionId: 1,
    lastUpdated,
    deleted: false,
    ownerOrg: 'Organization/o',
    json: JSON.stringify({ resourceType: 'Patient', id }),
    rows: {
      tokens: [{ code: 'identifier', system: 'urn:x', value: id }],
      strings: [],
      dates: [],
      references: [],
      numbers: [],
    },
    replaces: false,
    clientId: `client-${id}`,
    requestId: `req-${id}`,
  };
}

describe('WriteBatcher (group commit of single creates)', () => {
  let pool: Pool;
  beforeAll(async () => {
    pool = new Pool({ connectionString: await createTestDatabase('wb'), max: 8 });
    await migrateAll(pool);
  });
  afterAll(async () => pool.end());

  it('writes concurrent creates in fewer statements, each with its own history author and index rows', async () => {
    const queries: string[] = [];
    const spy = jest.spyOn(pool, 'query');
    const batcher = new WriteBatcher(pool);
    await Promise.all(Array.from({ length: 60 }, (_, i) => batcher.write(version(`p${i}`))));
    queries.push(...spy.mock.calls.map((c) => String(c[0])));
    spy.mockRestore();
    expect(queries.length).toBeLessThan(60);
    const rows = await pool.query(
      `SELECT count(*)::int AS n, count(DISTINCT client_id)::int AS authors FROM resource_history`,
    );
    expect(rows.rows[0]).toEqual({ n: 60, authors: 60 });
    const idx = await pool.query(`SELECT count(*)::int AS n FROM sp_token WHERE code = 'identifier'`);
    expect(idx.rows[0].n).toBe(60);
  });

  it('fails only the bad version of a batch; its neighbours are written', async () => {
    const batcher = new WriteBatcher(pool);
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) =>
        batcher.write(i === 7 ? version(`bad${i}`, 'not-a-timestamp') : version(`ok${i}`)),
      ),
    );
    expect(results.filter((r) => r.status === 'rejected')).toHaveLength(1);
    expect((results[7] as PromiseRejectedResult).reason).toBeDefined();
    const written = await pool.query(`SELECT id FROM resource WHERE id LIKE 'ok%' OR id LIKE 'bad%' ORDER BY id`);
    expect(written.rows.map((r) => r.id)).toHaveLength(11);
    expect(written.rows.map((r) => r.id)).not.toContain('bad7');
  });
});
