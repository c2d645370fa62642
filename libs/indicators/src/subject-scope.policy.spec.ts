import type { Group } from '@medplum/fhirtypes';
import { GatewayError } from '@gw/platform';
import type { Principal, StoredResource } from '@gw/store';
import { expectNoUnexpectedUse, strictFake } from '@gw/testing/fakes';
import { resolveScope } from './subject-scope.policy';
import type { ScopeLookup } from './subject-scope.policy';

// A CPTS with two member structures, and a structure outside it.
const ORGANIZATIONS: Record<string, { type: string | null; partOf: string | null }> = {
  cpts: { type: 'CPTS', partOf: null },
  msp: { type: 'MSP', partOf: 'cpts' },
  cds: { type: 'CDS', partOf: 'cpts' },
  elsewhere: { type: 'MSP', partOf: null },
};

const GROUP: Group = {
  resourceType: 'Group',
  id: 'diabetics',
  type: 'person',
  actual: true,
  member: [
    { entity: { reference: 'Patient/p1' } },
    { entity: { reference: 'Patient/p2' }, inactive: true },
    { entity: { reference: 'Practitioner/x' } },
    { entity: { reference: 'Patient/p3' } },
  ],
};

/** What each organization's clients may read (the admin reads everything). */
const READABLE: Record<string, Record<string, unknown>> = {
  'Organization/msp': { 'Patient/p1': {}, 'Practitioner/gp': {}, 'Group/diabetics': GROUP },
  'Organization/cpts': {},
};

function client(org: string, scopes = ['system/*.rs']): Principal {
  return { clientId: `${org}-app`, organization: `Organization/${org}`, admin: false, scopes };
}
const ADMIN: Principal = { clientId: 'operator', organization: 'Organization/gateway', admin: true, scopes: [] };

const reads: string[] = [];
const lookup = strictFake<ScopeLookup>('lookup', {
  organization: async (id) => ORGANIZATIONS[id],
  read: async (p, type, id) => {
    reads.push(`${type}/${id}`);
    const found = p.admin
      ? `${type}/${id}` === 'Group/diabetics'
        ? GROUP
        : {}
      : READABLE[p.organization]?.[`${type}/${id}`];
    if (!found) {
      throw new GatewayError('not-found', { text: `${type}/${id} not found` });
    }
    return { json: JSON.stringify(found) } as StoredResource;
  },
});

const category = (c: string) => expect.objectContaining({ category: c });

describe('resolveScope', () => {
  beforeEach(() => reads.splice(0));
  afterEach(expectNoUnexpectedUse);

  describe('a CPTS client', () => {
    const cpts = client('cpts');

    it('gets population reports for its territory and for each member structure', async () => {
      await expect(resolveScope(lookup, cpts, 'Organization/cpts', 'population')).resolves.toEqual({
        kind: 'cpts',
        id: 'cpts',
      });
      await expect(resolveScope(lookup, cpts, 'Organization/msp', 'population')).resolves.toEqual({
        kind: 'organization',
        id: 'msp',
      });
    });

    it('is refused patient lists, even of a member structure, and individual reports', async () => {
      await expect(resolveScope(lookup, cpts, 'Organization/cpts', 'subject-list')).rejects.toEqual(
        category('forbidden'),
      );
      await expect(resolveScope(lookup, cpts, 'Organization/msp', 'subject-list')).rejects.toThrow(
        'A CPTS receives population reports only',
      );
      await expect(resolveScope(lookup, cpts, 'Patient/p1', 'subject')).rejects.toEqual(category('forbidden'));
      expect(reads).toEqual([]);
    });

    it('is refused a structure outside its territory', async () => {
      await expect(resolveScope(lookup, cpts, 'Organization/elsewhere', 'population')).rejects.toEqual(
        category('forbidden'),
      );
    });
  });

  describe("a structure's client", () => {
    const msp = client('msp');

    it('gets reports and patient lists of its own organization', async () => {
      await expect(resolveScope(lookup, msp, 'Organization/msp', 'population')).resolves.toEqual({
        kind: 'organization',
        id: 'msp',
      });
      await expect(resolveScope(lookup, msp, 'Organization/msp', 'subject-list')).resolves.toEqual({
        kind: 'organization',
        id: 'msp',
      });
    });

    it('is refused another structure of the same CPTS, and the CPTS itself', async () => {
      await expect(resolveScope(lookup, msp, 'Organization/cds', 'population')).rejects.toEqual(category('forbidden'));
      await expect(resolveScope(lookup, msp, 'Organization/cpts', 'population')).rejects.toEqual(category('forbidden'));
    });

    it('needs a token allowing "r" on Patient for a patient list', async () => {
      await expect(
        resolveScope(lookup, client('msp', ['system/Measure.rs']), 'Organization/msp', 'subject-list'),
      ).rejects.toThrow('Patient lists need a token allowing "r" on Patient');
      await expect(
        resolveScope(lookup, client('msp', ['system/Measure.rs']), 'Organization/msp', 'population'),
      ).resolves.toEqual({ kind: 'organization', id: 'msp' });
    });

    it('gets the patientèle of a GP (among its own patients only) and one patient only when it may read them', async () => {
      await expect(resolveScope(lookup, msp, 'Practitioner/gp', 'population')).resolves.toEqual({
        kind: 'practitioner',
        id: 'gp',
        within: { kind: 'organization', id: 'msp' },
      });
      await expect(resolveScope(lookup, msp, 'Practitioner/other', 'population')).rejects.toEqual(
        category('not-found'),
      );
      await expect(resolveScope(lookup, msp, 'Patient/p1', 'subject')).resolves.toEqual({ kind: 'patient', id: 'p1' });
      await expect(resolveScope(lookup, msp, 'Patient/p9', 'subject')).rejects.toEqual(category('not-found'));
    });

    it('gets a Group it may read as its active patient members, and not-found for another', async () => {
      await expect(resolveScope(lookup, msp, 'Group/diabetics', 'population')).resolves.toEqual({
        kind: 'group',
        patientIds: ['p1', 'p3'],
      });
      await expect(resolveScope(lookup, client('cds'), 'Group/diabetics', 'population')).rejects.toEqual(
        category('not-found'),
      );
    });

    it('must name a subject', async () => {
      await expect(resolveScope(lookup, msp, undefined, 'population')).rejects.toEqual(category('invalid'));
    });
  });

  describe('an admin', () => {
    it('gets the whole base without a subject, and any organization or practitioner without a read check', async () => {
      await expect(resolveScope(lookup, ADMIN, undefined, 'subject-list')).resolves.toEqual({ kind: 'all' });
      await expect(resolveScope(lookup, ADMIN, 'Organization/elsewhere', 'subject-list')).resolves.toEqual({
        kind: 'organization',
        id: 'elsewhere',
      });
      await expect(resolveScope(lookup, ADMIN, 'Organization/cpts', 'population')).resolves.toEqual({
        kind: 'cpts',
        id: 'cpts',
      });
      await expect(resolveScope(lookup, ADMIN, 'Practitioner/anyone', 'population')).resolves.toEqual({
        kind: 'practitioner',
        id: 'anyone',
      });
      expect(reads).toEqual([]);
    });
  });

  it('answers not-found for an organization the indicators do not know', async () => {
    await expect(resolveScope(lookup, ADMIN, 'Organization/nowhere', 'population')).rejects.toEqual(
      category('not-found'),
    );
  });

  it.each([
    ['a subject of another type', 'Encounter/e1', 'population'],
    ['a Patient subject without reportType=subject', 'Patient/p1', 'population'],
    ['reportType=subject on an organization', 'Organization/msp', 'subject'],
  ] as const)('rejects %s as invalid', async (_case, subject, reportType) => {
    await expect(resolveScope(lookup, client('msp'), subject, reportType)).rejects.toEqual(category('invalid'));
  });
});
