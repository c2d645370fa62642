import type { Pool } from 'pg';
import type { Logger } from '@gw/platform';
import type { Principal } from '../repository/access.policy';
import { basesFor, basisLabels } from './audit-basis';
import type { AccessBasis, BasisActor } from './audit-basis';
import { toAuditEvent } from './audit-event.mapper';
import type { AuditRow } from './audit-event.mapper';

/** Who made a request, as the trail keeps it (see {@link actorOf}). */
export interface AuditActor {
  clientId?: string;
  organization?: string;
  /** An operator (admin client): its basis is 'operator'. */
  admin?: boolean;
  /** The person the client acted for (token exchange). */
  person?: { practitioner: string; role: string; profession?: string; idNatPs?: string };
  /** PurposeOfUse (v3-ActReason) of a person's request: TREAT unless said otherwise. */
  purpose?: string;
}

export interface AuditRecord extends AuditActor {
  /** read, vread, search, history, create, update, delete, transaction, batch, token… */
  interaction: string;
  resourceType?: string;
  /** `Type/id` of what was touched: ids only, never content. */
  entity?: string[];
  /** Ids of the Patients whose records were touched (or a refused request was about). */
  patients?: string[];
  /** The search's query, identifying values masked (see auditQuery). */
  query?: string;
  outcome: number;
  /** Defaults to permit below 400, deny from 400. */
  decision?: 'permit' | 'deny';
  requestId?: string;
}

/** The actor fields of a record, from the request's principal. */
export function actorOf(p: Principal): AuditActor {
  return {
    clientId: p.clientId,
    organization: p.organization,
    ...(p.admin ? { admin: true } : {}),
    ...(p.person
      ? {
          person: {
            practitioner: p.person.practitioner,
            role: p.person.role,
            profession: p.person.profession,
            idNatPs: p.person.idNatPs,
          },
          purpose: p.person.purpose ?? 'TREAT',
        }
      : {}),
  };
}

/** Errors whose decision is already in the trail (with its patients): the error filter skips them. */
const AUDITED = new WeakSet<object>();

/** Marks an error as recorded in the trail by the code that threw it; returns it. */
export function markAudited<E extends object>(err: E): E {
  AUDITED.add(err);
  return err;
}

/** Whether the trail already holds the decision this error answers. */
export function isAudited(err: unknown): boolean {
  return typeof err === 'object' && err !== null && AUDITED.has(err);
}

/** A page of a patient's trail, newest first. */
export interface TrailQuery {
  patientId: string;
  /** recorded >= from, recorded < to (ISO instants). */
  from?: string;
  to?: string;
  count: number;
  /** Keyset paging: rows older than this id (the last of the previous page). */
  before?: number;
}

const COLUMNS = `id, recorded, client_id, organization, interaction, resource_type, entity, outcome, request_id,
  practitioner, practitioner_role, profession, id_nat_ps, patients, basis, purpose, decision, query`;

/**
 * Access audit trail. Reads are many, so records are buffered and written in batches (every
 * 250 ms or 500 records); the bases of access are looked up at flush time, one query per person
 * of the batch, never on the request's path. Writes are also audited durably by resource_history.
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
    const res = await this.pool.query<AuditRow>(
      `SELECT ${COLUMNS} FROM audit_event WHERE ($1::text IS NULL OR client_id = $1) ORDER BY id DESC LIMIT $2`,
      [q.clientId ?? null, q.limit],
    );
    return res.rows.map((r) => toAuditEvent(r));
  }

  /**
   * One patient's trail (the rows naming them), newest first, as AuditEvents showing only that
   * patient's part of each row, with the count of every matching row; after writing what is buffered.
   */
  async patientTrail(q: TrailQuery): Promise<{ events: Record<string, unknown>[]; total: number; last?: number }> {
    await this.flush();
    const where = `patients @> ARRAY[$1::text] AND ($2::timestamptz IS NULL OR recorded >= $2) AND ($3::timestamptz IS NULL OR recorded < $3)`;
    const values = [q.patientId, q.from ?? null, q.to ?? null];
    const [page, count] = await Promise.all([
      this.pool.query<AuditRow>(
        `SELECT ${COLUMNS} FROM audit_event WHERE ${where} AND ($4::bigint IS NULL OR id < $4) ORDER BY id DESC LIMIT $5`,
        [...values, q.before ?? null, q.count],
      ),
      this.pool.query<{ n: string }>(`SELECT count(*) AS n FROM audit_event WHERE ${where}`, values),
    ]);
    const last = page.rows.at(-1);
    return {
      events: page.rows.map((r) => toAuditEvent(r, { patientId: q.patientId })),
      total: Number(count.rows[0].n),
      last: last ? Number(last.id) : undefined,
    };
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
    const basis = await this.bases(batch);
    const list = (values: string[] | undefined): string | null =>
      values && values.length > 0 ? values.join(' ') : null;
    const arr = (column: string): string =>
      `CASE WHEN ${column} IS NULL THEN NULL ELSE string_to_array(${column}, ' ') END`;
    try {
      await this.pool.query(
        `INSERT INTO audit_event (client_id, organization, interaction, resource_type, entity, outcome, request_id,
           practitioner, practitioner_role, profession, id_nat_ps, patients, basis, purpose, decision, query)
         SELECT c, o, i, t, ${arr('e')}, s, q, pr, ro, pf, ps, ${arr('pa')}, ${arr('ba')}, pu, d, qs
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::text[], $8::text[],
           $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[])
           AS x(c, o, i, t, e, s, q, pr, ro, pf, ps, pa, ba, pu, d, qs)`,
        [
          batch.map((r) => r.clientId ?? null),
          batch.map((r) => r.organization ?? null),
          batch.map((r) => r.interaction),
          batch.map((r) => r.resourceType ?? null),
          batch.map((r) => list(r.entity)),
          batch.map((r) => r.outcome),
          batch.map((r) => r.requestId ?? null),
          batch.map((r) => r.person?.practitioner ?? null),
          batch.map((r) => r.person?.role ?? null),
          batch.map((r) => r.person?.profession ?? null),
          batch.map((r) => r.person?.idNatPs ?? null),
          batch.map((r) => list(r.patients)),
          basis.map((b) => list(b)),
          batch.map((r) => r.purpose ?? null),
          batch.map(decisionOf),
          batch.map((r) => r.query ?? null),
        ],
      );
    } catch (err) {
      this.logger.error({ err: (err as Error).message, lost: batch.length }, 'audit write failed');
    }
  }

  /**
   * The basis labels of each record: one {@link basesFor} per distinct actor of the batch (over all
   * its patients), then each record keeps the bases covering what it touched. A failed lookup
   * leaves the bases out rather than losing the trail.
   */
  private async bases(batch: AuditRecord[]): Promise<(string[] | undefined)[]> {
    const groups = new Map<string, { actor: BasisActor; patients: Set<string> }>();
    for (const r of batch) {
      if (!r.patients?.length) {
        continue;
      }
      const key = actorKey(r);
      const g = groups.get(key) ?? { actor: r, patients: new Set<string>() };
      r.patients.forEach((id) => g.patients.add(id));
      groups.set(key, g);
    }
    const found = new Map<string, Map<string, AccessBasis[]>>();
    try {
      for (const [key, g] of groups) {
        found.set(key, await basesFor(this.pool, g.actor, [...g.patients]));
      }
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'audit basis lookup failed; rows written without basis');
    }
    return batch.map((r) => {
      const byPatient = found.get(actorKey(r));
      if (!r.patients?.length || !byPatient) {
        return undefined;
      }
      const refs = r.entity ?? [];
      const types = [...new Set([...refs.map((e) => e.split('/')[0]), ...(r.resourceType ? [r.resourceType] : [])])];
      const labels = r.patients.flatMap((id) => basisLabels(byPatient.get(id) ?? [], { types, refs }, decisionOf(r)));
      return [...new Set(labels)];
    });
  }
}

function decisionOf(r: AuditRecord): 'permit' | 'deny' {
  return r.decision ?? (r.outcome < 400 ? 'permit' : 'deny');
}

function actorKey(r: AuditActor): string {
  return r.person
    ? `${r.person.practitioner}|${r.person.role}|${r.organization}`
    : `${r.admin ? 'admin' : ''}|${r.organization}`;
}
