/** The authenticated caller, as the token says. */
export interface Principal {
  clientId: string;
  /** `Organization/<id>` the client belongs to. */
  organization: string;
  admin: boolean;
  scopes: string[];
}

/** What the policy sees of a stored resource. */
export interface StoredRef {
  resourceType: string;
  id: string;
  ownerOrg: string | null;
}

/**
 * The access-policy hook. The store asks it for every read (as a SQL filter for searches, as a
 * check for reads by id) and every write. Care-team-based sharing across organizations will be
 * another implementation composed with this one; nothing else in the store changes.
 */
export interface AccessPolicy {
  /** SQL condition on the resource alias restricting what `p` can see, or undefined for all. */
  readFilter(p: Principal, alias: string, bind: (value: unknown) => string): string | undefined;
  canRead(p: Principal, row: StoredRef): boolean;
  canWrite(p: Principal, existing: StoredRef | undefined): boolean;
  /** The organization that will own a new resource written by `p`. */
  ownerFor(p: Principal, requestedOwner: string | undefined): string;
}

/**
 * Definitional resources every client may read whoever filed them: the indicator catalogue
 * (Measures and their ValueSets) is the same for every structure. Writing them stays with their owner.
 */
export const SHARED_READ_TYPES = ['Measure', 'Library', 'ValueSet', 'CodeSystem', 'ConceptMap'];

/** Same shape as ClientRegistry accepts for a client's organization. */
const ORGANIZATION_REF = /^Organization\/[A-Za-z0-9\-.]{1,64}$/;

/**
 * First policy (issue #2): a client reads and writes within its own organization; an admin client
 * sees everything. A client can always read its own Organization resource and the shared definitional ones.
 */
export class OrganizationAccessPolicy implements AccessPolicy {
  readFilter(p: Principal, alias: string, bind: (value: unknown) => string): string | undefined {
    if (p.admin) {
      return undefined;
    }
    const org = bind(p.organization);
    return `(${alias}.owner_org = ${org} OR (${alias}.resource_type = 'Organization' AND 'Organization/' || ${alias}.id = ${org}) OR ${alias}.resource_type IN (${SHARED_READ_TYPES.map((t) => `'${t}'`).join(', ')}))`;
  }

  canRead(p: Principal, row: StoredRef): boolean {
    return p.admin || row.ownerOrg === p.organization || `${row.resourceType}/${row.id}` === p.organization || SHARED_READ_TYPES.includes(row.resourceType);
  }

  canWrite(p: Principal, existing: StoredRef | undefined): boolean {
    return p.admin || !existing || existing.ownerOrg === p.organization;
  }

  /** Only an admin may file a resource under another organization, and only under a real reference. */
  ownerFor(p: Principal, requestedOwner: string | undefined): string {
    return p.admin && requestedOwner && ORGANIZATION_REF.test(requestedOwner) ? requestedOwner : p.organization;
  }
}
