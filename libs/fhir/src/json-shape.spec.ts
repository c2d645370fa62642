import { JsonShapeError, checkJsonShape } from './json-shape';

const LIMITS = { maxDepth: 8, maxArrayItems: 5, maxStringChars: 20 };

function refusal(text: string): { limit: string; path: string; message: string } {
  try {
    checkJsonShape(text, LIMITS);
  } catch (err) {
    const e = err as JsonShapeError;
    return { limit: e.limit, path: e.path, message: e.message };
  }
  throw new Error('accepted');
}

describe('checkJsonShape', () => {
  it('accepts a body within every bound, whatever its strings contain', () => {
    expect(() =>
      checkJsonShape(
        '{"resourceType":"Patient","name":[{"given":["A","B"],"family":"x\\"y{[,"}],"active":true,"n":-1.5e3}',
        LIMITS,
      ),
    ).not.toThrow();
  });

  it('names the array that is too long, with the resource type', () => {
    const r = refusal('{"resourceType":"Patient","identifier":[1,2,3,4,5,6]}');
    expect(r).toMatchObject({ limit: 'array', path: 'Patient.identifier' });
    expect(r.message).toContain('GW_JSON_MAX_ARRAY_ITEMS');
    expect(refusal('{"resourceType":"Bundle","entry":[{"resource":{"given":[{},{},{},{},{},{}]}}]}').path).toBe(
      'Bundle.entry[0].resource.given',
    );
  });

  it('refuses nesting too deep and strings too long', () => {
    expect(refusal('[[[[[[[[[[]]]]]]]]]]').limit).toBe('depth');
    expect(refusal('{"a":{"b":"012345678901234567890"}}')).toMatchObject({ limit: 'string', path: '$.a.b' });
  });

  it('refuses prototype keys anywhere, even written with escapes', () => {
    expect(refusal('{"resourceType":"Patient","__proto__":{"admin":true}}')).toMatchObject({
      limit: 'key',
      path: 'Patient.__proto__',
    });
    expect(refusal('{"a":[{"constructor":1}]}').path).toBe('$.a[0].constructor');
    expect(refusal('{"a":{"\\u0070rototype":1}}').limit).toBe('key');
  });

  it('refuses NUL and unpaired surrogates written as escapes, not paired ones', () => {
    expect(refusal('{"resourceType":"Patient","name":[{"family":"A\\u0000"}]}')).toMatchObject({
      limit: 'character',
      path: 'Patient.name[0].family',
    });
    expect(refusal('{"a":"\\ud800x"}').limit).toBe('character');
    expect(refusal('{"a":"x\\udc00"}').limit).toBe('character');
    expect(() => checkJsonShape('{"a":"\\ud83d\\ude00 \\\\u0000"}', LIMITS)).not.toThrow();
  });

  it('stops at the first offending item of a huge array', () => {
    const huge = `[${'0,'.repeat(1_000_000)}0]`;
    const started = process.hrtime.bigint();
    expect(() => checkJsonShape(huge, LIMITS)).toThrow(JsonShapeError);
    expect(Number(process.hrtime.bigint() - started) / 1e6).toBeLessThan(50);
  });
});
