import type { Quantity, Resource, RiskAssessmentPrediction } from '@medplum/fhirtypes';
import { GatewayError } from '@gw/platform';
import { loadFhirDefinitions } from './definitions';
import { validateForWrite } from './validation';

beforeAll(() => loadFhirDefinitions());

/** The issues of a write as `expression: text`, or [] when it is accepted. */
function issuesOf(resource: Resource): string[] {
  try {
    validateForWrite(resource);
    return [];
  } catch (err) {
    if (err instanceof GatewayError) {
      return err.issues.map((i) => `${i.expression?.join(',') ?? ''}: ${i.details?.text ?? ''}`);
    }
    throw err;
  }
}

const codeSystem = (code: string): Resource => ({
  resourceType: 'CodeSystem',
  status: 'active',
  content: 'complete',
  concept: [{ code, display: 'x' }],
});

const percent = (value: number): Quantity => ({ value, unit: '%', system: 'http://unitsofmeasure.org', code: '%' });

const risk = (prediction: RiskAssessmentPrediction): Resource => ({
  resourceType: 'RiskAssessment',
  status: 'final',
  subject: { reference: 'Patient/p1' },
  prediction: [prediction],
});

describe('validation: what R4 allows and medplum refuses', () => {
  it('accepts a narrative over 1 MB (xhtml has no size limit) and still refuses a string over 1 MB', () => {
    const big = 'a'.repeat(1024 * 1024 + 1);
    const div = `<div xmlns="http://www.w3.org/1999/xhtml">${big}</div>`;
    expect(
      issuesOf({ resourceType: 'Basic', code: { text: 'x' }, text: { status: 'generated', div } } as Resource),
    ).toEqual([]);
    expect(issuesOf({ resourceType: 'Basic', code: { text: big } })).toEqual([
      'Basic.code.text: String cannot be larger than 1 MB',
    ]);
  });

  it('takes U+00A0 as content in a code and a string (R4 regexes are XML Schema ones), not a space or a trailing space', () => {
    expect(issuesOf(codeSystem('KIDN\u00a0'))).toEqual([]);
    expect(issuesOf(codeSystem('\u00a0'))).toEqual([]);
    expect(issuesOf({ resourceType: 'Basic', code: { text: '\u00a0' } })).toEqual([]);
    expect(issuesOf(codeSystem('KIDN '))).toEqual(['CodeSystem.concept[0].code: Invalid code format']);
    expect(issuesOf(codeSystem(' '))).toEqual([
      'CodeSystem.concept[0].code: String must contain non-whitespace content',
    ]);
    expect(issuesOf(codeSystem('\u00a0 '))).toEqual([
      'CodeSystem.concept[0].code: String must contain non-whitespace content',
    ]);
  });

  it('accepts a RiskAssessment prediction without a probability (ras-2), alone or in a Bundle, and refuses one over 100', () => {
    const qualitative = { outcome: { text: 'weakness' }, qualitativeRisk: { text: 'moderate' } };
    expect(issuesOf(risk(qualitative))).toEqual([]);
    expect(issuesOf(risk({ probabilityRange: { low: percent(1), high: percent(5) } }))).toEqual([]);
    expect(
      issuesOf({
        resourceType: 'Bundle',
        type: 'collection',
        entry: [{ fullUrl: 'urn:uuid:1', resource: risk(qualitative) }],
      } as Resource),
    ).toEqual([]);
    expect(issuesOf(risk({ probabilityDecimal: 150 }))).toEqual([
      'RiskAssessment.prediction[0]: Constraint ras-2 not met: Must be <= 100',
    ]);
  });
});
