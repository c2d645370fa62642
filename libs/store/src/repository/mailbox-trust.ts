import type { Coding, ContactPoint, Resource } from '@medplum/fhirtypes';
import { MAILBOX_TRUST_SYSTEM, MAILBOX_VERIFIED_SOURCE, isMssanteEmail } from '@gw/fhir';
import type { Principal } from './access.policy';

/** The directory types whose telecom the exchange layer sends discharges to. */
const MAILBOX_TYPES = ['Practitioner', 'PractitionerRole', 'Organization'];

/**
 * The MSSanté telecoms of a resource, as one comparable string: the e-mail entries {@link isMssanteEmail}
 * accepts (routing's test), whatever their period.
 */
export function mssanteTelecoms(resource: Resource | undefined): string {
  const telecom = (resource as { telecom?: ContactPoint[] } | undefined)?.telecom;
  return (Array.isArray(telecom) ? telecom : [])
    .filter(isMssanteEmail)
    .map((t) => JSON.stringify([t.value?.toLowerCase(), t.period?.start ?? null, t.period?.end ?? null]))
    .sort()
    .join('|');
}

/**
 * The gateway-managed mailbox-trust tags of a version about to be written: a client's own tag of
 * that system is always dropped; a Practitioner, PractitionerRole or Organization with an MSSanté
 * telecom gets `verified-source` when an operator (admin) writes it, or when the version it
 * replaces had it and its MSSanté telecoms are unchanged (another field changed by its owner).
 */
export function withMailboxTrust(
  tags: Coding[],
  resource: Resource,
  p: Principal,
  previousJson?: string | null,
): Coding[] {
  const out = tags.filter((t) => t.system !== MAILBOX_TRUST_SYSTEM);
  if (!MAILBOX_TYPES.includes(resource.resourceType)) {
    return out;
  }
  const telecoms = mssanteTelecoms(resource);
  if (!telecoms) {
    return out;
  }
  if (p.admin || (previousJson && wasVerified(JSON.parse(previousJson) as Resource, telecoms))) {
    out.push({ system: MAILBOX_TRUST_SYSTEM, code: MAILBOX_VERIFIED_SOURCE });
  }
  return out;
}

/** True when the resource carries the mailbox-trust tag (its MSSanté telecoms come from an operator). */
export function hasVerifiedMailbox(resource: Resource | undefined): boolean {
  return !!resource?.meta?.tag?.some((t) => t.system === MAILBOX_TRUST_SYSTEM && t.code === MAILBOX_VERIFIED_SOURCE);
}

function wasVerified(previous: Resource, telecoms: string): boolean {
  return mssanteTelecoms(previous) === telecoms && hasVerifiedMailbox(previous);
}
