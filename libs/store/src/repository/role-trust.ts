import type { Coding, Resource } from '@medplum/fhirtypes';
import { ROLE_OPERATOR_VOUCHED, ROLE_TRUST_SYSTEM } from '@gw/fhir';
import type { Principal } from './access.policy';

interface RoleRefs {
  practitioner?: { reference?: unknown };
  organization?: { reference?: unknown };
}

/** What a vouch binds: the role's practitioner and organization references, as one comparable string. */
function binding(resource: Resource | undefined): string {
  const r = (resource ?? {}) as RoleRefs;
  return JSON.stringify([r.practitioner?.reference ?? null, r.organization?.reference ?? null]);
}

/** True when the role carries the role-trust tag (an operator wrote it or vouched for it). */
export function isVouchedRole(resource: Resource | undefined): boolean {
  return !!resource?.meta?.tag?.some((t) => t.system === ROLE_TRUST_SYSTEM && t.code === ROLE_OPERATOR_VOUCHED);
}

/**
 * The gateway-managed role-trust tags of a version about to be written: a client's own tag of that
 * system is always dropped; a PractitionerRole gets `operator-vouched` when an operator (admin)
 * writes it — unless the operator's write withdraws the vouch (`vouch` false: the admin API's
 * unverify) — or when the version it replaces had it and still names the same practitioner and
 * organization (its owner changing the period or `active` keeps it; naming another GP does not).
 */
export function withRoleTrust(
  tags: Coding[],
  resource: Resource,
  p: Principal,
  previousJson?: string | null,
  vouch?: boolean,
): Coding[] {
  const out = tags.filter((t) => t.system !== ROLE_TRUST_SYSTEM);
  if (resource.resourceType !== 'PractitionerRole') {
    return out;
  }
  const vouched = p.admin
    ? vouch !== false
    : !!previousJson && wasVouched(JSON.parse(previousJson) as Resource, binding(resource));
  if (vouched) {
    out.push({ system: ROLE_TRUST_SYSTEM, code: ROLE_OPERATOR_VOUCHED });
  }
  return out;
}

function wasVouched(previous: Resource, bound: string): boolean {
  return binding(previous) === bound && isVouchedRole(previous);
}
