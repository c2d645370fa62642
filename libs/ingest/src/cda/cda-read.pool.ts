import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { OperationOutcomeIssue } from '@medplum/fhirtypes';
import Piscina from 'piscina';
import { GatewayError } from '@gw/platform';
import type { ErrorCategory } from '@gw/platform';
import type { DescribedExtraction, Extraction } from '../intake/extraction';
import { readCda } from './cda.reader';

/** Reads one CDA document's bytes into its extraction; rejects with a GatewayError naming the element. */
export type CdaReader = (body: Buffer) => Promise<Extraction>;

/** What a read thread answers: the extraction without the bytes it was sent, or the refusal. */
export type CdaReadOutcome =
  { extraction: DescribedExtraction } | { refused: { category: ErrorCategory; issues: OperationOutcomeIssue[] } };

/** The compiled task file, beside this one in dist/ (absent when running from TypeScript sources). */
const WORKER_FILE = join(__dirname, 'cda-read.worker.js');

/** A worker thread exits after this long without a document: an idle gateway keeps none. */
const IDLE_MS = 30_000;

/**
 * Parses and extracts CDA documents on worker threads, so that the thread that matches identities
 * and writes to the database is not held by XML parsing (a CI-SIS volet takes a few milliseconds;
 * a portability import reads tens of thousands). `threads` 0, or no compiled task file (tests from
 * sources), reads on the calling thread with the same code: the answer is the same either way.
 */
export class CdaReadPool {
  private readonly pool?: Piscina;

  constructor(threads: number, file = WORKER_FILE) {
    if (threads > 0 && existsSync(file)) {
      this.pool = new Piscina({ filename: file, minThreads: 0, maxThreads: threads, idleTimeout: IDLE_MS });
    }
  }

  /** Worker threads the pool may start (0: documents are read on the calling thread). */
  get threads(): number {
    return this.pool?.options.maxThreads ?? 0;
  }

  /** Documents read on worker threads so far. */
  get completed(): number {
    return this.pool?.completed ?? 0;
  }

  readonly read: CdaReader = async (body) => {
    if (!this.pool) {
      return readCda(body);
    }
    // The bytes are copied to the thread (the caller keeps its Buffer) and not sent back: the
    // extraction's content is the very Buffer the caller gave.
    const outcome = (await this.pool.run(body)) as CdaReadOutcome;
    if ('refused' in outcome) {
      throw new GatewayError(outcome.refused.category, outcome.refused.issues);
    }
    return { ...outcome.extraction, document: { ...outcome.extraction.document, content: body } };
  };

  /** Ends the threads; documents still being read are refused. */
  async close(): Promise<void> {
    await this.pool?.destroy();
  }
}
