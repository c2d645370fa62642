import type { Resource } from '@medplum/fhirtypes';
import { parseFhirJson, stringifyFhirJson } from '@gw/fhir';
import { OrganizationAccessPolicy, SHARED_READ_TYPES } from '../repository/access.policy';
import type { AccessPolicy, PersonContext, Principal, StoredRef } from '../repository/access.policy';
import { DEFAULT_MATRIX, classOf, classesFor, typeRule } from './sharing-matrix';
import type { SharingMatrix } from './sharing-matrix';

type Bind = (value: unknown) => string;

/** Types whose free text non-health staff never receive ("headers" only: R.1110-2). */
const MASKED_ELEMENTS: Readonly<Record<string, readonly string[]>> = {
  Communication: ['payload', 'note'],
  CommunicationRequest: ['payload', 'note'],
};
const SUBSETTED = { system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'SUBSETTED' };

/**
 * The équipe-de-soins policy (CSP L.1110-4, L.1110-12). A system client (no `person`) keeps the
 * rights of {@link OrganizationAccessPolicy}, unchanged. A person reads a patient's resource when
 * a care_access basis grants them, their role or their organization the patient's record, the
 * profession matrix allows its class, no opposition of the patient applies and, for a resource
 * labelled restricted, when it was filed by their own structure. Writes by persons follow their
 * organization's rules. Everything is decided in SQL (readFilter) so totals and paging never leak.
 */
export class CareAccessPolicy implements AccessPolicy {
  constructor(
    private readonly matrix: SharingMatrix = DEFAULT_MATRIX,
    private readonly base: AccessPolicy = new OrganizationAccessPolicy(),
  ) {}

  readFilter(p: Principal, alias: string, bind: Bind, on?: 'resource' | 'history'): string | undefined {
    const person = personOf(p);
    if (!person) {
      return this.base.readFilter(p, alias, bind, on);
    }
    if (on === 'history') {
      // An old version is visible when its resource is (its patient and label are the current ones).
      return `EXISTS (SELECT 1 FROM resource cur WHERE cur.resource_type = ${alias}.resource_type AND cur.id = ${alias}.id AND ${this.personRule(p, person, 'cur', bind)})`;
    }
    return this.personRule(p, person, alias, bind);
  }

  /** For a person, only the write paths ask (reads by id run readFilter): their organization's rule. */
  canRead(p: Principal, row: StoredRef): boolean {
    return this.base.canRead(p, row);
  }

  readsType(p: Principal, resourceType: string): boolean {
    const person = personOf(p);
    return !person || classesFor(this.matrix, person).includes(classOf(this.matrix, resourceType));
  }

  readsNeedSql(p: Principal): boolean {
    return personOf(p) !== undefined;
  }

  redact(p: Principal, resourceType: string, json: string): string {
    const masked = MASKED_ELEMENTS[resourceType];
    const person = personOf(p);
    if (!masked || !person || person.health) {
      return json;
    }
    const resource = parseFhirJson(json) as Resource & Record<string, unknown>;
    if (!masked.some((e) => e in resource)) {
      return json;
    }
    for (const e of masked) {
      delete resource[e];
    }
    const tags = (resource.meta?.tag ?? []).filter((t) => t.code !== SUBSETTED.code || t.system !== SUBSETTED.system);
    resource.meta = { ...resource.meta, tag: [...tags, SUBSETTED] };
    return stringifyFhirJson(resource);
  }

  canWrite(p: Principal, existing: StoredRef | undefined): boolean {
    return this.base.canWrite(p, existing);
  }

  writeRefusal(p: Principal, existing: StoredRef | undefined, next?: Resource): string | undefined {
    return this.base.writeRefusal(p, existing, next);
  }

  ownerFor(p: Principal, requestedOwner: string | undefined): string {
    return this.base.ownerFor(p, requestedOwner);
  }

  canWriteForPatient(p: Principal, patient: StoredRef | undefined): boolean {
    return this.base.canWriteForPatient(p, patient);
  }

  private personRule(p: Principal, person: PersonContext, a: string, bind: Bind): string {
    const org = bind(p.organization);
    const types = typeRule(this.matrix, classesFor(this.matrix, person));
    const typeCond =
      'allow' in types
        ? `${a}.resource_type = ANY(${bind(types.allow)}::text[])`
        : types.deny.length > 0
          ? `${a}.resource_type <> ALL(${bind(types.deny)}::text[])`
          : 'true';
    const shared = SHARED_READ_TYPES.map((t) => `'${t}'`).join(', ');
    const access = accessCondition(p, person, 'ca', bind);
    const opposed = oppositionCondition(p, person, 'co', bind);
    return `(${a}.resource_type IN (${shared})
      OR (${a}.resource_type = 'Organization' AND 'Organization/' || ${a}.id = ${org})
      OR (${a}.patient_id IS NULL AND ${a}.owner_org = ${org})
      OR (${a}.patient_id IS NOT NULL AND ${typeCond} AND (NOT ${a}.restricted OR ${a}.owner_org = ${org})
        AND EXISTS (SELECT 1 FROM care_access ca WHERE ca.patient_id = ${a}.patient_id AND ${access}
          AND (ca.classes IS NULL OR ${a}.resource_type = ANY(ca.classes))
          AND (ca.resource_ref IS NULL OR ca.resource_ref = ${a}.resource_type || '/' || ${a}.id))
        AND NOT EXISTS (SELECT 1 FROM care_opposition co WHERE co.patient_id = ${a}.patient_id AND co.valid @> now()
          AND (co.classes IS NULL OR ${a}.resource_type = ANY(co.classes))
          AND (${opposed} OR (co.actor IS NULL AND ${a}.owner_org IS DISTINCT FROM ${org})))))`;
  }
}

/** The person a principal acts for, when the équipe-de-soins rule applies to it (never an operator). */
function personOf(p: Principal): PersonContext | undefined {
  return p.admin ? undefined : p.person;
}

/** What a care_access row may name to grant a person: their practitioner, their role, their organization. */
function grantees(p: Principal, person: PersonContext): string[] {
  // The Practitioner itself only for an identity proved (see PersonContext.identityVerified).
  return person.identityVerified ? [person.practitioner, person.role, p.organization] : [person.role, p.organization];
}

/** Whom an opposition may name to deny a person: always their practitioner too (a veto errs on refusing). */
function vetoed(p: Principal, person: PersonContext): string[] {
  return [person.practitioner, person.role, p.organization];
}

/**
 * The members of an organization as the structure-team basis names them: its active
 * PractitionerRoles (a patient's médecin traitant named by role makes that role's structure the
 * team). A Practitioner named as médecin traitant is not resolved to the structures where it holds
 * a role: a PractitionerRole is the structure's own word, and any structure could write one for a
 * professional of another to read that professional's patients. Uncorrelated: computed once per
 * statement.
 */
function membersOf(organization: string, bind: Bind): string {
  const orgId = bind(organization.replace(/^Organization\//, ''));
  return `(SELECT array_agg('PractitionerRole/' || o.id) FROM sp_reference o
      WHERE o.resource_type = 'PractitionerRole' AND o.code = 'organization' AND o.target_type = 'Organization' AND o.target_id = ${orgId}
        AND NOT EXISTS (SELECT 1 FROM sp_token t WHERE t.resource_type = 'PractitionerRole' AND t.id = o.id AND t.code = 'active' AND t.value = 'false'))::text[]`;
}

/** A care_access row (alias `ca`) grants the person, now. */
export function accessCondition(p: Principal, person: PersonContext, ca: string, bind: Bind): string {
  return `(${ca}.grantee = ANY(${bind(grantees(p, person))}::text[])
      OR (${ca}.basis = 'structure-team' AND ${ca}.grantee = ANY(${membersOf(p.organization, bind)})))
    AND ${ca}.valid @> now()`;
}

/** A care_opposition row (alias `co`) names the person, their role or their organization. */
export function oppositionCondition(p: Principal, person: PersonContext, co: string, bind: Bind): string {
  return `${co}.actor = ANY(${bind(vetoed(p, person))}::text[])`;
}
