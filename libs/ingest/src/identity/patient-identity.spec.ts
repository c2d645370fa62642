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

describe('pickPatient (the matching rule without its traits step)', () => {
  const qualified = pid({ ins: ins(GOOD), identityStatus: 'QUAL' });
  const lookups = patientLookups(qualified, IPP_SYSTEM);
  const withIns = (id: string, value?: string): StoredResource =>
    ({
      id,
      resourceType: 'Patient',
      json: JSON.stringify({ resourceType: 'Patient', identifier: value ? [insId(value)] : [] }),
    }) as unknown as StoredResource;
  const OTHER = `1620311004017${nirKey('1620311004017')}`;

  it('takes the patient the IPP and the qualified INS agree on', () => {
    expect(pickPatient(qualified, lookups, () => [withIns('same', GOOD)])?.id).toBe('same');
  });

  it('falls back on the qualified INS, else finds nobody (a new patient)', () => {
    expect(pickPatient(qualified, lookups, (l) => (l[2] === 'PID-3 INS' ? [stored('by-ins')] : []))?.id).toBe('by-ins');
    expect(pickPatient(qualified, lookups, () => [])).toBeUndefined();
    expect(
      pickPatient(qualified, { ipp: lookups.ipp }, (l) => (l[2] === 'PID-3 INS' ? [stored('by-ins')] : [])),
    ).toBeUndefined();
  });

  it('refuses (207) an IPP and a qualified INS designating two patients instead of picking the IPP one', () => {
    const all = (l: Lookup): StoredResource[] => [l[2] === 'PID-3 IPP' ? withIns('by-ipp') : withIns('by-ins')];
    expect(() => pickPatient(qualified, lookups, all)).toThrow('two different Patient');
  });

  it('refuses a qualified INS other than the valid one the IPP patient holds, and several matches', () => {
    const ippOnly = (l: Lookup): StoredResource[] => (l[2] === 'PID-3 IPP' ? [withIns('by-ipp', OTHER)] : []);
    expect(() => pickPatient(qualified, lookups, ippOnly)).toThrow('holds another valid INS');
    expect(() =>
      pickPatient(qualified, lookups, (l) => (l[2] === 'PID-3 IPP' ? [stored('a'), stored('b')] : [])),
    ).toThrow('several');
  });

  it('an unqualified INS is no conflict: the IPP patient is taken', () => {
    const vali = pid({ ins: ins(GOOD), identityStatus: 'VALI' });
    expect(pickPatient(vali, patientLookups(vali, IPP_SYSTEM), () => [withIns('by-ipp', OTHER)])?.id).toBe('by-ipp');
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
