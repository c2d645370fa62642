import { matchesSearchRequest, parseSearchRequest as parseMedplumSearch } from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';
import { GatewayError } from '@gw/platform';
import { isServedResourceType } from '@gw/fhir';
import type { SearchRequest } from '@gw/fhir';
import { forEachReference } from './reference-walk';

/** A `reference` written as a search (`Patient?identifier=…`), and where it sits in the resource. */
export interface ConditionalReference {
  /** The Reference element holding it (its `reference` is rewritten in place). */
  holder: Record<string, unknown>;
  /** FHIRPath of the Reference element: `Observation.subject`, `Observation.performer[1]`. */
  expression: string;
  type: string;
  query: string;
}

// R4 http.html#trules: a reference of the form Type?query is resolved by the server at write time.
const CONDITIONAL = /^([A-Z][A-Za-z]+)\?(.+)$/;

/** Every conditional reference of a resource, contained resources included. */
export function findConditionalReferences(resource: Resource): ConditionalReference[] {
  const out: ConditionalReference[] = [];
  forEachReference(resource, (reference, holder, expression) => {
    const m = CONDITIONAL.exec(reference);
    if (m) {
      out.push({ holder, expression, type: m[1] as string, query: m[2] as string });
    }
  });
  return out;
}

/** A resource a transaction is about to write, with the id it will have. */
export interface PendingWrite {
  resource: Resource;
  id: string;
}

/**
 * Does a resource written earlier in the same transaction match a conditional reference? Evaluated
 * in memory with @medplum/core's search matching (R4 search semantics over the R4 SearchParameters).
 */
export function pendingMatches(ref: ConditionalReference, pending: PendingWrite[]): string[] {
  const candidates = pending.filter((w) => w.resource.resourceType === ref.type);
  if (candidates.length === 0) {
    return [];
  }
  const search = parseMedplumSearch(`${ref.type}?${ref.query}`);
  return candidates
    .filter((w) => matchesSearchRequest({ ...w.resource, id: w.id }, search))
    .map((w) => `${ref.type}/${w.id}`);
}

/**
 * Rewrites each conditional reference to the one resource it matches. `matches[i]` are the
 * `Type/id`s matching `refs[i]`; none or several is an error naming the element (400 / 412),
 * and nothing is rewritten unless every reference resolves.
 */
export function applyResolution(refs: ConditionalReference[], matches: string[][]): void {
  const issues = refs.flatMap((ref, i) => {
    const found = [...new Set(matches[i])];
    if (found.length === 1) {
      return [];
    }
    return [{ ref, found }];
  });
  if (issues.length > 0) {
    const several = issues.filter((x) => x.found.length > 1);
    throw new GatewayError(
      several.length > 0 ? 'precondition-failed' : 'invalid',
      issues.map(({ ref, found }) => ({
        text:
          found.length === 0
            ? `Conditional reference ${ref.type}?${ref.query} matches no resource`
            : `Conditional reference ${ref.type}?${ref.query} matches ${found.length} resources: it must identify one`,
        expression: ref.expression,
        code: found.length === 0 ? ('not-found' as const) : ('multiple-matches' as const),
      })),
    );
  }
  refs.forEach((ref, i) => {
    ref.holder.reference = matches[i][0];
  });
}

/** The search of a conditional reference, or a 400 naming the element when it cannot be one. */
export function conditionalQuery(
  ref: ConditionalReference,
  parse: (type: string, pairs: [string, string][]) => SearchRequest,
): SearchRequest {
  if (!isServedResourceType(ref.type)) {
    throw new GatewayError('invalid', {
      text: `Conditional reference to ${ref.type}: not a resource type served here`,
      expression: ref.expression,
    });
  }
  try {
    const query = parse(ref.type, [...new URLSearchParams(ref.query)]);
    if (query.clauses.length === 0) {
      throw new GatewayError('invalid', { text: 'no search parameter' });
    }
    return query;
  } catch (err) {
    if (err instanceof GatewayError) {
      const why = err.issues.map((i) => i.details?.text).join('; ');
      throw new GatewayError('invalid', {
        text: `Conditional reference ${ref.type}?${ref.query} is not a usable search: ${why}`,
        expression: ref.expression,
      });
    }
    throw err;
  }
}
