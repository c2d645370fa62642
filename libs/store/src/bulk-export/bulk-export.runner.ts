import { mkdir, open, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Pool, PoolClient } from 'pg';
import type { Group, OperationOutcome } from '@medplum/fhirtypes';
import type { Logger } from '@gw/platform';
import type { AccessPolicy, Principal } from '../repository/access.policy';
import { Binder } from '../repository/search-sql';
import { PATIENT_COMPARTMENT, activePatientMembers } from '../repository/patient-compartment';

/** What the job reads back from bulk_export (never carried in the job payload). */
export interface ExportRow {
  id: string;
  principal: Principal;
  groupId: string;
  types: string[];
  since: string | null;
  status: string;
}

export interface ExportOutput {
  type: string;
  count: number;
}

export type RunOutcome =
  | { kind: 'completed'; transactionTime: string; output: ExportOutput[]; error: ExportOutput[] }
  | { kind: 'cancelled' }
  | { kind: 'failed'; outcome: OperationOutcome };

const FETCH = 1000;

/**
 * Writes one export's NDJSON files. Everything is read in one REPEATABLE READ, READ ONLY
 * transaction, so all files show the same snapshot and `transactionTime` is that snapshot's time;
 * rows come through a server-side cursor, FETCH rows at a time, so memory stays bounded whatever
 * the group's size. Cancellation (the row deleted) is checked between batches, outside the snapshot.
 */
export class BulkExportRunner {
  constructor(
    private readonly pool: Pool,
    private readonly policy: AccessPolicy,
    private readonly logger: Logger,
  ) {}

  async run(
    row: ExportRow,
    dir: string,
    skipped: string[],
    progress: (text: string) => Promise<void>,
  ): Promise<RunOutcome> {
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    const db = await this.pool.connect();
    try {
      await db.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const tt = (await db.query<{ now: Date }>('SELECT now()')).rows[0].now.toISOString();
      const members = await this.members(db, row);
      if (!members) {
        await db.query('ROLLBACK');
        return {
          kind: 'failed',
          outcome: outcome(
            'not-found',
            `Group/${row.groupId} no longer exists or is no longer readable by this client`,
          ),
        };
      }
      const output: ExportOutput[] = [];
      for (const [i, type] of row.types.entries()) {
        if (!(await this.stillWanted(row.id))) {
          await db.query('ROLLBACK');
          return { kind: 'cancelled' };
        }
        await progress(`exporting ${type} (${i + 1}/${row.types.length} types)`);
        const count = await this.exportType(db, row, type, members, join(dir, `${type}.ndjson`));
        if (count === null) {
          await db.query('ROLLBACK');
          return { kind: 'cancelled' };
        }
        if (count > 0) {
          output.push({ type, count });
        }
      }
      await db.query('COMMIT');
      const error =
        skipped.length > 0 ? [{ type: 'OperationOutcome', count: await this.writeSkipped(dir, skipped) }] : [];
      return { kind: 'completed', transactionTime: tt, output, error };
    } catch (err) {
      await db.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      db.release();
    }
  }

  /**
   * Active Patient members of the Group that the client may read, or undefined when the Group is
   * gone or not readable. A Group may name patients the client may not read (written by an
   * operator, or before writes were checked): they are left out silently — neither exported nor
   * counted — and so is everything in their compartment, even resources the client owns.
   */
  private async members(db: PoolClient, row: ExportRow): Promise<string[] | undefined> {
    const res = await db.query<{ owner_org: string | null; content: string }>(
      `SELECT owner_org, content FROM resource WHERE resource_type = 'Group' AND id = $1 AND NOT deleted`,
      [row.groupId],
    );
    const g = res.rows[0];
    if (!g || !this.policy.canRead(row.principal, { resourceType: 'Group', id: row.groupId, ownerOrg: g.owner_org })) {
      return undefined;
    }
    const ids = activePatientMembers(JSON.parse(g.content) as Group);
    const b = new Binder();
    const pol = this.policy.readFilter(row.principal, 'r', b.bind);
    if (!pol || ids.length === 0) {
      return ids;
    }
    const readable = await db.query<{ id: string }>(
      `SELECT r.id FROM resource r WHERE r.resource_type = 'Patient' AND r.id = ANY(${b.bind(ids)}::text[]) AND NOT r.deleted AND ${pol}`,
      b.values,
    );
    return readable.rows.map((r) => r.id);
  }

  /** Streams one type's rows to its file; the number written, or null when cancelled meanwhile. */
  private async exportType(
    db: PoolClient,
    row: ExportRow,
    type: string,
    members: string[],
    file: string,
  ): Promise<number | null> {
    const b = new Binder();
    const t = b.bind(type);
    const conds = [`r.resource_type = ${t}`, 'NOT r.deleted'];
    if (type === 'Patient') {
      conds.push(`r.id = ANY(${b.bind(members)}::text[])`);
    } else {
      // An uncorrelated IN, so PostgreSQL plans a (hash) semi-join: a resource reachable through
      // several members or parameters comes once, and the index is probed once per member.
      conds.push(
        `r.id IN (SELECT s.id FROM sp_reference s WHERE s.resource_type = ${t} AND s.code = ANY(${b.bind(PATIENT_COMPARTMENT[type])}::text[])
           AND s.target_type = 'Patient' AND s.target_id = ANY(${b.bind(members)}::text[]))`,
      );
    }
    if (row.since) {
      conds.push(`r.last_updated > ${b.bind(row.since)}::timestamptz`);
    }
    const pol = this.policy.readFilter(row.principal, 'r', b.bind);
    if (pol) {
      conds.push(pol);
    }
    await db.query(
      `DECLARE bulk_rows NO SCROLL CURSOR FOR SELECT r.content FROM resource r WHERE ${conds.join(' AND ')} ORDER BY r.id`,
      b.values,
    );
    // Promise-based file writes: a cancel removes the directory under a running job, and a write
    // stream's 'error' event (ENOENT) with no listener would crash the process; here it rejects.
    const out = await open(file, 'w');
    let count = 0;
    let batches = 0;
    try {
      for (;;) {
        const res = await db.query<{ content: string }>(`FETCH ${FETCH} FROM bulk_rows`);
        if (res.rows.length === 0) {
          break;
        }
        // Stored JSON is compact; re-serialise defensively so a line is always one resource.
        const chunk =
          res.rows
            .map((r) => this.policy.redact?.(row.principal, type, r.content) ?? r.content)
            .map((c) => (c.includes('\n') ? JSON.stringify(JSON.parse(c)) : c))
            .join('\n') + '\n';
        count += res.rows.length;
        await out.writeFile(chunk, 'utf8');
        if (++batches % 20 === 0 && !(await this.stillWanted(row.id))) {
          return null;
        }
      }
    } finally {
      await out.close().catch(() => undefined);
      // After a failed FETCH the transaction is aborted and CLOSE fails too: the first error is the one to keep.
      await db.query('CLOSE bulk_rows').catch(() => undefined);
    }
    if (count === 0) {
      await unlink(file);
    }
    this.logger.debug({ exportId: row.id, type, count }, 'bulk export type written');
    return count;
  }

  private async stillWanted(id: string): Promise<boolean> {
    const res = await this.pool.query('SELECT 1 FROM bulk_export WHERE id = $1', [id]);
    return (res.rowCount ?? 0) > 0;
  }

  private async writeSkipped(dir: string, skipped: string[]): Promise<number> {
    const lines = skipped.map((t) =>
      JSON.stringify(outcome('forbidden', `${t} not exported: the client's scopes do not allow reading it`, 'warning')),
    );
    await writeFile(join(dir, 'OperationOutcome.ndjson'), lines.join('\n') + '\n', 'utf8');
    return lines.length;
  }
}

export function outcome(
  code: 'not-found' | 'forbidden' | 'exception',
  text: string,
  severity: 'error' | 'warning' = 'error',
): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: [{ severity, code, details: { text } }] };
}
