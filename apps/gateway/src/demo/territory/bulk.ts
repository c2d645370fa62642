import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { FhirRepository } from '@gw/store';
import { ShapeSampler, writePersons } from './bulk-chunk';
import type { ChunkResult } from './bulk-chunk';
import type { TerritoryGenerator, TerritoryOptions } from './generator';
import { loaderContext, writeTerritoryBatch } from './loader';
import type { LoadProgress, LoadSummary } from './loader';

/** Each worker thread's young generation (48 MB by default on this machine; 256 MB was no faster). */
const YOUNG_GENERATION_MB = 96;

export interface BulkLoaderOptions {
  /** The database the worker threads connect to (the repository's own). */
  databaseUrl: string;
  /** Directory of the gateway's StructureDefinitions (GW_PROFILES_DIR), for the sampled validation. */
  profilesDir: string;
  /** GW_SHARING_ENCOUNTER_MONTHS: the sharing projection of the visits depends on it. */
  encounterMonths: number;
  /**
   * Worker threads generating, preparing and writing persons (default: the machine's cores);
   * 0 runs everything on this thread (tests: the worker entry point is compiled code).
   */
  workers?: number;
  /** Persons handed to a worker at a time (default 2 000). */
  chunkPersons?: number;
  /** Resources per transaction (default 2 000). */
  batchSize?: number;
  clientId?: string;
  onProgress?: (p: LoadProgress) => void;
}

/** What the worker thread receives at start (workerData). */
export interface BulkWorkerData {
  databaseUrl: string;
  profilesDir: string;
  encounterMonths: number;
  clientId: string;
  territory: TerritoryOptions;
}

export type ToWorker = { kind: 'chunk'; from: number; to: number; batchSize: number } | { kind: 'stop' };
export type ToMain =
  { kind: 'ready' } | { kind: 'done'; from: number; counts: ChunkResult } | { kind: 'failed'; message: string };

/**
 * The bulk load of a synthetic territory (`demo:territory --bulk`): the same resources, stored
 * the same way as {@link TerritoryLoader} (the same batch preparation and write: store stamps,
 * search rows, sharing rows, the projection and discharge triggers, the historic-discharge marks),
 * with two differences that change nothing stored: persons are generated, prepared and written by
 * worker threads in parallel, each over its own connection, and only a sample of each resource
 * shape gets the full validation (see ShapeSampler), which is most of the write path's CPU.
 * Structures first (fully validated), the CPTS last (its presence means a complete load), as the
 * write path does; an interrupted load is resumed the same way (stored ids skipped).
 */
export class BulkTerritoryLoader {
  constructor(
    private readonly repo: FhirRepository,
    private readonly options: BulkLoaderOptions,
  ) {}

  async load(generator: TerritoryGenerator): Promise<LoadSummary> {
    const started = Date.now();
    const ctx = loaderContext(this.options.clientId);
    const summary: LoadSummary = {
      status: 'loaded',
      resources: 0,
      perSecond: 0,
      people: 0,
      elapsedMs: 0,
      cpts: `Organization/${generator.cpts.id}`,
      byType: {},
      historicDischarges: 0,
      resumed: false,
    };
    if ((await this.repo.existing([generator.cpts])).length > 0) {
      return { ...summary, status: 'already-loaded', people: generator.options.patients };
    }
    const structures = generator.structures();
    const batchSize = this.options.batchSize ?? 2000;
    for (let i = 0; i < structures.length; i += batchSize) {
      await writeTerritoryBatch(this.repo, ctx, structures.slice(i, i + batchSize), summary, () => true);
    }
    const onChunk = (c: ChunkResult): void => {
      summary.resources += c.resources;
      summary.historicDischarges += c.historicDischarges;
      summary.resumed ||= c.resumed;
      summary.people += c.people;
      for (const [t, n] of Object.entries(c.byType)) {
        summary.byType[t] = (summary.byType[t] ?? 0) + n;
      }
      this.options.onProgress?.({
        people: summary.people,
        peopleTotal: generator.options.patients,
        resources: summary.resources,
        elapsedMs: Date.now() - started,
      });
    };
    const chunks = this.chunks(generator.options.patients, batchSize);
    const workers = this.options.workers ?? availableParallelism();
    if (workers === 0) {
      const sampler = new ShapeSampler();
      for (const c of chunks) {
        onChunk(await writePersons(this.repo, ctx, generator, sampler, c));
      }
    } else {
      await this.inWorkers(generator, ctx.principal.clientId, chunks, Math.min(workers, chunks.length), onChunk);
    }
    await writeTerritoryBatch(this.repo, ctx, [generator.cpts], summary, () => true);
    summary.elapsedMs = Date.now() - started;
    summary.perSecond = summary.resources / Math.max(0.001, summary.elapsedMs / 1000);
    return summary;
  }

  private chunks(total: number, batchSize: number): Extract<ToWorker, { kind: 'chunk' }>[] {
    const size = this.options.chunkPersons ?? 2000;
    const out: Extract<ToWorker, { kind: 'chunk' }>[] = [];
    for (let from = 0; from < total; from += size) {
      out.push({ kind: 'chunk', from, to: Math.min(total, from + size), batchSize });
    }
    return out;
  }

  /** Hands the chunks to `count` worker threads, the next one to whichever finishes first. */
  private async inWorkers(
    generator: TerritoryGenerator,
    clientId: string,
    chunks: Extract<ToWorker, { kind: 'chunk' }>[],
    count: number,
    onChunk: (c: ChunkResult) => void,
  ): Promise<void> {
    const data: BulkWorkerData = {
      databaseUrl: this.options.databaseUrl,
      profilesDir: this.options.profilesDir,
      encounterMonths: this.options.encounterMonths,
      clientId,
      territory: generator.options,
    };
    let next = 0;
    const threads: Worker[] = [];
    try {
      await new Promise<void>((resolve, reject) => {
        let busy = 0;
        let failed = false;
        const fail = (err: Error): void => {
          failed = true;
          reject(err);
        };
        const feed = (w: Worker): void => {
          if (failed) {
            return;
          }
          const chunk = chunks[next++];
          if (chunk) {
            busy++;
            w.postMessage(chunk);
          } else if (busy === 0) {
            resolve();
          }
        };
        for (let i = 0; i < count; i++) {
          // A larger young generation: a batch's short-lived objects (resources, search rows, SQL
          // arrays) die young instead of being promoted and swept. Measured at 10 000 patients:
          // 42 → 29 s of the threads' CPU (the default's scavenges were a fifth of it).
          const w = new Worker(join(__dirname, 'bulk-worker.js'), {
            workerData: data,
            resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB },
          });
          threads.push(w);
          w.on('error', fail);
          w.on('exit', (code) => {
            if (code !== 0) {
              fail(new Error(`bulk-load worker exited with code ${code}`));
            }
          });
          w.on('message', (m: ToMain) => {
            if (m.kind === 'failed') {
              fail(new Error(`bulk-load worker: ${m.message}`));
              return;
            }
            if (m.kind === 'done') {
              busy--;
              onChunk(m.counts);
            }
            feed(w);
          });
        }
      });
    } finally {
      // Each worker ends its pool, then its thread: a failure elsewhere leaves no open connection.
      await Promise.all(
        threads.map(
          (w) =>
            new Promise<void>((resolve) => {
              w.once('exit', () => resolve());
              w.postMessage({ kind: 'stop' } satisfies ToWorker);
            }),
        ),
      );
    }
  }
}
