import type { Resource } from '@medplum/fhirtypes';
import { TERRITORY_COMMUNE_EXTENSION } from '@gw/fhir';

/** The Organization.type code that makes an organization a CPTS (whatever the coding system). */
export const CPTS_TYPE_CODE = 'CPTS';

interface OrganizationFacts {
  type?: { coding?: { code?: unknown }[] }[];
  extension?: { url?: unknown }[];
  partOf?: unknown;
}

/** JSON with object keys sorted: two equal values compare equal whatever the key order a client sent. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) {
    return `[${value.map(canonical).join(',')}]`;
  }
  if (value && typeof value === 'object') {
    const entries = Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** Whether a type coding says CPTS (any system, any case: the routing and the indicators must never see one unseen). */
export function isCptsCode(code: unknown): boolean {
  return typeof code === 'string' && code.trim().toUpperCase() === CPTS_TYPE_CODE;
}

/**
 * What an operator grants on an Organization, each as a canonical string: the CPTS type codings,
 * the territory communes (extension territory-commune, in any order) and the membership (partOf).
 */
function granted(org: Resource | undefined): Record<'the CPTS type' | 'the territory communes' | 'partOf', string> {
  const o = (org?.resourceType === 'Organization' ? org : {}) as OrganizationFacts;
  const codings = (Array.isArray(o.type) ? o.type : [])
    .flatMap((t) => (Array.isArray(t?.coding) ? t.coding : []))
    .filter((c) => isCptsCode(c?.code));
  const communes = (Array.isArray(o.extension) ? o.extension : []).filter(
    (e) => e?.url === TERRITORY_COMMUNE_EXTENSION,
  );
  return {
    'the CPTS type': codings.map(canonical).sort().join('|'),
    'the territory communes': communes.map(canonical).sort().join('|'),
    partOf: o.partOf === undefined ? '' : canonical(o.partOf),
  };
}

/**
 * The operator-granted facts of an Organization that differ between `before` (undefined for a
 * create) and `after`: being a CPTS, its territory communes, its membership of a CPTS (partOf).
 * Hospitals' discharges and a CPTS's view of its members' aggregates rest on them, so a client
 * may re-send them unchanged but never set them itself.
 */
export function changedGrants(before: Resource | undefined, after: Resource): string[] {
  const was = granted(before);
  const now = granted(after);
  return (Object.keys(now) as (keyof typeof now)[]).filter((k) => was[k] !== now[k]);
}
