import type { Patient } from '@medplum/fhirtypes';
import { IDENTITY_TRUST_SYSTEM, IDENTITY_VERIFIED_SOURCE, RELIABILITY_EXTENSION, nirKey } from '@gw/fhir';
import { IDENTITY_QUALIFICATION_GRANT } from './access.policy';
import type { Principal } from './access.policy';
import { qualifiedIns, withIdentityTrust } from './identity-trust';

const INS = 'urn:oid:1.2.250.1.213.1.4.8';
const NIR = `1480375056101${nirKey('1480375056101')}`;
const VERIFIED = { system: IDENTITY_TRUST_SYSTEM, code: IDENTITY_VERIFIED_SOURCE };
const client: Principal = { clientId: 'c', organization: 'Organization/a', admin: false, scopes: [] };
const qualifier: Principal = { ...client, grants: [IDENTITY_QUALIFICATION_GRANT] };

function patient(status: string, value = NIR, extra: Partial<Patient> = {}): Patient {
  return {
    resourceType: 'Patient',
    identifier: [{ system: INS, value }],
    extension: [{ url: RELIABILITY_EXTENSION, extension: [{ url: 'identityStatus', valueCoding: { code: status } }] }],
    ...extra,
  };
}

describe('identity trust tag', () => {
  it('reads the qualified INS: QUAL, current, valid key', () => {
    expect(qualifiedIns(patient('QUAL'))).toBe(`${INS}|${NIR}`);
    expect(qualifiedIns(patient('VALI'))).toBeUndefined();
    expect(qualifiedIns(patient('QUAL', `${NIR.slice(0, 13)}00`))).toBeUndefined();
    expect(qualifiedIns({ ...patient('QUAL'), identifier: [{ system: INS, value: NIR, use: 'old' }] })).toBeUndefined();
  });

  it('tags a qualified INS written by an operator or a granted writer; drops a client’s own tag', () => {
    expect(withIdentityTrust([], patient('QUAL'), qualifier)).toEqual([VERIFIED]);
    expect(withIdentityTrust([], patient('QUAL'), { ...client, admin: true })).toEqual([VERIFIED]);
    expect(withIdentityTrust([VERIFIED], patient('QUAL'), client)).toEqual([]);
    expect(withIdentityTrust([VERIFIED], patient('PROV'), qualifier)).toEqual([]);
    expect(withIdentityTrust([VERIFIED], { resourceType: 'Observation' } as never, qualifier)).toEqual([]);
  });

  it('keeps a verification across a client’s update that leaves the qualified INS as it was', () => {
    const previous = JSON.stringify({ ...patient('QUAL'), meta: { tag: [VERIFIED] } });
    expect(withIdentityTrust([], patient('QUAL', NIR, { gender: 'male' }), client, previous)).toEqual([VERIFIED]);
    const other = `2480375056101${nirKey('2480375056101')}`;
    expect(withIdentityTrust([], patient('QUAL', other), client, previous)).toEqual([]);
    expect(withIdentityTrust([], patient('QUAL'), client, JSON.stringify(patient('QUAL')))).toEqual([]);
  });
});
