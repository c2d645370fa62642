import { OrganizationAccessPolicy } from './access';
import type { Principal } from './access';

const policy = new OrganizationAccessPolicy();
const mspA: Principal = { clientId: 'a', organization: 'Organization/msp-a', admin: false, scopes: ['system/*.cruds'] };
const admin: Principal = { clientId: 'adm', organization: 'Organization/gateway-operator', admin: true, scopes: ['system/*.cruds'] };
const patientOf = (ownerOrg: string | null) => ({ resourceType: 'Patient', id: 'p1', ownerOrg });

describe('OrganizationAccessPolicy', () => {
  it('lets a client read and write what its organization owns, and nothing else', () => {
    expect(policy.canRead(mspA, patientOf('Organization/msp-a'))).toBe(true);
    expect(policy.canWrite(mspA, patientOf('Organization/msp-a'))).toBe(true);
    expect(policy.canRead(mspA, patientOf('Organization/msp-b'))).toBe(false);
    expect(policy.canWrite(mspA, patientOf('Organization/msp-b'))).toBe(false);
    expect(policy.canRead(mspA, patientOf(null))).toBe(false);
    expect(policy.canWrite(mspA, patientOf(null))).toBe(false);
  });

  it('lets a client create, and read its own Organization resource without owning it', () => {
    expect(policy.canWrite(mspA, undefined)).toBe(true);
    expect(policy.canRead(mspA, { resourceType: 'Organization', id: 'msp-a', ownerOrg: 'Organization/gateway-operator' })).toBe(true);
    expect(policy.canWrite(mspA, { resourceType: 'Organization', id: 'msp-a', ownerOrg: 'Organization/gateway-operator' })).toBe(false);
    expect(policy.canRead(mspA, { resourceType: 'Organization', id: 'msp-b', ownerOrg: 'Organization/gateway-operator' })).toBe(false);
    expect(policy.canRead(mspA, { resourceType: 'Location', id: 'msp-a', ownerOrg: 'Organization/msp-b' })).toBe(false);
  });

  it('lets every client read the shared catalogue (Measure, ValueSet) but not change it', () => {
    const measure = { resourceType: 'Measure', id: 'rosp', ownerOrg: 'Organization/gateway' };
    expect(policy.canRead(mspA, measure)).toBe(true);
    expect(policy.canWrite(mspA, measure)).toBe(false);
    expect(policy.canRead(mspA, { resourceType: 'ValueSet', id: 'hba1c', ownerOrg: 'Organization/gateway' })).toBe(true);
    expect(policy.canRead(mspA, { resourceType: 'MeasureReport', id: 'r', ownerOrg: 'Organization/gateway' })).toBe(false);
  });

  it('lets an admin read and write everything', () => {
    expect(policy.canRead(admin, patientOf('Organization/msp-b'))).toBe(true);
    expect(policy.canWrite(admin, patientOf(null))).toBe(true);
    expect(policy.readFilter(admin, 'r', () => '$1')).toBeUndefined();
  });

  it('filters searches on the owner, with the organization as a bound value', () => {
    const bound: unknown[] = [];
    const sql = policy.readFilter(mspA, 'r', (v) => {
      bound.push(v);
      return `$${bound.length}`;
    });
    expect(sql).toContain('r.owner_org = $1');
    expect(sql).not.toContain('msp-a');
    expect(bound).toEqual(['Organization/msp-a']);
  });

  it('stamps new resources with the writer\'s organization; only an admin may name another, valid one', () => {
    expect(policy.ownerFor(mspA, undefined)).toBe('Organization/msp-a');
    expect(policy.ownerFor(mspA, 'Organization/msp-b')).toBe('Organization/msp-a');
    expect(policy.ownerFor(admin, 'Organization/msp-b')).toBe('Organization/msp-b');
    expect(policy.ownerFor(admin, undefined)).toBe('Organization/gateway-operator');
    expect(policy.ownerFor(admin, 'msp-b')).toBe('Organization/gateway-operator');
    expect(policy.ownerFor(admin, "Organization/x' OR 1=1")).toBe('Organization/gateway-operator');
  });
});
