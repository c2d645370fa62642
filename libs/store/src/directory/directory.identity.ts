import type { Identifier, Resource } from '@medplum/fhirtypes';
import { FINESS, GW, IDNATPS, IDNATSTRUCT, RPPS, SIRENE } from '@gw/fhir';
import type { Queryable } from '../repository/fhir.repository';

/**
 * Directory resources: reference data about professionals and structures, not patient data. Every
 * authenticated client reads them; who may change them is in OrganizationAccessPolicy.
 */
export const DIRECTORY_TYPES = [
  'Practitioner',
  'PractitionerRole',
  'Organization',
  'Location',
  'HealthcareService',
  'Endpoint',
];

/** Directory types with a national identity: one resource per RPPS / IdNatPS, per FINESS / SIRET / IdNatStruct. */
export const IDENTITY_TYPES = ['Practitioner', 'Organization'];

/** The organization that owns what the directory import (Annuaire Santé) writes. */
export const DIRECTORY_ORG = 'Organization/gateway-directory';

/** meta.tag system saying where a directory entry's data comes from (code `annuaire-sante`). */
export const DIRECTORY_SOURCE_SYSTEM = `${GW}/fhir/CodeSystem/directory-source`;
export const ANNUAIRE_SANTE = 'annuaire-sante';

/**
 * The normalised identity key of one identifier, the same whatever form names the entry:
 * RPPS X and IdNatPS 8X give `ps:8X`; FINESS F, SIRET S and IdNatStruct 1F / 3S give `st:1F` / `st:3S`.
 * The SQL function gw_directory_keys (migration 10) computes the same keys: keep them in step.
 */
export function identityKey(type: string, system: string | undefined, value: string | undefined): string | undefined {
  const v = value?.trim();
  if (!v || !system) {
    return undefined;
  }
  if (type === 'Practitioner') {
    return system === RPPS ? `ps:8${v}` : system === IDNATPS ? `ps:${v}` : undefined;
  }
  if (type === 'Organization') {
    if (system === FINESS) {
      return `st:1${v}`;
    }
    if (system === SIRENE && v.length === 14) {
      return `st:3${v}`;
    }
    return system === IDNATSTRUCT ? `st:${v}` : undefined;
  }
  return undefined;
}

/** The identity keys a Practitioner or Organization holds (identifiers with use `old` excluded). */
export function identityKeys(resource: Resource | undefined): string[] {
  if (!resource || !IDENTITY_TYPES.includes(resource.resourceType)) {
    return [];
  }
  const ids = ((resource as { identifier?: Identifier[] }).identifier ?? []).filter((i) => i.use !== 'old');
  const keys = ids.map((i) => identityKey(resource.resourceType, i.system, i.value)).filter((k): k is string => !!k);
  return [...new Set(keys)].sort();
}

/**
 * The token values (`system|value`) that name the same entry as `token`, itself included: a
 * conditional query by RPPS also finds the Practitioner known only by its IdNatPS, and back.
 */
export function equivalentTokens(type: string, token: string): string[] {
  const bar = token.indexOf('|');
  if (bar < 0) {
    return [token];
  }
  const key = identityKey(type, token.slice(0, bar), token.slice(bar + 1));
  if (!key) {
    return [token];
  }
  const out = new Set([token]);
  const body = key.slice(3);
  if (type === 'Practitioner') {
    out.add(`${IDNATPS}|${body}`);
    if (body.startsWith('8')) {
      out.add(`${RPPS}|${body.slice(1)}`);
    }
  } else {
    out.add(`${IDNATSTRUCT}|${body}`);
    if (body.startsWith('1')) {
      out.add(`${FINESS}|${body.slice(1)}`);
    } else if (body.startsWith('3') && body.length === 15) {
      out.add(`${SIRENE}|${body.slice(1)}`);
    }
  }
  return [...out];
}

/** True when the directory import wrote this entry (meta.tag directory-source). */
export function isDirectorySourced(resource: Resource | undefined): boolean {
  return !!resource?.meta?.tag?.some((t) => t.system === DIRECTORY_SOURCE_SYSTEM);
}

/**
 * The personal MSSanté mailbox the directory import recorded for a professional (IdNatPS), listed
 * ones first. An unlisted mailbox is never written into a FHIR resource; routing may still send to it.
 */
export async function personalMailbox(db: Queryable, idNatPs: string): Promise<string | undefined> {
  const res = await db.query<{ address: string }>(
    "SELECT address FROM directory_mailbox WHERE id_nat_ps = $1 AND active AND kind = 'PER' ORDER BY unlisted, address LIMIT 1",
    [idNatPs],
  );
  return res.rows[0]?.address;
}
