import { OrganizationAccessPolicy } from './access.policy';
import type { Principal } from './access.policy';

const policy = new OrganizationAccessPolicy();
const mspA: Principal = { clientId: 'a', organization: 'Organization/msp-a', admin: false, scopes: ['system/*.cruds'] };
const admin: Principal = {
  clientId: 'adm',
  organization: 'Organization/gateway-operator',
  admin: true,
  scopes: ['system/*.cruds'],
};
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

  it('lets every client read the directory types whoever owns them, and no patient data of another organization', () => {
    for (const type of [
      'Practitioner',
      'PractitionerRole',
      'Organization',
      'Location',
      'HealthcareService',
      'Endpoint',
    ]) {
      expect([type, policy.canRead(mspA, { resourceType: type, id: 'x', ownerOrg: 'Organization/msp-b' })]).toEqual([
        type,
        true,
      ]);
    }
    for (const type of ['Patient', 'Encounter', 'CareTeam', 'Task', 'Communication']) {
      expect([type, policy.canRead(mspA, { resourceType: type, id: 'x', ownerOrg: 'Organization/msp-b' })]).toEqual([
        type,
        false,
      ]);
    }
    expect(policy.readFilter(mspA, 'r', () => '$1')).toContain("'Practitioner'");
  });

  it('lets a structure edit the non-identity fields of its own Organization, not its identifiers, not delete it', () => {
    const own = {
      resourceType: 'Organization',
      id: 'msp-a',
      ownerOrg: 'Organization/gateway-operator',
      json: JSON.stringify({
        resourceType: 'Organization',
        identifier: [{ system: 'https://finess.esante.gouv.fr', value: '750000001' }],
      }),
    };
    expect(
      policy.writeRefusal(mspA, own, {
        resourceType: 'Organization',
        name: 'MSP A',
        identifier: [{ system: 'https://finess.esante.gouv.fr', value: '750000001' }],
      }),
    ).toBeUndefined();
    expect(
      policy.writeRefusal(mspA, own, {
        resourceType: 'Organization',
        identifier: [{ system: 'https://finess.esante.gouv.fr', value: '750000002' }],
      }),
    ).toMatch(/directory identity/);
    expect(policy.canWrite(mspA, own)).toBe(false);
    expect(policy.writeRefusal(mspA, { ...own, id: 'msp-b' }, { resourceType: 'Organization' })).toMatch(
      /shared directory entry maintained by another organization/,
    );
  });

  it('refuses a structure any change to a directory entry another organization or the import owns, and roles of another organization', () => {
    const imported = { resourceType: 'Practitioner', id: 'gp', ownerOrg: 'Organization/gateway-directory' };
    expect(policy.writeRefusal(mspA, imported, { resourceType: 'Practitioner' })).toMatch(
      /directory import \(Annuaire Santé\).*mailbox/,
    );
    expect(
      policy.writeRefusal(mspA, { ...imported, ownerOrg: 'Organization/msp-a' }, { resourceType: 'Practitioner' }),
    ).toBeUndefined();
    expect(policy.writeRefusal(mspA, undefined, { resourceType: 'Practitioner' })).toBeUndefined();
    expect(
      policy.writeRefusal(mspA, undefined, {
        resourceType: 'PractitionerRole',
        organization: { reference: 'Organization/msp-a' },
      }),
    ).toBeUndefined();
    expect(
      policy.writeRefusal(mspA, undefined, {
        resourceType: 'PractitionerRole',
        organization: { reference: 'Organization/msp-b' },
      }),
    ).toMatch(/own roles/);
    expect(policy.writeRefusal(admin, imported, { resourceType: 'Practitioner' })).toBeUndefined();
  });

  it('refuses a client setting, changing or removing the CPTS type, territory communes or partOf; lets it re-send them', () => {
    const CPTS = { system: 'https://gateway.fr-primary-care.org/fhir/CodeSystem/organization-type', code: 'CPTS' };
    const commune = (code: string) => ({
      url: 'https://gateway.fr-primary-care.org/fhir/StructureDefinition/territory-commune',
      valueCode: code,
    });
    const stored = {
      resourceType: 'Organization',
      name: 'CPTS A',
      type: [{ coding: [CPTS] }],
      extension: [commune('69123'), commune('69124')],
    };
    const own = {
      resourceType: 'Organization',
      id: 'msp-a',
      ownerOrg: 'Organization/msp-a',
      json: JSON.stringify(stored),
    };
    const org = (o: object) => ({ resourceType: 'Organization', ...o }) as never;
    // Unchanged (communes in another order, keys in another order): fine, other fields too.
    expect(
      policy.writeRefusal(
        mspA,
        own,
        org({
          name: 'CPTS A (renamed)',
          type: [{ coding: [{ code: 'CPTS', system: CPTS.system }] }],
          extension: [commune('69124'), commune('69123')],
        }),
      ),
    ).toBeUndefined();
    expect(policy.writeRefusal(mspA, own, org({ ...stored, extension: [commune('69123')] }))).toMatch(
      /granted by an operator \(admin API \/admin\/cpts.*changes the territory communes of Organization\/msp-a$/,
    );
    expect(policy.writeRefusal(mspA, own, org({ name: 'x' }))).toMatch(/the CPTS type, the territory communes/);
    expect(policy.writeRefusal(mspA, own, org({ ...stored, partOf: { reference: 'Organization/cpts' } }))).toMatch(
      /changes partOf of Organization\/msp-a$/,
    );
    const plain = { ...own, json: JSON.stringify({ resourceType: 'Organization', name: 'MSP A' }) };
    expect(policy.writeRefusal(mspA, plain, org({ name: 'MSP A', type: [{ coding: [{ code: 'cpts' }] }] }))).toMatch(
      /the CPTS type/,
    );
    expect(policy.writeRefusal(mspA, undefined, org({ name: 'New', extension: [commune('69123')] }))).toMatch(
      /of a new Organization/,
    );
    expect(
      policy.writeRefusal(mspA, undefined, org({ name: 'New', type: [{ coding: [{ code: 'MSP' }] }] })),
    ).toBeUndefined();
    expect(policy.writeRefusal(admin, plain, org(stored))).toBeUndefined();
  });

  it('lets every client read the shared catalogue (Measure, ValueSet) but not change it', () => {
    const measure = { resourceType: 'Measure', id: 'rosp', ownerOrg: 'Organization/gateway' };
    expect(policy.canRead(mspA, measure)).toBe(true);
    expect(policy.canWrite(mspA, measure)).toBe(false);
    expect(policy.canRead(mspA, { resourceType: 'ValueSet', id: 'hba1c', ownerOrg: 'Organization/gateway' })).toBe(
      true,
    );
    expect(policy.canRead(mspA, { resourceType: 'MeasureReport', id: 'r', ownerOrg: 'Organization/gateway' })).toBe(
      false,
    );
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

  it("stamps new resources with the writer's organization; only an admin may name another, valid one", () => {
    expect(policy.ownerFor(mspA, undefined)).toBe('Organization/msp-a');
    expect(policy.ownerFor(mspA, 'Organization/msp-b')).toBe('Organization/msp-a');
    expect(policy.ownerFor(admin, 'Organization/msp-b')).toBe('Organization/msp-b');
    expect(policy.ownerFor(admin, undefined)).toBe('Organization/gateway-operator');
    expect(policy.ownerFor(admin, 'msp-b')).toBe('Organization/gateway-operator');
    expect(policy.ownerFor(admin, "Organization/x' OR 1=1")).toBe('Organization/gateway-operator');
  });
});
