import type { Pool } from 'pg';
import { GatewayError } from '@gw/platform';
import type { Logger } from '@gw/platform';
import type { Principal } from '@gw/store';
import { classifyXdmFile, planArchive } from './archive.plan';
import type { PlannedEntry } from './archive.plan';
import type { IntakePipelineApi, IntakeResult } from '../intake/pipeline';
import { ArchiveEntryError, ZipArchive } from './zip-archive';
import { documentOnlyExtraction, readXdmMetadata } from './xdm-metadata';
import type { XdmDocumentEntry } from './xdm-metadata';

/** The archive itself cannot be read (missing, not a zip): the import fails, retrying will not help. */
export class ArchiveUnreadableError extends Error {}

export interface ImporterOptions {
  /** Largest entry read into memory (a document, or a patient's XDM zip). */
  maxEntryBytes: number;
  /** Patients imported side by side (each patient's documents one after the other). */
  concurrency: number;
  logger: Logger;
}

export interface RunOutcome {
  state: 'completed' | 'interrupted';
  documents: number;
  resources: number;
}

interface ImportRow {
  id: string;
  organization: string;
  client_id: string;
  archive_path: string;
  planned: boolean;
}

interface EntryRow {
  path: string;
  kind: PlannedEntry['kind'];
  status: string;
}

type FinalStatus = 'created' | 'review' | 'rejected' | 'failed' | 'skipped';

/** A document's outcome, to record in intake_import_entry. */
interface Finished {
  path: string;
  status: FinalStatus;
  reason: string | null;
  resources: number;
}

/** Separator between a patient's XDM zip and a file inside it, in entry paths. */
const INNER = '!/';
/** How often the time spent is written to the import row (documents/s on the progress API). */
const FLUSH_MS = 2000;

/**
 * Imports one portability archive: plans it once (every file recorded with what it is), then
 * files each patient's documents through the intake pipeline, one entry at a time from the zip,
 * recording each document's status as soon as the pipeline answers. Run again after a crash or a
 * stop, it reads only the entries not finished (`pending`; `running` from an older version); the
 * one in hand at a crash is filed again (the pipeline keys documents by their uniqueId and answers
 * the first filing instead of adding to it).
 */
export class PortabilityImporter {
  constructor(
    private readonly pool: Pool,
    private readonly sink: IntakePipelineApi,
    private readonly opts: ImporterOptions,
  ) {}

  async run(importId: string, shouldStop: () => boolean): Promise<RunOutcome> {
    const row = (
      await this.pool.query<ImportRow>(
        'SELECT id, organization, client_id, archive_path, planned FROM intake_import WHERE id = $1',
        [importId],
      )
    ).rows[0];
    if (!row) {
      throw new ArchiveUnreadableError('import not found');
    }
    let archive: ZipArchive;
    try {
      archive = await ZipArchive.open(row.archive_path);
    } catch (err) {
      // The file name may say whose archive it is: the code only.
      const code = (err as NodeJS.ErrnoException).code;
      throw new ArchiveUnreadableError(
        code ? `the archive file cannot be opened (${code})` : 'the archive is not a readable zip',
      );
    }
    const started = Date.now();
    let flushed = started;
    const counts = { documents: 0, resources: 0 };
    try {
      if (!row.planned) {
        await this.plan(importId, archive);
      }
      const units = await this.pendingUnits(importId);
      const principal: Principal = {
        clientId: row.client_id,
        organization: row.organization,
        admin: false,
        scopes: ['system/*.cruds'],
      };
      let next = 0;
      let stopped = false;
      let failure: { err: unknown } | undefined;
      const worker = async (): Promise<void> => {
        while (next < units.length && !stopped) {
          const unit = units[next++];
          try {
            const done = await this.importUnit(importId, unit, archive, principal, counts, () => {
              stopped ||= shouldStop();
              return stopped;
            });
            stopped ||= !done;
          } catch (err) {
            // The other workers finish the document in hand and stop: the archive stays open until then.
            failure ??= { err };
            stopped = true;
          }
          if (Date.now() - flushed >= FLUSH_MS) {
            // Moved on before the await: the other workers must not add the same interval again.
            const since = flushed;
            flushed = Date.now();
            await this.addElapsed(importId, flushed - since);
          }
        }
      };
      await Promise.all(Array.from({ length: Math.max(1, this.opts.concurrency) }, worker));
      if (failure) {
        throw failure.err;
      }
      await this.addElapsed(importId, Date.now() - flushed);
      flushed = Date.now();
      const left = await this.pool.query(
        `SELECT 1 FROM intake_import_entry WHERE import_id = $1 AND status IN ('pending', 'running') LIMIT 1`,
        [importId],
      );
      return { state: left.rowCount === 0 ? 'completed' : 'interrupted', ...counts };
    } finally {
      archive.close();
      if (Date.now() > flushed) {
        await this.addElapsed(importId, Date.now() - flushed).catch(() => undefined);
      }
    }
  }

  /** Records every file of the archive (central directory only: nothing is decompressed). */
  private async plan(importId: string, archive: ZipArchive): Promise<void> {
    const { entries, units } = planArchive(archive.names());
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      for (let i = 0; i < entries.length; i += 1000) {
        await insertEntries(client, importId, entries.slice(i, i + 1000));
      }
      await client.query('UPDATE intake_import SET planned = true, patients_total = $2 WHERE id = $1', [
        importId,
        units,
      ]);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  private async pendingUnits(importId: string): Promise<number[]> {
    const r = await this.pool.query<{ unit: number }>(
      `SELECT DISTINCT unit FROM intake_import_entry
        WHERE import_id = $1 AND unit > 0 AND status IN ('pending', 'running') ORDER BY unit`,
      [importId],
    );
    return r.rows.map((x) => x.unit);
  }

  /** One patient's XDM (zip or folder); false when it stopped before the end. */
  private async importUnit(
    importId: string,
    unit: number,
    archive: ZipArchive,
    p: Principal,
    counts: { documents: number; resources: number },
    stop: () => boolean,
  ): Promise<boolean> {
    let rows = await this.unitRows(importId, unit);
    const zipRow = rows.find((r) => r.kind === 'xdm-zip');
    let inner: ZipArchive | undefined;
    try {
      if (zipRow && zipRow.status === 'pending') {
        inner = await this.openInner(importId, unit, archive, zipRow.path);
        if (!inner) {
          return true;
        }
        rows = await this.unitRows(importId, unit);
      } else if (zipRow) {
        inner = await ZipArchive.fromBuffer(await archive.read(zipRow.path, this.opts.maxEntryBytes));
      }
      const read = (path: string): Promise<Buffer> =>
        inner
          ? inner.read(path.slice(path.indexOf(INNER) + INNER.length), this.opts.maxEntryBytes)
          : archive.read(path, this.opts.maxEntryBytes);
      const metadata = new Map<string, Map<string, XdmDocumentEntry> | string>();
      for (const row of rows) {
        if ((row.kind !== 'cda' && row.kind !== 'pdf') || (row.status !== 'pending' && row.status !== 'running')) {
          continue;
        }
        if (stop()) {
          return false;
        }
        const source = `portability:${importId}:${unit}`;
        const outcome = await this.importDocument(row, rows, p, read, metadata, source);
        // Recorded as soon as the pipeline answers (a finished document is never filed again after a crash).
        await this.finish(importId, outcome.path, outcome.status, outcome.reason, outcome.resources);
        counts.documents += 1;
        counts.resources += outcome.resources;
      }
      return true;
    } catch (err) {
      if (err instanceof ArchiveEntryError && zipRow) {
        // The patient's zip read fine on a previous run but not now: the archive changed under us.
        await this.finish(importId, zipRow.path, 'failed', err.message, 0);
        return true;
      }
      throw err;
    } finally {
      inner?.close();
    }
  }

  /** Reads a patient's XDM zip and records its files; undefined (recorded as failed) when unreadable. */
  private async openInner(
    importId: string,
    unit: number,
    archive: ZipArchive,
    path: string,
  ): Promise<ZipArchive | undefined> {
    let inner: ZipArchive;
    try {
      inner = await ZipArchive.fromBuffer(await archive.read(path, this.opts.maxEntryBytes));
    } catch (err) {
      const reason = err instanceof ArchiveEntryError ? err.message : 'the patient XDM is not a readable zip';
      await this.finish(importId, path, 'failed', reason, 0);
      return undefined;
    }
    const files = inner
      .names()
      .filter((n) => !n.endsWith('/'))
      .map((n) => ({ ...classifyXdmFile(n), path: `${path}${INNER}${n}`, unit }));
    await insertEntries(this.pool, importId, files);
    await this.finish(
      importId,
      path,
      'skipped',
      `patient XDM zip: its ${files.length} files are listed as its own entries`,
      0,
    );
    return inner;
  }

  private async unitRows(importId: string, unit: number): Promise<EntryRow[]> {
    const r = await this.pool.query<EntryRow>(
      `SELECT path, kind, status FROM intake_import_entry WHERE import_id = $1 AND unit = $2
        ORDER BY (kind = 'metadata') DESC, path`,
      [importId, unit],
    );
    return r.rows;
  }

  /** One document through the pipeline: its outcome, recorded by the caller. */
  private async importDocument(
    row: EntryRow,
    rows: EntryRow[],
    p: Principal,
    read: (path: string) => Promise<Buffer>,
    metadata: Map<string, Map<string, XdmDocumentEntry> | string>,
    source: string,
  ): Promise<Finished> {
    const outcome = (status: FinalStatus, reason: string | null, resources = 0): Finished => ({
      path: row.path,
      status,
      reason,
      resources,
    });
    let body: Buffer;
    try {
      body = await read(row.path);
    } catch (err) {
      if (err instanceof ArchiveEntryError) {
        return outcome('failed', err.message);
      }
      throw err;
    }
    let result: IntakeResult;
    try {
      if (row.kind === 'cda') {
        result = await this.sink.ingest(p, { contentType: 'application/hl7-cda+xml', body, source });
      } else {
        const described = await this.describe(row.path, rows, read, metadata);
        if (typeof described === 'string') {
          return outcome('failed', described);
        }
        result = await this.sink.ingestExtractions(
          p,
          [documentOnlyExtraction(described, body, described.mimeType ?? 'application/pdf')],
          source,
        );
      }
    } catch (err) {
      // A document the pipeline refuses (4xx) is that entry's outcome; anything else (database
      // down) stops the run, and the job's retry takes it up again from this entry.
      if (err instanceof GatewayError && err.status < 500) {
        return outcome('rejected', err.message);
      }
      throw err;
    }
    return outcome(
      result.status,
      result.status === 'created' ? null : reasonOf(result),
      result.bundle?.entry?.length ?? 0,
    );
  }

  /** The DocumentEntry of a non-CDA file, from the METADATA.XML of its subset; a reason when none. */
  private async describe(
    path: string,
    rows: EntryRow[],
    read: (path: string) => Promise<Buffer>,
    cache: Map<string, Map<string, XdmDocumentEntry> | string>,
  ): Promise<XdmDocumentEntry | string> {
    const dir = path.slice(0, path.lastIndexOf('/') + 1);
    let entries = cache.get(dir);
    if (entries === undefined) {
      const meta = rows.find(
        (r) => r.kind === 'metadata' && r.path.toUpperCase() === `${dir}METADATA.XML`.toUpperCase(),
      );
      try {
        entries = meta ? readXdmMetadata(await read(meta.path)) : 'no METADATA.XML in its XDM subset';
      } catch (err) {
        entries = err instanceof ArchiveEntryError ? `METADATA.XML: ${err.message}` : 'METADATA.XML cannot be read';
      }
      cache.set(dir, entries);
    }
    if (typeof entries === 'string') {
      return `not a CDA document and ${entries}: no patient to file it to`;
    }
    return (
      entries.get(path.slice(dir.length).toUpperCase()) ??
      'not a CDA document and not described in METADATA.XML: no patient to file it to'
    );
  }

  private async finish(
    importId: string,
    path: string,
    status: FinalStatus,
    reason: string | null,
    resources: number,
  ): Promise<void> {
    await this.pool.query(
      `UPDATE intake_import_entry SET status = $3, reason = $4, resources = $5, finished_at = now()
        WHERE import_id = $1 AND path = $2`,
      [importId, path, status, reason, resources],
    );
  }

  private async addElapsed(importId: string, ms: number): Promise<void> {
    await this.pool.query('UPDATE intake_import SET elapsed_ms = elapsed_ms + $2 WHERE id = $1', [
      importId,
      Math.max(0, Math.round(ms)),
    ]);
  }
}

async function insertEntries(
  db: Pick<Pool, 'query'>,
  importId: string,
  entries: readonly PlannedEntry[],
): Promise<void> {
  if (entries.length === 0) {
    return;
  }
  await db.query(
    `INSERT INTO intake_import_entry (import_id, path, unit, kind, status, reason)
     SELECT $1, * FROM unnest($2::text[], $3::int[], $4::text[], $5::text[], $6::text[])
     ON CONFLICT (import_id, path) DO NOTHING`,
    [
      importId,
      entries.map((e) => e.path),
      entries.map((e) => e.unit),
      entries.map((e) => e.kind),
      entries.map((e) => e.status),
      entries.map((e) => e.reason ?? null),
    ],
  );
}

/** The pipeline's first issue, as the reason a document was held or refused. */
function reasonOf(result: IntakeResult): string {
  const issue =
    result.outcome.issue?.find((i) => i.severity === 'error' || i.severity === 'fatal') ?? result.outcome.issue?.[0];
  const text = issue?.details?.text ?? issue?.diagnostics;
  return (
    text ?? (result.status === 'review' ? 'waiting in the identity review queue' : 'refused by the intake pipeline')
  );
}
