import { patientFromTraits } from './pipeline';

const BIRTH_PLACE = 'http://hl7.org/fhir/StructureDefinition/patient-birthPlace';

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
    expect(p.extension?.[0].url).toBe(BIRTH_PLACE);
    expect(JSON.stringify(p.extension)).toContain('51215');
  });

  it('drops an INS whose key is wrong (not an INS: provisional identity) and keeps the local identifier', () => {
    const p = patientFromTraits(
      { ...traits, ins: { value: '279035121518988', oid: '1.2.250.1.213.1.4.10' } },
      undefined,
    );
    expect(p.identifier).toEqual([{ system: 'urn:oid:1.2.3.4', value: 'P42' }]);
    expect(p.generalPractitioner).toBeUndefined();
  });
});
