import type { Group } from '@medplum/fhirtypes';
import { dateRange, parseReference } from '@gw/fhir';

/**
 * The FHIR R4 Patient compartment (http://hl7.org/fhir/R4/compartmentdefinition-patient.html)
 * restricted to the served types: for each type, the reference search parameters that put a
 * resource in a patient's compartment. Task is not in the R4 definition; it is added on `Task.for`
 * (`subject`, `patient`) because follow-up Tasks are part of a patient's primary-care record.
 */
export const PATIENT_COMPARTMENT: Readonly<Record<string, readonly string[]>> = {
  AuditEvent: ['patient'],
  CareTeam: ['patient', 'participant'],
  Communication: ['subject', 'sender', 'recipient'],
  CommunicationRequest: ['subject', 'sender', 'recipient', 'requester'],
  Condition: ['patient', 'asserter'],
  Consent: ['patient'],
  DocumentReference: ['subject', 'author'],
  Encounter: ['patient'],
  Group: ['member'],
  Immunization: ['patient'],
  List: ['subject', 'source'],
  MeasureReport: ['patient'],
  MedicationRequest: ['subject'],
  Observation: ['subject', 'performer'],
  Procedure: ['patient', 'performer'],
  Provenance: ['patient'],
  Task: ['subject', 'patient'],
};

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
    if ((start !== undefined && Date.parse(start) > t) || (end !== undefined && Date.parse(end) < t)) {
      continue;
    }
    ids.add(ref.id);
  }
  return [...ids];
}
