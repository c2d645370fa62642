import { GatewayError } from '@gw/platform';
import {
  dateRange,
  normalizeString,
  parseReference,
  splitPrefix,
} from '@gw/fhir';
import type { IndexedKind, Prefix, SearchParamClause, SearchParamDef, SearchParamRegistry, SearchRequest } from '@gw/fhir';

/** Collects bind parameters; returns `$n` placeholders. */
export class Binder {
  readonly values: unknown[] = [];
  bind = (v: unknown): string => {
    this.values.push(v);
    return `$${this.values.length}`;
  };
}

const TABLE: Record<IndexedKind, string> = {
  token: 'sp_token',
  uri: 'sp_token',
  string: 'sp_string',
  date: 'sp_date',
  reference: 'sp_reference',
  number: 'sp_number',
  quantity: 'sp_number',
};

export interface CompiledWhere {
  /** Conditions on alias `r` (resource table), ANDed. */
  conditions: string[];
  /** Clauses that name no supported parameter (lenient mode ignores them). */
  unsupported: { key: string; reason: string }[];
}

/**
 * Compiles the filter clauses of a search into SQL over the index tables. Every clause becomes
 * `r.id IN (SELECT id FROM sp_x WHERE …)`, so chains nest the same way.
 */
export function compileWhere(req: SearchRequest, registry: SearchParamRegistry, b: Binder): CompiledWhere {
  const out: CompiledWhere = { conditions: [], unsupported: [] };
  for (const clause of req.clauses) {
    try {
      const cond = compileClause(req.resourceType, clause, registry, b);
      out.conditions.push(cond);
    } catch (err) {
      if (err instanceof UnsupportedParam) {
        out.unsupported.push({ key: clause.key, reason: err.message });
      } else {
        throw err;
      }
    }
  }
  return out;
}

export class UnsupportedParam extends Error {}

function compileClause(type: string, c: SearchParamClause, registry: SearchParamRegistry, b: Binder): string {
  if (c.code === '_id') {
    return `r.id IN (${c.values.map((v) => b.bind(v)).join(', ')})`;
  }
  if (c.code === '_lastUpdated') {
    return `(${c.values.map((v) => dateCondition('r.last_updated', 'r.last_updated', v, b, c.key)).join(' OR ')})`;
  }
  const def = registry.get(type, c.code);
  if (!def) {
    throw new UnsupportedParam(`Unknown search parameter "${c.code}" for ${type}`);
  }
  if (c.chain) {
    return `r.id IN (${chainSubquery(type, def, c, registry, b)})`;
  }
  if (c.modifier === 'missing') {
    const anyRow = `SELECT id FROM ${TABLE[def.kind]} WHERE resource_type = ${b.bind(type)} AND code = ${b.bind(def.code)}`;
    return c.values[0] === 'true' ? `r.id NOT IN (${anyRow})` : `r.id IN (${anyRow})`;
  }
  const negate = c.modifier === 'not';
  const sub = idSubquery(type, def, c.modifier, c.values, b, c.key);
  return negate ? `r.id NOT IN (${sub})` : `r.id IN (${sub})`;
}

/** `SELECT id FROM <index> WHERE resource_type = T AND code = C AND (v1 OR v2…)` */
function idSubquery(type: string, def: SearchParamDef, modifier: string | undefined, values: string[], b: Binder, key: string): string {
  const ors = values.map((v) => valueCondition(def, modifier, v, b, key));
  return `SELECT id FROM ${TABLE[def.kind]} WHERE resource_type = ${b.bind(type)} AND code = ${b.bind(def.code)} AND (${ors.join(' OR ')})`;
}

function valueCondition(def: SearchParamDef, modifier: string | undefined, value: string, b: Binder, key: string): string {
  switch (def.kind) {
    case 'token':
    case 'uri':
      return tokenCondition(modifier, value, b, key);
    case 'string':
      return stringCondition(modifier, value, b, key);
    case 'date':
      return dateCondition('low', 'high', value, b, key, modifier);
    case 'reference':
      return referenceCondition(def, modifier, value, b, key);
    case 'number':
    case 'quantity':
      return numberCondition(modifier, value, b, key);
  }
}

function rejectModifier(modifier: string | undefined, allowed: string[], key: string): void {
  if (modifier !== undefined && !allowed.includes(modifier)) {
    throw new UnsupportedParam(`Modifier ":${modifier}" is not supported on ${key.split(':')[0]}`);
  }
}

function tokenCondition(modifier: string | undefined, value: string, b: Binder, key: string): string {
  rejectModifier(modifier, ['not'], key);
  const bar = value.indexOf('|');
  if (bar === -1) {
    return `value = ${b.bind(value)}`;
  }
  const system = value.slice(0, bar);
  const code = value.slice(bar + 1);
  if (system === '') {
    return `(value = ${b.bind(code)} AND system IS NULL)`;
  }
  if (code === '') {
    return `system = ${b.bind(system)}`;
  }
  return `(value = ${b.bind(code)} AND system = ${b.bind(system)})`;
}

function likeEscape(s: string): string {
  return s.replace(/[\\%_]/g, (m) => `\\${m}`);
}

function stringCondition(modifier: string | undefined, value: string, b: Binder, key: string): string {
  rejectModifier(modifier, ['exact', 'contains'], key);
  if (modifier === 'exact') {
    return `raw = ${b.bind(value)}`;
  }
  const norm = likeEscape(normalizeString(value));
  return modifier === 'contains' ? `value LIKE ${b.bind(`%${norm}%`)}` : `value LIKE ${b.bind(`${norm}%`)}`;
}

/**
 * FHIR date comparison between the stored interval [low, high) and the searched one [vl, vh)
 * (R4 §3.1.1.4.2): eq = contained, lt/gt = some part before/after, le/ge include overlap.
 */
export function dateCondition(low: string, high: string, raw: string, b: Binder, key: string, modifier?: string): string {
  rejectModifier(modifier, [], key);
  const { prefix, value } = splitPrefix(raw);
  const range = dateRange(value);
  if (!range) {
    throw new GatewayError('invalid', { text: `Invalid date "${value}" for ${key}: expected YYYY, YYYY-MM, YYYY-MM-DD or a dateTime`, expression: key });
  }
  const vl = `${b.bind(range.low)}::timestamptz`;
  const vh = `${b.bind(range.high)}::timestamptz`;
  const table: Record<Prefix, string> = {
    eq: `(${low} >= ${vl} AND ${high} <= ${vh})`,
    ne: `NOT (${low} >= ${vl} AND ${high} <= ${vh})`,
    lt: `${low} < ${vl}`,
    gt: `${high} > ${vh}`,
    le: `${low} < ${vh}`,
    ge: `${high} > ${vl}`,
    sa: `${low} >= ${vh}`,
    eb: `${high} <= ${vl}`,
    ap: `(${low} < ${vh} AND ${high} > ${vl})`,
  };
  return table[prefix];
}

function referenceCondition(def: SearchParamDef, modifier: string | undefined, value: string, b: Binder, key: string): string {
  if (modifier && !def.targets.includes(modifier)) {
    throw new UnsupportedParam(`Modifier ":${modifier}" is not a target type of ${def.code}`);
  }
  const parsed = parseReference(value);
  if (parsed) {
    return `(target_id = ${b.bind(parsed.id)} AND target_type = ${b.bind(parsed.type)})`;
  }
  if (!/^[A-Za-z0-9\-.]{1,64}$/.test(value)) {
    throw new GatewayError('invalid', { text: `Invalid reference "${value}" for ${key}: expected Type/id or id`, expression: key });
  }
  const types = modifier ? [modifier] : def.targets;
  return `(target_id = ${b.bind(value)} AND target_type = ANY(${b.bind(types)}::text[]))`;
}

function numberCondition(modifier: string | undefined, raw: string, b: Binder, key: string): string {
  rejectModifier(modifier, [], key);
  const { prefix, value } = splitPrefix(raw);
  const [num, system, code] = value.split('|');
  const n = Number(num);
  if (num === '' || Number.isNaN(n)) {
    throw new GatewayError('invalid', { text: `Invalid number "${num}" for ${key}`, expression: key });
  }
  const ops: Partial<Record<Prefix, string>> = { eq: '=', ne: '<>', lt: '<', le: '<=', gt: '>', ge: '>=', sa: '>', eb: '<' };
  const op = ops[prefix];
  if (!op) {
    throw new UnsupportedParam(`Prefix "${prefix}" is not supported on ${key}`);
  }
  const parts = [`value ${op} ${b.bind(n)}`];
  if (system) {
    parts.push(`system = ${b.bind(system)}`);
  }
  if (code) {
    parts.push(`unit = ${b.bind(code)}`);
  }
  return `(${parts.join(' AND ')})`;
}

function chainSubquery(type: string, def: SearchParamDef, c: SearchParamClause, registry: SearchParamRegistry, b: Binder): string {
  if (def.kind !== 'reference' || !c.chain) {
    throw new UnsupportedParam(`Chaining is only possible on reference parameters, not ${c.code}`);
  }
  const targets = c.chain.targetType ? [c.chain.targetType] : def.targets;
  const inner: string[] = [];
  for (const target of targets) {
    const targetDef = registry.get(target, c.chain.code);
    if (c.chain.code === '_id') {
      inner.push(`(target_type = ${b.bind(target)} AND target_id = ANY(${b.bind(c.values)}::text[]))`);
    } else if (targetDef) {
      const sub = idSubquery(target, targetDef, c.chain.modifier, c.values, b, c.key);
      inner.push(`(target_type = ${b.bind(target)} AND target_id IN (${sub}))`);
    }
  }
  if (inner.length === 0) {
    throw new UnsupportedParam(`Unknown chained parameter "${c.chain.code}" on ${targets.join('/')}`);
  }
  return `SELECT id FROM sp_reference WHERE resource_type = ${b.bind(type)} AND code = ${b.bind(def.code)} AND (${inner.join(' OR ')})`;
}

/** ORDER BY terms for `_sort`, with r.id as the final tie-breaker for stable paging. */
export function compileSort(req: SearchRequest, registry: SearchParamRegistry, b: Binder): string {
  const terms: string[] = [];
  for (const s of req.sort) {
    const dir = s.descending ? 'DESC' : 'ASC';
    if (s.code === '_id') {
      terms.push(`r.id ${dir}`);
    } else if (s.code === '_lastUpdated') {
      terms.push(`r.last_updated ${dir}`);
    } else {
      const def = registry.get(req.resourceType, s.code);
      if (!def || def.kind === 'reference') {
        throw new GatewayError('invalid', { text: `Cannot sort ${req.resourceType} by "${s.code}"`, expression: '_sort' });
      }
      const col = def.kind === 'date' ? (s.descending ? 'max(high)' : 'min(low)') : s.descending ? 'max(value)' : 'min(value)';
      terms.push(
        `(SELECT ${col} FROM ${TABLE[def.kind]} x WHERE x.resource_type = r.resource_type AND x.id = r.id AND x.code = ${b.bind(def.code)}) ${dir} NULLS LAST`,
      );
    }
  }
  if (terms.length === 0) {
    terms.push('r.last_updated DESC');
  }
  terms.push('r.id ASC');
  return terms.join(', ');
}
