import type { CareTeam, Consent, Encounter, EpisodeOfCare, Patient, Task } from '@medplum/fhirtypes';
import { SHARING_CONSENT_CATEGORY, isRestricted, patientIdOf, projectSharing } from './care-projection';
import type { ProjectionContext } from './care-projection';

const ctx: ProjectionContext = {
  ownerOrg: 'Organization/msp',
  writer: 'PractitionerRole/gp-role',
  at: '2025-03-01T10:00:00.000Z',
  encounterMonths: 24,
};
const sharingCategory = [{ coding: [{ ...SHARING_CONSENT_CATEGORY }] }];

describe('projectSharing', () => {
  it('gives the structure holding the file and the médecin traitant structure-team rows from a Patient', () => {
    const p: Patient = {
      resourceType: 'Patient',
      id: 'p1',
      managingOrganization: { reference: 'Organization/msp' },
      generalPractitioner: [{ reference: 'Practitioner/dr-y' }, { reference: 'PractitionerRole/role-z' }],
    };
    const rows = projectSharing(p, 'p1', ctx);
    expect(rows?.source).toBe('Patient/p1');
    expect(rows?.access.map((r) => [r.grantee, r.basis, r.from, r.to])).toEqual([
      ['Organization/msp', 'structure-team', null, null],
      ['Practitioner/dr-y', 'structure-team', null, null],
      ['PractitionerRole/role-z', 'structure-team', null, null],
    ]);
  });

  it('grants the managing organization of an active EpisodeOfCare over its period, nothing once finished', () => {
    const e: EpisodeOfCare = {
      resourceType: 'EpisodeOfCare',
      id: 'e1',
      status: 'active',
      patient: { reference: 'Patient/p1' },
      managingOrganization: { reference: 'Organization/ssiad' },
      period: { start: '2025-01-01' },
    };
    expect(projectSharing(e, 'p1', ctx)?.access).toMatchObject([
      { grantee: 'Organization/ssiad', basis: 'structure-team', from: '2025-01-01T00:00:00.000Z', to: null },
    ]);
    expect(projectSharing({ ...e, status: 'finished' }, 'p1', ctx)?.access).toEqual([]);
  });

  it('keeps an encounter structure for GW_SHARING_ENCOUNTER_MONTHS after the encounter ended', () => {
    const e: Encounter = {
      resourceType: 'Encounter',
      id: 'enc',
      status: 'finished',
      class: { code: 'AMB' },
      subject: { reference: 'Patient/p1' },
      serviceProvider: { reference: 'Organization/hospital' },
      period: { start: '2024-05-02T08:00:00Z', end: '2024-05-10T12:00:00Z' },
    };
    const rows = projectSharing(e, 'p1', { ...ctx, encounterMonths: 6 })?.access ?? [];
    expect(rows.map((r) => [r.grantee, r.from, r.to])).toEqual([
      ['Organization/hospital', '2024-05-02T08:00:00.000Z', '2024-11-10T12:00:01.000Z'],
      ['Organization/msp', '2024-05-02T08:00:00.000Z', '2024-11-10T12:00:01.000Z'],
    ]);
    expect(projectSharing({ ...e, status: 'entered-in-error' }, 'p1', ctx)?.access).toEqual([]);
  });

  it('reads each CareTeam participant over its period within the team period, with role and recognition', () => {
    const t: CareTeam = {
      resourceType: 'CareTeam',
      id: 'ct',
      subject: { reference: 'Patient/p1' },
      period: { start: '2025-01-01', end: '2025-12-31' },
      participant: [
        {
          member: { reference: 'PractitionerRole/nurse-out' },
          role: [{ coding: [{ system: 'https://mos.esante.gouv.fr/NOS/TRE_R259', code: 'PCP' }] }],
          period: { start: '2024-06-01', end: '2025-06-30' },
        },
        { member: { reference: 'RelatedPerson/daughter' } },
        { member: { reference: 'Organization/pharmacy' }, period: { start: '2026-02-01' } },
      ],
    };
    const rows = projectSharing(t, 'p1', ctx)?.access ?? [];
    expect(rows).toEqual([
      {
        patientId: 'p1',
        grantee: 'PractitionerRole/nurse-out',
        basis: 'care-circle',
        classes: null,
        resourceRef: null,
        from: '2025-01-01T00:00:00.000Z',
        to: '2025-07-01T00:00:00.000Z',
        role: 'PCP',
        recognisedBy: 'PractitionerRole/gp-role',
        recognisedAt: '2025-03-01T10:00:00.000Z',
      },
    ]);
    expect(projectSharing({ ...t, status: 'inactive' }, 'p1', ctx)?.access).toEqual([]);
  });

  it('reads sharing Consents: permits with actor and classes, deny to everyone or to a named actor', () => {
    const c: Consent = {
      resourceType: 'Consent',
      id: 'c1',
      status: 'active',
      scope: { coding: [{ code: 'patient-privacy' }] },
      category: sharingCategory,
      patient: { reference: 'Patient/p1' },
      provision: {
        type: 'permit',
        period: { start: '2025-01-01' },
        actor: [{ role: { coding: [{ code: 'PRCP' }] }, reference: { reference: 'PractitionerRole/pharma' } }],
        class: [{ code: 'MedicationRequest' }, { code: 'MedicationDispense' }],
        provision: [{ type: 'deny', actor: [{ role: {}, reference: { reference: 'Practitioner/dr-x' } }] }],
      },
    };
    const rows = projectSharing(c, 'p1', ctx);
    expect(rows?.access).toMatchObject([
      {
        grantee: 'PractitionerRole/pharma',
        basis: 'consent',
        classes: ['MedicationRequest', 'MedicationDispense'],
        from: '2025-01-01T00:00:00.000Z',
        role: 'PRCP',
      },
    ]);
    expect(rows?.oppositions).toEqual([
      {
        patientId: 'p1',
        actor: 'Practitioner/dr-x',
        classes: ['MedicationRequest', 'MedicationDispense'],
        from: '2025-01-01T00:00:00.000Z',
        to: null,
      },
    ]);
    const toAll: Consent = { ...c, provision: { type: 'deny' } };
    expect(projectSharing(toAll, 'p1', ctx)?.oppositions).toEqual([
      { patientId: 'p1', actor: null, classes: null, from: null, to: null },
    ]);
    expect(projectSharing({ ...toAll, status: 'inactive' }, 'p1', ctx)?.oppositions).toEqual([]);
  });

  it('never reads a DMP consent (PAM-FR ZFA category) as a sharing opposition', () => {
    const dmp: Consent = {
      resourceType: 'Consent',
      id: 'dmp',
      status: 'active',
      scope: { coding: [{ code: 'patient-privacy' }] },
      category: [{ coding: [{ system: SHARING_CONSENT_CATEGORY.system, code: 'dmp-feeding' }] }],
      patient: { reference: 'Patient/p1' },
      provision: { type: 'deny' },
    };
    expect(projectSharing(dmp, 'p1', ctx)).toEqual({ source: 'Consent/dmp', access: [], oppositions: [] });
  });

  it('gives an open Task owner the Task, the Patient and its inputs only; a completed Task nothing', () => {
    const t: Task = {
      resourceType: 'Task',
      id: 't1',
      status: 'requested',
      intent: 'order',
      for: { reference: 'Patient/p1' },
      owner: { reference: 'Organization/cpts' },
      input: [{ type: {}, valueReference: { reference: 'DocumentReference/discharge' } }],
    };
    const rows = projectSharing(t, 'p1', ctx)?.access ?? [];
    expect(rows.filter((r) => r.grantee === 'Organization/cpts').map((r) => r.resourceRef)).toEqual([
      'Task/t1',
      'Patient/p1',
      'DocumentReference/discharge',
    ]);
    expect(rows.every((r) => r.basis === 'task')).toBe(true);
    expect(projectSharing({ ...t, status: 'completed' }, 'p1', ctx)?.access).toEqual([]);
  });

  it('maintains nothing for types that are no source, and no rows without a single patient', () => {
    expect(projectSharing({ resourceType: 'Observation', id: 'o', status: 'final', code: {} }, 'p1', ctx)).toBe(
      undefined,
    );
    expect(projectSharing({ resourceType: 'Patient', id: 'p' }, null, ctx)?.access).toEqual([]);
  });
});

describe('patientIdOf and isRestricted', () => {
  const refs = (...ids: string[]) => ({
    tokens: [],
    strings: [],
    dates: [],
    numbers: [],
    references: ids.map((id) => ({ code: 'subject', targetType: 'Patient', targetId: id })),
  });

  it('is the Patient itself, the single compartment patient, or null for several', () => {
    expect(patientIdOf('Patient', 'p9', refs())).toBe('p9');
    expect(patientIdOf('Observation', 'o', refs('p1', 'p1'))).toBe('p1');
    expect(patientIdOf('Observation', 'o', refs('p1', 'p2'))).toBeNull();
    expect(patientIdOf('Practitioner', 'x', refs('p1'))).toBeNull();
    expect(patientIdOf('Group', 'g', refs('p1'))).toBeNull();
  });

  it('labels v3-Confidentiality R and V as restricted', () => {
    const sec = (code: string): Patient => ({
      resourceType: 'Patient',
      meta: { security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code }] },
    });
    expect(isRestricted(sec('R'))).toBe(true);
    expect(isRestricted(sec('V'))).toBe(true);
    expect(isRestricted(sec('N'))).toBe(false);
  });
});
