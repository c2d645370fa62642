import type { Patient } from '@medplum/fhirtypes';
import { INSEE_CODE_EXTENSION, insKindOf, insProblem } from '@gw/fhir';
import type { PatientTraits } from '../intake/extraction';

/**
 * Who an incoming identity is among one organization's Patients (docs/identity.md, "The rule").
 * `rule` of a match: `ins` (qualified INS, key checked), `local-identifier` (the sender's own
 * patient number), `traits` (the five INS traits, normalised, all equal).
 */
export type MatchResult =
  | { kind: 'matched'; patientId: string; rule: MatchRule }
  | { kind: 'none' }
  | { kind: 'review'; reason: ReviewReason; candidates: string[] };

export type MatchRule = 'ins' | 'local-identifier' | 'traits';

/** Why a human must decide (never patient data: these codes are logged and listed). */
export type ReviewReason =
  'ins-several' | 'ins-local-conflict' | 'ins-conflict' | 'local-several' | 'traits-several' | 'traits-partial';

/** A stored Patient the lookups found: its id and content. */
export interface Candidate {
  id: string;
  patient: Patient;
}

/**
 * What the lookups found among the owner's Patients: by the incoming INS, by the sender's local
 * identifiers, and (when the caller matches on traits at all) by birth date or names. `byTraits`
 * undefined: the traits step is not part of this caller's rule (the HL7 feed: a new IPP of a
 * PAM-FR hospital is a new patient of that hospital).
 */
export interface Found {
  byIns: Candidate[];
  byLocal: Candidate[];
  byTraits?: Candidate[];
}

const BIRTH_PLACE = 'http://hl7.org/fhir/StructureDefinition/patient-birthPlace';

/**
 * A trait as compared: no accents, lower case, hyphens, apostrophes and repeated blanks as one
 * space (RNIV: "JEAN-FRANÇOIS" and "Jean François", "D'ARC" and "D ARC" are the same trait).
 */
export function normaliseTrait(s: string | undefined): string | undefined {
  if (s === undefined) {
    return undefined;
  }
  const n = s
    .normalize('NFD')
    .replace(/\p{Diacritic}/gu, '')
    .toLowerCase()
    .replace(/œ/g, 'oe')
    .replace(/æ/g, 'ae')
    .replace(/[-'’‘`´_.,]/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return n === '' ? undefined : n;
}

/** The incoming INS when it can be trusted to find a patient: an INS system and a valid format and key. */
export function usableIns(ins: PatientTraits['ins']): { system: string; value: string } | undefined {
  if (!ins) {
    return undefined;
  }
  const system = ins.oid.startsWith('urn:oid:') ? ins.oid : `urn:oid:${ins.oid}`;
  const kind = insKindOf(system);
  return kind && insProblem(kind, ins.value) === undefined ? { system, value: ins.value } : undefined;
}

/** The current valid INS of a stored Patient (any identity status), by kind. */
function storedIns(p: Patient): Map<string, string> {
  const out = new Map<string, string>();
  for (const i of p.identifier ?? []) {
    const kind = insKindOf(i.system);
    if (kind && i.use !== 'old' && typeof i.value === 'string' && !insProblem(kind, i.value) && !out.has(kind)) {
      out.set(kind, i.value);
    }
  }
  return out;
}

/**
 * An INS conflict: the record holds a valid INS of the same kind (NIR or NIA) as the incoming one,
 * with another value. Two NIRs are two persons: never merged, a human decides. A NIA next to a NIR
 * is no conflict (the NIA is a temporary number awaiting the NIR).
 */
export function insConflict(incoming: PatientTraits['ins'], record: Patient): boolean {
  const ins = usableIns(incoming);
  const kind = ins ? insKindOf(ins.system) : undefined;
  const stored = kind ? storedIns(record).get(kind) : undefined;
  return stored !== undefined && stored !== ins?.value;
}

/** The INS traits of a stored Patient: birth name (`official`), first birth given name, sex, birth date, birth place. */
export function traitsOfPatient(p: Patient): PatientTraits {
  const official = (p.name ?? []).find((n) => n.use === 'official') ?? (p.name ?? [])[0];
  const place = (p.extension ?? []).find((e) => e.url === BIRTH_PLACE)?.valueAddress;
  const insee = (place?.extension ?? []).find((e) => e.url === INSEE_CODE_EXTENSION)?.valueCoding?.code;
  return {
    identifiers: [],
    birthFamily: official?.family,
    given: official?.given,
    sex: p.gender,
    birthDate: p.birthDate,
    birthPlace: insee,
  };
}

/**
 * How a candidate's traits compare with the incoming ones. `exact`: birth name, first given name,
 * birth date and sex present on both sides and equal once normalised, and the birth place equal
 * when both know it. `partial`: not exact, but two of birth name, first given name and birth
 * date are equal (a typo, a twin, a used first name). `different` otherwise.
 */
export function compareTraits(incoming: PatientTraits, record: PatientTraits): 'exact' | 'partial' | 'different' {
  const same = (a: string | undefined, b: string | undefined): boolean =>
    normaliseTrait(a) !== undefined && normaliseTrait(a) === normaliseTrait(b);
  const family = same(incoming.birthFamily, record.birthFamily);
  const given = same(incoming.given?.[0], record.given?.[0]);
  const date = incoming.birthDate !== undefined && incoming.birthDate === record.birthDate;
  const sex = incoming.sex !== undefined && incoming.sex !== 'unknown' && incoming.sex === record.sex;
  const placeOk = !incoming.birthPlace || !record.birthPlace || incoming.birthPlace === record.birthPlace;
  if (family && given && date && sex && placeOk) {
    return 'exact';
  }
  return [family, given, date].filter(Boolean).length >= 2 ? 'partial' : 'different';
}

const ids = (cs: Candidate[]): string[] => [...new Set(cs.map((c) => c.id))];

/**
 * THE matching rule, for every channel (documents, lab files, the HL7 feed):
 * 1. a usable INS (valid key): one Patient → matched, unless the sender's local identifier names
 *    another one (review); several → review;
 * 2. the sender's local identifier: one Patient → matched, unless its INS conflicts (review);
 *    several → review;
 * 3. the INS traits (when the caller matches on traits): one exact → matched (unless its INS
 *    conflicts); several exact → review; none exact but a partial → review;
 * otherwise none (the caller may create the patient, or queue the document when it must not).
 */
export function decideMatch(traits: PatientTraits, found: Found): MatchResult {
  const byIns = ids(found.byIns);
  const byLocal = ids(found.byLocal);
  if (byIns.length > 1) {
    return { kind: 'review', reason: 'ins-several', candidates: byIns };
  }
  if (byIns.length === 1) {
    const other = byLocal.filter((id) => id !== byIns[0]);
    return other.length > 0
      ? { kind: 'review', reason: 'ins-local-conflict', candidates: [...byIns, ...other] }
      : { kind: 'matched', patientId: byIns[0], rule: 'ins' };
  }
  if (byLocal.length > 1) {
    return { kind: 'review', reason: 'local-several', candidates: byLocal };
  }
  if (byLocal.length === 1) {
    const record = found.byLocal.find((c) => c.id === byLocal[0]) as Candidate;
    return insConflict(traits.ins, record.patient)
      ? { kind: 'review', reason: 'ins-conflict', candidates: byLocal }
      : { kind: 'matched', patientId: byLocal[0], rule: 'local-identifier' };
  }
  return found.byTraits ? decideByTraits(traits, found.byTraits) : { kind: 'none' };
}

function decideByTraits(traits: PatientTraits, candidates: Candidate[]): MatchResult {
  const unique = [...new Map(candidates.map((c) => [c.id, c])).values()];
  const graded = unique.map((c) => ({ c, grade: compareTraits(traits, traitsOfPatient(c.patient)) }));
  const exact = graded.filter((g) => g.grade === 'exact').map((g) => g.c);
  const partial = graded.filter((g) => g.grade === 'partial').map((g) => g.c);
  if (exact.length > 1) {
    return { kind: 'review', reason: 'traits-several', candidates: ids(exact) };
  }
  if (exact.length === 1) {
    return insConflict(traits.ins, exact[0].patient)
      ? { kind: 'review', reason: 'ins-conflict', candidates: ids(exact) }
      : { kind: 'matched', patientId: exact[0].id, rule: 'traits' };
  }
  return partial.length > 0 ? { kind: 'review', reason: 'traits-partial', candidates: ids(partial) } : { kind: 'none' };
}
