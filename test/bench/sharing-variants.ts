import { SHARED_READ_TYPES } from '../../libs/store/src/repository/access.policy';
import type { Principal } from '../../libs/store/src/repository/access.policy';
import { CareAccessPolicy, accessCondition } from '../../libs/store/src/sharing/care-access.policy';

/**
 * Proposals measured by the sharing benchmark against the gateway's CareAccessPolicy, on the same
 * database: each is an index and/or a different SQL shape giving the same answers. They live here,
 * not in the store, until the lead takes them into the policy.
 */
export interface Variant {
  name: string;
  /** What to create before measuring (dropped after, so that a kept database serves every variant). */
  createSql: string[];
  dropSql: string[];
  policy: () => CareAccessPolicy;
}

type Bind = (value: unknown) => string;

/**
 * The gateway's person rule, ANDed with a condition it implies: the resource has no patient, or its
 * patient is in the set of patients the person holds any valid care_access row for. That set is an
 * uncorrelated subquery (a hashed SubPlan, built once per statement from an index on grantee): a
 * broad search then probes a hash table per candidate row, and runs the correlated EXISTS (classes,
 * resource_ref, oppositions) only for rows of the person's patients, instead of for every row.
 */
export class PrefilteredCareAccessPolicy extends CareAccessPolicy {
  override readFilter(p: Principal, alias: string, bind: Bind, on?: 'resource' | 'history'): string | undefined {
    const rule = super.readFilter(p, alias, bind, on);
    if (p.admin || !p.person || on === 'history' || rule === undefined) {
      return rule;
    }
    const shared = SHARED_READ_TYPES.map((t) => `'${t}'`).join(', ');
    return `(${rule} AND (${alias}.patient_id IS NULL OR ${alias}.resource_type IN (${shared}) OR ${alias}.patient_id IN (
      SELECT cap.patient_id FROM care_access cap WHERE ${accessCondition(p, p.person, 'cap', bind)})))`;
  }
}

export const VARIANTS: Record<string, Variant> = {
  gateway: { name: 'gateway', createSql: [], dropSql: [], policy: () => new CareAccessPolicy() },
  /** Same SQL; the per-row EXISTS probe reads the index only (no heap visit per care_access row). */
  covering: {
    name: 'covering',
    createSql: [
      'CREATE INDEX IF NOT EXISTS bench_care_access_covering_idx ON care_access (patient_id, grantee) INCLUDE (basis, valid, classes, resource_ref)',
      'VACUUM ANALYZE care_access',
    ],
    dropSql: ['DROP INDEX IF EXISTS bench_care_access_covering_idx'],
    policy: () => new CareAccessPolicy(),
  },
  /**
   * Store-level, not the policy: multi-column statistics on the token index, so that the planner
   * sees that a frequent code (body weight: 1 Observation in 5) matches tens of thousands of rows.
   * Without them it estimates ~2 500 rows at 1 M for ~95 000 and probes the resource table per
   * match instead of walking (resource_type, last_updated) backwards until the page is full.
   */
  stats: {
    name: 'stats',
    createSql: [
      'CREATE STATISTICS IF NOT EXISTS bench_sp_token_mcv (mcv) ON resource_type, code, value, system FROM sp_token',
      'ANALYZE sp_token',
    ],
    dropSql: ['DROP STATISTICS IF EXISTS bench_sp_token_mcv', 'ANALYZE sp_token'],
    policy: () => new CareAccessPolicy(),
  },
  /** The statistics and the covering probe index: plans as today, each EXISTS probe index-only. */
  'stats-covering': {
    name: 'stats-covering',
    createSql: [
      'CREATE STATISTICS IF NOT EXISTS bench_sp_token_mcv (mcv) ON resource_type, code, value, system FROM sp_token',
      'ANALYZE sp_token',
      'CREATE INDEX IF NOT EXISTS bench_care_access_covering_idx ON care_access (patient_id, grantee) INCLUDE (basis, valid, classes, resource_ref)',
      'VACUUM ANALYZE care_access',
    ],
    dropSql: [
      'DROP STATISTICS IF EXISTS bench_sp_token_mcv',
      'ANALYZE sp_token',
      'DROP INDEX IF EXISTS bench_care_access_covering_idx',
    ],
    policy: () => new CareAccessPolicy(),
  },
  /** Both proposals: the statistics and the hashed pre-filter with its index. */
  'stats-prefilter': {
    name: 'stats-prefilter',
    createSql: [
      'CREATE STATISTICS IF NOT EXISTS bench_sp_token_mcv (mcv) ON resource_type, code, value, system FROM sp_token',
      'ANALYZE sp_token',
      'CREATE INDEX IF NOT EXISTS bench_care_access_grantee_idx ON care_access (grantee, patient_id) INCLUDE (basis, valid)',
      'VACUUM ANALYZE care_access',
    ],
    dropSql: [
      'DROP STATISTICS IF EXISTS bench_sp_token_mcv',
      'ANALYZE sp_token',
      'DROP INDEX IF EXISTS bench_care_access_grantee_idx',
    ],
    policy: () => new PrefilteredCareAccessPolicy(),
  },
  /** The hashed pre-filter above, with the index that builds its set. */
  prefilter: {
    name: 'prefilter',
    createSql: [
      'CREATE INDEX IF NOT EXISTS bench_care_access_grantee_idx ON care_access (grantee, patient_id) INCLUDE (basis, valid)',
      'VACUUM ANALYZE care_access',
    ],
    dropSql: ['DROP INDEX IF EXISTS bench_care_access_grantee_idx'],
    policy: () => new PrefilteredCareAccessPolicy(),
  },
};
