import { IDENTITY_METHOD_COLLECTION, patientFromTraits } from './pipeline';

const BIRTH_PLACE = 'http://hl7.org/fhir/StructureDefinition/patient-birthPlace';
const RELIABILITY = 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability';

describe('patientFromTraits (a new Patient from a document’s INS traits)', () => {
  const traits = {
    identifiers: [{ system: 'urn:oid:1.2.3.4', value: 'P42' }],
    birthFamily: 'PAT-TROIS',
    usedFamily: 'MARTIN',
    given: ['DOMINIQUE', 'MARIE'],
    sex: 'female' as const,
    birthDate: '1979-03-28',
    birthPlace: '51215',
  };

  it('keeps an INS with a valid key as the official identifier, names, sex, birth date and place, the PCP', () => {
    const p = patientFromTraits(
      { ...traits, ins: { value: '279035121518989', oid: '1.2.250.1.213.1.4.10' } },
      'Practitioner/x',
    );
    expect(p.identifier).toEqual([
      { use: 'official', system: 'urn:oid:1.2.250.1.213.1.4.10', value: '279035121518989' },
      { system: 'urn:oid:1.2.3.4', value: 'P42' },
    ]);
    expect(p.name).toEqual([
      { use: 'official', family: 'PAT-TROIS', given: ['DOMINIQUE', 'MARIE'] },
      { use: 'usual', family: 'MARTIN', given: ['DOMINIQUE'] },
    ]);
    expect(p).toMatchObject({
      gender: 'female',
      birthDate: '1979-03-28',
      generalPractitioner: [{ reference: 'Practitioner/x' }],
    });
    const birthPlace = p.extension?.find((e) => e.url === BIRTH_PLACE);
    expect(JSON.stringify(birthPlace)).toContain('51215');
  });

  it('drops an INS whose key is wrong (not an INS: provisional identity) and keeps the local identifier', () => {
    const p = patientFromTraits(
      { ...traits, ins: { value: '279035121518988', oid: '1.2.250.1.213.1.4.10' } },
      undefined,
    );
    expect(p.identifier).toEqual([{ system: 'urn:oid:1.2.3.4', value: 'P42' }]);
    expect(p.generalPractitioner).toBeUndefined();
  });

  it('marks the identity provisional, obtained from a document: never QUAL, whatever the document says', () => {
    for (const ins of [{ value: '279035121518989', oid: '1.2.250.1.213.1.4.10' }, undefined]) {
      const p = patientFromTraits({ ...traits, ins }, undefined);
      const reliability = p.extension?.find((e) => e.url === RELIABILITY);
      const status = reliability?.extension?.find((e) => e.url === 'identityStatus')?.valueCoding;
      expect(status).toMatchObject({
        system: 'https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0445',
        code: 'PROV',
      });
      const method = reliability?.extension?.find((e) => e.url === 'methodCollection')?.valueCoding;
      expect(method).toMatchObject({ system: IDENTITY_METHOD_COLLECTION, code: 'document' });
    }
  });
});
