import type { Identifier, Patient } from '@medplum/fhirtypes';
import { INS_OIDS, insKindOf, insProblem } from '@gw/fhir';
import type { StoredResource } from '@gw/store';
import type { PatientData } from '../hl7v2/pam-fr.reader';
import { Hl7ContentError } from '../hl7v2/hl7-text';
import { decideMatch } from './matching.rules';
import type { Candidate, ReviewReason } from './matching.rules';

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
 * The patient a message is about, by the one matching rule ({@link decideMatch}) without its traits
 * step (a new IPP of a PAM-FR hospital is a new patient of that hospital): the qualified INS and the
 * source's IPP must agree on one Patient, an IPP whose Patient holds another valid INS of the same
 * kind is a conflict; none found: a new one. `all` gives every match of a lookup. A case the rule
 * sends to review is refused (207, nothing written): the hospital merges (A40) or corrects first.
 */
export function pickPatient(
  p: PatientData,
  lookups: { ipp: Lookup; ins?: Lookup },
  all: (l: Lookup) => StoredResource[],
): StoredResource | undefined {
  const byIpp = all(lookups.ipp);
  const byIns = lookups.ins ? all(lookups.ins) : [];
  const candidate = (s: StoredResource): Candidate => ({ id: s.id, patient: JSON.parse(s.json ?? '{}') as Patient });
  const ins = matchingIns(p);
  const decision = decideMatch(
    { ins: ins ? { value: ins.value, oid: ins.oid } : undefined, identifiers: [] },
    { byIns: byIns.map(candidate), byLocal: byIpp.map(candidate) },
  );
  if (decision.kind === 'review') {
    throw new Hl7ContentError(
      { segment: 'PID', field: 3 },
      '207',
      `${REVIEW_TEXT[decision.reason]}; nothing was written (merge with A40 or correct the identity first)`,
    );
  }
  return decision.kind === 'matched' ? [...byIpp, ...byIns].find((s) => s.id === decision.patientId) : undefined;
}

/** What the ERR segment says of each review case (no patient data). */
const REVIEW_TEXT: Record<ReviewReason, string> = {
  'ins-several': 'PID-3 INS matches several Patient resources of this hospital',
  'ins-local-conflict': 'PID-3 IPP and the qualified INS designate two different Patient resources of this hospital',
  'ins-conflict': 'the Patient of this IPP holds another valid INS than the qualified INS of PID-3',
  'local-several': 'PID-3 IPP matches several Patient resources of this hospital',
  'traits-several': 'the identity traits match several Patient resources',
  'traits-partial': 'the identity traits match a Patient resource only in part',
};

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
