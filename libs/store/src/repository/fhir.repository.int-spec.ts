import { Pool } from 'pg';
import type { Organization, Patient } from '@medplum/fhirtypes';
import { SearchParamRegistry, loadFhirDefinitions, parseSearchRequest } from '@gw/fhir';
import { createTestDatabase, migrateAll } from '../../../../test/support/database';
import { OrganizationAccessPolicy } from './access.policy';
import type { Principal } from './access.policy';
import { FhirRepository } from './fhir.repository';

const mspA: Principal = { clientId: 'a', organization: 'Organization/msp-a', admin: false, scopes: ['system/*.cruds'] };
const mspB: Principal = { clientId: 'b', organization: 'Organization/msp-b', admin: false, scopes: ['system/*.cruds'] };

/** The repository against a real PostgreSQL, below HTTP: versions, policy, locks, the system read side. */
describe('FhirRepository (PostgreSQL)', () => {
  let pool: Pool;
  let repo: FhirRepository;

  beforeAll(async () => {
    pool = new Pool({ connectionString: await createTestDatabase('repo'), max: 8 });
    await migrateAll(pool);
    loadFhirDefinitions();
    repo = new FhirRepository(pool, new SearchParamRegistry(), new OrganizationAccessPolicy());
  });
  afterAll(async () => pool.end());

  const patient = (family: string): Patient => ({ resourceType: 'Patient', name: [{ family }] });

  it('versions every write and keeps a patient of one organization from another', async () => {
    const created = await repo.create(patient('Versions'), { principal: mspA });
    expect(created.versionId).toBe(1);
    const updated = await repo.update(
      'Patient',
      created.id,
      { ...patient('Versions2'), id: created.id },
      { principal: mspA },
    );
    expect(updated.stored.versionId).toBe(2);
    await expect(repo.read(mspB, 'Patient', created.id)).rejects.toMatchObject({ category: 'not-found' });
    const history = await repo.history(mspA, { type: 'Patient', id: created.id, count: 10, offset: 0 });
    expect(history.total).toBe(2);
    expect(history.versions.map((v) => v.versionId)).toEqual([2, 1]);
  });

  it('checks a Binary the writer encoded itself on a stand-in of its data, every other element as usual', async () => {
    const ctx = { principal: mspA };
    const data = Buffer.from('<ClinicalDocument/>').toString('base64');
    const v = repo.prepareCreate({ resourceType: 'Binary', contentType: 'text/xml', data }, ctx, undefined, {
      encodedData: true,
    });
    // What is stored is the caller's data, not the stand-in.
    expect((JSON.parse(v.json as string) as { data: string }).data).toBe(data);
    // The data is not read: even base64 that is not valid passes (the caller vouches for it)…
    expect(() =>
      repo.prepareCreate({ resourceType: 'Binary', contentType: 'text/xml', data: '*not base64*' }, ctx, undefined, {
        encodedData: true,
      }),
    ).not.toThrow();
    // …while any other element is still checked, and the same Binary is refused without the option.
    expect(() =>
      repo.prepareCreate({ resourceType: 'Binary', contentType: 'text/xml', data, bogus: 1 } as never, ctx, undefined, {
        encodedData: true,
      }),
    ).toThrow(/bogus/);
    expect(() =>
      repo.prepareCreate({ resourceType: 'Binary', contentType: 'text/xml', data: '*not base64*' }, ctx),
    ).toThrow();
  });

  it('matches by one condition up to the limit asked (two by default)', async () => {
    const ids = [];
    for (let i = 0; i < 4; i++) {
      ids.push(
        (
          await repo.create(
            { ...patient(`Limit${i}`), identifier: [{ system: 'urn:limit', value: 'x' }] },
            { principal: mspA },
          )
        ).id,
      );
    }
    const q = parseSearchRequest('Patient', [['identifier', 'urn:limit|x']], { defaultCount: 20, maxCount: 100 });
    const [two] = await repo.matchAll(pool, mspA, [q]);
    expect(two).toHaveLength(2);
    const [all] = await repo.matchAll(pool, mspA, [q], 100);
    expect(all.map((r) => r.id).sort()).toEqual([...ids].sort());
    expect((await repo.matchAll(pool, mspB, [q], 100))[0]).toEqual([]);
  });

  it('refuses a stale If-Match with 412 and writes nothing', async () => {
    const created = await repo.create(patient('Match'), { principal: mspA });
    await repo.update('Patient', created.id, { ...patient('Match2'), id: created.id }, { principal: mspA }, 1);
    await expect(
      repo.update('Patient', created.id, { ...patient('Match3'), id: created.id }, { principal: mspA }, 1),
    ).rejects.toMatchObject({ category: 'precondition-failed' });
    expect((await repo.read(mspA, 'Patient', created.id)).versionId).toBe(2);
  });

  it('creates once under concurrent identical conditional creates', async () => {
    const query = parseSearchRequest('Patient', [['identifier', 'urn:test|cc-1']], { defaultCount: 20, maxCount: 100 });
    const body: Patient = { resourceType: 'Patient', identifier: [{ system: 'urn:test', value: 'cc-1' }] };
    const results = await Promise.all(
      Array.from({ length: 6 }, () => repo.conditionalCreate(body, query, { principal: mspA })),
    );
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.stored.id)).size).toBe(1);
  });

  it('reads for the system (no policy), skips what is deleted, and serialises writers with forUpdate', async () => {
    const created = await repo.create(patient('System'), { principal: mspB });
    expect((await repo.readSystem<Patient>('Patient', created.id))?.name?.[0]?.family).toBe('System');
    const order: string[] = [];
    await Promise.all([
      repo.withTransaction(async (tx) => {
        await repo.readSystem('Patient', created.id, { db: tx, forUpdate: true });
        order.push('first locked');
        await new Promise((r) => setTimeout(r, 300));
        order.push('first done');
      }),
      new Promise((r) => setTimeout(r, 50)).then(() =>
        repo.withTransaction(async (tx) => {
          await repo.readSystem('Patient', created.id, { db: tx, forUpdate: true });
          order.push('second locked');
        }),
      ),
    ]);
    expect(order).toEqual(['first locked', 'first done', 'second locked']);
    await repo.delete('Patient', created.id, { principal: mspB });
    expect(await repo.readSystem('Patient', created.id)).toBeUndefined();
    expect(
      await repo.existing([
        { resourceType: 'Patient', id: created.id },
        { resourceType: 'Patient', id: 'nope' },
      ]),
    ).toEqual([`Patient/${created.id}`]);
  });

  it('lists current resources containing a JSON fragment, oldest first', async () => {
    const admin: Principal = {
      clientId: 'op',
      organization: 'Organization/op',
      admin: true,
      scopes: ['system/*.cruds'],
    };
    const tag = { type: [{ coding: [{ code: 'CPTS-TEST' }] }] };
    const one = await repo.create({ resourceType: 'Organization', name: 'One', ...tag } as Organization, {
      principal: admin,
    });
    const two = await repo.create({ resourceType: 'Organization', name: 'Two', ...tag } as Organization, {
      principal: admin,
    });
    await repo.create({ resourceType: 'Organization', name: 'Other' } as Organization, { principal: admin });
    const found = await repo.listContaining<Organization>('Organization', tag);
    expect(found.map((o) => o.id)).toEqual([one.id, two.id]);
  });
});
