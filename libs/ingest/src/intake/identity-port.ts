import type { Queryable } from '@gw/store';
import type { PatientTraits } from './extraction';

/**
 * The identity helper's interfaces (design: libs/ingest/src/identity/matcher.ts, review-queue.ts),
 * restated here so that the pipeline compiles before branch `identity` lands.
 * TEMPORARY: delete this file at merge and import from '../identity/…' instead.
 */
export type MatchResult =
  | { kind: 'matched'; patientId: string; rule: string }
  | { kind: 'none' }
  | { kind: 'review'; reason: string; candidates: string[] };

export interface PatientMatcherPort {
  match(db: Queryable, owner: string, traits: PatientTraits): Promise<MatchResult>;
}

export interface IdentityReviewPort {
  open(
    db: Queryable,
    input: { owner: string; source: string; traits: PatientTraits; reason: string; candidates: string[] },
  ): Promise<string>;
}
