import { getDataType } from '@medplum/core';
import { carryDecimals } from './fhir-json';
import type { Resource } from '@medplum/fhirtypes';
import { invalidSearch } from './outcomes';

/** `_summary` (other than count) or `_elements`: which part of each resource to return. */
export type Subsetting = { summary: 'true' | 'text' | 'data' } | { elements: string[] };

/** R4 search.html#summary: a subsetted resource is tagged so, and must not be used for an update. */
export const SUBSETTED_TAG = {
  system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue',
  code: 'SUBSETTED',
  display: 'subsetted',
};

const SUMMARY_VALUES = new Set(['true', 'text', 'data', 'count', 'false']);

/**
 * Reads `_summary` and `_elements` from a query. `_summary=count` is the search's business
 * (count only) and gives no subsetting here; both parameters together are refused, their
 * combination being undefined.
 */
export function parseSubsetting(pairs: [string, string][]): { subsetting?: Subsetting; count: boolean } {
  const summary = pairs.filter(([k, v]) => k === '_summary' && v !== '').map(([, v]) => v);
  const elements = pairs
    .filter(([k, v]) => k === '_elements' && v !== '')
    .flatMap(([, v]) =>
      v
        .split(',')
        .map((e) => e.trim())
        .filter(Boolean),
    );
  for (const v of summary) {
    if (!SUMMARY_VALUES.has(v)) {
      throw invalidSearch(`_summary must be true, text, data, count or false, not "${v}"`, '_summary');
    }
  }
  const value = summary[summary.length - 1];
  if (value !== undefined && value !== 'false' && elements.length > 0) {
    throw invalidSearch('_summary and _elements cannot be used together', '_elements');
  }
  if (value === 'count') {
    return { count: true };
  }
  if (value === 'true' || value === 'text' || value === 'data') {
    return { subsetting: { summary: value }, count: false };
  }
  return elements.length > 0 ? { subsetting: { elements }, count: false } : { count: false };
}

/** The `_elements` names that are not elements of `type` (to be reported, or refused when strict). */
export function unknownElements(type: string, s: Subsetting | undefined): string[] {
  if (!s || !('elements' in s)) {
    return [];
  }
  const schema = getDataType(type);
  return s.elements.filter((e) => !(e in schema.elements) && !(`${e}[x]` in schema.elements));
}

/**
 * The subset of a resource: always resourceType, id, meta and the elements with a minimum
 * cardinality of 1 (R4: mandatory elements are kept), plus what `_summary` / `_elements` asks for.
 */
export function subsetResource<T extends Resource>(resource: T, s: Subsetting): T {
  const schema = getDataType(resource.resourceType);
  const mandatory = schema.mandatoryProperties ?? new Set<string>();
  const summary = schema.summaryProperties ?? new Set<string>();
  const wanted = (prop: string): boolean => {
    if (prop === 'resourceType' || prop === 'id' || prop === 'meta' || mandatory.has(prop)) {
      return true;
    }
    if ('elements' in s) {
      return s.elements.includes(prop);
    }
    switch (s.summary) {
      case 'true':
        return summary.has(prop);
      case 'text':
        return prop === 'text';
      case 'data':
        return prop !== 'text';
    }
  };
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(resource)) {
    if (wanted(propertyOf(key, schema.elements))) {
      out[key] = value;
    }
  }
  const meta = resource.meta ?? {};
  out.meta = {
    ...meta,
    tag: [
      ...(meta.tag ?? []).filter((t) => t.code !== SUBSETTED_TAG.code || t.system !== SUBSETTED_TAG.system),
      SUBSETTED_TAG,
    ],
  };
  return carryDecimals(resource, out) as T;
}

/** The element a JSON key holds: `_birthDate` → birthDate, `deceasedBoolean` → deceased (choice type). */
function propertyOf(key: string, elements: Record<string, unknown>): string {
  const k = key.startsWith('_') ? key.slice(1) : key;
  if (k in elements) {
    return k;
  }
  for (let i = k.length - 1; i > 0; i--) {
    if (/[A-Z]/.test(k[i]) && `${k.slice(0, i)}[x]` in elements) {
      return k.slice(0, i);
    }
  }
  return k;
}
