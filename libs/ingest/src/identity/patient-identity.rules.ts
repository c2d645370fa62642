import type { Identifier, Patient } from '@medplum/fhirtypes';
import { INS_OIDS, insKindOf, insProblem } from '@gw/fhir';
import type { StoredResource } from '@gw/store';
import type { PatientData } from '../hl7v2/pam-fr.reader';

/** A conditional lookup: type, search pairs, and the HL7 field it comes from (for errors). */
export type Lookup = [string, [string, string][], string];

const INS_SYSTEMS = INS_OIDS.map((o) => `urn:oid:${o}`);

/** Escapes a token search value (`,` separates alternatives, `$` composites, `\` escapes). */
export function tokenValue(v: string): string {
  return v.replace(/([\\,$|])/g, '\\$1');
}

/** An INS identifier whose format and key check out (whatever its use). */
export function isValidIns(i: Identifier): boolean {
  const kind = insKindOf(i.system);
  return kind !== undefined && typeof i.value === 'string' && insProblem(kind, i.value) === undefined;
}

/**
 * The INS a message may find a patient by: only a qualified identity's (PID-32 QUAL). An INS that
 * failed its checks is never here (the reader moved it to `insRejected`), so it never finds or
 * merges a patient: matching is then by IPP only.
 */
export function matchingIns(p: PatientData): NonNullable<PatientData['ins']> | undefined {
  return p.identityStatus === 'QUAL' && p.ins ? p.ins : undefined;
}

/** The patient lookups of one message, to lock and run before anything is read: by IPP, then by qualified INS. */
export function patientLookups(p: PatientData, ippSystem: string): { ipp: Lookup; ins?: Lookup } {
  const ins = matchingIns(p);
  return {
    ipp: ['Patient', [['identifier', `${ippSystem}|${tokenValue(p.ipp?.value ?? '')}`]], 'PID-3 IPP'],
    ins: ins ? ['Patient', [['identifier', `urn:oid:${ins.oid}|${ins.value}`]], 'PID-3 INS'] : undefined,
  };
}

/**
 * The patient a message is about: the one known by the source's IPP (a second Patient is never
 * created for an IPP), else the one known by the qualified INS among the hospital's patients, else
 * none (a new one). `one` gives the single match of a lookup (and refuses several); the INS lookup
 * is only consulted when the IPP finds nobody.
 */
export function pickPatient(
  lookups: { ipp: Lookup; ins?: Lookup },
  one: (l: Lookup) => StoredResource | undefined,
): StoredResource | undefined {
  return one(lookups.ipp) ?? (lookups.ins ? one(lookups.ins) : undefined);
}

/**
 * Identity reliability when PID is applied to a stored Patient (docs/hl7v2.md, "An INS that fails
 * its checks"): the identifiers kept from the stored Patient (the IPP of this source is replaced,
 * and every INS when the message carries a valid one; an invalid INS stored earlier is dropped),
 * and whether its identity status stays. A rejected INS keeps a valid stored INS and its status,
 * unless PID-32 itself says provisional: a mistyped INS neither erases nor downgrades a qualified
 * identity, an explicit downgrade still applies.
 */
export function keptIdentity(
  existing: Patient | undefined,
  p: PatientData,
  ippSystem: string,
): { identifiers: Identifier[]; keepStatus: boolean } {
  const replaced = new Set([ippSystem, ...(p.ins ? INS_SYSTEMS : [])]);
  // An invalid INS stored before the rule existed cannot be written back (every Patient write checks it).
  const identifiers = (existing?.identifier ?? []).filter(
    (i) => !(i.system && replaced.has(i.system) && i.use !== 'old') && !(insKindOf(i.system) && !isValidIns(i)),
  );
  const keepStatus =
    p.insRejected !== undefined &&
    p.insRejected.declaredStatus !== 'PROV' &&
    identifiers.some((i) => i.use !== 'old' && isValidIns(i));
  return { identifiers, keepStatus };
}
