import type { Bundle, OperationOutcome } from '@medplum/fhirtypes';
import type { Principal } from '@gw/store';
import type { Extraction } from './extraction';
import type { IntakeInput } from './intake-input';

/**
 * What an intake channel gets back. `created`: the documents and facts are written (bundle);
 * `review`: the patient could not be matched safely, the document waits in the identity review
 * queue (reviews: the queue ids); `rejected`: nothing written (outcome says why).
 */
export interface IntakeResult {
  status: 'created' | 'review' | 'rejected';
  bundle?: Bundle;
  outcome: OperationOutcome;
  reviews?: string[];
}

/**
 * The one intake pipeline behind POST /ingest/documents, the MHD recipient, the mailbox, HPRIM and
 * portability imports. Contract (design): see docs/intake.md.
 */
export interface IntakePipelineApi {
  /** Reads the body (CDA, IHE XDM zip, HPRIM) and writes what it holds for the principal's organization. */
  ingest(p: Principal, input: IntakeInput): Promise<IntakeResult>;
  /** Writes extractions a reader already made (HPRIM once mapped, portability entries). */
  ingestExtractions(p: Principal, extractions: Extraction[], source: string): Promise<IntakeResult>;
}
