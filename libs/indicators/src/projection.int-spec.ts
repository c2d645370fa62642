import { Pool } from 'pg';
import { createTestDatabase, migrateAll } from '../../../test/support/database';

/**
 * Each clinical fact carries the person key of its patient record (migration 6): kept whichever is
 * written first, and when the record's identity changes (INS qualified, link added or removed).
 */
describe('indicator projection: the person of each fact (PostgreSQL)', () => {
  let pool: Pool;

  beforeAll(async () => {
    pool = new Pool({ connectionString: await createTestDatabase('proj') });
    await migrateAll(pool);
  });
  afterAll(async () => pool.end());

  const fact = (id: string, patient: string) =>
    pool.query(
      `INSERT INTO ind_fact (resource_type, id, patient, system, code, at, status) VALUES ('Observation', $1, $2, 'http://loinc.org', '4548-4', now(), 'final')`,
      [id, patient],
    );
  const patient = (id: string, ins: string | null, link: string | null = null) =>
    pool.query(`INSERT INTO ind_patient (id, ins, link, active, deceased) VALUES ($1, $2, $3, true, false)`, [
      id,
      ins,
      link,
    ]);
  const rewrite = async (id: string, ins: string | null, link: string | null = null) => {
    // What the projection trigger does on every write of the Patient: delete, then insert.
    await pool.query('DELETE FROM ind_patient WHERE id = $1', [id]);
    await patient(id, ins, link);
  };
  const personOf = async (factId: string) =>
    (await pool.query<{ person: string }>('SELECT person FROM ind_fact WHERE id = $1', [factId])).rows[0]?.person;

  it('a fact written before its patient record gets the record key, corrected when the record arrives', async () => {
    await fact('o1', 'p1');
    expect(await personOf('o1')).toBe('pat:p1');
    await patient('p1', '1840512345678');
    expect(await personOf('o1')).toBe('ins:1840512345678');
  });

  it('a fact written after its record takes the record key; identity changes follow', async () => {
    await patient('p2', null);
    await fact('o2', 'p2');
    expect(await personOf('o2')).toBe('pat:p2');
    await rewrite('p2', '2850612345678'); // INS qualified later
    expect(await personOf('o2')).toBe('ins:2850612345678');
    await rewrite('p2', null, 'p0'); // qualification withdrawn, linked to an older record
    expect(await personOf('o2')).toBe('pat:p0');
    await rewrite('p2', null, null);
    expect(await personOf('o2')).toBe('pat:p2');
  });

  it('two records with the same qualified INS make one person for their facts', async () => {
    await patient('p3', '1700112345678');
    await patient('p4', '1700112345678');
    await fact('o3', 'p3');
    await fact('o4', 'p4');
    expect(new Set([await personOf('o3'), await personOf('o4')])).toEqual(new Set(['ins:1700112345678']));
  });
});
