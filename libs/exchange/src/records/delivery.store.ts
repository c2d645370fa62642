import type { Pool, PoolClient } from 'pg';
import type { Queryable } from '@gw/store';
import type { ChannelName } from '../channels/channel';

export type DeliveryStatus = 'pending' | 'sent' | 'processed' | 'failed' | 'dead' | 'cancelled' | 'refused';

/** One message to one destination for one discharge event. */
export interface Delivery {
  id: string;
  eventId: string;
  channel: ChannelName;
  destination: string;
  recipient: string | null;
  communication: string | null;
  task: string | null;
  status: DeliveryStatus;
  attempts: number;
  replays: number;
  remoteId: string | null;
  lastError: string | null;
  createdAt: string;
  updatedAt: string;
  sentAt: string | null;
  acknowledgedAt: string | null;
}

export interface Attempt {
  attempt: number;
  at: string;
  outcome: 'success' | 'retry' | 'dead' | 'refused' | 'skipped';
  remote: string | null;
}

const COLUMNS = `id, event_id, channel, destination, recipient, communication, task, status, attempts, replays, remote_id, last_error,
  created_at, updated_at, sent_at, acknowledged_at`;

/** exchange_delivery and exchange_attempt: the state every delivery job re-reads. */
export class DeliveryStore {
  constructor(private readonly pool: Pool) {}

  async insert(
    db: Queryable,
    rows: Omit<
      Delivery,
      'attempts' | 'replays' | 'remoteId' | 'lastError' | 'createdAt' | 'updatedAt' | 'sentAt' | 'acknowledgedAt'
    >[],
  ): Promise<void> {
    if (rows.length === 0) {
      return;
    }
    await db.query(
      `INSERT INTO exchange_delivery (id, event_id, channel, destination, recipient, communication, task, status)
       SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
       ON CONFLICT DO NOTHING`,
      [
        rows.map((r) => r.id),
        rows.map((r) => r.eventId),
        rows.map((r) => r.channel),
        rows.map((r) => r.destination),
        rows.map((r) => r.recipient),
        rows.map((r) => r.communication),
        rows.map((r) => r.task),
        rows.map((r) => r.status),
      ],
    );
  }

  async get(id: string, db: Queryable = this.pool, lock = false): Promise<Delivery | undefined> {
    const res = await db.query(
      `SELECT ${COLUMNS} FROM exchange_delivery WHERE id = $1::uuid${lock ? ' FOR UPDATE' : ''}`,
      [id],
    );
    return res.rows[0] ? toDelivery(res.rows[0]) : undefined;
  }

  async forEvent(db: Queryable, eventId: string): Promise<Delivery[]> {
    const res = await db.query(
      `SELECT ${COLUMNS} FROM exchange_delivery WHERE event_id = $1 ORDER BY channel, destination`,
      [eventId],
    );
    return res.rows.map(toDelivery);
  }

  async forTask(db: Queryable, task: string): Promise<Delivery[]> {
    const res = await db.query(`SELECT ${COLUMNS} FROM exchange_delivery WHERE task = $1`, [task]);
    return res.rows.map(toDelivery);
  }

  async byRemoteId(db: PoolClient, remoteId: string): Promise<Delivery | undefined> {
    const res = await db.query(`SELECT ${COLUMNS} FROM exchange_delivery WHERE remote_id = $1 FOR UPDATE`, [remoteId]);
    return res.rows[0] ? toDelivery(res.rows[0]) : undefined;
  }

  async setStatus(
    db: Queryable,
    id: string,
    status: DeliveryStatus,
    fields: { remoteId?: string; error?: string | null; sent?: boolean; acknowledged?: boolean } = {},
  ): Promise<void> {
    // An MDN can be recorded before the sender records "sent" (the relay accepts, the mailbox
    // acknowledges, then the sender's transaction commits): "sent" never replaces that outcome
    // nor its reason. (SET expressions all read the row as it was.)
    await db.query(
      `UPDATE exchange_delivery SET
         status = CASE WHEN $2 = 'sent' AND status IN ('processed', 'failed') THEN status ELSE $2 END,
         remote_id = coalesce($3, remote_id),
         last_error = CASE WHEN $4::boolean AND NOT ($2 = 'sent' AND status IN ('processed', 'failed')) THEN $5 ELSE last_error END,
         sent_at = CASE WHEN $6 THEN now() ELSE sent_at END,
         acknowledged_at = CASE WHEN $7 THEN now() ELSE acknowledged_at END,
         lease_until = NULL,
         updated_at = now()
       WHERE id = $1::uuid`,
      [
        id,
        status,
        fields.remoteId ?? null,
        fields.error !== undefined,
        fields.error ?? null,
        !!fields.sent,
        !!fields.acknowledged,
      ],
    );
  }

  /**
   * Takes a pending delivery for one attempt of `ms` (the queue's lock duration: a worker that died
   * mid-send loses it by the time its job is re-run); false when it is no longer pending or another
   * attempt holds it. Any outcome recorded by setStatus, or release, ends the lease.
   */
  async claim(id: string, ms: number): Promise<boolean> {
    const res = await this.pool.query(
      `UPDATE exchange_delivery SET lease_until = clock_timestamp() + make_interval(secs => $2::double precision / 1000)
        WHERE id = $1::uuid AND status = 'pending' AND (lease_until IS NULL OR lease_until < clock_timestamp())`,
      [id, ms],
    );
    return res.rowCount === 1;
  }

  /** Ends an attempt's lease without an outcome (it failed and will be retried). */
  async release(id: string): Promise<void> {
    await this.pool.query('UPDATE exchange_delivery SET lease_until = NULL WHERE id = $1::uuid', [id]);
  }

  /** Records one attempt with the remote answer (already free of patient data). */
  async attempt(
    db: Queryable,
    id: string,
    attempt: number,
    outcome: Attempt['outcome'],
    remote: string | undefined,
  ): Promise<void> {
    await db.query(
      `WITH a AS (INSERT INTO exchange_attempt (delivery_id, attempt, outcome, remote) VALUES ($1::uuid, $2, $3, $4))
       UPDATE exchange_delivery SET attempts = attempts + 1, updated_at = now() WHERE id = $1::uuid`,
      [id, attempt, outcome, remote?.slice(0, 2000) ?? null],
    );
  }

  async attempts(id: string): Promise<Attempt[]> {
    const res = await this.pool.query(
      'SELECT attempt, at, outcome, remote FROM exchange_attempt WHERE delivery_id = $1::uuid ORDER BY id',
      [id],
    );
    return res.rows.map((r) => ({
      attempt: r.attempt,
      at: (r.at as Date).toISOString(),
      outcome: r.outcome,
      remote: r.remote,
    }));
  }

  /** Pending deliveries of an event become cancelled; returns them. */
  async cancelPending(db: Queryable, eventId: string): Promise<Delivery[]> {
    const res = await db.query(
      `UPDATE exchange_delivery SET status = 'cancelled', updated_at = now() WHERE event_id = $1 AND status = 'pending' RETURNING ${COLUMNS}`,
      [eventId],
    );
    return res.rows.map(toDelivery);
  }

  async list(filter: {
    status?: string;
    channel?: string;
    event?: string;
    before?: string;
    limit: number;
  }): Promise<Delivery[]> {
    const res = await this.pool.query(
      `SELECT ${COLUMNS} FROM exchange_delivery
       WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR channel = $2) AND ($3::bigint IS NULL OR event_id = $3)
         AND ($4::timestamptz IS NULL OR created_at < $4)
       ORDER BY created_at DESC, id LIMIT $5`,
      [filter.status ?? null, filter.channel ?? null, filter.event ?? null, filter.before ?? null, filter.limit],
    );
    return res.rows.map(toDelivery);
  }

  /** Back to pending for an operator replay (dead, failed or refused only); returns the replay number. */
  async reopen(id: string): Promise<number | undefined> {
    const res = await this.pool.query(
      `UPDATE exchange_delivery SET status = 'pending', replays = replays + 1, last_error = NULL, updated_at = now()
       WHERE id = $1::uuid AND status IN ('dead', 'failed', 'refused') RETURNING replays`,
      [id],
    );
    return res.rows[0]?.replays as number | undefined;
  }
}

function iso(v: unknown): string | null {
  return v instanceof Date ? v.toISOString() : null;
}

function toDelivery(r: Record<string, unknown>): Delivery {
  return {
    id: r.id as string,
    eventId: String(r.event_id),
    channel: r.channel as ChannelName,
    destination: r.destination as string,
    recipient: r.recipient as string | null,
    communication: r.communication as string | null,
    task: r.task as string | null,
    status: r.status as DeliveryStatus,
    attempts: r.attempts as number,
    replays: r.replays as number,
    remoteId: r.remote_id as string | null,
    lastError: r.last_error as string | null,
    createdAt: iso(r.created_at) as string,
    updatedAt: iso(r.updated_at) as string,
    sentAt: iso(r.sent_at),
    acknowledgedAt: iso(r.acknowledged_at),
  };
}
