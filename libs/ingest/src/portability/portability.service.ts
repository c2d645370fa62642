import { randomUUID } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { isAbsolute, relative, resolve } from 'node:path';
import type { Pool } from 'pg';
import { GatewayError, UnrecoverableError } from '@gw/platform';
import type { GatewayFeature, JobContext, JobResult, Logger, QueueService } from '@gw/platform';
import type { Principal } from '@gw/store';
import type { IntakePipelineApi } from '../intake/pipeline';
import { ArchiveUnreadableError, PortabilityImporter } from './portability.importer';

export interface PortabilityOptions {
  /** The only folder the admin API imports from (the CLI, run on the machine, may name any file). */
  importDir: string;
  maxEntryBytes: number;
  concurrency: number;
  logger: Logger;
}

/** Progress of one import (GET /admin/intake/imports/:id, CLI). */
export interface ImportProgress {
  id: string;
  organization: string;
  status: 'queued' | 'running' | 'completed' | 'failed';
  failure?: string;
  patients: { total: number; done: number };
  /** Documents (CDA, PDF) known so far; a patient's XDM zip adds its own when first opened. */
  documents: { total: number; done: number; created: number; review: number; rejected: number; failed: number };
  resources: number;
  /** Files read but not filed (metadata, transverse archive, others), with why. */
  skipped: number;
  elapsedSeconds: number;
  documentsPerSecond: number;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  /** The entries not filed: refused, failed or waiting for identity review (first 200). */
  problems: { path: string; status: string; reason: string | null }[];
}

interface ImportRow {
  id: string;
  organization: string;
  status: ImportProgress['status'];
  failure: string | null;
  patients_total: number;
  runs: number;
  elapsed_ms: string;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
}

type ImportProblem = { path: string; status: string; reason: string | null };
type EntryCounts = { counts: Record<string, string>; problems: ImportProblem[] };
/** How long an import's entry counts are reused while its status is unchanged. */
const COUNTS_TTL_MS = 2_000;

const ORGANIZATION = /^Organization\/[A-Za-z0-9\-.]{1,64}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Portability archive imports (ANS PDLGC draft): start one (admin API or CLI), follow its progress,
 * and the `intake.import-archive` job that runs it in a worker. A restart of the worker continues
 * each unfinished import where it stopped: the feature re-enqueues them when it starts.
 */
export class PortabilityImportService implements GatewayFeature {
  readonly name = 'portability';
  private readonly importer: PortabilityImporter;
  private stopping = false;
  /** The last counts of each import polled, reused while its status is unchanged (see progress). */
  private readonly counted = new Map<string, { state: string; at: number; counts: EntryCounts }>();

  constructor(
    private readonly pool: Pool,
    private readonly queue: QueueService,
    sink: IntakePipelineApi,
    private readonly opts: PortabilityOptions,
  ) {
    this.importer = new PortabilityImporter(pool, sink, opts);
  }

  /**
   * Records an import of `path` into `organization`'s records and enqueues its job. `trustedPath`:
   * the caller is an operator on the machine (CLI); otherwise the file must be in the import folder.
   */
  async startImport(
    p: Principal,
    input: { path?: unknown; organization?: unknown },
    opts: { trustedPath?: boolean; requestId?: string } = {},
  ): Promise<ImportProgress> {
    const organization = typeof input.organization === 'string' ? input.organization : '';
    if (!ORGANIZATION.test(organization)) {
      throw new GatewayError('invalid', {
        text: 'organization must be Organization/<id>: whose records the documents become',
        expression: 'organization',
      });
    }
    if (!p.admin && organization !== p.organization) {
      throw new GatewayError('forbidden', { text: 'A client imports into its own organization only' });
    }
    const path = await this.archivePath(input.path, opts.trustedPath ?? false);
    const id = randomUUID();
    await this.pool.query(
      `INSERT INTO intake_import (id, organization, client_id, archive_path, status) VALUES ($1, $2, $3, $4, 'queued')`,
      [id, organization, p.clientId, path],
    );
    await this.queue.enqueue('intake.import-archive', { importId: id, traceId: opts.requestId }, jobId(id, 0));
    return this.progress(id);
  }

  private async archivePath(raw: unknown, trusted: boolean): Promise<string> {
    if (typeof raw !== 'string' || raw.trim() === '') {
      throw new GatewayError('invalid', {
        text: 'path (the archive file on the gateway machine) is required',
        expression: 'path',
      });
    }
    const root = resolve(this.opts.importDir);
    const path = trusted ? resolve(raw) : resolve(root, raw);
    const rel = relative(root, path);
    if (!trusted && (rel.startsWith('..') || isAbsolute(rel))) {
      throw new GatewayError('forbidden', {
        text: 'The archive must be in the import folder (GW_INTAKE_IMPORT_DIR)',
        expression: 'path',
      });
    }
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile()) {
      throw new GatewayError('invalid', { text: 'No archive file at that path', expression: 'path' });
    }
    return path;
  }

  async list(limit = 50): Promise<ImportProgress[]> {
    const ids = await this.pool.query<{ id: string }>(
      'SELECT id FROM intake_import ORDER BY created_at DESC LIMIT $1',
      [limit],
    );
    return Promise.all(ids.rows.map((r) => this.progress(r.id)));
  }

  async progress(id: string): Promise<ImportProgress> {
    const row = UUID.test(id)
      ? (await this.pool.query<ImportRow>('SELECT * FROM intake_import WHERE id = $1', [id])).rows[0]
      : undefined;
    if (!row) {
      throw new GatewayError('not-found', { text: `No import ${id}` });
    }
    const { counts: c, problems } = await this.entryCounts(row);
    const n = (k: string): number => Number(c[k] ?? 0);
    const elapsed = Number(row.elapsed_ms) / 1000;
    return {
      id: row.id,
      organization: row.organization,
      status: row.status,
      ...(row.failure ? { failure: row.failure } : {}),
      patients: { total: row.patients_total, done: row.patients_total - n('units_left') },
      documents: {
        total: n('total'),
        done: n('done'),
        created: n('created'),
        review: n('review'),
        rejected: n('rejected'),
        failed: n('failed'),
      },
      resources: n('resources'),
      skipped: n('skipped'),
      elapsedSeconds: Math.round(elapsed * 10) / 10,
      documentsPerSecond: elapsed > 0 ? Math.round((n('done') / elapsed) * 10) / 10 : 0,
      createdAt: row.created_at.toISOString(),
      ...(row.started_at ? { startedAt: row.started_at.toISOString() } : {}),
      ...(row.finished_at ? { finishedAt: row.finished_at.toISOString() } : {}),
      problems,
    };
  }

  /**
   * The entry counts of an import. Counting reads every entry (40 000 for a 10 000-patient archive,
   * tens of milliseconds), so counts computed less than {@link COUNTS_TTL_MS} ago for the same
   * import state (status, patients planned, run) are reused: however many clients poll, a running
   * import is counted at most once per interval, and a change of state is always counted afresh.
   */
  private async entryCounts(row: ImportRow): Promise<EntryCounts> {
    const now = Date.now();
    for (const [id, c] of this.counted) {
      if (now - c.at >= COUNTS_TTL_MS) this.counted.delete(id);
    }
    // The row's own figures change when the archive is planned or a run starts: counted afresh.
    const state = `${row.status}|${row.patients_total}|${row.runs}`;
    const cached = this.counted.get(row.id);
    if (cached && cached.state === state) {
      return cached.counts;
    }
    const c = (
      await this.pool.query<Record<string, string>>(
        `SELECT
           count(*) FILTER (WHERE kind IN ('cda', 'pdf')) AS total,
           count(*) FILTER (WHERE kind IN ('cda', 'pdf') AND status NOT IN ('pending', 'running')) AS done,
           count(*) FILTER (WHERE status = 'created') AS created,
           count(*) FILTER (WHERE status = 'review') AS review,
           count(*) FILTER (WHERE status = 'rejected') AS rejected,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) FILTER (WHERE status = 'skipped' AND kind <> 'xdm-zip') AS skipped,
           coalesce(sum(resources), 0) AS resources,
           count(DISTINCT unit) FILTER (WHERE unit > 0 AND status IN ('pending', 'running')) AS units_left
         FROM intake_import_entry WHERE import_id = $1`,
        [row.id],
      )
    ).rows[0] as Record<string, string>;
    const problems = await this.pool.query<ImportProblem>(
      `SELECT path, status, reason FROM intake_import_entry
        WHERE import_id = $1 AND status IN ('rejected', 'failed', 'review') ORDER BY unit, path LIMIT 200`,
      [row.id],
    );
    const counts = { counts: c, problems: problems.rows };
    this.counted.set(row.id, { state, at: now, counts });
    return counts;
  }

  register(queue: QueueService): void {
    queue.register('intake.import-archive', (payload, ctx) => this.runJob(payload.importId, ctx));
  }

  /**
   * A worker starting: every import left queued or running (the process stopped or died) gets a
   * new job, so that it goes on. Two workers starting together both enqueue one; the import's
   * advisory lock lets one run and the other skip.
   */
  async start(queue: QueueService): Promise<void> {
    this.stopping = false;
    const r = await this.pool.query<{ id: string; runs: number }>(
      `UPDATE intake_import SET runs = runs + 1 WHERE status IN ('queued', 'running') RETURNING id, runs`,
    );
    for (const row of r.rows) {
      await queue.enqueue('intake.import-archive', { importId: row.id }, jobId(row.id, row.runs));
    }
    if (r.rows.length > 0) {
      this.opts.logger.info({ imports: r.rows.length }, 'unfinished portability imports resumed');
    }
  }

  /** Shutdown: the running import stops after the documents in hand, its job returns; start() resumes it. */
  async stop(): Promise<void> {
    this.stopping = true;
  }

  /** The job: one run of one import, under its advisory lock (never two runs of one import at once). */
  async runJob(importId: string, ctx: JobContext): Promise<JobResult> {
    const client = await this.pool.connect();
    try {
      const got = await client.query<{ ok: boolean }>(
        `SELECT pg_try_advisory_lock(hashtext('intake-import'), hashtext($1)) AS ok`,
        [importId],
      );
      if (!got.rows[0].ok) {
        return { status: 'skipped', detail: { reason: 'import running in another job' } };
      }
      try {
        return await this.runLocked(importId, ctx);
      } finally {
        await client.query(`SELECT pg_advisory_unlock(hashtext('intake-import'), hashtext($1))`, [importId]);
      }
    } finally {
      client.release();
    }
  }

  private async runLocked(importId: string, ctx: JobContext): Promise<JobResult> {
    const claimed = await this.pool.query(
      `UPDATE intake_import SET status = 'running', started_at = coalesce(started_at, now())
        WHERE id = $1 AND status IN ('queued', 'running')`,
      [importId],
    );
    if (claimed.rowCount === 0) {
      return { status: 'skipped', detail: { reason: 'import finished or gone' } };
    }
    try {
      const run = await this.importer.run(importId, () => this.stopping);
      if (run.state === 'completed') {
        await this.pool.query(`UPDATE intake_import SET status = 'completed', finished_at = now() WHERE id = $1`, [
          importId,
        ]);
      }
      return {
        status: run.state === 'completed' ? 'success' : 'skipped',
        detail: { state: run.state, documents: run.documents, resources: run.resources },
      };
    } catch (err) {
      const unreadable = err instanceof ArchiveUnreadableError;
      if (unreadable || ctx.attempt >= ctx.maxAttempts) {
        await this.pool.query(
          `UPDATE intake_import SET status = 'failed', failure = $2, finished_at = now() WHERE id = $1`,
          [importId, unreadable ? (err as Error).message : 'the import stopped on an error; see the gateway logs'],
        );
      }
      ctx.logger.warn(
        { importId, err: err instanceof GatewayError ? err.category : (err as Error).name },
        'import run failed',
      );
      throw unreadable ? new UnrecoverableError((err as Error).message) : err;
    }
  }
}

function jobId(importId: string, run: number): string {
  return `intake-import-${importId}-${run}`;
}
