import type { Pool } from 'pg';
import type { Logger } from '@gw/platform';

export interface AuditRecord {
  clientId?: string;
  organization?: string;
  /** read, vread, search, history, create, update, delete, transaction, batch, token… */
  interaction: string;
  resourceType?: string;
  /** `Type/id` of what was touched: ids only, never content. */
  entity?: string[];
  outcome: number;
  requestId?: string;
}

/**
 * Access audit trail. Reads are many, so records are buffered and written in batches (every
 * 250 ms or 500 records). Writes are also audited durably by resource_history (client, request).
 */
export class AuditLog {
  private buffer: AuditRecord[] = [];
  private timer?: NodeJS.Timeout;
  private flushing?: Promise<void>;

  constructor(
    private readonly pool: Pool,
    private readonly logger: Logger,
    private readonly maxBatch = 500,
    private readonly intervalMs = 250,
  ) {}

  /** The latest access-audit entries (newest first) as FHIR AuditEvents, after writing what is buffered. */
  async list(q: { clientId?: string; limit: number }): Promise<Record<string, unknown>[]> {
    await this.flush();
    const res = await this.pool.query(
      `SELECT id, recorded, client_id, organization, interaction, resource_type, entity, outcome, request_id FROM audit_event
       WHERE ($1::text IS NULL OR client_id = $1) ORDER BY id DESC LIMIT $2`,
      [q.clientId ?? null, q.limit],
    );
    return res.rows.map(toAuditEvent);
  }

  record(r: AuditRecord): void {
    this.buffer.push(r);
    if (this.buffer.length >= this.maxBatch) {
      void this.flush();
    } else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.intervalMs);
      this.timer.unref();
    }
  }

  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    await this.flushing;
    const batch = this.buffer;
    this.buffer = [];
    if (batch.length === 0) {
      return;
    }
    this.flushing = this.write(batch);
    await this.flushing;
  }

  private async write(batch: AuditRecord[]): Promise<void> {
    try {
      await this.pool.query(
        `INSERT INTO audit_event (client_id, organization, interaction, resource_type, entity, outcome, request_id)
         SELECT c, o, i, t, CASE WHEN e IS NULL THEN NULL ELSE string_to_array(e, ' ') END, s, q
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::text[]) AS x(c, o, i, t, e, s, q)`,
        [
          batch.map((r) => r.clientId ?? null),
          batch.map((r) => r.organization ?? null),
          batch.map((r) => r.interaction),
          batch.map((r) => r.resourceType ?? null),
          batch.map((r) => (r.entity && r.entity.length > 0 ? r.entity.join(' ') : null)),
          batch.map((r) => r.outcome),
          batch.map((r) => r.requestId ?? null),
        ],
      );
    } catch (err) {
      this.logger.error({ err: (err as Error).message, lost: batch.length }, 'audit write failed');
    }
  }
}

/** Renders an audit row as a FHIR AuditEvent (REST subtype, who, what). */
function toAuditEvent(r: Record<string, unknown>): Record<string, unknown> {
  return {
    resourceType: 'AuditEvent',
    id: String(r.id),
    type: { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest' },
    subtype: [{ system: 'http://hl7.org/fhir/restful-interaction', code: r.interaction }],
    recorded: (r.recorded as Date).toISOString(),
    outcome: Number(r.outcome) < 400 ? '0' : Number(r.outcome) < 500 ? '4' : '8',
    agent: [
      {
        who: { identifier: { value: r.client_id } },
        requestor: true,
        ...(r.organization ? { location: { reference: r.organization } } : {}),
      },
    ],
    source: { observer: { display: 'fhir-gateway' }, ...(r.request_id ? { site: String(r.request_id) } : {}) },
    entity: ((r.entity as string[] | null) ?? []).map((e) => ({ what: { reference: e } })),
  };
}
