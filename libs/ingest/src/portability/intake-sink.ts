import type { Bundle, OperationOutcome } from '@medplum/fhirtypes';
import type { Principal } from '@gw/store';
import type { Extraction } from '../intake/extraction';

/**
 * What the intake pipeline answers for one document (shared design: IntakePipeline in
 * libs/ingest/src/intake/pipeline.ts).
 */
export interface IntakeResult {
  status: 'created' | 'review' | 'rejected';
  /** What was created or updated. */
  bundle?: Bundle;
  outcome: OperationOutcome;
  /** Identity review ids when the document waits for a decision. */
  reviews?: string[];
}

/**
 * The part of IntakePipeline the portability import uses: one CDA document as bytes, or
 * extractions made here (a PDF/A described by its XDM metadata).
 */
export interface IntakeSink {
  ingest(p: Principal, input: { contentType: string; body: Buffer; source?: string }): Promise<IntakeResult>;
  ingestExtractions(p: Principal, extractions: Extraction[], source: string): Promise<IntakeResult>;
}
