import { GatewayError } from '@gw/platform';
import { parseSearchRequest, splitPrefix, splitValues } from './search-request';

const LIMITS = { defaultCount: 20, maxCount: 100 };
const INS_TEST = 'urn:oid:1.2.250.1.213.1.4.10';

function parse(query: string, type = 'Patient') {
  return parseSearchRequest(type, [...new URLSearchParams(query)], LIMITS);
}

function errorOf(fn: () => unknown): GatewayError {
  try {
    fn();
  } catch (err) {
    if (err instanceof GatewayError) {
      return err;
    }
    throw err;
  }
  throw new Error('expected a GatewayError');
}

describe('parseSearchRequest', () => {
  it('keeps one clause per parameter (AND) and splits comma-separated values (OR)', () => {
    const req = parse(
      `identifier=${encodeURIComponent(`${INS_TEST}|280027511204588`)}&gender=male,female&birthdate=ge1980&birthdate=lt1981`,
    );
    expect(req.clauses).toEqual([
      { key: 'identifier', code: 'identifier', modifier: undefined, values: [`${INS_TEST}|280027511204588`] },
      { key: 'gender', code: 'gender', modifier: undefined, values: ['male', 'female'] },
      { key: 'birthdate', code: 'birthdate', modifier: undefined, values: ['ge1980'] },
      { key: 'birthdate', code: 'birthdate', modifier: undefined, values: ['lt1981'] },
    ]);
  });

  it('reads modifiers and keeps accents of values intact', () => {
    expect(parse('family:exact=Lefèvre').clauses[0]).toEqual({
      key: 'family:exact',
      code: 'family',
      modifier: 'exact',
      values: ['Lefèvre'],
    });
    expect(parse('gender:missing=true').clauses[0]).toMatchObject({
      code: 'gender',
      modifier: 'missing',
      values: ['true'],
    });
  });

  it('reads a typed chain, an untyped chain and a modifier on the chained parameter', () => {
    const [typed, untyped, modified] = parse(
      'subject:Patient.identifier=x&subject.identifier=y&subject:Patient.family:exact=Lefèvre',
      'Encounter',
    ).clauses;
    expect(typed).toMatchObject({
      key: 'subject:Patient.identifier',
      code: 'subject',
      chain: { targetType: 'Patient', code: 'identifier' },
    });
    expect(typed.modifier).toBeUndefined();
    expect(untyped).toMatchObject({
      code: 'subject',
      chain: { targetType: undefined, code: 'identifier' },
      values: ['y'],
    });
    expect(modified).toMatchObject({
      code: 'subject',
      chain: { targetType: 'Patient', code: 'family', modifier: 'exact' },
    });
  });

  it('ignores parameters with an empty value and empty alternatives', () => {
    const req = parse('family=&gender=female,,&_count=&_sort=');
    expect(req.clauses).toEqual([{ key: 'gender', code: 'gender', modifier: undefined, values: ['female'] }]);
    expect(req.count).toBe(20);
    expect(req.sort).toEqual([]);
  });

  it('applies _count within the configured maximum, and _offset', () => {
    expect(parse('').count).toBe(20);
    expect(parse('_count=5&_offset=10')).toMatchObject({ count: 5, offset: 10 });
    expect(parse('_count=5000').count).toBe(100);
    expect(parse('_count=0').count).toBe(0);
  });

  it.each(['_count=-1', '_count=abc', '_offset=1.5'])('rejects %s with a 400 naming the parameter', (q) => {
    const err = errorOf(() => parse(q));
    expect(err.status).toBe(400);
    expect(err.issues[0].expression).toEqual([q.split('=')[0]]);
  });

  it('reads _sort keys in order, a leading minus meaning descending', () => {
    expect(parse('_sort=-birthdate,family').sort).toEqual([
      { code: 'birthdate', descending: true },
      { code: 'family', descending: false },
    ]);
  });

  it('reads _include and _revinclude, with an optional target type', () => {
    const req = parse('_include=Encounter:subject:Patient&_revinclude=Encounter:subject', 'Encounter');
    expect(req.include).toEqual([{ key: '_include', sourceType: 'Encounter', code: 'subject', targetType: 'Patient' }]);
    expect(req.revinclude).toEqual([
      { key: '_revinclude', sourceType: 'Encounter', code: 'subject', targetType: undefined },
    ]);
  });

  it('leaves _include:iterate as a clause, so that the store reports it unsupported rather than half-applying it', () => {
    const req = parse('_include:iterate=Encounter:participant', 'Encounter');
    expect(req.include).toEqual([]);
    expect(req.clauses).toEqual([
      { key: '_include:iterate', code: '_include', modifier: 'iterate', values: ['Encounter:participant'] },
    ]);
  });

  it('rejects an _include without a parameter', () => {
    expect(errorOf(() => parse('_include=Encounter')).issues[0].expression).toEqual(['_include']);
  });

  it('reads _total and _summary=count, and rejects an unknown _total', () => {
    expect(parse('_total=accurate&_summary=count')).toMatchObject({ total: 'accurate', summaryCount: true });
    expect(parse('_summary=true').summaryCount).toBe(false);
    expect(errorOf(() => parse('_total=toujours')).issues[0].expression).toEqual(['_total']);
  });

  it('does not turn presentation parameters into filters', () => {
    expect(parse('_format=json&_pretty=true&_elements=name').clauses).toEqual([]);
  });
});

describe('splitValues', () => {
  it('splits on commas, honouring FHIR escapes', () => {
    expect(splitValues('a,b')).toEqual(['a', 'b']);
    expect(splitValues('Dupont\\, Jean,Martin')).toEqual(['Dupont, Jean', 'Martin']);
    expect(splitValues('a\\\\b')).toEqual(['a\\b']);
    expect(splitValues('x\\y')).toEqual(['x\\y']);
  });
});

describe('splitPrefix', () => {
  it('splits a comparison prefix followed by a date or number', () => {
    expect(splitPrefix('ge2024-01-01')).toEqual({ prefix: 'ge', value: '2024-01-01' });
    expect(splitPrefix('lt1980')).toEqual({ prefix: 'lt', value: '1980' });
    expect(splitPrefix('ne-5')).toEqual({ prefix: 'ne', value: '-5' });
  });

  it('defaults to eq when there is no prefix', () => {
    expect(splitPrefix('1980-02-27')).toEqual({ prefix: 'eq', value: '1980-02-27' });
    expect(splitPrefix('ge')).toEqual({ prefix: 'eq', value: 'ge' });
    expect(splitPrefix('gender')).toEqual({ prefix: 'eq', value: 'gender' });
  });
});
