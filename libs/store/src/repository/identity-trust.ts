import type { Coding, Patient, Resource } from '@medplum/fhirtypes';
import {
  IDENTITY_TRUST_SYSTEM,
  IDENTITY_VERIFIED_SOURCE,
  INS_OIDS,
  RELIABILITY_EXTENSION,
  insKindOf,
  insProblem,
} from '@gw/fhir';
import { IDENTITY_QUALIFICATION_GRANT } from './access.policy';
import type { Principal } from './access.policy';

const INS_SYSTEMS = INS_OIDS.map((oid) => `urn:oid:${oid}`);

/** An operator (admin) or a writer granted {@link IDENTITY_QUALIFICATION_GRANT} (a client, a qualifying HL7 source). */
export function mayQualifyIdentity(p: Principal): boolean {
  return p.admin || (p.grants ?? []).includes(IDENTITY_QUALIFICATION_GRANT);
}

/**
 * The INS the indicator projection merges a Patient by (`system|value`): its first current INS
 * identifier, when its identity status is QUAL and that INS has a valid format and key.
 */
export function qualifiedIns(patient: Patient): string | undefined {
  const qual = (patient.extension ?? []).some(
    (e) =>
      e.url === RELIABILITY_EXTENSION &&
      (e.extension ?? []).some((s) => s.url === 'identityStatus' && s.valueCoding?.code === 'QUAL'),
  );
  const ins = qual
    ? (patient.identifier ?? []).find((i) => INS_SYSTEMS.includes(i.system ?? '') && i.use !== 'old')
    : undefined;
  const kind = insKindOf(ins?.system);
  if (!ins || !kind || typeof ins.value !== 'string' || insProblem(kind, ins.value)) {
    return undefined;
  }
  return `${ins.system}|${ins.value}`;
}

/**
 * The gateway-managed identity-trust tags of a version about to be written: a client's own tag of
 * that system is always dropped; a Patient gets `verified-source` when its writer may qualify
 * identities and it carries a qualified INS, or when the version it replaces had it and the
 * qualified INS is unchanged (an update of other fields by the record's own organization does not
 * undo a verification).
 */
export function withIdentityTrust(
  tags: Coding[],
  resource: Resource,
  p: Principal,
  previousJson?: string | null,
): Coding[] {
  const out = tags.filter((t) => t.system !== IDENTITY_TRUST_SYSTEM);
  if (resource.resourceType !== 'Patient') {
    return out;
  }
  const ins = qualifiedIns(resource);
  if (!ins) {
    return out;
  }
  if (mayQualifyIdentity(p) || (previousJson && wasVerified(JSON.parse(previousJson) as Patient, ins))) {
    out.push({ system: IDENTITY_TRUST_SYSTEM, code: IDENTITY_VERIFIED_SOURCE });
  }
  return out;
}

function wasVerified(previous: Patient, ins: string): boolean {
  return (
    qualifiedIns(previous) === ins &&
    (previous.meta?.tag ?? []).some((t) => t.system === IDENTITY_TRUST_SYSTEM && t.code === IDENTITY_VERIFIED_SOURCE)
  );
}
