import { auditQuery, patientsOf } from './audit-subject';

describe('auditQuery', () => {
  it('keeps codes, references, dates of care and paging, and masks names, identifiers and birth dates', () => {
    expect(
      auditQuery([
        ['subject', 'Patient/12'],
        ['code', 'http://loinc.org|4548-4'],
        ['date', 'ge2025-01-01'],
        ['family', 'Dupont'],
        ['identifier', 'urn:oid:1.2.250.1.213.1.4.8|180027511254422'],
        ['birthdate', '1980-02-03'],
        ['_count', '10'],
      ]),
    ).toBe(
      'subject=Patient%2F12&code=http%3A%2F%2Floinc.org%7C4548-4&date=ge2025-01-01&family=*&identifier=*&birthdate=*&_count=10',
    );
  });

  it('masks chains and modifiers that search on identifying text, and keys that are not parameter names', () => {
    expect(
      auditQuery([
        ['subject:Patient.name', 'Dupont'],
        ['subject:identifier', 'x|1'],
        ['code:text', 'diabète de Dupont'],
        ['_has:Observation:patient:code', '4548-4'],
        ['Dupont Jean', '1'],
      ]),
    ).toBe('subject:Patient.name=*&subject:identifier=*&code:text=*&_has:Observation:patient:code=4548-4&*=*');
    expect(auditQuery([])).toBeUndefined();
  });
});

describe('patientsOf', () => {
  it('names the Patient itself, the store-given patient, or every Patient the JSON names', () => {
    expect(patientsOf({ resourceType: 'Patient', id: 'p1' })).toEqual(['p1']);
    expect(patientsOf({ resourceType: 'Observation', id: 'o', patientId: 'p2', json: '{}' })).toEqual(['p2']);
    const group = {
      resourceType: 'Group',
      member: [{ entity: { reference: 'Patient/a' } }, { entity: { reference: 'Patient/b' } }],
    };
    expect(patientsOf({ resourceType: 'Group', id: 'g', json: JSON.stringify(group) })).toEqual(['a', 'b']);
    expect(patientsOf({ resourceType: 'Organization', id: 'x', json: '{"resourceType":"Organization"}' })).toEqual([]);
  });
});
