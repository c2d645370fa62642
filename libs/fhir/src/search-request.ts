import { invalidSearch } from './outcomes';
import { parseSubsetting } from './subsetting';
import type { Subsetting } from './subsetting';

export type Prefix = 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge' | 'sa' | 'eb' | 'ap';
const PREFIXES = new Set<string>(['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'sa', 'eb', 'ap']);

export interface SearchParamClause {
  /** The query key as sent, for error messages (`subject:Patient.identifier`). */
  key: string;
  code: string;
  modifier?: string;
  /** `subject:Patient.identifier=` → { targetType: 'Patient', code: 'identifier' } */
  chain?: { targetType?: string; code: string; modifier?: string };
  /** Comma-separated values: any may match (OR). */
  values: string[];
}

export interface IncludeClause {
  key: string;
  sourceType: string;
  code: string;
  targetType?: string;
}

export interface SearchRequest {
  resourceType: string;
  clauses: SearchParamClause[];
  count: number;
  offset: number;
  sort: { code: string; descending: boolean }[];
  include: IncludeClause[];
  revinclude: IncludeClause[];
  total?: 'none' | 'estimate' | 'accurate';
  summaryCount: boolean;
  /** `_summary` (true, text, data) or `_elements`: the part of each resource returned. */
  subsetting?: Subsetting;
}

const RESULT_PARAMS = new Set([
  '_count',
  '_offset',
  '_sort',
  '_include',
  '_revinclude',
  '_total',
  '_summary',
  '_format',
  '_pretty',
  '_elements',
]);

/**
 * Parses a FHIR search query (ordered key/value pairs, keys may repeat = AND) into clauses. Does
 * not know which parameters exist: the store checks that against the registry.
 */
export function parseSearchRequest(
  resourceType: string,
  pairs: [string, string][],
  limits: { defaultCount: number; maxCount: number; maxParams?: number; maxValues?: number },
): SearchRequest {
  checkSearchBounds(pairs, limits.maxParams ?? MAX_PARAMS, limits.maxValues ?? MAX_VALUES);
  const req: SearchRequest = {
    resourceType,
    clauses: [],
    count: limits.defaultCount,
    offset: 0,
    sort: [],
    include: [],
    revinclude: [],
    summaryCount: false,
  };
  const { subsetting, count } = parseSubsetting(pairs);
  req.summaryCount = count;
  req.subsetting = subsetting;
  for (const [key, value] of pairs) {
    // R4 §3.1.1.5: a parameter with an empty value is ignored (forms send every field).
    if (value === '') {
      continue;
    }
    if (RESULT_PARAMS.has(key)) {
      applyResultParam(req, key, value, limits.maxCount);
      continue;
    }
    const clause = parseClause(key, value);
    if (clause.values.length > 0) {
      req.clauses.push(clause);
    }
  }
  return req;
}

/** Default bounds of one search (GW_SEARCH_MAX_PARAMS, GW_SEARCH_MAX_VALUES) and of `_offset`. */
export const MAX_PARAMS = 50;
export const MAX_VALUES = 100;
export const MAX_OFFSET = 1_000_000;

/**
 * What makes a search costly before it reaches SQL: each parameter is a join or an EXISTS, each
 * value an OR branch. A NUL cannot reach PostgreSQL text at all.
 */
function checkSearchBounds(pairs: [string, string][], maxParams: number, maxValues: number): void {
  const searched = pairs.filter(([k, v]) => v !== '' && k !== '_format' && k !== '_pretty');
  if (searched.length > maxParams) {
    const counts = new Map<string, number>();
    searched.forEach(([k]) => counts.set(k, (counts.get(k) ?? 0) + 1));
    const [most] = [...counts.entries()].sort((a, b) => b[1] - a[1])[0];
    throw invalidSearch(
      `A search may have at most ${maxParams} parameters (GW_SEARCH_MAX_PARAMS); this one has ${searched.length} (${most} given ${counts.get(most)} times)`,
      most.slice(0, 64),
    );
  }
  for (const [key, value] of pairs) {
    if (key.includes('\u0000') || value.includes('\u0000')) {
      const name = key.split('\u0000').join('');
      throw invalidSearch(`Parameter ${name} contains a NUL character`, name);
    }
    if (!key.startsWith('_') && value.split(',').length > maxValues) {
      throw invalidSearch(`Parameter ${key} may list at most ${maxValues} values (GW_SEARCH_MAX_VALUES)`, key);
    }
  }
}

function applyResultParam(req: SearchRequest, key: string, value: string, maxCount: number): void {
  switch (key) {
    case '_count':
      req.count = Math.min(nonNegativeInt(key, value), maxCount);
      return;
    case '_offset':
      req.offset = nonNegativeInt(key, value);
      if (req.offset > MAX_OFFSET) {
        throw invalidSearch(`_offset may be at most ${MAX_OFFSET} (narrow the search instead)`, '_offset');
      }
      return;
    case '_sort':
      req.sort.push(
        ...value
          .split(',')
          .filter(Boolean)
          .map((s) => (s.startsWith('-') ? { code: s.slice(1), descending: true } : { code: s, descending: false })),
      );
      return;
    case '_include':
    case '_revinclude':
      (key === '_include' ? req.include : req.revinclude).push(parseInclude(key, value));
      return;
    case '_total':
      if (value !== 'none' && value !== 'estimate' && value !== 'accurate') {
        throw invalidSearch(`_total must be none, estimate or accurate, not "${value}"`, '_total');
      }
      req.total = value;
      return;
    default:
      return; // _summary, _elements (parseSubsetting), _format, _pretty: presentation
  }
}

function nonNegativeInt(key: string, value: string): number {
  if (!/^\d{1,15}$/.test(value)) {
    throw invalidSearch(`${key} must be a non-negative integer, not "${value.slice(0, 32)}"`, key);
  }
  return Number(value);
}

function parseInclude(key: string, value: string): IncludeClause {
  const [sourceType, code, targetType] = value.replace(/:iterate$|:recurse$/, '').split(':');
  if (!sourceType || !code) {
    throw invalidSearch(`${key} must be Type:parameter[:TargetType], not "${value}"`, key);
  }
  return { key, sourceType, code, targetType };
}

function parseClause(key: string, value: string): SearchParamClause {
  const dot = key.indexOf('.');
  const head = dot === -1 ? key : key.slice(0, dot);
  const [code, modifier] = splitOnce(head, ':');
  // `a,,b` or a trailing comma: an empty alternative would match only empty values, i.e. nothing.
  const clause: SearchParamClause = { key, code, values: splitValues(value).filter((v) => v !== '') };
  if (dot === -1) {
    clause.modifier = modifier;
    return clause;
  }
  const [chainCode, chainModifier] = splitOnce(key.slice(dot + 1), ':');
  clause.chain = { targetType: modifier, code: chainCode, modifier: chainModifier };
  return clause;
}

function splitOnce(s: string, sep: string): [string, string | undefined] {
  const i = s.indexOf(sep);
  return i === -1 ? [s, undefined] : [s.slice(0, i), s.slice(i + 1)];
}

/** Splits on commas not escaped as `\,` (FHIR search escaping). */
export function splitValues(value: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (ch === '\\' && i + 1 < value.length && ',$|\\'.includes(value[i + 1])) {
      cur += value[++i];
    } else if (ch === ',') {
      out.push(cur);
      cur = '';
    } else {
      cur += ch;
    }
  }
  out.push(cur);
  return out;
}

/** Splits a leading comparison prefix (`ge2020-01-01` → ['ge', '2020-01-01']). */
export function splitPrefix(value: string): { prefix: Prefix; value: string } {
  const p = value.slice(0, 2);
  if (PREFIXES.has(p) && value.length > 2 && /[\d-]/.test(value[2])) {
    return { prefix: p as Prefix, value: value.slice(2) };
  }
  return { prefix: 'eq', value };
}
