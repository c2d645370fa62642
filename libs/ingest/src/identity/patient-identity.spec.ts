import type { Identifier, Patient } from '@medplum/fhirtypes';
import { nirKey } from '@gw/fhir';
import type { StoredResource } from '@gw/store';
import type { PatientData } from '../hl7v2/pam-fr.reader';
import { keptIdentity, matchingIns, patientLookups, pickPatient, tokenValue } from './patient-identity.rules';
import type { Lookup } from './patient-identity.rules';

const GOOD = `2790363220004${nirKey('2790363220004')}`;
const BAD_KEY = `2790363220004${nirKey('2790363220004') === '90' ? '91' : '90'}`;
const INS_OID = '1.2.250.1.213.1.4.10';
const IPP_SYSTEM = 'urn:oid:1.2.250.1.71.4.2.2.10000';

function pid(over: Partial<PatientData> = {}): PatientData {
  return { ipp: { value: 'IPP1', type: 'PI' } as PatientData['ipp'], names: [], addresses: [], telecoms: [], ...over };
}
const ins = (value: string): NonNullable<PatientData['ins']> => ({ value, oid: INS_OID, kind: 'INS-NIR' });
const ipp = (value: string, use: Identifier['use'] = 'usual'): Identifier => ({
  use,
  type: { coding: [{ code: 'PI' }] },
  system: IPP_SYSTEM,
  value,
});
const insId = (value: string, use: Identifier['use'] = 'official'): Identifier => ({
  use,
  system: `urn:oid:${INS_OID}`,
  value,
});
const stored = (id: string): StoredResource => ({ id, resourceType: 'Patient' }) as unknown as StoredResource;

describe('patient matching lookups', () => {
  it('finds by the source IPP, with the token value escaped', () => {
    expect(patientLookups(pid({ ipp: { value: 'A,B$C' } as PatientData['ipp'] }), IPP_SYSTEM)).toEqual({
      ipp: ['Patient', [['identifier', `${IPP_SYSTEM}|A\\,B\\$C`]], 'PID-3 IPP'],
      ins: undefined,
    });
    expect(tokenValue('a|b\\c')).toBe('a\\|b\\\\c');
  });

  it('adds the INS lookup only for a qualified identity', () => {
    expect(patientLookups(pid({ ins: ins(GOOD), identityStatus: 'QUAL' }), IPP_SYSTEM).ins).toEqual([
      'Patient',
      [['identifier', `urn:oid:${INS_OID}|${GOOD}`]],
      'PID-3 INS',
    ]);
    for (const status of ['PROV', 'VALI', 'RECUP', undefined] as const) {
      expect(matchingIns(pid({ ins: ins(GOOD), identityStatus: status }))).toBeUndefined();
    }
  });

  it('never matches by an INS that failed its checks (the reader left no INS, only insRejected)', () => {
    const rejected = pid({ identityStatus: 'PROV', insRejected: { declaredStatus: 'QUAL' } });
    expect(matchingIns(rejected)).toBeUndefined();
    expect(patientLookups(rejected, IPP_SYSTEM).ins).toBeUndefined();
  });
});

describe('pickPatient', () => {
  const lookups = patientLookups(pid({ ins: ins(GOOD), identityStatus: 'QUAL' }), IPP_SYSTEM);

  it('takes the patient known by IPP and does not consult the INS lookup', () => {
    const asked: string[] = [];
    const one = (l: Lookup): StoredResource | undefined => {
      asked.push(l[2]);
      return l[2] === 'PID-3 IPP' ? stored('by-ipp') : stored('by-ins');
    };
    expect(pickPatient(lookups, one)?.id).toBe('by-ipp');
    expect(asked).toEqual(['PID-3 IPP']);
  });

  it('falls back on the qualified INS, else finds nobody (a new patient)', () => {
    expect(pickPatient(lookups, (l) => (l[2] === 'PID-3 INS' ? stored('by-ins') : undefined))?.id).toBe('by-ins');
    expect(pickPatient(lookups, () => undefined)).toBeUndefined();
    expect(
      pickPatient({ ipp: lookups.ipp }, (l) => (l[2] === 'PID-3 INS' ? stored('by-ins') : undefined)),
    ).toBeUndefined();
  });

  it('lets the refusal of several matches through', () => {
    expect(() =>
      pickPatient(lookups, () => {
        throw new Error('PID-3 IPP matches several Patient resources');
      }),
    ).toThrow('several');
  });
});

describe('keptIdentity (identity reliability)', () => {
  const known: Patient = {
    resourceType: 'Patient',
    identifier: [ipp('IPP1'), insId(GOOD), ipp('OLD', 'old'), { system: 'urn:other', value: 'x' }],
  };

  it('replaces the IPP of the source and keeps identifiers from elsewhere and old ones', () => {
    expect(keptIdentity(known, pid(), IPP_SYSTEM).identifiers).toEqual([
      insId(GOOD),
      ipp('OLD', 'old'),
      { system: 'urn:other', value: 'x' },
    ]);
  });

  it('replaces every INS when the message carries a valid one', () => {
    expect(keptIdentity(known, pid({ ins: ins(GOOD), identityStatus: 'QUAL' }), IPP_SYSTEM).identifiers).toEqual([
      ipp('OLD', 'old'),
      { system: 'urn:other', value: 'x' },
    ]);
  });

  it('keeps a valid stored INS and its identity status when the message INS failed its checks', () => {
    expect(
      keptIdentity(known, pid({ identityStatus: 'PROV', insRejected: { declaredStatus: 'QUAL' } }), IPP_SYSTEM),
    ).toMatchObject({ keepStatus: true, identifiers: expect.arrayContaining([insId(GOOD)]) });
  });

  it('lets an explicit PID-32 PROV downgrade the identity even then', () => {
    expect(
      keptIdentity(known, pid({ identityStatus: 'PROV', insRejected: { declaredStatus: 'PROV' } }), IPP_SYSTEM)
        .keepStatus,
    ).toBe(false);
  });

  it('does not keep the status without a rejected INS, nor when the only stored INS is old or invalid', () => {
    expect(keptIdentity(known, pid({ identityStatus: 'VALI' }), IPP_SYSTEM).keepStatus).toBe(false);
    const rejected = pid({ identityStatus: 'PROV', insRejected: { declaredStatus: 'QUAL' } });
    expect(
      keptIdentity({ resourceType: 'Patient', identifier: [insId(GOOD, 'old')] }, rejected, IPP_SYSTEM).keepStatus,
    ).toBe(false);
    expect(keptIdentity({ resourceType: 'Patient', identifier: [insId(BAD_KEY)] }, rejected, IPP_SYSTEM)).toEqual({
      identifiers: [],
      keepStatus: false,
    });
  });

  it('drops an invalid INS stored earlier', () => {
    expect(
      keptIdentity({ resourceType: 'Patient', identifier: [ipp('IPP1'), insId(BAD_KEY)] }, pid(), IPP_SYSTEM)
        .identifiers,
    ).toEqual([]);
  });
});
