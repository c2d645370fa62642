import { Pool } from 'pg';
import type {
  CareTeam,
  Communication,
  Consent,
  DocumentReference,
  MedicationRequest,
  Observation,
  Patient,
  PractitionerRole,
  Resource,
  Task,
} from '@medplum/fhirtypes';
import { SearchParamRegistry, loadFhirDefinitions, parseSearchRequest } from '@gw/fhir';
import { createTestDatabase, migrateAll } from '../../../../test/support/database';
import type { PersonContext, Principal } from '../repository/access.policy';
import { FhirRepository, OWNER_TAG_SYSTEM } from '../repository/fhir.repository';
import { CareAccessPolicy } from './care-access.policy';
import { basesFor } from '../audit/audit-basis';
import { SHARING_CONSENT_CATEGORY } from './care-projection';
import { rebuildSharingProjection } from './sharing-rebuild';

const system = (org: string, admin = false): Principal => ({
  clientId: `${org}-client`,
  organization: `Organization/${org}`,
  admin,
  scopes: ['system/*.cruds'],
});
const person = (org: string, role: string, p: Partial<PersonContext>): Principal => ({
  ...system(org),
  person: { practitioner: `Practitioner/${role}-pr`, role: `PractitionerRole/${role}`, health: true, ...p },
});

const admin = system('operator', true);
const msp = system('msp');
// Persons: two MSP professions and its secretary, a nurse outside the MSP, a pharmacist, a hospital doctor.
const gp = person('msp', 'gp-role', { practitioner: 'Practitioner/gp', profession: '10' });
const nurseMsp = person('msp', 'nurse-role', { profession: '60' });
const secretary = person('msp', 'sec-role', { health: false });
const nurseOut = person('cabinet', 'nurse-out-role', { profession: '60' });
const pharmacist = person('pharmacy', 'pharma-role', { profession: '21' });
const hospital = person('hospital', 'hosp-role', { profession: '10' });

const day = 86_400_000;
const iso = (offsetDays: number): string => new Date(Date.now() + offsetDays * day).toISOString();
const sharing = [{ coding: [{ ...SHARING_CONSENT_CATEGORY }] }];
const policyRule = { text: 'CSP L.1110-4' };

/** The équipe-de-soins policy against a real PostgreSQL: persons of several structures, every read route. */
describe('CareAccessPolicy (PostgreSQL)', () => {
  let pool: Pool;
  let repo: FhirRepository;
  let patient: string;
  let obs: string;
  let restrictedObs: string;
  let med: string;
  let doc: string;
  let comm: string;

  const create = async <T extends Resource>(p: Principal, r: T): Promise<string> =>
    (await repo.create(r, { principal: p })).id;
  const update = async <T extends Resource>(p: Principal, r: T & { id: string }): Promise<void> => {
    await repo.update(r.resourceType, r.id, r, { principal: p });
  };
  const search = (p: Principal, type: string, pairs: [string, string][]) =>
    repo.search(
      p,
      parseSearchRequest(type, [...pairs, ['_total', 'accurate']], { defaultCount: 50, maxCount: 100 }),
      true,
    );
  const canRead = async (p: Principal, ref: string): Promise<boolean> => {
    const [type, id] = ref.split('/');
    return repo.read(p, type, id).then(
      () => true,
      (err: { category?: string }) => {
        if (err.category !== 'not-found') {
          throw err;
        }
        return false;
      },
    );
  };

  beforeAll(async () => {
    pool = new Pool({ connectionString: await createTestDatabase('sharing'), max: 6 });
    await migrateAll(pool);
    loadFhirDefinitions();
    repo = new FhirRepository(pool, new SearchParamRegistry(), new CareAccessPolicy(), undefined, 0, {
      encounterMonths: 24,
    });
    for (const [role, practitioner] of [
      ['gp-role', 'Practitioner/gp'],
      ['nurse-role', 'Practitioner/nurse-role-pr'],
      ['sec-role', 'Practitioner/sec-role-pr'],
    ]) {
      const r: PractitionerRole = {
        resourceType: 'PractitionerRole',
        id: role,
        active: true,
        practitioner: { reference: practitioner },
        organization: { reference: 'Organization/msp' },
        meta: { tag: [{ system: OWNER_TAG_SYSTEM, code: 'Organization/msp' }] },
      };
      await repo.update('PractitionerRole', role, r, { principal: admin });
    }
    patient = await create<Patient>(msp, {
      resourceType: 'Patient',
      name: [{ family: 'Partage' }],
      generalPractitioner: [{ reference: 'Practitioner/gp' }],
    });
    const subject = { reference: `Patient/${patient}` };
    obs = await create<Observation>(msp, {
      resourceType: 'Observation',
      status: 'final',
      code: { text: 'bp' },
      subject,
    });
    restrictedObs = await create<Observation>(msp, {
      resourceType: 'Observation',
      status: 'final',
      code: { text: 'hiv' },
      subject,
      meta: { security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' }] },
    });
    med = await create<MedicationRequest>(msp, {
      resourceType: 'MedicationRequest',
      status: 'active',
      intent: 'order',
      subject,
      medicationCodeableConcept: { text: 'metformine' },
    });
    doc = await create<DocumentReference>(msp, {
      resourceType: 'DocumentReference',
      status: 'current',
      subject,
      content: [{ attachment: { contentType: 'text/plain', data: 'b2s=' } }],
    });
    comm = await create<Communication>(msp, {
      resourceType: 'Communication',
      status: 'completed',
      subject,
      payload: [{ contentString: 'résultats à revoir' }],
      note: [{ text: 'note clinique' }],
    });
  });
  afterAll(async () => pool.end());

  it('lets the MSP team read the record by every route, restricted resources included, and not the hospital', async () => {
    for (const p of [gp, nurseMsp]) {
      expect(await canRead(p, `Observation/${restrictedObs}`)).toBe(true);
      const found = await search(p, 'Observation', [['subject', `Patient/${patient}`]]);
      expect(found.total).toBe(2);
      const rev = await search(p, 'Patient', [
        ['_id', patient],
        ['_revinclude', 'Observation:subject'],
      ]);
      expect(rev.included).toHaveLength(2);
      const chained = await search(p, 'Observation', [['subject:Patient.family', 'Partage']]);
      expect(chained.total).toBe(2);
    }
    expect(await canRead(hospital, `Patient/${patient}`)).toBe(false);
    expect((await search(hospital, 'Observation', [['subject', `Patient/${patient}`]])).total).toBe(0);
    expect((await repo.history(hospital, { type: 'Observation', count: 10, offset: 0 })).total).toBe(0);
    await expect(repo.vread(hospital, 'Observation', obs, '1')).rejects.toMatchObject({ category: 'not-found' });
  });

  it('gives non-health staff demographics and communication headers, never clinical content, totals unchanged', async () => {
    expect(await canRead(secretary, `Patient/${patient}`)).toBe(true);
    expect(await canRead(secretary, `Observation/${obs}`)).toBe(false);
    expect((await search(secretary, 'Observation', [['subject', `Patient/${patient}`]])).total).toBe(0);
    const read = JSON.parse((await repo.read(secretary, 'Communication', comm)).json as string) as Communication;
    expect(read.payload).toBeUndefined();
    expect(read.note).toBeUndefined();
    expect(read.meta?.tag?.some((t) => t.code === 'SUBSETTED')).toBe(true);
    const found = await search(secretary, 'Communication', [['subject', `Patient/${patient}`]]);
    expect(found.total).toBe(1);
    expect(found.matches[0].json).not.toContain('résultats');
    const hist = await repo.history(secretary, { type: 'Communication', id: comm, count: 10, offset: 0 });
    expect(hist.versions[0].json).not.toContain('note clinique');
    expect(JSON.parse((await repo.read(gp, 'Communication', comm)).json as string)).toHaveProperty('payload');
  });

  it('opens the record to an outside nurse in the care circle while the participant period runs, never restricted ones', async () => {
    const team: CareTeam = {
      resourceType: 'CareTeam',
      status: 'active',
      subject: { reference: `Patient/${patient}` },
      participant: [
        {
          member: { reference: 'PractitionerRole/nurse-out-role' },
          role: [{ coding: [{ system: 'https://mos.esante.gouv.fr/NOS/TRE_R259', code: 'NURSE' }] }],
          period: { start: iso(-10), end: iso(-1) },
        },
      ],
    };
    const teamId = await create(gp, team);
    expect(await canRead(nurseOut, `Observation/${obs}`)).toBe(false);
    const participant = team.participant?.[0];
    await update(gp, {
      ...team,
      id: teamId,
      participant: [{ ...participant, period: { start: iso(-10), end: iso(5) } }],
    });
    expect(await canRead(nurseOut, `Observation/${obs}`)).toBe(true);
    expect(await canRead(nurseOut, `Observation/${restrictedObs}`)).toBe(false);
    expect((await search(nurseOut, 'Observation', [['subject', `Patient/${patient}`]])).total).toBe(1);
    const inc = await search(nurseOut, 'Observation', [
      ['_id', obs],
      ['_include', 'Observation:subject'],
    ]);
    expect(inc.included.map((r) => r.id)).toEqual([patient]);
    expect((await repo.history(nurseOut, { type: 'Observation', count: 10, offset: 0 })).total).toBe(1);
    const bases = await basesFor(pool, nurseOut, [patient, 'nobody']);
    expect(bases.get(patient)).toEqual([
      {
        basis: 'care-circle',
        source: `CareTeam/${teamId}`,
        resourceRef: null,
        classes: null,
      },
    ]);
    expect(bases.get('nobody')).toEqual([]);
    const recognised = await pool.query('SELECT recognised_by, role FROM care_access WHERE source = $1', [
      `CareTeam/${teamId}`,
    ]);
    expect(recognised.rows).toEqual([{ recognised_by: 'PractitionerRole/gp-role', role: 'NURSE' }]);
    // The participant's period ends: the access goes with it.
    await update(gp, {
      ...team,
      id: teamId,
      participant: [{ ...participant, period: { start: iso(-10), end: iso(-1) } }],
    });
    expect(await canRead(nurseOut, `Observation/${obs}`)).toBe(false);
    expect((await basesFor(pool, nurseOut, [patient])).get(patient)).toEqual([]);
  });

  it('lets a pharmacist with a permit Consent read the medication classes only', async () => {
    const consent: Consent = {
      resourceType: 'Consent',
      status: 'active',
      scope: { coding: [{ code: 'patient-privacy' }] },
      policyRule,
      category: sharing,
      patient: { reference: `Patient/${patient}` },
      provision: {
        type: 'permit',
        actor: [{ role: { coding: [{ code: 'PRCP' }] }, reference: { reference: 'Organization/pharmacy' } }],
        class: [{ code: 'MedicationRequest' }, { code: 'Patient' }],
      },
    };
    const id = await create(msp, consent);
    expect(await canRead(pharmacist, `MedicationRequest/${med}`)).toBe(true);
    expect(await canRead(pharmacist, `Observation/${obs}`)).toBe(false);
    const meds = await search(pharmacist, 'MedicationRequest', [
      ['subject', `Patient/${patient}`],
      ['_include', 'MedicationRequest:subject'],
    ]);
    expect(meds.total).toBe(1);
    expect(meds.included.map((r) => r.resourceType)).toEqual(['Patient']);
    // A DocumentReference is outside both the Consent's classes and a pharmacien's matrix.
    expect(await canRead(pharmacist, `DocumentReference/${doc}`)).toBe(false);
    await repo.delete('Consent', id, { principal: msp });
    expect(await canRead(pharmacist, `MedicationRequest/${med}`)).toBe(false);
  });

  it('applies an opposition to everyone to other structures only, one to a named actor to that actor, never a DMP consent', async () => {
    const teamId = await create<CareTeam>(gp, {
      resourceType: 'CareTeam',
      subject: { reference: `Patient/${patient}` },
      participant: [{ member: { reference: 'Organization/cabinet' } }],
    });
    expect(await canRead(nurseOut, `Observation/${obs}`)).toBe(true);
    const deny = (actor?: string, category: Consent['category'] = sharing): Consent => ({
      resourceType: 'Consent',
      status: 'active',
      scope: { coding: [{ code: 'patient-privacy' }] },
      policyRule,
      category,
      patient: { reference: `Patient/${patient}` },
      provision: {
        type: 'deny',
        ...(actor ? { actor: [{ role: { coding: [{ code: 'PRCP' }] }, reference: { reference: actor } }] } : {}),
      },
    });
    const dmp = await create(
      msp,
      deny(undefined, [{ coding: [{ system: SHARING_CONSENT_CATEGORY.system, code: 'dmp-feeding' }] }]),
    );
    expect(await canRead(nurseOut, `Observation/${obs}`)).toBe(true);
    const all = await create(msp, deny());
    expect(await canRead(nurseOut, `Observation/${obs}`)).toBe(false);
    expect((await search(nurseOut, 'Observation', [['subject', `Patient/${patient}`]])).total).toBe(0);
    expect(await canRead(gp, `Observation/${obs}`)).toBe(true);
    await repo.delete('Consent', all, { principal: msp });
    expect(await canRead(nurseOut, `Observation/${obs}`)).toBe(true);
    const named = await create(msp, deny('PractitionerRole/nurse-role'));
    expect(await canRead(nurseMsp, `Observation/${obs}`)).toBe(false);
    expect(await canRead(gp, `Observation/${obs}`)).toBe(true);
    for (const id of [named, dmp]) {
      await repo.delete('Consent', id, { principal: msp });
    }
    await repo.delete('CareTeam', teamId, { principal: msp });
    expect(await canRead(nurseOut, `Observation/${obs}`)).toBe(false);
  });

  it('gives the owner of an open Task the Task, the Patient and the Task inputs, until it is completed', async () => {
    const task: Task = {
      resourceType: 'Task',
      status: 'requested',
      intent: 'order',
      for: { reference: `Patient/${patient}` },
      owner: { reference: 'PractitionerRole/hosp-role' },
      input: [{ type: { text: 'discharge' }, valueReference: { reference: `DocumentReference/${doc}` } }],
    };
    const id = await create(msp, task);
    for (const ref of [`Task/${id}`, `Patient/${patient}`, `DocumentReference/${doc}`]) {
      expect(await canRead(hospital, ref)).toBe(true);
    }
    expect(await canRead(hospital, `Observation/${obs}`)).toBe(false);
    expect((await search(hospital, 'DocumentReference', [['subject', `Patient/${patient}`]])).total).toBe(1);
    await update(msp, { ...task, id, status: 'completed' });
    expect(await canRead(hospital, `Task/${id}`)).toBe(false);
  });

  it('grants a médecin traitant named as a Practitioner to that person only when their identity is proved, never to the structures where a role names them', async () => {
    const elsewhere = await create<Patient>(admin, {
      resourceType: 'Patient',
      meta: { tag: [{ system: OWNER_TAG_SYSTEM, code: 'Organization/hospital' }] },
      generalPractitioner: [{ reference: 'Practitioner/gp' }],
    });
    // A PractitionerRole is its structure's own word: it does not bring the GP's patients filed
    // elsewhere to the structure (any structure could write one for any professional).
    expect(await canRead(nurseMsp, `Patient/${elsewhere}`)).toBe(false);
    // The GP themself: only when a provider proved who they are (or an operator trusts the client).
    expect(await canRead(gp, `Patient/${elsewhere}`)).toBe(false);
    const provedGp: Principal = { ...gp, person: { ...(gp.person as PersonContext), identityVerified: true } };
    expect(await canRead(provedGp, `Patient/${elsewhere}`)).toBe(true);
    expect(await canRead(nurseOut, `Patient/${elsewhere}`)).toBe(false);
  });

  it('refuses persons the writes their organization cannot make and records the role that wrote', async () => {
    const written = await create<Observation>(gp, {
      resourceType: 'Observation',
      status: 'final',
      code: { text: 'weight' },
      subject: { reference: `Patient/${patient}` },
    });
    const hist = await pool.query(
      'SELECT agent, client_id FROM resource_history WHERE resource_type = $1 AND id = $2',
      ['Observation', written],
    );
    expect(hist.rows).toEqual([{ agent: 'PractitionerRole/gp-role', client_id: 'msp-client' }]);
    const teamId = await create<CareTeam>(gp, {
      resourceType: 'CareTeam',
      subject: { reference: `Patient/${patient}` },
      participant: [{ member: { reference: 'Organization/cabinet' } }],
    });
    await expect(
      repo.update(
        'Observation',
        obs,
        { resourceType: 'Observation', id: obs, status: 'amended', code: {} },
        { principal: nurseOut },
      ),
    ).rejects.toMatchObject({ category: 'not-found' });
    await expect(
      repo.create(
        { resourceType: 'Observation', status: 'final', code: {}, subject: { reference: `Patient/${patient}` } },
        { principal: nurseOut },
      ),
    ).rejects.toBeDefined();
    expect(
      await repo.refusedPatientReferences(pool, nurseOut, [
        {
          resourceType: 'Observation',
          status: 'final',
          code: {},
          subject: { reference: `Patient/${patient}` },
        } as Observation,
      ]),
    ).toHaveLength(1);
    await repo.delete('CareTeam', teamId, { principal: msp });
  });

  it('keeps system clients on their organization rule', async () => {
    expect(await canRead(msp, `Observation/${restrictedObs}`)).toBe(true);
    expect(await canRead(system('hospital'), `Patient/${patient}`)).toBe(false);
    expect((await search(msp, 'Observation', [['subject', `Patient/${patient}`]])).total).toBeGreaterThanOrEqual(2);
  });

  it('rebuilds the projection of stored resources once when the flag is pending', async () => {
    const before = await pool.query('SELECT count(*)::int AS n FROM care_access');
    await pool.query('DELETE FROM care_access; INSERT INTO sharing_rebuild VALUES (true) ON CONFLICT DO NOTHING');
    expect(await rebuildSharingProjection(pool, 24)).toBeGreaterThan(0);
    expect((await pool.query('SELECT count(*)::int AS n FROM care_access')).rows).toEqual(before.rows);
    expect(await rebuildSharingProjection(pool, 24)).toBe(0);
  });
});
