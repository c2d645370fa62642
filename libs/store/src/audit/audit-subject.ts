import { patientReferences } from '../repository/patient-compartment';

/** What the trail needs of a resource a request returned or touched. */
export interface TouchedResource {
  resourceType: string;
  id: string;
  /** The one Patient the resource is about, when the store knows it (null: none or several). */
  patientId?: string | null;
  json?: string | null;
}

/**
 * The ids of the Patients a resource is about: the Patient itself, the store's `patientId` when it
 * has one, otherwise every Patient its JSON names (a Group names several; each is in the trail).
 */
export function patientsOf(r: TouchedResource): string[] {
  if (r.resourceType === 'Patient') {
    return [r.id];
  }
  if (typeof r.patientId === 'string') {
    return [r.patientId];
  }
  if (!r.json) {
    return [];
  }
  try {
    return patientsOfResource(JSON.parse(r.json) as object);
  } catch {
    return [];
  }
}

/** The Patients a resource (parsed) is about: itself when a Patient, else every Patient it names. */
export function patientsOfResource(resource: { resourceType?: string; id?: string }): string[] {
  if (resource.resourceType === 'Patient') {
    return resource.id ? [resource.id] : [];
  }
  return [...new Set(patientReferences(resource).map((p) => p.id))];
}

/** The distinct patients of several resources, in first-seen order. */
export function patientsOfAll(resources: readonly TouchedResource[]): string[] {
  return [...new Set(resources.flatMap(patientsOf))];
}

/**
 * Search parameters whose values the trail keeps: technical ids, references (`Patient/12`), codes,
 * statuses, dates of care and paging. Every other parameter (names, identifiers such as the INS,
 * birth dates, addresses, telecoms, free text…) keeps its name with its value masked, so that the
 * trail never holds what identifies a patient. A chain or modifier is judged on each of its names.
 */
const KEPT_PARAMS = new Set([
  '_id',
  '_lastUpdated',
  '_count',
  '_offset',
  '_sort',
  '_summary',
  '_elements',
  '_include',
  '_revinclude',
  '_total',
  '_tag',
  '_profile',
  '_security',
  '_type',
  '_since',
  '_at',
  '_outputFormat',
  'status',
  'category',
  'code',
  'type',
  'class',
  'intent',
  'priority',
  'date',
  'period',
  'authored',
  'authoredon',
  'issued',
  'onset-date',
  'patient',
  'subject',
  'encounter',
  'episode-of-care',
  'performer',
  'author',
  'organization',
  'practitioner',
  'general-practitioner',
  'participant',
  'actor',
  'requester',
  'owner',
  'based-on',
  'part-of',
  'focus',
  'measure',
  'reportType',
  'periodStart',
  'periodEnd',
]);

/** Modifiers that turn a kept parameter into a search on identifying text or identifiers. */
const MASKING_MODIFIERS = new Set(['identifier', 'text', 'contains', 'exact']);

/** Masked value in the stored query. */
export const MASKED = '*';

function keepsValue(key: string): boolean {
  if (!/^[A-Za-z_][A-Za-z0-9_\-:.]*$/.test(key)) {
    return false;
  }
  // _has:Observation:patient:code → the parameter searched is the last name.
  const names = key.startsWith('_has:') ? [key.split(':').pop() as string] : key.split('.');
  return names.every((segment) => {
    const [name, ...modifiers] = segment.split(':');
    // A chain segment's modifier may be a type (subject:Patient.…), which is fine.
    return KEPT_PARAMS.has(name) && !modifiers.some((m) => MASKING_MODIFIERS.has(m));
  });
}

/**
 * The query of a search as the trail keeps it: every parameter in order, the values of those that
 * cannot identify a patient as given, the others masked (`family=*`). Names that are not plausible
 * parameter names are masked too (a client could put data in a key).
 */
export function auditQuery(pairs: readonly [string, string][]): string | undefined {
  if (pairs.length === 0) {
    return undefined;
  }
  return pairs
    .map(([k, v]) => {
      const kept = keepsValue(k);
      const key = /^[A-Za-z_][A-Za-z0-9_\-:.]*$/.test(k) ? k : MASKED;
      return `${key}=${kept ? encodeURIComponent(v) : MASKED}`;
    })
    .join('&');
}
