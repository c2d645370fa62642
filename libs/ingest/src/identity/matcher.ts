import type { Patient } from '@medplum/fhirtypes';
import { parseSearchRequest } from '@gw/fhir';
import type { SearchRequest } from '@gw/fhir';
import type { FhirRepository, Principal, Queryable, StoredResource } from '@gw/store';
import type { PatientTraits } from '../intake/extraction';
import { decideMatch, normaliseTrait, usableIns } from './matching.rules';
import type { Candidate, MatchResult } from './matching.rules';
import { tokenValue } from './patient-identity.rules';

const LIMITS = { defaultCount: 50, maxCount: 1000 };
/** Candidates read for the traits step: one organization rarely has more patients born one day. */
const TRAIT_CANDIDATES = 50;

/**
 * Finds who a document's patient is among one organization's Patients, by the one matching rule
 * ({@link decideMatch}, docs/identity.md). The lookups go through the store's search index (INS and
 * local identifiers as tokens, birth date, birth name and first given name), as the owner sees its
 * own records; Patients of other organizations are never candidates.
 */
export class PatientMatcher {
  constructor(private readonly repo: FhirRepository) {}

  /**
   * @param db - the caller's transaction (or the pool).
   * @param owner - `Organization/<id>` whose Patients are searched.
   */
  async match(db: Queryable, owner: string, traits: PatientTraits): Promise<MatchResult> {
    const as = ownerPrincipal(owner);
    const ins = usableIns(traits.ins);
    const locals = traits.identifiers.filter((i) => i.system && i.value);
    const queries: SearchRequest[] = [];
    if (ins) {
      queries.push(search([['identifier', `${ins.system}|${tokenValue(ins.value)}`]]));
    }
    if (locals.length > 0) {
      const values = locals.map((i) => `${tokenValue(i.system)}|${tokenValue(i.value)}`).join(',');
      queries.push(search([['identifier', values]]));
    }
    const found = queries.length > 0 ? await this.repo.matchAll(db, as, queries) : [];
    const byIns = ins ? found[0] : [];
    const byLocal = locals.length > 0 ? found[ins ? 1 : 0] : [];
    const first = decideMatch(traits, { byIns: owned(byIns, owner), byLocal: owned(byLocal, owner) });
    if (first.kind !== 'none') {
      return first;
    }
    return decideMatch(traits, { byIns: [], byLocal: [], byTraits: await this.traitCandidates(db, as, traits) });
  }

  /** Patients born the same day, and those of the same birth name and first given name (a mistyped date). */
  private async traitCandidates(db: Queryable, as: Principal, traits: PatientTraits): Promise<Candidate[]> {
    const searches: [string, string][][] = [];
    if (traits.birthDate && /^\d{4}-\d{2}-\d{2}$/.test(traits.birthDate)) {
      searches.push([['birthdate', `eq${traits.birthDate}`]]);
    }
    const family = longestWord(traits.birthFamily);
    const given = longestWord(traits.given?.[0]);
    if (family && given) {
      // The index keeps hyphens and apostrophes (D'ARC-LÉGER): the longest word of each, anywhere.
      searches.push([
        ['family:contains', family],
        ['given:contains', given],
      ]);
    }
    const out: Candidate[] = [];
    for (const pairs of searches) {
      const req = { ...search(pairs), count: TRAIT_CANDIDATES };
      const result = await this.repo.search(as, req, true, db);
      out.push(...owned(result.matches, as.organization));
    }
    return out;
  }
}

/** The longest word of a normalised name (`d arc leger` → `leger`). */
function longestWord(name: string | undefined): string | undefined {
  const words = (normaliseTrait(name) ?? '').split(' ').filter(Boolean);
  return words.sort((a, b) => b.length - a.length)[0];
}

function search(pairs: [string, string][]): SearchRequest {
  return parseSearchRequest('Patient', pairs, LIMITS);
}

/** Reads as the owner organization would (its own records), never as an operator. */
function ownerPrincipal(owner: string): Principal {
  return { clientId: 'gw-identity-matcher', organization: owner, admin: false, scopes: ['system/Patient.rs'] };
}

/** Only the owner's own Patients are candidates (a policy may let it read others' records). */
function owned(found: StoredResource[], owner: string): Candidate[] {
  return found
    .filter((s) => s.ownerOrg === owner && !s.deleted && s.json)
    .map((s) => ({ id: s.id, patient: JSON.parse(s.json as string) as Patient }));
}
