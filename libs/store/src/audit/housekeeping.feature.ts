import type { Pool } from 'pg';
import { purgeExpiredAssertionIds } from '@gw/platform';
import type { GatewayFeature, JobResult, QueueService } from '@gw/platform';

/**
 * Registers the housekeeping jobs (handlers run in the gateway or in apps/worker alike).
 * `housekeeping.purge-audit` deletes access-audit rows older than the retention and expired
 * client-assertion ids; re-running it is harmless.
 */
export function registerHousekeepingJobs(queue: QueueService, pool: Pool): void {
  queue.register('housekeeping.purge-audit', async (payload): Promise<JobResult> => {
    const audit = await pool.query(`DELETE FROM audit_event WHERE recorded < now() - make_interval(days => $1)`, [
      payload.retentionDays,
    ]);
    const jti = await purgeExpiredAssertionIds(pool);
    if ((audit.rowCount ?? 0) === 0 && jti === 0) {
      return { status: 'skipped', detail: { reason: 'nothing past retention' } };
    }
    return { status: 'success', detail: { auditDeleted: audit.rowCount ?? 0, assertionIdsDeleted: jti } };
  });
}

/** Daily schedule of the purge (one scheduler id: replicas upsert the same entry). */
async function scheduleHousekeeping(queue: QueueService, retentionDays: number): Promise<void> {
  await queue
    .queue('housekeeping')
    .upsertJobScheduler(
      'purge-audit-daily',
      { pattern: '17 3 * * *' },
      { name: 'housekeeping.purge-audit', data: { retentionDays } },
    );
}

/** Housekeeping as a feature of the composition root: the purge's handler and its daily schedule. */
export function housekeepingFeature(pool: Pool, retentionDays: number): GatewayFeature {
  return {
    name: 'housekeeping',
    register: (queue) => registerHousekeepingJobs(queue, pool),
    start: (queue) => scheduleHousekeeping(queue, retentionDays),
  };
}
