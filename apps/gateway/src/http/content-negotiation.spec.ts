import { notAcceptableReason } from './content-negotiation';

describe('notAcceptableReason', () => {
  it('accepts JSON, FHIR JSON, NDJSON, wildcards and no preference', () => {
    for (const accept of [
      undefined,
      '',
      'application/fhir+json',
      'application/json',
      'application/fhir+json, */*; q=0.1',
      '*/*',
      'application/fhir+ndjson',
      'application/fhir+xml;q=1, application/fhir+json;q=0.5',
      'text/html,application/xhtml+xml,*/*;q=0.8',
    ]) {
      expect(notAcceptableReason(accept, undefined)).toBeUndefined();
    }
    for (const format of ['json', 'application/fhir+json', 'application/fhir json', 'application/json']) {
      expect(notAcceptableReason('application/fhir+xml', format)).toBeUndefined();
    }
  });

  it('refuses XML, Turtle, JSON at q=0 and non-JSON _format values', () => {
    for (const accept of [
      'application/fhir+xml',
      'application/xml',
      'text/xml',
      'application/fhir+turtle',
      'application/fhir+json;q=0, application/fhir+xml',
    ]) {
      expect(notAcceptableReason(accept, undefined)).toMatch(/not supported/);
    }
    for (const format of ['xml', 'application/fhir xml', 'text/xml', 'ttl', 'html']) {
      expect(notAcceptableReason(undefined, format)).toMatch(/_format/);
    }
  });
});
