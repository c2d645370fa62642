import { Pool } from 'pg';
import type { Bundle, CareTeam, Observation, Patient } from '@medplum/fhirtypes';
import { createLogger } from '@gw/platform';
import { GatewayError } from '@gw/platform';
import { SearchParamRegistry, loadFhirDefinitions } from '@gw/fhir';
import { createTestDatabase, migrateAll } from '../../../../test/support/database';
import { OrganizationAccessPolicy } from '../repository/access.policy';
import type { PersonContext, Principal } from '../repository/access.policy';
import { FhirRepository } from '../repository/fhir.repository';
import { FhirService } from '../rest/fhir.service';
import type { FhirRequest } from '../rest/fhir.service';
import { AuditLog, isAudited } from './audit.log';
import { basesFor } from './audit-basis';
import { AUDIT_DPO_GRANT } from './patient-trail';

const SCOPES = ['system/*.cruds'];
const system = (org: string, grants: string[] = []): Principal => ({
  clientId: `client-${org}`,
  organization: `Organization/${org}`,
  admin: false,
  scopes: SCOPES,
  grants,
});
const person = (org: string, id: string, profession: string): Principal => {
  const p: PersonContext = {
    practitioner: `Practitioner/${id}`,
    role: `PractitionerRole/${id}-${org}`,
    profession,
    health: true,
    idNatPs: `8100000${id}`,
  };
  return { ...system(org), clientId: `vendor-${id}`, person: p };
};

interface TrailRow {
  interaction: string;
  practitioner: string | null;
  practitioner_role: string | null;
  profession: string | null;
  patients: string[] | null;
  basis: string[] | null;
  purpose: string | null;
  decision: string;
  outcome: number;
  query: string | null;
  entity: string[] | null;
}

/**
 * The access trail below HTTP, on a real PostgreSQL: what a person's reads, searches and refused
 * reads leave (role, profession, patients, bases from care_access, masked query), and who may read
 * a patient's trail. The sharing tables are created here as the design has them when the policy's
 * migration is not in this database.
 */
describe('access trail (PostgreSQL)', () => {
  let pool: Pool;
  let audit: AuditLog;
  let service: FhirService;
  let patientId: string;
  let observationId: string;

  const get = (
    p: Principal,
    path: string,
    query: [string, string][] = [],
  ): Promise<{ status: number; body?: string }> =>
    service.handle(p, { method: 'GET', path, query, strict: false } as FhirRequest, 'req-1');
  const rows = async (clientId: string): Promise<TrailRow[]> => {
    await audit.flush();
    return (
      await pool.query<TrailRow>(
        `SELECT interaction, practitioner, practitioner_role, profession, patients, basis, purpose, decision, outcome, query, entity
         FROM audit_event WHERE client_id = $1 ORDER BY id`,
        [clientId],
      )
    ).rows;
  };

  beforeAll(async () => {
    pool = new Pool({ connectionString: await createTestDatabase('trail'), max: 8 });
    await migrateAll(pool);
    await pool.query(`
      CREATE TABLE IF NOT EXISTS care_access (patient_id text NOT NULL, grantee text NOT NULL, basis text NOT NULL,
        classes text[], resource_ref text, valid tstzrange NOT NULL, source text, recognised_by text, recognised_at timestamptz);
      CREATE TABLE IF NOT EXISTS care_opposition (patient_id text NOT NULL, actor text, classes text[],
        valid tstzrange NOT NULL, source text);`);
    loadFhirDefinitions();
    const repo = new FhirRepository(pool, new SearchParamRegistry(), new OrganizationAccessPolicy());
    audit = new AuditLog(pool, createLogger('error'));
    service = new FhirService(repo, audit, { baseUrl: 'http://gw.test', defaultCount: 20, maxCount: 100 });
    const writer = { principal: system('msp-a') };
    const patient = await repo.create(
      {
        resourceType: 'Patient',
        name: [{ family: 'Trail-Dupont' }],
        generalPractitioner: [{ reference: 'PractitionerRole/gp-msp-a' }],
      } as Patient,
      writer,
    );
    patientId = patient.id;
    const obs = await repo.create(
      {
        resourceType: 'Observation',
        status: 'final',
        code: { text: 'x' },
        subject: { reference: `Patient/${patientId}` },
      } as Observation,
      writer,
    );
    observationId = obs.id;
    await pool.query(
      `INSERT INTO care_access (patient_id, grantee, basis, classes, valid, source) VALUES
        ($1, 'PractitionerRole/nurse-msp-a', 'care-circle', NULL, tstzrange(now() - interval '1 day', NULL), 'CareTeam/ct1'),
        ($1, 'Organization/msp-a', 'task', ARRAY['Task'], tstzrange(now() - interval '1 day', NULL), 'Task/t1'),
        ($1, 'PractitionerRole/nurse-msp-a', 'consent', NULL, tstzrange(now() - interval '2 days', now() - interval '1 day'), 'Consent/old')`,
      [patientId],
    );
  });
  afterAll(async () => {
    await audit.flush();
    await pool.end();
  });

  it("records a person's read with their role, profession, purpose, the patient and the bases that cover it", async () => {
    const nurse = person('msp-a', 'nurse', '60');
    expect((await get(nurse, `Observation/${observationId}`)).status).toBe(200);
    const [row] = await rows(nurse.clientId);
    expect(row).toMatchObject({
      interaction: 'read',
      practitioner: 'Practitioner/nurse',
      practitioner_role: 'PractitionerRole/nurse-msp-a',
      profession: '60',
      patients: [patientId],
      // The Task-only row and the expired consent do not cover an Observation read now.
      basis: ['care-circle:CareTeam/ct1'],
      purpose: 'TREAT',
      decision: 'permit',
      entity: [`Observation/${observationId}`],
    });
  });

  it("records a search's results, their patients and the query with identifying values masked", async () => {
    const c = system('msp-a');
    expect(
      (
        await get(c, 'Patient', [
          ['family', 'Trail-Dupont'],
          ['_count', '5'],
        ])
      ).status,
    ).toBe(200);
    expect((await get(c, 'Observation', [['subject', `Patient/${patientId}`]])).status).toBe(200);
    const identifying: [string, string][] = [
      ['birthdate', '1980-02-03'],
      ['identifier', 'urn:oid:1.2.250.1.213.1.4.8|180027511254422'],
      ['name:contains', 'Dupont'],
      ['subject:Patient.family', 'Dupont'],
    ];
    expect((await get(c, 'Observation', identifying)).status).toBe(200);
    const [patients, observations, masked] = await rows(c.clientId);
    expect(patients).toMatchObject({
      interaction: 'search',
      query: 'family=*&_count=5',
      patients: [patientId],
      basis: ['organization:Organization/msp-a'],
    });
    expect(observations).toMatchObject({
      query: `subject=Patient%2F${patientId}`,
      patients: [patientId],
      entity: [`Observation/${observationId}`],
    });
    expect(masked).toMatchObject({
      query: 'birthdate=*&identifier=*&name:contains=*&subject:Patient.family=*',
      patients: null,
      basis: null,
    });
    expect(JSON.stringify(await rows(c.clientId))).not.toMatch(/Dupont|1980|180027511254422/);
  });

  it("records a refused read as a deny with the hidden resource's patient and the opposition that applies", async () => {
    await pool.query(
      `INSERT INTO care_opposition (patient_id, actor, valid, source) VALUES ($1, NULL, tstzrange(now() - interval '1 hour', NULL), 'Consent/opp')`,
      [patientId],
    );
    const outsider = person('msp-b', 'kine', '70');
    const err = await get(outsider, `Observation/${observationId}`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).status).toBe(404);
    expect(isAudited(err)).toBe(true);
    const [row] = await rows(outsider.clientId);
    expect(row).toMatchObject({
      interaction: 'read',
      decision: 'deny',
      outcome: 404,
      patients: [patientId],
      basis: ['opposition:Consent/opp'],
      practitioner_role: 'PractitionerRole/kine-msp-b',
    });
    await pool.query(`DELETE FROM care_opposition WHERE source = 'Consent/opp'`);
  });

  it("serves the patient's trail to the médecin traitant named by Patient.generalPractitioner, newest first, as ANS AuditEvents", async () => {
    const gp = person('msp-a', 'gp', '10');
    const res = await get(gp, 'AuditEvent', [['patient', `Patient/${patientId}`]]);
    const bundle = JSON.parse(res.body as string) as Bundle;
    expect(bundle.total).toBe(4);
    const events = (bundle.entry ?? []).map((e) => e.resource as unknown as Record<string, unknown>);
    expect(events.map((e) => (e.subtype as { code: string }[])[0].code)).toEqual([
      'read',
      'search-type',
      'search-type',
      'read',
    ]);
    const [denied, , , nurseRead] = events as {
      meta: { profile: string[] };
      period: { start: string };
      outcome: string;
      agent: { who: { reference?: string }; requestor: boolean; policy?: string[]; altId?: string }[];
      entity: { what?: { reference: string }; role: { code: string } }[];
    }[];
    expect(nurseRead.meta.profile).toEqual([
      'https://interop.esante.gouv.fr/ig/fhir/tde/StructureDefinition/tde-auditevent',
    ]);
    expect(nurseRead.period.start).toBeDefined();
    expect(nurseRead.agent).toHaveLength(2);
    expect(nurseRead.agent[0]).toMatchObject({
      who: { reference: 'PractitionerRole/nurse-msp-a' },
      requestor: true,
      policy: ['care-circle:CareTeam/ct1'],
      altId: 'urn:oid:1.2.250.1.71.4.2.1|8100000nurse',
    });
    expect(nurseRead.entity.map((e) => [e.what?.reference, e.role.code])).toEqual([
      [`Patient/${patientId}`, '1'],
      [`Observation/${observationId}`, '4'],
    ]);
    expect(denied.outcome).toBe('4');
    expect(denied.agent[0].who.reference).toBe('PractitionerRole/kine-msp-b');
  });

  it('serves the trail to the PCP of an active CareTeam, and not once their participation has ended', async () => {
    const repo = new FhirRepository(pool, new SearchParamRegistry(), new OrganizationAccessPolicy());
    const team = (end: string): CareTeam => ({
      resourceType: 'CareTeam',
      status: 'active',
      subject: { reference: `Patient/${patientId}` },
      participant: [
        {
          role: [
            {
              coding: [
                {
                  system: 'https://mos.esante.gouv.fr/NOS/TRE_R259-HL7RoleClass/FHIR/TRE-R259-HL7RoleClass',
                  code: 'PCP',
                },
              ],
            },
          ],
          member: { reference: 'PractitionerRole/pcp-msp-c' },
          period: { start: '2020-01-01', end },
        },
      ],
    });
    const stored = await repo.create(team('2999-12-31'), { principal: system('msp-c') });
    const pcp = person('msp-c', 'pcp', '10');
    expect((await get(pcp, 'AuditEvent', [['patient', patientId]])).status).toBe(200);
    await repo.update('CareTeam', stored.id, { ...team('2021-01-01'), id: stored.id }, { principal: system('msp-c') });
    await expect(get(pcp, 'AuditEvent', [['patient', patientId]])).rejects.toMatchObject({ status: 403 });
  });

  it('refuses the trail to anyone else with a 403 saying who may, and records the refusal against the patient', async () => {
    const nurse = person('msp-a', 'nurse2', '60');
    const err = (await get(nurse, 'AuditEvent', [['patient', `Patient/${patientId}`]]).catch(
      (e: unknown) => e,
    )) as GatewayError;
    expect(err.status).toBe(403);
    expect(err.message).toContain('médecin traitant');
    expect(isAudited(err)).toBe(true);
    await expect(get(system('msp-a'), 'AuditEvent', [['patient', patientId]])).rejects.toMatchObject({ status: 403 });
    await expect(get(system('msp-b', [AUDIT_DPO_GRANT]), 'AuditEvent', [['patient', patientId]])).rejects.toMatchObject(
      {
        status: 403,
      },
    );
    expect(await rows(nurse.clientId)).toEqual([
      expect.objectContaining({ interaction: 'search', decision: 'deny', outcome: 403, patients: [patientId] }),
    ]);
  });

  it("pages a DPO's view of the trail with _count and next links, and bounds it with date", async () => {
    const dpo = system('msp-a', [AUDIT_DPO_GRANT]);
    const page = async (query: [string, string][]): Promise<Bundle> =>
      JSON.parse((await get(dpo, 'AuditEvent', query)).body as string) as Bundle;
    const first = await page([
      ['patient', patientId],
      ['_count', '2'],
    ]);
    const next = first.link?.find((l) => l.relation === 'next')?.url;
    expect(first.entry).toHaveLength(2);
    expect(next).toMatch(/_cursor=\d+/);
    const second = await page([...new URL(next as string).searchParams] as [string, string][]);
    const ids = (b: Bundle): string[] => (b.entry ?? []).map((e) => e.resource?.id as string);
    expect(ids(second)).toHaveLength(2);
    expect(ids(second).some((id) => ids(first).includes(id))).toBe(false);
    expect(Number(ids(second)[0])).toBeLessThan(Number(ids(first)[1]));
    const future = await page([
      ['patient', patientId],
      ['date', 'ge2999-01-01'],
    ]);
    expect([future.total, future.entry]).toEqual([0, []]);
    await expect(
      get(dpo, 'AuditEvent', [
        ['patient', patientId],
        ['agent', 'x'],
      ]),
    ).rejects.toMatchObject({ status: 400 });
  });

  it('names a system client its organization and an operator "operator" as their basis', async () => {
    expect(await basesFor(pool, { organization: 'Organization/o' }, ['p'])).toEqual(
      new Map([['p', [{ basis: 'organization', source: 'Organization/o', classes: null, resourceRef: null }]]]),
    );
    expect((await basesFor(pool, { admin: true }, ['p'])).get('p')?.[0].basis).toBe('operator');
  });
});
