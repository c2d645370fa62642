import { Pool } from 'pg';
import type { Encounter, Organization, Patient, Practitioner, PractitionerRole } from '@medplum/fhirtypes';
import { FINESS, IDNATPS, RPPS, SearchParamRegistry, loadFhirDefinitions, parseSearchRequest } from '@gw/fhir';
import { createTestDatabase, migrateAll } from '../../../../test/support/database';
import { OrganizationAccessPolicy } from '../repository/access.policy';
import type { Principal } from '../repository/access.policy';
import { DIRECTORY_SOURCE_SYSTEM, ANNUAIRE_SANTE } from './directory.identity';
import { FhirRepository } from '../repository/fhir.repository';
import { SHARING_STORE_MIGRATION, SHARING_TABLES_MIGRATION } from '../sharing/sharing.schema';

/**
 * The seeding below goes through today's write path, which also fills what later versions added
 * (a resource's patient, its label, the sharing tables): those are created for the seeding and
 * dropped before the real migrations run from version 10 on (version 18 then backfills them).
 */
const LATER_WRITE_PATH_SCHEMA = [SHARING_STORE_MIGRATION.sql, SHARING_TABLES_MIGRATION.sql];
const DROP_LATER_WRITE_PATH_SCHEMA = `
DROP TABLE care_access, care_opposition, sharing_rebuild;
DROP INDEX resource_patient_idx;
ALTER TABLE resource DROP COLUMN patient_id, DROP COLUMN restricted;
ALTER TABLE resource_history DROP COLUMN agent;`;

const admin: Principal = {
  clientId: 'seed',
  organization: 'Organization/gateway-operator',
  admin: true,
  scopes: ['system/*.cruds'],
};
const owned = (org: string): { tag: { system: string; code: string }[] } => ({
  tag: [{ system: 'https://gateway.fr-primary-care.org/fhir/CodeSystem/owner-organization', code: org }],
});

describe('migration 10: duplicate directory entries merged into one survivor', () => {
  let pool: Pool;
  let repo: FhirRepository;
  const ctx = { principal: admin };

  beforeAll(async () => {
    pool = new Pool({ connectionString: await createTestDatabase('dirmerge'), max: 4 });
    await migrateAll(pool, { upTo: 9 });
    for (const sql of LATER_WRITE_PATH_SCHEMA) {
      await pool.query(sql);
    }
    loadFhirDefinitions();
    repo = new FhirRepository(pool, new SearchParamRegistry(), new OrganizationAccessPolicy());
  });
  afterAll(async () => pool.end());

  async function current<T>(
    type: string,
    id: string,
  ): Promise<{ versionId: number; deleted: boolean; ownerOrg: string | null; doc?: T }> {
    const row = (
      await pool.query(
        'SELECT version_id, deleted, owner_org, content FROM resource WHERE resource_type = $1 AND id = $2',
        [type, id],
      )
    ).rows[0];
    return {
      versionId: row.version_id,
      deleted: row.deleted,
      ownerOrg: row.owner_org,
      doc: row.content ? (JSON.parse(row.content) as T) : undefined,
    };
  }

  it('keeps the oldest (or the directory-sourced) entry, re-points references with a new version and deletes the others', async () => {
    // Seeded as the old schema allowed: one GP registered by an MSP with a mailbox, then the same RPPS
    // created by two hospitals' feeds (IdNatPS form), each referenced by its own patients.
    const gp = await repo.create(
      {
        resourceType: 'Practitioner',
        meta: owned('Organization/msp'),
        identifier: [{ system: RPPS, value: '10000000001' }],
        telecom: [{ system: 'email', value: 'dr.gp@medecin.mssante.fr' }],
      } as Practitioner,
      ctx,
    );
    await new Promise((r) => setTimeout(r, 5));
    const dupA = await repo.create(
      {
        resourceType: 'Practitioner',
        meta: owned('Organization/chu-a'),
        identifier: [
          { system: IDNATPS, value: '810000000001' },
          { system: RPPS, value: '10000000001' },
        ],
        name: [{ family: 'GP' }],
      } as Practitioner,
      ctx,
    );
    const dupB = await repo.create(
      {
        resourceType: 'Practitioner',
        meta: owned('Organization/chu-b'),
        identifier: [{ system: IDNATPS, value: '810000000001' }],
      } as Practitioner,
      ctx,
    );
    const patA = await repo.create(
      {
        resourceType: 'Patient',
        meta: owned('Organization/chu-a'),
        generalPractitioner: [{ reference: `Practitioner/${dupA.id}` }],
      } as Patient,
      ctx,
    );
    const patB = await repo.create(
      {
        resourceType: 'Patient',
        meta: owned('Organization/chu-b'),
        generalPractitioner: [{ reference: `Practitioner/${dupB.id}` }],
      } as Patient,
      ctx,
    );
    const role = await repo.create(
      {
        resourceType: 'PractitionerRole',
        meta: owned('Organization/msp'),
        practitioner: { reference: `Practitioner/${dupB.id}` },
      } as PractitionerRole,
      ctx,
    );
    const other = await repo.create(
      { resourceType: 'Practitioner', identifier: [{ system: RPPS, value: '10000000002' }] } as Practitioner,
      ctx,
    );

    // Organizations: a hospital known twice by FINESS; the later one is directory-sourced and survives;
    // what the earlier one owned (its Encounters) follows.
    const hospOld = await repo.create(
      {
        resourceType: 'Organization',
        name: 'CHU (saisie locale)',
        identifier: [{ system: FINESS, value: '750000010' }],
      } as Organization,
      ctx,
    );
    await new Promise((r) => setTimeout(r, 5));
    const hospDir = await repo.create(
      {
        resourceType: 'Organization',
        name: 'CHU',
        meta: { tag: [{ system: DIRECTORY_SOURCE_SYSTEM, code: ANNUAIRE_SANTE }] },
        identifier: [{ system: 'urn:oid:1.2.250.1.71.4.2.2', value: '1750000010' }],
      } as Organization,
      ctx,
    );
    const enc = await repo.create(
      {
        resourceType: 'Encounter',
        meta: owned(`Organization/${hospOld.id}`),
        status: 'finished',
        class: { code: 'IMP' },
        serviceProvider: { reference: `Organization/${hospOld.id}` },
      } as Encounter,
      ctx,
    );

    await pool.query(DROP_LATER_WRITE_PATH_SCHEMA);
    expect(await migrateAll(pool)).toEqual(expect.arrayContaining([10, 11]));

    const survivor = await current<Practitioner>('Practitioner', gp.id);
    expect(survivor.deleted).toBe(false);
    expect(survivor.doc?.telecom?.[0].value).toBe('dr.gp@medecin.mssante.fr');
    expect(survivor.doc?.identifier).toEqual(
      expect.arrayContaining([
        { system: RPPS, value: '10000000001' },
        { system: IDNATPS, value: '810000000001' },
      ]),
    );
    expect(survivor.versionId).toBe(2);
    expect(survivor.doc?.meta?.versionId).toBe('2');
    for (const loser of [dupA.id, dupB.id]) {
      expect((await current('Practitioner', loser)).deleted).toBe(true);
    }
    expect((await current<Patient>('Patient', patA.id)).doc?.generalPractitioner).toEqual([
      { reference: `Practitioner/${gp.id}` },
    ]);
    const pb = await current<Patient>('Patient', patB.id);
    expect([pb.versionId, pb.doc?.meta?.versionId, pb.doc?.generalPractitioner?.[0].reference]).toEqual([
      2,
      '2',
      `Practitioner/${gp.id}`,
    ]);
    expect((await current<PractitionerRole>('PractitionerRole', role.id)).doc?.practitioner?.reference).toBe(
      `Practitioner/${gp.id}`,
    );
    expect((await current('Practitioner', other.id)).versionId).toBe(1);
    const history = await pool.query(
      "SELECT count(*)::int AS n FROM resource_history WHERE resource_type = 'Patient' AND id = $1 AND client_id = 'migration:directory-merge'",
      [patB.id],
    );
    expect(history.rows[0].n).toBe(1);

    // The search index follows: the survivor is found by both identifier forms and by its referrers.
    const byIdNat = await repo.search(
      admin,
      parseSearchRequest('Practitioner', [['identifier', `${IDNATPS}|810000000001`]], {
        defaultCount: 10,
        maxCount: 10,
      }),
      true,
    );
    expect(byIdNat.matches.map((m) => m.id)).toEqual([gp.id]);
    const patients = await repo.search(
      admin,
      parseSearchRequest('Patient', [['general-practitioner', `Practitioner/${gp.id}`]], {
        defaultCount: 10,
        maxCount: 10,
      }),
      true,
    );
    expect(patients.matches.map((m) => m.id).sort()).toEqual([patA.id, patB.id].sort());

    expect((await current('Organization', hospOld.id)).deleted).toBe(true);
    const movedEnc = await current<Encounter>('Encounter', enc.id);
    expect([movedEnc.ownerOrg, movedEnc.doc?.serviceProvider?.reference]).toEqual([
      `Organization/${hospDir.id}`,
      `Organization/${hospDir.id}`,
    ]);
    const redirects = await pool.query(
      'SELECT resource_type, loser, survivor FROM directory_merge ORDER BY resource_type, loser',
    );
    expect(redirects.rows).toEqual(
      expect.arrayContaining([
        { resource_type: 'Practitioner', loser: dupA.id, survivor: gp.id },
        { resource_type: 'Practitioner', loser: dupB.id, survivor: gp.id },
        { resource_type: 'Organization', loser: hospOld.id, survivor: hospDir.id },
      ]),
    );
  });

  it('refuses a second holder of a national identifier from then on, in either form (409)', async () => {
    await expect(
      repo.create(
        { resourceType: 'Practitioner', identifier: [{ system: IDNATPS, value: '810000000002' }] } as Practitioner,
        ctx,
      ),
    ).rejects.toMatchObject({ category: 'conflict' });
    await expect(
      repo.create(
        { resourceType: 'Organization', identifier: [{ system: FINESS, value: '750000010' }] } as Organization,
        ctx,
      ),
    ).rejects.toMatchObject({ category: 'conflict' });
    const fresh = await repo.create(
      { resourceType: 'Practitioner', identifier: [{ system: RPPS, value: '10000000003' }] } as Practitioner,
      ctx,
    );
    // Concurrent creates of one new RPPS: exactly one wins.
    const results = await Promise.allSettled(
      Array.from({ length: 4 }, () =>
        repo.create(
          { resourceType: 'Practitioner', identifier: [{ system: RPPS, value: '10000000004' }] } as Practitioner,
          ctx,
        ),
      ),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(fresh.versionId).toBe(1);
  });
});
