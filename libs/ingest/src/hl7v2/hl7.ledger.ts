import type { Pool } from 'pg';

/** One ledger row as the operator API shows it (no raw message). */
export interface LedgerEntry {
  id: number;
  receivedAt: string;
  transport: string;
  source: string;
  sourceId: string | null;
  controlId: string;
  event: string | null;
  status: string;
  ackCode: string | null;
  error: string | null;
  warning?: string;
  resources: string[];
  duplicateOf?: number;
  /** An earlier message from the same source with this MSH-10 and other content (the sender reused the id). */
  reuseOf?: number;
  attempts: number;
  processedAt: string | null;
}

/** A ledger row with the message itself: patient data, read only by an audited operator request. */
export interface LedgerMessage extends LedgerEntry {
  charset: string | null;
  /** The bytes as received, base64. */
  raw: string;
  /** The message decoded for reading, segments on lines. */
  text: string;
  ack: string | null;
}

export interface LedgerFilter {
  status?: string;
  /** hl7_source id. */
  source?: string;
  /** Rows with an id below this (paging, newest first). */
  before?: number;
  limit: number;
  /** true: accepted with warnings only; false: without. */
  warning?: boolean;
}

/** The HL7 v2 message ledger, read side (the intake service writes it). */
export class Hl7Ledger {
  constructor(private readonly pool: Pool) {}

  async list(f: LedgerFilter): Promise<LedgerEntry[]> {
    const res = await this.pool.query(
      `SELECT id, received_at, transport, source_key, source_id, control_id, event, status, ack_code, error, warning, resources, duplicate_of, reuse_of, attempts, processed_at
       FROM hl7_message WHERE ($1::text IS NULL OR status = $1) AND ($2::uuid IS NULL OR source_id = $2::uuid) AND ($3::bigint IS NULL OR id < $3)
         AND ($5::boolean IS NULL OR (warning IS NOT NULL) = $5)
       ORDER BY id DESC LIMIT $4`,
      [f.status ?? null, f.source ?? null, f.before ?? null, f.limit, f.warning ?? null],
    );
    return res.rows.map(toEntry);
  }

  async read(id: number): Promise<LedgerMessage | undefined> {
    const res = await this.pool.query('SELECT * FROM hl7_message WHERE id = $1', [id]);
    const row = res.rows[0] as Record<string, unknown> | undefined;
    if (!row) {
      return undefined;
    }
    const raw = row.raw as Buffer;
    const charset = (row.charset as string | null) ?? null;
    return {
      ...toEntry(row),
      charset,
      raw: raw.toString('base64'),
      text: decodeForDisplay(raw, charset),
      ack: (row.ack as string | null) ?? null,
    };
  }
}

function toEntry(r: Record<string, unknown>): LedgerEntry {
  const text = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));
  return {
    id: Number(r.id),
    receivedAt: (r.received_at as Date).toISOString(),
    transport: String(r.transport),
    source: String(r.source_key),
    sourceId: text(r.source_id),
    controlId: String(r.control_id),
    event: text(r.event),
    status: String(r.status),
    ackCode: text(r.ack_code),
    error: text(r.error),
    warning: text(r.warning) ?? undefined,
    resources: (r.resources as string[] | null) ?? [],
    duplicateOf: r.duplicate_of ? Number(r.duplicate_of) : undefined,
    reuseOf: r.reuse_of ? Number(r.reuse_of) : undefined,
    attempts: Number(r.attempts),
    processedAt: r.processed_at ? (r.processed_at as Date).toISOString() : null,
  };
}

function decodeForDisplay(raw: Buffer, charset: string | null): string {
  return (charset && charset !== 'UTF-8' ? raw.toString('latin1') : raw.toString('utf8')).replace(/\r/g, '\n');
}
