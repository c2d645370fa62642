import { SearchParamRegistry, loadFhirDefinitions } from '@gw/fhir';
import { PATIENT_COMPARTMENT, activePatientMembers, patientReferences } from './patient-compartment';

describe('Patient compartment for group export', () => {
  it('names only reference parameters the search index really holds, each able to point at a Patient', () => {
    loadFhirDefinitions();
    const registry = new SearchParamRegistry();
    for (const [type, codes] of Object.entries(PATIENT_COMPARTMENT)) {
      for (const code of codes) {
        const def = registry.get(type, code);
        expect({ type, code, kind: def?.kind, toPatient: def?.targets.includes('Patient') }).toEqual({
          type,
          code,
          kind: 'reference',
          toPatient: true,
        });
      }
    }
  });

  it('keeps active Patient members only: not inactive, membership period covering the date (a date end covers its whole day)', () => {
    const at = new Date('2025-06-15T12:00:00Z');
    const ids = activePatientMembers(
      {
        resourceType: 'Group',
        type: 'person',
        actual: true,
        member: [
          { entity: { reference: 'Patient/a' } },
          { entity: { reference: 'Patient/b' }, inactive: true },
          { entity: { reference: 'Patient/c' }, period: { start: '2025-01-01', end: '2025-06-15' } },
          { entity: { reference: 'Patient/d' }, period: { end: '2025-06-14' } },
          { entity: { reference: 'Patient/e' }, period: { start: '2025-07-01' } },
          { entity: { reference: 'Practitioner/f' } },
          { entity: { reference: 'Patient/a' } },
        ],
      },
      at,
    );
    expect(ids).toEqual(['a', 'c']);
  });
});

describe('Patient compartment from the R4 CompartmentDefinition', () => {
  it("covers the clinical and financial types of a patient record, with R4's parameters", () => {
    expect(PATIENT_COMPARTMENT.DiagnosticReport).toEqual(['subject']);
    expect(PATIENT_COMPARTMENT.CarePlan).toEqual(expect.arrayContaining(['patient', 'performer']));
    expect(PATIENT_COMPARTMENT.ExplanationOfBenefit).toEqual(expect.arrayContaining(['patient', 'payee']));
    expect(PATIENT_COMPARTMENT.Claim).toEqual(expect.arrayContaining(['patient', 'payee']));
    expect(PATIENT_COMPARTMENT.Goal).toEqual(['patient']);
    expect(PATIENT_COMPARTMENT.Task).toEqual(expect.arrayContaining(['subject', 'patient']));
    expect(PATIENT_COMPARTMENT.Patient).toBeUndefined();
    expect(PATIENT_COMPARTMENT.Organization).toBeUndefined();
  });
});

describe('patientReferences', () => {
  it('finds every Patient reference with its path, relative or absolute, contained resources included', () => {
    expect(
      patientReferences({
        resourceType: 'Group',
        member: [{ entity: { reference: 'Patient/a' } }, { entity: { reference: 'Practitioner/x' } }],
        contained: [
          { resourceType: 'Observation', subject: { reference: 'https://gw.example/fhir/Patient/b/_history/2' } },
        ],
      }),
    ).toEqual([
      { id: 'a', expression: 'Group.member[0].entity' },
      { id: 'b', expression: 'Group.contained[0].subject' },
    ]);
  });
});
