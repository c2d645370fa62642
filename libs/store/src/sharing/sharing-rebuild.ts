import type { Pool } from 'pg';
import type { Resource } from '@medplum/fhirtypes';
import { SOURCE_PREFIX, withTransaction } from '../repository/fhir.repository';
import { sharingCtes } from '../repository/persist';
import { Binder } from '../repository/search-sql';
import { SHARING_SOURCE_TYPES, projectSharing } from './care-projection';

const BATCH = 500;

interface SourceRow {
  resource_type: string;
  id: string;
  owner_org: string | null;
  patient_id: string | null;
  last_updated: Date;
  content: string;
  writer: string | null;
}

/**
 * Writes the care_access / care_opposition rows of the resources stored before the sharing tables
 * existed (migration 19 leaves a pending flag), once: several processes starting together wait
 * on the flag's row lock and find it done. Returns the number of source resources projected.
 */
export async function rebuildSharingProjection(pool: Pool, encounterMonths: number): Promise<number> {
  return withTransaction(pool, async (tx) => {
    const flag = await tx.query('SELECT pending FROM sharing_rebuild WHERE pending FOR UPDATE');
    if (flag.rowCount === 0) {
      return 0;
    }
    let done = 0;
    let after = ['', ''];
    for (;;) {
      const res = await tx.query<SourceRow>(
        `SELECT r.resource_type, r.id, r.owner_org, r.patient_id, r.last_updated, r.content,
           (SELECT coalesce(h.agent, '${SOURCE_PREFIX}' || h.client_id) FROM resource_history h
            WHERE h.resource_type = r.resource_type AND h.id = r.id AND h.version_id = r.version_id) AS writer
         FROM resource r WHERE r.resource_type = ANY($1::text[]) AND NOT r.deleted AND (r.resource_type, r.id) > ($2, $3)
         ORDER BY r.resource_type, r.id LIMIT ${BATCH}`,
        [SHARING_SOURCE_TYPES, after[0], after[1]],
      );
      if (res.rows.length === 0) {
        break;
      }
      const versions = res.rows.map((r) => ({
        sharing: projectSharing(JSON.parse(r.content) as Resource, r.patient_id, {
          ownerOrg: r.owner_org,
          writer: r.writer ?? 'migration',
          at: r.last_updated.toISOString(),
          encounterMonths,
        }),
      }));
      const b = new Binder();
      const ctes = sharingCtes(b, versions);
      await tx.query(`WITH ${ctes.join(',\n')} SELECT 1`, b.values);
      done += res.rows.length;
      const last = res.rows[res.rows.length - 1];
      after = [last.resource_type, last.id];
    }
    await tx.query('DELETE FROM sharing_rebuild');
    return done;
  });
}
