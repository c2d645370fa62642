import type { Pool, PoolClient } from 'pg';

/** One row of care_access (or care_opposition) that applies to a principal and a patient now. */
export interface AccessBasis {
  /** 'structure-team' | 'care-circle' | 'consent' | 'task', or 'opposition' for a veto. */
  basis: string;
  /** The resource the row comes from (`CareTeam/x`, `Consent/y`…), when recorded. */
  source: string | null;
  /** Resource types the row covers (null: all). */
  classes: string[] | null;
  /** The one resource the row covers (null: the whole record). */
  resourceRef: string | null;
}

/** Who a person is, for the sharing tables: grantees are their Practitioner, role or organization. */
export interface BasisActor {
  organization?: string;
  admin?: boolean;
  person?: { practitioner: string; role: string };
}

/** The label a system client's access gets: its organization's own records (OrganizationAccessPolicy). */
export const ORGANIZATION_BASIS = 'organization';
/** The label of an operator's access (admin client: no restriction). */
export const OPERATOR_BASIS = 'operator';

/** undefined_table: the sharing tables are not there (a database migrated before them). */
const UNDEFINED_TABLE = '42P01';

/**
 * THE lookup of the bases of access of a principal to patients' records, for the trail: for a
 * person, the care_access rows valid now whose grantee is their Practitioner, their role or their
 * organization, plus the care_opposition rows valid now that name them or everyone (kind
 * 'opposition'); for a system client, its organization (it reads its own records); for an
 * operator, 'operator'. One query per call, whatever the number of patients.
 */
export async function basesFor(
  db: Pool | PoolClient,
  principal: BasisActor,
  patientIds: readonly string[],
): Promise<Map<string, AccessBasis[]>> {
  const out = new Map<string, AccessBasis[]>(patientIds.map((id) => [id, []]));
  if (patientIds.length === 0) {
    return out;
  }
  if (!principal.person) {
    const basis = principal.admin
      ? { basis: OPERATOR_BASIS, source: null }
      : { basis: ORGANIZATION_BASIS, source: principal.organization ?? null };
    patientIds.forEach((id) => out.set(id, [{ ...basis, classes: null, resourceRef: null }]));
    return out;
  }
  const grantees = [principal.person.practitioner, principal.person.role, principal.organization].filter(
    (g): g is string => typeof g === 'string',
  );
  try {
    const res = await db.query<{
      patient_id: string;
      basis: string;
      source: string | null;
      classes: string[] | null;
      resource_ref: string | null;
    }>(
      `SELECT patient_id, basis, source, classes, resource_ref FROM care_access
        WHERE patient_id = ANY($1::text[]) AND grantee = ANY($2::text[]) AND valid @> now()
       UNION ALL
       SELECT patient_id, 'opposition', source, classes, NULL FROM care_opposition
        WHERE patient_id = ANY($1::text[]) AND (actor IS NULL OR actor = ANY($2::text[])) AND valid @> now()`,
      [patientIds, grantees],
    );
    for (const r of res.rows) {
      out
        .get(r.patient_id)
        ?.push({ basis: r.basis, source: r.source, classes: r.classes, resourceRef: r.resource_ref });
    }
  } catch (err) {
    if ((err as { code?: string }).code !== UNDEFINED_TABLE) {
      throw err;
    }
  }
  return out;
}

/**
 * The labels (`care-circle:CareTeam/x`) of the bases that cover what a request touched: rows
 * limited to other resource types or to another resource are left out. Oppositions are named only
 * on a denial (a permit despite an opposition to everyone is the author structure's own access).
 */
export function basisLabels(
  bases: readonly AccessBasis[],
  touched: { types: readonly string[]; refs: readonly string[] },
  decision: 'permit' | 'deny',
): string[] {
  const labels = bases
    .filter((b) => b.basis !== 'opposition' || decision === 'deny')
    .filter((b) => !b.classes || touched.types.length === 0 || b.classes.some((c) => touched.types.includes(c)))
    .filter((b) => !b.resourceRef || touched.refs.length === 0 || touched.refs.includes(b.resourceRef))
    .map((b) => (b.source ? `${b.basis}:${b.source}` : b.basis));
  return [...new Set(labels)];
}
