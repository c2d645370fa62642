import type { Queryable } from '../repository/fhir.repository';
import type { Principal } from '../repository/access.policy';
import { Binder } from '../repository/search-sql';
import type { AccessBasis } from './care-projection';
import { accessCondition, oppositionCondition } from './care-access.policy';

/** A basis that grants a person access to a patient's record, and the resource it comes from. */
export interface GrantedBasis {
  basis: AccessBasis;
  /** The source resource (`Type/id`): the Patient, EpisodeOfCare, Encounter, CareTeam, Consent or Task. */
  source: string;
  /** What the row names: the person's practitioner, role, organization or a member of it. */
  grantee: string;
  /** The Task's resource when the basis covers one resource only; null: the whole record. */
  resourceRef: string | null;
  /** Resource types the basis covers; null: every type. */
  classes: string[] | null;
}

/**
 * For the audit trail: for each patient, the bases that currently grant `p` (a person) access,
 * empty when none or when an opposition of the patient to the person (or to everyone, for what
 * other structures filed) covers the whole record. Class-limited oppositions and the profession
 * matrix narrow what a basis covers per resource; they are not applied here. A system client has
 * no basis (its rights are its organization's): every list is empty.
 */
export async function accessBases(
  db: Queryable,
  p: Principal,
  patientIds: readonly string[],
): Promise<Map<string, GrantedBasis[]>> {
  const out = new Map<string, GrantedBasis[]>(patientIds.map((id) => [id, []]));
  if (!p.person || patientIds.length === 0) {
    return out;
  }
  const b = new Binder();
  const ids = b.bind([...new Set(patientIds)]);
  const res = await db.query<{
    patient_id: string;
    basis: AccessBasis;
    source: string;
    grantee: string;
    resource_ref: string | null;
    classes: string[] | null;
  }>(
    `SELECT ca.patient_id, ca.basis, ca.source, ca.grantee, ca.resource_ref, ca.classes FROM care_access ca
     WHERE ca.patient_id = ANY(${ids}::text[]) AND ${accessCondition(p, p.person, 'ca', b.bind)}
       AND NOT EXISTS (SELECT 1 FROM care_opposition co WHERE co.patient_id = ca.patient_id AND co.valid @> now()
         AND co.classes IS NULL AND (${oppositionCondition(p, p.person, 'co', b.bind)} OR co.actor IS NULL))
     ORDER BY ca.patient_id, ca.basis, ca.source`,
    b.values,
  );
  for (const r of res.rows) {
    out.get(r.patient_id)?.push({
      basis: r.basis,
      source: r.source,
      grantee: r.grantee,
      resourceRef: r.resource_ref,
      classes: r.classes,
    });
  }
  return out;
}
