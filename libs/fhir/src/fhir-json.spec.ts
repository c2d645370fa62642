import { carryDecimals, nonCanonicalNumbers, parseFhirJson, stringifyFhirJson } from './fhir-json';

describe('FHIR JSON keeping decimal precision', () => {
  const text =
    '{"resourceType":"Observation","valueQuantity":{"value":1.00,"unit":"mg"},"component":[{"valueQuantity":{"value":0.10}},{"valueQuantity":{"value":1e2}},{"valueInteger":3}],"note":[{"text":"1.00 in a string stays a string: \\"2.50\\""}],"x":-0.0}';

  it('finds only numbers that would not print back as written, never inside strings', () => {
    expect(nonCanonicalNumbers(text).map((t) => t.text)).toEqual(['1.00', '0.10', '1e2', '-0.0']);
  });

  it('parses decimals as numbers and writes them back with their original text', () => {
    const parsed = parseFhirJson(text) as {
      valueQuantity: { value: unknown };
      component: { valueQuantity?: { value: unknown } }[];
      note: { text: string }[];
    };
    expect(parsed.valueQuantity.value).toBe(1);
    expect(parsed.component[0].valueQuantity?.value).toBe(0.1);
    expect(parsed.component[1].valueQuantity?.value).toBe(100);
    expect(parsed.note[0].text).toBe('1.00 in a string stays a string: "2.50"');
    expect(stringifyFhirJson(parsed)).toBe(text);
  });

  it('writes the new value when a decimal was changed after parsing', () => {
    const parsed = parseFhirJson('{"a":{"v":1.50,"w":2.0}}') as { a: { v: number; w: number } };
    parsed.a.v = 1.75;
    expect(stringifyFhirJson(parsed)).toBe('{"a":{"v":1.75,"w":2.0}}');
  });

  it('keeps the texts of a shallow copy given carryDecimals, nested ones without', () => {
    const parsed = parseFhirJson('{"top":5.0,"n":{"v":3.10}}') as Record<string, unknown>;
    expect(stringifyFhirJson(carryDecimals(parsed, { ...parsed, id: 'x' }))).toBe(
      '{"top":5.0,"n":{"v":3.10},"id":"x"}',
    );
  });

  it('reports malformed JSON as JSON.parse does for the text received', () => {
    expect(() => parseFhirJson('{"a":1.00,}')).toThrow(SyntaxError);
    let message = '';
    try {
      JSON.parse('{"a":1.00,}');
    } catch (e) {
      message = (e as Error).message;
    }
    expect(() => parseFhirJson('{"a":1.00,}')).toThrow(message);
  });
});
