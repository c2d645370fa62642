import type { CodeableConcept, Coding, Quantity, Range } from '@medplum/fhirtypes';
import { UCUM, resolveSystem } from '../terminology/code-systems';
import type { ExtractionWarning } from '../intake/extraction';
import { all, attr, first, type XmlNode } from './cda-xml';

/** CDA TS: YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]. */
const TS = /^(\d{4})(\d{2})?(\d{2})?(?:(\d{2})(\d{2})?(\d{2})?(?:\.\d+)?)?([+-]\d{4})?$/;

/**
 * A CDA timestamp as a FHIR date or dateTime. A time without a zone is read as Europe/Paris
 * (CI-SIS documents are French), not as UTC; undefined when the value is not a valid timestamp.
 */
export function cdaTime(value: string | undefined): string | undefined {
  const m = value ? TS.exec(value.trim()) : null;
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, tz] = m;
  const check = new Date(Date.UTC(+y, +(mo ?? 1) - 1, +(d ?? 1)));
  if (check.getUTCMonth() + 1 !== +(mo ?? 1) || check.getUTCDate() !== +(d ?? 1)) return undefined;
  if (!h) return [y, mo, d].filter(Boolean).join('-');
  if (!d || +h > 23 || +(mi ?? 0) > 59 || +(s ?? 0) > 59) return undefined;
  const local = `${y}-${mo}-${d}T${h}:${mi ?? '00'}:${s ?? '00'}`;
  const offset = tz ? `${tz.slice(0, 3)}:${tz.slice(3)}` : parisOffset(Date.UTC(+y, +mo! - 1, +d, +h));
  return `${local}${offset}`;
}

/** Europe/Paris offset at an instant (CET +01:00, CEST +02:00). */
function parisOffset(utcMillis: number): string {
  const parts = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Paris', timeZoneName: 'shortOffset' })
    .formatToParts(new Date(utcMillis))
    .find((p) => p.type === 'timeZoneName')?.value;
  const hours = Number(/GMT([+-]\d+)/.exec(parts ?? '')?.[1] ?? '1');
  return `${hours < 0 ? '-' : '+'}${String(Math.abs(hours)).padStart(2, '0')}:00`;
}

/** effectiveTime as a point or an interval. */
export function cdaPeriod(node: XmlNode | undefined): { start?: string; end?: string; at?: string } {
  if (!node) return {};
  const point = cdaTime(attr(node, 'value'));
  const start = cdaTime(attr(first(node, 'low'), 'value'));
  const end = cdaTime(attr(first(node, 'high'), 'value'));
  const center = cdaTime(attr(first(node, 'center'), 'value'));
  return {
    ...(start ? { start } : {}),
    ...(end ? { end } : {}),
    ...((point ?? center) ? { at: point ?? center } : {}),
  };
}

/**
 * A CDA CD/CE/CV as FHIR Codings: the code itself (when not a nullFlavor) then its translations,
 * each with its system made canonical. Unknown systems are kept (as urn:oid) and reported.
 */
export function cdaCodings(node: XmlNode | undefined, where: string, warnings?: ExtractionWarning[]): Coding[] {
  if (!node) return [];
  const out: Coding[] = [];
  const own = cdaCoding(node, where, warnings);
  if (own) out.push(own);
  for (const t of all(node, 'translation')) {
    const c = cdaCoding(t, `${where}/translation`, warnings);
    if (c) out.push(c);
  }
  return out;
}

function cdaCoding(node: XmlNode, where: string, warnings?: ExtractionWarning[]): Coding | undefined {
  const code = attr(node, 'code');
  const oid = attr(node, 'codeSystem');
  if (!code || !oid) return undefined;
  const resolved = resolveSystem(oid);
  if (!resolved.known && warnings) {
    const name = attr(node, 'codeSystemName');
    warnings.push({
      location: where,
      text: `Code system ${oid}${name ? ` (${name})` : ''} is not a known terminology: code kept as ${resolved.system}`,
    });
  }
  const display = attr(node, 'displayName');
  return { system: resolved.system, code, ...(display ? { display } : {}) };
}

export function cdaConcept(
  node: XmlNode | undefined,
  where: string,
  warnings?: ExtractionWarning[],
): CodeableConcept | undefined {
  const coding = cdaCodings(node, where, warnings);
  if (coding.length === 0) return undefined;
  const display = coding.find((c) => c.display)?.display;
  return { coding, ...(display ? { text: display } : {}) };
}

/** A PQ as a UCUM Quantity (CI-SIS requires UCUM units in results). */
export function cdaQuantity(node: XmlNode | undefined): Quantity | undefined {
  const value = attr(node, 'value');
  if (value === undefined || !/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(value)) return undefined;
  const unit = attr(node, 'unit');
  return {
    value: Number(value),
    ...(unit && unit !== '1' ? { unit, system: UCUM, code: unit } : {}),
  };
}

/** An IVL_PQ as a Range (both bounds) or as a Quantity with a comparator (one bound: `<= 1.0 mg/L`). */
export function cdaInterval(node: XmlNode | undefined): { range?: Range; quantity?: Quantity } {
  const low = cdaQuantity(first(node, 'low'));
  const high = cdaQuantity(first(node, 'high'));
  if (low && high) return { range: { low, high } };
  if (high) {
    const inclusive = attr(first(node, 'high'), 'inclusive') !== 'false';
    return { quantity: { ...high, comparator: inclusive ? '<=' : '<' } };
  }
  if (low) {
    const inclusive = attr(first(node, 'low'), 'inclusive') !== 'false';
    return { quantity: { ...low, comparator: inclusive ? '>=' : '>' } };
  }
  return {};
}

/** xsi:type of a value (attribute `type` once namespace prefixes are removed). */
export function xsiType(node: XmlNode | undefined): string | undefined {
  return attr(node, 'type')?.replace(/^.*:/, '');
}
