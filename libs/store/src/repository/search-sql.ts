import { GatewayError } from '@gw/platform';
import { dateRange, normalizeString, parseReference, splitPrefix } from '@gw/fhir';
import type {
  IndexedKind,
  Prefix,
  SearchParamClause,
  SearchParamDef,
  SearchParamRegistry,
  SearchRequest,
} from '@gw/fhir';

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
/** SQL condition on a resource alias limiting it to what the caller may see (the access policy). */
export type Visibility = (alias: string) => string | undefined;

export function compileWhere(
  req: SearchRequest,
  registry: SearchParamRegistry,
  b: Binder,
  visible?: Visibility,
): CompiledWhere {
  const out: CompiledWhere = { conditions: [], unsupported: [] };
  for (const clause of req.clauses) {
    try {
      const cond = compileClause(req.resourceType, clause, registry, b, visible);
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

function compileClause(
  type: string,
  c: SearchParamClause,
  registry: SearchParamRegistry,
  b: Binder,
  visible?: Visibility,
): string {
  if (c.code === '_id' || c.code === '_lastUpdated') {
    return columnCondition(c, b);
  }
  const def = registry.get(type, c.code);
  if (!def) {
    throw new UnsupportedParam(`Unknown search parameter "${c.code}" for ${type}`);
  }
  if (c.chain) {
    return `r.id IN (${chainSubquery(type, def, c, registry, b, visible)})`;
  }
  return matchCondition('r.id', type, def, c.modifier, c.values, b, c.key);
}

/** `_id` and `_lastUpdated` live in columns of the resource table, not in the index tables. */
function columnCondition(c: SearchParamClause, b: Binder): string {
  if (c.code === '_id') {
    // Checked, not ignored: dropping `:not` would silently return the opposite set.
    rejectModifier(c.modifier, ['not'], c.key);
    return `r.id ${c.modifier === 'not' ? 'NOT IN' : 'IN'} (${c.values.map((v) => b.bind(v)).join(', ')})`;
  }
  rejectModifier(c.modifier, [], c.key);
  return `(${c.values.map((v) => instantCondition('r.last_updated', v, b, c.key)).join(' OR ')})`;
}

/**
 * `<idCol> [NOT] IN (ids of `type` resources whose index rows for `def` match)`. Takes the id
 * column so that chains apply :missing and :not to the referenced resource, not to the reference.
 */
function matchCondition(
  idCol: string,
  type: string,
  def: SearchParamDef,
  modifier: string | undefined,
  values: string[],
  b: Binder,
  key: string,
): string {
  if (modifier === 'missing') {
    if (values.length !== 1 || (values[0] !== 'true' && values[0] !== 'false')) {
      throw new GatewayError('invalid', { text: `${key} must be true or false`, expression: key });
    }
    const anyRow = `SELECT id FROM ${TABLE[def.kind]} WHERE resource_type = ${b.bind(type)} AND code = ${b.bind(def.code)}`;
    return values[0] === 'true' ? `${idCol} NOT IN (${anyRow})` : `${idCol} IN (${anyRow})`;
  }
  const sub = idSubquery(type, def, modifier, values, b, key);
  return modifier === 'not' ? `${idCol} NOT IN (${sub})` : `${idCol} IN (${sub})`;
}

/** `SELECT id FROM <index> WHERE resource_type = T AND code = C AND (v1 OR v2…)` */
function idSubquery(
  type: string,
  def: SearchParamDef,
  modifier: string | undefined,
  values: string[],
  b: Binder,
  key: string,
): string {
  const ors = values.map((v) => valueCondition(def, modifier, v, b, key));
  return `SELECT id FROM ${TABLE[def.kind]} WHERE resource_type = ${b.bind(type)} AND code = ${b.bind(def.code)} AND (${ors.join(' OR ')})`;
}

function valueCondition(
  def: SearchParamDef,
  modifier: string | undefined,
  value: string,
  b: Binder,
  key: string,
): string {
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

type Bound = () => string;

/**
 * FHIR date comparison between the stored interval [low, high) and the searched one [vl, vh)
 * (R4 §3.1.1.4.2): eq = contained, lt/gt = some part before/after, le/ge include overlap. The
 * bounds are thunks: binding a value the SQL does not use leaves PostgreSQL unable to type it.
 */
const DATE_OPS: Record<Prefix, (low: string, high: string, vl: Bound, vh: Bound) => string> = {
  eq: (low, high, vl, vh) => `(${low} >= ${vl()} AND ${high} <= ${vh()})`,
  ne: (low, high, vl, vh) => `NOT (${low} >= ${vl()} AND ${high} <= ${vh()})`,
  lt: (low, _high, vl) => `${low} < ${vl()}`,
  gt: (_low, high, _vl, vh) => `${high} > ${vh()}`,
  le: (low, _high, _vl, vh) => `${low} < ${vh()}`,
  ge: (_low, high, vl) => `${high} > ${vl()}`,
  sa: (low, _high, _vl, vh) => `${low} >= ${vh()}`,
  eb: (_low, high, vl) => `${high} <= ${vl()}`,
  ap: (low, high, vl, vh) => `(${low} < ${vh()} AND ${high} > ${vl()})`,
};

/**
 * The same comparisons for a column holding an instant t, read as [t, t + ε): written on t alone
 * (`ge` → t >= vl, not t > vl) so that `ge<the instant of a write>` includes that write and the
 * (resource_type, last_updated) index stays usable.
 */
const INSTANT_OPS: Record<Prefix, (t: string, vl: Bound, vh: Bound) => string> = {
  eq: (t, vl, vh) => `(${t} >= ${vl()} AND ${t} < ${vh()})`,
  ne: (t, vl, vh) => `NOT (${t} >= ${vl()} AND ${t} < ${vh()})`,
  lt: (t, vl) => `${t} < ${vl()}`,
  gt: (t, _vl, vh) => `${t} >= ${vh()}`,
  le: (t, _vl, vh) => `${t} < ${vh()}`,
  ge: (t, vl) => `${t} >= ${vl()}`,
  sa: (t, _vl, vh) => `${t} >= ${vh()}`,
  eb: (t, vl) => `${t} < ${vl()}`,
  ap: (t, vl, vh) => `(${t} >= ${vl()} AND ${t} < ${vh()})`,
};

export function dateCondition(
  low: string,
  high: string,
  raw: string,
  b: Binder,
  key: string,
  modifier?: string,
): string {
  rejectModifier(modifier, [], key);
  const { prefix, vl, vh } = dateSearchValue(raw, b, key);
  return DATE_OPS[prefix](low, high, vl, vh);
}

function instantCondition(column: string, raw: string, b: Binder, key: string): string {
  const { prefix, vl, vh } = dateSearchValue(raw, b, key);
  return INSTANT_OPS[prefix](column, vl, vh);
}

/** Prefix and interval bounds (bound on use) of one date search value; 400 when not a date. */
function dateSearchValue(raw: string, b: Binder, key: string): { prefix: Prefix; vl: Bound; vh: Bound } {
  const { prefix, value } = splitPrefix(raw);
  // An unencoded `+` in a query string arrives as a space: `T10:00:00 02:00` meant `+02:00`.
  const range = dateRange(value.replace(/ (\d{2}:\d{2})$/, '+$1'));
  if (!range) {
    throw new GatewayError('invalid', {
      text: `Invalid date "${value}" for ${key}: expected YYYY, YYYY-MM, YYYY-MM-DD or a dateTime`,
      expression: key,
    });
  }
  return { prefix, vl: () => `${b.bind(range.low)}::timestamptz`, vh: () => `${b.bind(range.high)}::timestamptz` };
}

function referenceCondition(
  def: SearchParamDef,
  modifier: string | undefined,
  value: string,
  b: Binder,
  key: string,
): string {
  if (modifier && !def.targets.includes(modifier)) {
    throw new UnsupportedParam(`Modifier ":${modifier}" is not a target type of ${def.code}`);
  }
  const parsed = parseReference(value);
  if (parsed) {
    return `(target_id = ${b.bind(parsed.id)} AND target_type = ${b.bind(parsed.type)})`;
  }
  if (!/^[A-Za-z0-9\-.]{1,64}$/.test(value)) {
    throw new GatewayError('invalid', {
      text: `Invalid reference "${value}" for ${key}: expected Type/id or id`,
      expression: key,
    });
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
  const ops: Partial<Record<Prefix, string>> = {
    eq: '=',
    ne: '<>',
    lt: '<',
    le: '<=',
    gt: '>',
    ge: '>=',
    sa: '>',
    eb: '<',
  };
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

function chainSubquery(
  type: string,
  def: SearchParamDef,
  c: SearchParamClause,
  registry: SearchParamRegistry,
  b: Binder,
  visible?: Visibility,
): string {
  if (def.kind !== 'reference' || !c.chain) {
    throw new UnsupportedParam(`Chaining is only possible on reference parameters, not ${c.code}`);
  }
  const { targetType, code, modifier } = c.chain;
  // A type the parameter cannot point at would silently match nothing: report it instead.
  if (targetType && !def.targets.includes(targetType)) {
    throw new UnsupportedParam(`${targetType} is not a target type of ${def.code} (${def.targets.join(', ')})`);
  }
  const inner: string[] = [];
  for (const target of targetType ? [targetType] : def.targets) {
    const targetDef = registry.get(target, code);
    if (code === '_id') {
      rejectModifier(modifier, [], c.key);
      inner.push(`(target_type = ${b.bind(target)} AND target_id = ANY(${b.bind(c.values)}::text[]))`);
    } else if (targetDef) {
      inner.push(
        `(target_type = ${b.bind(target)} AND ${matchCondition('target_id', target, targetDef, modifier, c.values, b, c.key)})`,
      );
    } else {
      continue;
    }
    // Matching on a referenced resource the caller may not read would leak its content.
    const filter = visible?.('t');
    if (filter) {
      // Correlated (a primary-key probe per candidate), not `IN (every readable resource of the type)`.
      inner[inner.length - 1] =
        `(${inner[inner.length - 1]} AND EXISTS (SELECT 1 FROM resource t WHERE t.resource_type = ${b.bind(target)} AND t.id = sp_reference.target_id AND ${filter}))`;
    }
  }
  if (inner.length === 0) {
    throw new UnsupportedParam(
      `Unknown chained parameter "${code}" on ${(targetType ? [targetType] : def.targets).join('/')}`,
    );
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
        throw new GatewayError('invalid', {
          text: `Cannot sort ${req.resourceType} by "${s.code}"`,
          expression: '_sort',
        });
      }
      const col =
        def.kind === 'date' ? (s.descending ? 'max(high)' : 'min(low)') : s.descending ? 'max(value)' : 'min(value)';
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
