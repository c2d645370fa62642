import type { Resource } from '@medplum/fhirtypes';
import { DIRECTORY_ORG, DIRECTORY_TYPES, identityKeys } from '../directory/directory.identity';
import { changedGrants } from './operator-grants';

/**
 * A person acting through a client (OAuth 2.0 token exchange): a Practitioner through one of their
 * PractitionerRoles. Its organization is the role's, which is the client's.
 */
export interface PersonContext {
  /** `Practitioner/<id>` */
  practitioner: string;
  /** `PractitionerRole/<id>`: the role the person acts in. */
  role: string;
  /** The role's profession (TRE_G15 code: '10' médecin, '21' pharmacien, '60' infirmier, '70' kiné…). */
  profession?: string;
  /** False for non-health staff (secrétaire, coordinateur non soignant): never clinical content. */
  health: boolean;
  /** Identification nationale (IdNatPS), for the audit trail. */
  idNatPs?: string;
  /** A name for the audit trail. */
  display?: string;
  /** PurposeOfUse (v3-ActReason): TREAT unless said otherwise. */
  purpose?: string;
  /**
   * Who the person is was proved by an identity provider (OpenID Connect), or vouched for by a
   * client an operator granted {@link PERSON_IDENTITY_GRANT}. Only then do grants naming the
   * Practitioner itself apply: a client's own word could otherwise claim any professional.
   */
  identityVerified?: boolean;
}

/** The authenticated caller, as the token says. */
export interface Principal {
  clientId: string;
  /** `Organization/<id>` the client belongs to. */
  organization: string;
  admin: boolean;
  scopes: string[];
  /**
   * Capabilities an operator granted the client (admin API / CLI), never requested by it: e.g.
   * {@link IDENTITY_QUALIFICATION_GRANT}. Absent: none.
   */
  grants?: readonly string[];
  /** The person a client acts for (token exchange); absent for a system client. */
  person?: PersonContext;
}

/**
 * Grant: the client (or HL7 source) may qualify identities (INS status QUAL, checked with INSi);
 * only a Patient written by such a writer, or by an operator, merges with other organizations'
 * records of the same INS.
 */
export const IDENTITY_QUALIFICATION_GRANT = 'ins-qualification';

/**
 * Grant: the client authenticates its users itself (e.g. CPS / e-CPS in a homologated software):
 * the persons it vouches for by signed JWTs count as who they say for Practitioner-level grants.
 */
export const PERSON_IDENTITY_GRANT = 'person-identity';

/** What the policy sees of a stored resource. */
export interface StoredRef {
  resourceType: string;
  id: string;
  ownerOrg: string | null;
  /** The one Patient the resource is about (the Patient itself, or its compartment's), when known. */
  patientId?: string | null;
  /** The current JSON, when the caller has it (identity checks on updates). */
  json?: string | null;
}

/**
 * The access-policy hook. The store asks it for every read (as a SQL filter for searches, as a
 * check for reads by id) and every write. Care-team-based sharing across organizations will be
 * another implementation composed with this one; nothing else in the store changes.
 */
export interface AccessPolicy {
  /**
   * SQL condition on the alias restricting what `p` can see, or undefined for all. The alias is a
   * `resource` row, or with `on: 'history'` a `resource_history` row (an old version is visible when
   * its resource is).
   */
  readFilter(
    p: Principal,
    alias: string,
    bind: (value: unknown) => string,
    on?: 'resource' | 'history',
  ): string | undefined;
  /**
   * Whether `p` may read this row. When {@link readsNeedSql} says so for `p`, reads by id use
   * readFilter instead and canRead only decides which stored resources `p` may try to write.
   */
  canRead(p: Principal, row: StoredRef): boolean;
  /** True when canRead cannot answer for `p` from the row alone: reads by id then run readFilter. */
  readsNeedSql?(p: Principal): boolean;
  /** The JSON `p` receives of a readable resource (elements masked), or `json` itself. */
  redact?(p: Principal, resourceType: string, json: string): string;
  /**
   * Whether `p`'s profession reads resources of this type at all (the profession matrix), whatever
   * the patient; absent: yes.
   */
  readsType?(p: Principal, resourceType: string): boolean;
  canWrite(p: Principal, existing: StoredRef | undefined): boolean;
  /**
   * Why `p` may not write `next` over `existing` (undefined when it may): the text of the 403.
   * `existing` undefined is a create.
   */
  writeRefusal(p: Principal, existing: StoredRef | undefined, next?: Resource): string | undefined;
  /** The organization that will own a new resource written by `p`. */
  ownerFor(p: Principal, requestedOwner: string | undefined): string;
  /**
   * Whether `p` may write a resource that references this Patient (its facts, a Group holding it,
   * a link to it): `patient` is the stored record, undefined when no record has that id.
   */
  canWriteForPatient(p: Principal, patient: StoredRef | undefined): boolean;
}

/**
 * Resources every client may read whoever filed them: the indicator catalogue (Measures and their
 * ValueSets) is the same for every structure, and the directory (Practitioner, PractitionerRole,
 * Organization, Location, HealthcareService, Endpoint) is reference data, not patient data.
 * Writing them stays with their owner (see writeRefusal).
 */
export const SHARED_READ_TYPES = ['Measure', 'Library', 'ValueSet', 'CodeSystem', 'ConceptMap', ...DIRECTORY_TYPES];

/**
 * Being a CPTS, its territory communes and a structure's membership of a CPTS (partOf) are granted
 * by an operator: hospitals' discharges for those communes go to the CPTS, and a CPTS sees its
 * members' aggregates. A client may re-send them unchanged (compared with the stored version).
 */
function grantRefusal(existing: StoredRef | undefined, next: Resource): string | undefined {
  const before = existing?.json ? (JSON.parse(existing.json) as Resource) : undefined;
  const changed = changedGrants(before, next);
  if (changed.length === 0) {
    return undefined;
  }
  const ref = existing ? `${existing.resourceType}/${existing.id}` : 'a new Organization';
  return `Being a CPTS, its territory communes and membership of a CPTS (partOf) are granted by an operator (admin API /admin/cpts, or the CLI cpts:grant), never set by a client: this write changes ${changed.join(', ')} of ${ref}`;
}

/** Same shape as ClientRegistry accepts for a client's organization. */
const ORGANIZATION_REF = /^Organization\/[A-Za-z0-9\-.]{1,64}$/;

/**
 * A client reads and writes within its own organization; an admin client (an operator, the
 * directory import) sees and changes everything. Every client reads the shared types (catalogue,
 * directory). In the directory a structure changes only what it owns (the Practitioners it
 * registered and the directory has not taken over, its PractitionerRoles, which must name it as
 * organization) and the non-identity fields of its own Organization.
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
    return (
      p.admin ||
      row.ownerOrg === p.organization ||
      `${row.resourceType}/${row.id}` === p.organization ||
      SHARED_READ_TYPES.includes(row.resourceType)
    );
  }

  canWrite(p: Principal, existing: StoredRef | undefined): boolean {
    return this.writeRefusal(p, existing) === undefined;
  }

  writeRefusal(p: Principal, existing: StoredRef | undefined, next?: Resource): string | undefined {
    if (p.admin) {
      return undefined;
    }
    const ref = existing ? `${existing.resourceType}/${existing.id}` : undefined;
    const ownOrganization = ref === p.organization;
    if (existing && existing.ownerOrg !== p.organization && !ownOrganization) {
      if (!DIRECTORY_TYPES.includes(existing.resourceType)) {
        return `${ref} belongs to another organization`;
      }
      const owner =
        existing.ownerOrg === DIRECTORY_ORG ? 'the directory import (Annuaire Santé)' : 'another organization';
      return `${ref} is a shared directory entry maintained by ${owner}: only its owner or an operator may change it (its mailbox included)`;
    }
    if (ownOrganization && existing && existing.ownerOrg !== p.organization && !next) {
      return `${ref} is this client's own Organization: only an operator may delete it`;
    }
    if (next?.resourceType === 'Organization') {
      const refusal = grantRefusal(existing, next);
      if (refusal) {
        return refusal;
      }
    }
    if (
      ownOrganization &&
      next &&
      existing?.json &&
      identityKeys(JSON.parse(existing.json) as Resource).join() !== identityKeys(next).join()
    ) {
      return `The identifiers (FINESS, SIRET, IdNatStruct) of ${ref} are its directory identity: only an operator or the directory import may change them`;
    }
    if (
      next?.resourceType === 'PractitionerRole' &&
      (next as { organization?: { reference?: string } }).organization?.reference !== p.organization
    ) {
      return `A PractitionerRole written by this client must have organization = ${p.organization} (a structure manages its own roles only)`;
    }
    return undefined;
  }

  /**
   * A client writes only for its own organization's patients (its records, deleted ones included);
   * a reference to an id nobody holds is refused too (with the same answer, so that it tells nothing
   * of another organization's records): an operator or a loader choosing ids could later give that
   * id to another organization's patient, whose scores the fact would then change.
   */
  canWriteForPatient(p: Principal, patient: StoredRef | undefined): boolean {
    return p.admin || (patient !== undefined && patient.ownerOrg === p.organization);
  }

  /** Only an admin may file a resource under another organization, and only under a real reference. */
  ownerFor(p: Principal, requestedOwner: string | undefined): string {
    return p.admin && requestedOwner && ORGANIZATION_REF.test(requestedOwner) ? requestedOwner : p.organization;
  }
}
