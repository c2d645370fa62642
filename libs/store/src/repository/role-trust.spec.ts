import type { PractitionerRole } from '@medplum/fhirtypes';
import { ROLE_OPERATOR_VOUCHED, ROLE_TRUST_SYSTEM } from '@gw/fhir';
import type { Principal } from './access.policy';
import { isVouchedRole, withRoleTrust } from './role-trust';

const VOUCHED = { system: ROLE_TRUST_SYSTEM, code: ROLE_OPERATOR_VOUCHED };
const OTHER = { system: 'urn:x', code: 'y' };
const client: Principal = { clientId: 'c', organization: 'Organization/b', admin: false, scopes: [] };
const operator: Principal = { ...client, admin: true };

function role(practitioner: string, extra: Partial<PractitionerRole> = {}): PractitionerRole {
  return {
    resourceType: 'PractitionerRole',
    practitioner: { reference: practitioner },
    organization: { reference: 'Organization/b' },
    ...extra,
  };
}

/** The stored JSON of a version carrying these tags. */
const stored = (r: PractitionerRole, tags = [VOUCHED]): string => JSON.stringify({ ...r, meta: { tag: tags } });

describe('role trust tag', () => {
  it('vouches for a role an operator writes, never for a client’s, whose own tag is dropped', () => {
    expect(withRoleTrust([], role('Practitioner/p'), operator)).toEqual([VOUCHED]);
    expect(withRoleTrust([VOUCHED, OTHER], role('Practitioner/p'), client)).toEqual([OTHER]);
    expect(withRoleTrust([VOUCHED], { resourceType: 'Practitioner' }, operator)).toEqual([]);
  });

  it('an operator may withdraw the vouch (unverify) by writing with vouch false', () => {
    expect(withRoleTrust([VOUCHED], role('Practitioner/p'), operator, stored(role('Practitioner/p')), false)).toEqual(
      [],
    );
  });

  it('a client’s rewrite keeps the vouch while practitioner and organization stay, not when it names another GP', () => {
    const before = stored(role('Practitioner/p'));
    const ended = role('Practitioner/p', { active: false, period: { end: '2026-01-01' } });
    expect(withRoleTrust([], ended, client, before)).toEqual([VOUCHED]);
    expect(withRoleTrust([], role('Practitioner/q'), client, before)).toEqual([]);
    const moved = role('Practitioner/p', { organization: { reference: 'Organization/c' } });
    expect(withRoleTrust([], moved, client, before)).toEqual([]);
    // Never vouched before: a client's rewrite does not vouch.
    expect(withRoleTrust([VOUCHED], role('Practitioner/p'), client, stored(role('Practitioner/p'), []))).toEqual([]);
  });

  it('reads the tag', () => {
    expect(isVouchedRole(JSON.parse(stored(role('Practitioner/p'))) as PractitionerRole)).toBe(true);
    expect(isVouchedRole(role('Practitioner/p'))).toBe(false);
  });
});
