import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Pool } from 'pg';
import type { OperationOutcome } from '@medplum/fhirtypes';
import { GatewayError, UnrecoverableError } from '@gw/platform';
import type { GatewayFeature, JobContext, JobResult, Logger, QueueService } from '@gw/platform';
import type { AccessPolicy, Principal } from '../repository/access.policy';
import type { Group } from '@medplum/fhirtypes';
import type { AuditLog } from '../audit/audit.log';
import { actorOf } from '../audit/audit.log';
import { activePatientMembers } from '../repository/patient-compartment';
import { auditQuery } from '../audit/audit-subject';
import { validateExportParams } from './bulk-export.params';
import type { RawExportParams } from './bulk-export.params';
import { BulkExportRunner, outcome } from './bulk-export.runner';
import type { ExportOutput, ExportRow } from './bulk-export.runner';
import type { FhirRepository } from '../repository/fhir.repository';

export interface BulkExportOptions {
  /** GW_DATA_DIR: files go to <dataDir>/bulk/<export id>/<Type>.ndjson. */
  dataDir: string;
  retentionHours: number;
  logger: Logger;
}

/** The status endpoint's answer (Bulk Data v2 §status request). */
export type ExportStatus =
  | { state: 'in-progress'; progress: string }
  | { state: 'completed'; manifest: Record<string, unknown>; expires: string }
  | { state: 'failed'; outcome: OperationOutcome };

interface Row {
  id: string;
  client_id: string;
  organization: string;
  admin: boolean;
  scopes: string[];
  group_id: string;
  types: string[];
  skipped: string[];
  since: Date | null;
  request: string;
  status: 'queued' | 'running' | 'completed' | 'failed';
  progress: string | null;
  transaction_time: Date | null;
  output: ExportOutput[];
  error: ExportOutput[];
  failure: OperationOutcome | null;
  expires_at: Date | null;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const FILE = /^([A-Z][A-Za-z]+)\.ndjson$/;
/** A kick-off whose enqueue was lost (crash between commit and enqueue) is re-enqueued by the sweep after this. */
const REQUEUE_AFTER_MINUTES = 2;

/**
 * FHIR Bulk Data Access v2, group-level export: kick-off, status, cancel and file access for the
 * HTTP layer, and the `bulk.export` / `bulk.sweep` job handlers (gateway or apps/worker alike).
 * Only the client that started an export (or an admin) sees it; to anyone else it does not exist.
 */
export class BulkExportService implements GatewayFeature {
  private readonly runner: BulkExportRunner;
  private readonly root: string;

  constructor(
    private readonly pool: Pool,
    private readonly repo: FhirRepository,
    policy: AccessPolicy,
    private readonly audit: AuditLog,
    private readonly queue: QueueService,
    private readonly opts: BulkExportOptions,
  ) {
    this.runner = new BulkExportRunner(pool, policy, opts.logger);
    this.root = join(resolve(opts.dataDir), 'bulk');
  }

  /** Validates, records the export (committed before the 202) and enqueues its job; returns its id. */
  async kickOff(
    p: Principal,
    groupId: string,
    raw: RawExportParams,
    request: string,
    requestId?: string,
  ): Promise<string> {
    const params = validateExportParams(p, raw);
    const group = await this.repo.read(p, 'Group', groupId);
    const id = randomUUID();
    await this.pool.query(
      `INSERT INTO bulk_export (id, client_id, organization, admin, scopes, group_id, types, skipped, since, request, status, progress)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'queued', 'queued')`,
      [
        id,
        p.clientId,
        p.organization,
        p.admin,
        p.scopes,
        groupId,
        params.types,
        params.skipped,
        params.since ?? null,
        request,
      ],
    );
    try {
      await this.queue.enqueue('bulk.export', { exportId: id, traceId: requestId }, `bulk-export-${id}`);
    } catch (err) {
      // The row is committed: the sweep re-enqueues it, so the client's 202 stays true.
      this.opts.logger.warn(
        { exportId: id, err: (err as Error).message },
        'bulk export enqueue failed; the sweep will retry',
      );
    }
    this.audit.record({
      ...actorOf(p),
      interaction: 'bulk-export',
      resourceType: 'Group',
      entity: [`Group/${groupId}`],
      patients: group.json ? activePatientMembers(JSON.parse(group.json) as Group) : [],
      query: request.includes('?') ? auditQueryOf(request) : undefined,
      outcome: 202,
      requestId,
    });
    return id;
  }

  async status(p: Principal, id: string, fileBase: string): Promise<ExportStatus> {
    const row = await this.load(p, id);
    if (row.status === 'failed') {
      return { state: 'failed', outcome: row.failure ?? outcome('exception', 'The export failed') };
    }
    if (row.status !== 'completed' || !row.transaction_time || !row.expires_at) {
      return { state: 'in-progress', progress: row.progress ?? row.status };
    }
    const url = (o: ExportOutput): { type: string; url: string; count: number } => ({
      type: o.type,
      url: `${fileBase}/${id}/${o.type}.ndjson`,
      count: o.count,
    });
    return {
      state: 'completed',
      expires: row.expires_at.toUTCString(),
      manifest: {
        transactionTime: row.transaction_time.toISOString(),
        request: row.request,
        requiresAccessToken: true,
        output: row.output.map(url),
        error: row.error.map(url),
      },
    };
  }

  /** DELETE on the status URL: forgets the export and removes its files (a running job notices and stops). */
  async cancel(p: Principal, id: string, requestId?: string): Promise<void> {
    await this.load(p, id);
    await this.pool.query('DELETE FROM bulk_export WHERE id = $1', [id]);
    // A job still running may be creating files meanwhile (ENOTEMPTY): it notices the cancel and
    // removes the directory itself, on every path (cancelled, write failed, completed too late).
    await rm(join(this.root, id), { recursive: true, force: true, maxRetries: 2 }).catch((err: unknown) =>
      this.opts.logger.debug(
        { exportId: id, code: (err as NodeJS.ErrnoException).code },
        'export files left to the job',
      ),
    );
    this.audit.record({
      ...actorOf(p),
      interaction: 'bulk-export-cancel',
      entity: [`bulk-export/${id}`],
      outcome: 202,
      requestId,
    });
  }

  /** The path of one output or error file of a completed export, audited as a download. */
  async file(p: Principal, id: string, name: string, requestId?: string): Promise<{ path: string; type: string }> {
    const row = await this.load(p, id);
    const type = FILE.exec(name)?.[1];
    const listed =
      row.status === 'completed' && type !== undefined && [...row.output, ...row.error].some((o) => o.type === type);
    if (!listed) {
      throw new GatewayError('not-found', { text: `File ${name} is not part of export ${id}` });
    }
    // The file holds the records of the Group's members (those of the export time; the Group's
    // current members are the closest the trail can name without reading the file).
    const group = await this.repo.readSystem<Group>('Group', row.group_id);
    this.audit.record({
      ...actorOf(p),
      interaction: 'bulk-download',
      resourceType: type,
      entity: [`Group/${row.group_id}`, `bulk-export/${id}`],
      patients: group ? activePatientMembers(group) : [],
      outcome: 200,
      requestId,
    });
    return { path: join(this.root, id, name), type };
  }

  readonly name = 'bulk-export';

  register(queue: QueueService): void {
    queue.register('bulk.export', (payload, ctx) => this.runJob(payload.exportId, ctx));
    queue.register('bulk.sweep', () => this.sweep());
  }

  /** Every 10 minutes: expired exports go, lost kick-offs are re-enqueued (one scheduler id for all replicas). */
  async start(queue: QueueService): Promise<void> {
    await queue
      .queue('bulk-export')
      .upsertJobScheduler('bulk-sweep', { pattern: '*/10 * * * *' }, { name: 'bulk.sweep', data: {} });
  }

  async runJob(exportId: string, ctx: JobContext): Promise<JobResult> {
    const res = await this.pool.query<Row>('SELECT * FROM bulk_export WHERE id = $1', [exportId]);
    const row = res.rows[0];
    if (!row || row.status === 'completed' || row.status === 'failed') {
      return { status: 'skipped', detail: { reason: row ? `export already ${row.status}` : 'export cancelled' } };
    }
    await this.pool.query(
      `UPDATE bulk_export SET status = 'running', progress = 'started' WHERE id = $1 AND status IN ('queued', 'running')`,
      [exportId],
    );
    const dir = join(this.root, exportId);
    const setProgress = async (text: string): Promise<void> => {
      await this.pool.query('UPDATE bulk_export SET progress = $2 WHERE id = $1', [exportId, text]);
    };
    try {
      const r = await this.runner.run(toExportRow(row), dir, row.skipped, setProgress);
      if (r.kind === 'completed') {
        const done = await this.pool.query(
          `UPDATE bulk_export SET status = 'completed', progress = 'completed', transaction_time = $2, output = $3, error = $4,
             completed_at = now(), expires_at = now() + make_interval(hours => $5) WHERE id = $1`,
          [exportId, r.transactionTime, JSON.stringify(r.output), JSON.stringify(r.error), this.opts.retentionHours],
        );
        if ((done.rowCount ?? 0) === 0) {
          await rm(dir, { recursive: true, force: true });
          return { status: 'skipped', detail: { reason: 'export cancelled' } };
        }
        return {
          status: 'success',
          detail: { files: r.output.length, resources: r.output.reduce((n, o) => n + o.count, 0) },
        };
      }
      if (r.kind === 'cancelled') {
        await rm(dir, { recursive: true, force: true });
        return { status: 'skipped', detail: { reason: 'export cancelled' } };
      }
      await this.fail(exportId, dir, r.outcome);
      return { status: 'skipped', detail: { reason: 'group not readable' } };
    } catch (err) {
      // A cancel removes the row and the files under a running job: its writes then fail, which is
      // the cancel taking effect, not an error to retry.
      const left = await this.pool.query('SELECT 1 FROM bulk_export WHERE id = $1', [exportId]);
      if ((left.rowCount ?? 0) === 0) {
        await rm(dir, { recursive: true, force: true });
        return { status: 'skipped', detail: { reason: 'export cancelled' } };
      }
      ctx.logger.warn({ exportId, attempt: ctx.attempt, err: (err as Error).message }, 'bulk export attempt failed');
      if (ctx.attempt >= ctx.maxAttempts) {
        await this.fail(
          exportId,
          dir,
          outcome('exception', `The export failed (export id ${exportId}); the operator's logs have the cause`),
        );
        throw new UnrecoverableError((err as Error).message);
      }
      throw err;
    }
  }

  /** Deletes exports past retention (and failed ones after the same delay) with their files; re-enqueues lost kick-offs. */
  async sweep(): Promise<JobResult> {
    const gone = await this.pool.query<{ id: string }>(
      `DELETE FROM bulk_export WHERE expires_at < now()
          OR (status = 'failed' AND created_at < now() - make_interval(hours => $1)) RETURNING id`,
      [this.opts.retentionHours],
    );
    for (const { id } of gone.rows) {
      await rm(join(this.root, id), { recursive: true, force: true });
    }
    const stale = await this.pool.query<{ id: string }>(
      `SELECT id FROM bulk_export WHERE status = 'queued' AND created_at < now() - make_interval(mins => $1)`,
      [REQUEUE_AFTER_MINUTES],
    );
    // Same job id as the kick-off: BullMQ ignores the add when that job still exists.
    await this.queue.enqueueMany(
      'bulk.export',
      stale.rows.map((r) => ({ payload: { exportId: r.id }, jobId: `bulk-export-${r.id}` })),
    );
    if (gone.rows.length === 0 && stale.rows.length === 0) {
      return { status: 'skipped', detail: { reason: 'nothing expired or lost' } };
    }
    return { status: 'success', detail: { deleted: gone.rows.length, requeued: stale.rows.length } };
  }

  private async fail(id: string, dir: string, failure: OperationOutcome): Promise<void> {
    await rm(dir, { recursive: true, force: true });
    await this.pool.query(
      `UPDATE bulk_export SET status = 'failed', progress = 'failed', failure = $2, completed_at = now() WHERE id = $1`,
      [id, JSON.stringify(failure)],
    );
  }

  /** The export if `p` started it (or is admin) and it has not expired; otherwise not found. */
  private async load(p: Principal, id: string): Promise<Row> {
    const row = UUID.test(id)
      ? (await this.pool.query<Row>('SELECT * FROM bulk_export WHERE id = $1', [id])).rows[0]
      : undefined;
    if (
      !row ||
      (row.client_id !== p.clientId && !p.admin) ||
      (row.expires_at && row.expires_at.getTime() < Date.now())
    ) {
      throw new GatewayError('not-found', { text: `Export ${id} not found` });
    }
    return row;
  }
}

function toExportRow(row: Row): ExportRow {
  return {
    id: row.id,
    principal: { clientId: row.client_id, organization: row.organization, admin: row.admin, scopes: row.scopes },
    groupId: row.group_id,
    types: row.types,
    since: row.since ? row.since.toISOString() : null,
    status: row.status,
  };
}

/** The masked query of a kick-off request URL (`…/$export?_type=…`). */
function auditQueryOf(request: string): string | undefined {
  return auditQuery([...new URLSearchParams(request.slice(request.indexOf('?') + 1))]);
}
