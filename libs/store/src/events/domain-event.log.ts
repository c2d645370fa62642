import type { Pool, PoolClient } from 'pg';

/** One domain event as the operator API shows it. */
export interface DomainEventEntry {
  id: number;
  type: string;
  resource: string;
  versionId: number;
  subject: string | null;
  organization: string | null;
  occurredAt: string | null;
  status: string;
  createdAt: string;
  withdrawnAt: string | null;
}

const COLUMNS = 'id, type, resource, version_id, subject, owner_org, occurred_at, status, created_at, withdrawn_at';

function toEntry(r: Record<string, unknown>): DomainEventEntry {
  return {
    id: Number(r.id),
    type: String(r.type),
    resource: String(r.resource),
    versionId: Number(r.version_id),
    subject: (r.subject as string | null) ?? null,
    organization: (r.owner_org as string | null) ?? null,
    occurredAt: r.occurred_at ? (r.occurred_at as Date).toISOString() : null,
    status: String(r.status),
    createdAt: (r.created_at as Date).toISOString(),
    withdrawnAt: r.withdrawn_at ? (r.withdrawn_at as Date).toISOString() : null,
  };
}

/** The domain events recorded by the store's triggers (transactional outbox), read side. */
export class DomainEventLog {
  constructor(private readonly pool: Pool) {}

  /** Events after `since` (an event id), oldest first. */
  async list(q: { type?: string; since?: number; limit: number }): Promise<DomainEventEntry[]> {
    const res = await this.pool.query(
      `SELECT ${COLUMNS} FROM domain_event
        WHERE ($1::text IS NULL OR type = $1) AND id > $2 ORDER BY id LIMIT $3`,
      [q.type ?? null, q.since ?? 0, q.limit],
    );
    return res.rows.map(toEntry);
  }
}

/**
 * Marks the not yet dispatched events of this type about these resources as dispatched, in the
 * caller's transaction, so that the outbox relay never hands them on; returns their ids.
 */
export async function markEventsDispatched(tx: PoolClient, type: string, resources: string[]): Promise<number[]> {
  const res = await tx.query<{ id: string }>(
    'UPDATE domain_event SET dispatched_at = now() WHERE type = $1 AND resource = ANY($2::text[]) AND dispatched_at IS NULL RETURNING id',
    [type, resources],
  );
  return res.rows.map((r) => Number(r.id));
}

/**
 * One event under its row lock in the caller's transaction (work done for an event is serialised,
 * e.g. routing and its withdrawal); undefined when there is no such event.
 */
export async function lockEvent(tx: PoolClient, id: string): Promise<DomainEventEntry | undefined> {
  const res = await tx.query(`SELECT ${COLUMNS} FROM domain_event WHERE id = $1 FOR UPDATE`, [id]);
  return res.rows[0] ? toEntry(res.rows[0]) : undefined;
}

/** The resource an event is about (`Type/id`), or undefined when there is no such event. */
export async function eventResource(db: Pool | PoolClient, id: string): Promise<string | undefined> {
  const res = await db.query<{ resource: string }>('SELECT resource FROM domain_event WHERE id = $1', [id]);
  return res.rows[0]?.resource;
}
