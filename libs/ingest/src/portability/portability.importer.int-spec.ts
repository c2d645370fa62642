import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'pg';
import pino from 'pino';
import { QueueService } from '@gw/platform';
import type { JobContext } from '@gw/platform';
import type { Principal } from '@gw/store';
import { createTestDatabase, migrateAll } from '@gw/testing/database';
import { writePortabilityArchive } from '@gw/testing/intake-archive';
import type { Extraction } from '../intake/extraction';
import type { IntakePipelineApi, IntakeResult } from '../intake/pipeline';
import { PortabilityImportService } from './portability.service';

const ADMIN: Principal = { clientId: 'spec-admin', organization: 'Organization/gateway', admin: true, scopes: [] };
const ORG = 'Organization/msp-1';
const logger = pino({ level: 'silent' });

/**
 * Stands in for IntakePipeline (what the importer hands it is what is checked here): records each
 * document by its CDA id or uniqueId, refuses XML that is not CDA as the pipeline does, and can
 * fail like a database going away.
 */
class RecordingSink implements IntakePipelineApi {
  calls: string[] = [];
  failAt?: number;
  /** Milliseconds each document takes (a pipeline busy with a database). */
  delayMs = 0;
  /** The document whose call failed. */
  failed?: string;
  async ingest(p: Principal, input: { contentType: string; body: Buffer; source?: string }): Promise<IntakeResult> {
    this.check(p, input.source);
    const xml = input.body.toString('utf8');
    const id = /<ClinicalDocument[\s\S]*?<id root="([^"]+)"/.exec(xml)?.[1];
    if (!id) {
      return {
        status: 'rejected',
        outcome: {
          resourceType: 'OperationOutcome',
          issue: [{ severity: 'error', code: 'invalid', details: { text: 'not a CDA document' } }],
        },
      };
    }
    return this.record(id, 7);
  }
  async ingestExtractions(p: Principal, extractions: Extraction[], source: string): Promise<IntakeResult> {
    this.check(p, source);
    return this.record(extractions[0].document.uniqueId, 2);
  }
  private check(p: Principal, source: string | undefined): void {
    expect(p).toMatchObject({ organization: ORG, admin: false });
    expect(source).toMatch(/^portability:[0-9a-f-]{36}:\d+$/);
  }
  private async record(id: string, resources: number): Promise<IntakeResult> {
    if (this.delayMs > 0) {
      await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    }
    if (this.failAt !== undefined && this.calls.length + 1 === this.failAt) {
      this.failAt = undefined;
      this.failed = id;
      this.calls.push(id);
      throw new Error('connection terminated');
    }
    this.calls.push(id);
    return {
      status: 'created',
      bundle: {
        resourceType: 'Bundle',
        type: 'transaction-response',
        entry: Array.from({ length: resources }, () => ({})),
      },
      outcome: { resourceType: 'OperationOutcome', issue: [{ severity: 'information', code: 'informational' }] },
    };
  }
}

const ctx = (attempt = 1): JobContext => ({ jobId: 'spec', attempt, maxAttempts: 5, logger });

describe('portability import (real PostgreSQL)', () => {
  let pool: Pool;
  let queue: QueueService;
  let dir: string;
  let sink: RecordingSink;
  let service: PortabilityImportService;

  beforeAll(async () => {
    const url = await createTestDatabase('portability');
    pool = new Pool({ connectionString: url, max: 6 });
    await migrateAll(pool);
    queue = new QueueService({ databaseUrl: url, logger });
    dir = mkdtempSync(join(tmpdir(), 'gw-portability-int-'));
  });
  beforeEach(() => {
    sink = new RecordingSink();
    service = new PortabilityImportService(pool, queue, sink, {
      importDir: dir,
      maxEntryBytes: 1 << 24,
      concurrency: 2,
      logger,
    });
  });
  afterAll(async () => {
    await queue.close();
    await pool.end();
    rmSync(dir, { recursive: true, force: true });
  });

  it('counts the time spent once, however many patients are imported side by side', async () => {
    // A busy database: recording the time spent takes a while, as under a heavy import.
    const slow = Object.create(pool) as Pool;
    slow.query = ((...args: Parameters<Pool['query']>) => {
      const text = typeof args[0] === 'string' ? args[0] : '';
      const run = (): ReturnType<Pool['query']> =>
        (pool.query as (...a: unknown[]) => ReturnType<Pool['query']>)(...args);
      return text.includes('SET elapsed_ms') ? new Promise((resolve) => setTimeout(resolve, 200)).then(run) : run();
    }) as Pool['query'];
    service = new PortabilityImportService(slow, queue, sink, {
      importDir: dir,
      maxEntryBytes: 1 << 24,
      concurrency: 4,
      logger,
    });
    sink.delayMs = 300;
    writePortabilityArchive(join(dir, 'slow.zip'), { patients: 8, layout: 'zip', seed: 4 });
    const { id } = await service.startImport(ADMIN, { path: 'slow.zip', organization: ORG });
    const t = Date.now();
    await expect(service.runJob(id, ctx())).resolves.toMatchObject({ status: 'success' });
    const wall = (Date.now() - t) / 1000;
    const progress = await service.progress(id);
    expect(progress.documents.done).toBe(32);
    // Two rounds of 4 patients × 4 documents × 300 ms: the four workers finish their second patient
    // together, past the 2 s flush, and each used to add the same interval.
    expect(wall).toBeGreaterThan(2);
    expect(progress.elapsedSeconds).toBeGreaterThan(0.5);
    expect(progress.elapsedSeconds).toBeLessThanOrEqual(wall + 0.1);
  });

  it('files every readable document once, records the damaged one and the refused one with their reasons', async () => {
    const file = join(dir, 'three.zip');
    const archive = writePortabilityArchive(file, { patients: 3, layout: 'mixed', damaged: [1], notCda: [2] });
    const { id } = await service.startImport(ADMIN, { path: 'three.zip', organization: ORG });
    await expect(service.runJob(id, ctx())).resolves.toMatchObject({ status: 'success' });
    const expected = archive.patients.flatMap((p, i) =>
      p.documents.filter((_d, d) => !(i === 1 && d === 1) && !(i === 2 && d === 2)).map((d) => d.uniqueId),
    );
    expect([...sink.calls].sort()).toEqual([...expected].sort());
    const progress = await service.progress(id);
    expect(progress).toMatchObject({
      status: 'completed',
      patients: { total: 3, done: 3 },
      documents: { total: 12, done: 12, created: 10, rejected: 1, failed: 1, review: 0 },
      resources: 8 * 7 + 3 * 2 - 7,
    });
    expect(progress.problems).toEqual([
      {
        path: 'PATIENTS/P00002/IHE_XDM/SUBSET01/DOC0002.XML',
        status: 'failed',
        reason: expect.stringMatching(/CRC-32|unreadable/),
      },
      {
        path: 'PATIENTS/P00003/IHE_XDM.ZIP!/IHE_XDM/SUBSET01/DOC0003.XML',
        status: 'rejected',
        reason: 'not a CDA document',
      },
    ]);
    const skipped = await pool.query<{ path: string; reason: string }>(
      `SELECT path, reason FROM intake_import_entry WHERE import_id = $1 AND kind = 'transverse'`,
      [id],
    );
    expect(skipped.rows.map((r) => r.path).sort()).toEqual(['TRANSVERSE/AGENDA.CSV', 'TRANSVERSE/STRUCTURE.XML']);
    // Run again (a redelivered job): nothing left, nothing filed twice.
    await expect(service.runJob(id, ctx())).resolves.toMatchObject({ status: 'skipped' });
    expect(sink.calls).toHaveLength(expected.length);
  });

  it('resumes after a failure mid-import without filing a finished document again', async () => {
    const file = join(dir, 'crash.zip');
    const archive = writePortabilityArchive(file, { patients: 4, layout: 'zip', seed: 2 });
    const { id } = await service.startImport(ADMIN, { path: file, organization: ORG }, { trustedPath: true });
    sink.failAt = 6;
    await expect(service.runJob(id, ctx(1))).rejects.toThrow('connection terminated');
    const mid = await service.progress(id);
    expect(mid.status).toBe('running');
    expect(mid.documents.done).toBeGreaterThanOrEqual(5);
    expect(mid.documents.done).toBeLessThan(16);
    // The other workers may file the document they had in hand after the failing one: the crashed
    // document is the failing call's, not necessarily the last.
    const crashed = sink.failed as string;
    const firstRun = sink.calls.length;
    const before = new Set(sink.calls.filter((u) => u !== crashed));
    await expect(service.runJob(id, ctx(2))).resolves.toMatchObject({ status: 'success' });
    const all = archive.patients.flatMap((p) => p.documents.map((d) => d.uniqueId));
    // Each document filed once, except the one in hand when the failure hit, filed again.
    expect([...sink.calls].sort()).toEqual([...all, crashed].sort());
    const after = sink.calls.slice(firstRun);
    expect(after.filter((u) => before.has(u))).toEqual([]);
    expect(await service.progress(id)).toMatchObject({ status: 'completed', documents: { done: 16, created: 16 } });
  });

  it('stops between documents when asked and goes on in the next run', async () => {
    const file = join(dir, 'stop.zip');
    writePortabilityArchive(file, { patients: 3, layout: 'folder', seed: 3 });
    const { id } = await service.startImport(ADMIN, { path: 'stop.zip', organization: ORG });
    let n = 0;
    const original = sink.ingest.bind(sink);
    sink.ingest = async (p, input) => {
      n += 1;
      if (n === 3) {
        await service.stop();
      }
      return original(p, input);
    };
    await expect(service.runJob(id, ctx())).resolves.toMatchObject({
      status: 'skipped',
      detail: { state: 'interrupted' },
    });
    const first = sink.calls.length;
    expect(first).toBeLessThan(12);
    await service.start(queue);
    await expect(service.runJob(id, ctx())).resolves.toMatchObject({ status: 'success' });
    expect(new Set(sink.calls).size).toBe(12);
    expect(sink.calls).toHaveLength(12);
  });

  it('refuses a path outside the import folder, a missing file and a bad organization', async () => {
    await expect(service.startImport(ADMIN, { path: '../../etc/passwd', organization: ORG })).rejects.toMatchObject({
      category: 'forbidden',
    });
    await expect(service.startImport(ADMIN, { path: 'none.zip', organization: ORG })).rejects.toMatchObject({
      category: 'invalid',
    });
    await expect(service.startImport(ADMIN, { path: 'stop.zip', organization: 'msp-1' })).rejects.toMatchObject({
      category: 'invalid',
    });
  });

  it('fails an import whose file is not a zip, with a reason and no retry', async () => {
    const file = join(dir, 'notzip.zip');
    writeFileSync(file, 'PK but not really a zip');
    const { id } = await service.startImport(ADMIN, { path: 'notzip.zip', organization: ORG });
    await expect(service.runJob(id, ctx())).rejects.toThrow(/not a readable zip/);
    expect(await service.progress(id)).toMatchObject({
      status: 'failed',
      failure: 'the archive is not a readable zip',
    });
  });
});
