import type { Observation } from '@medplum/fhirtypes';
import { rewriteReferences } from './bundle.processor';

const PATIENT = 'urn:uuid:0b5f3c1e-8a77-4c1e-9f0e-1d2a3b4c5d6e';
const ENCOUNTER = 'urn:uuid:5a1d7c2e-0f3b-4e8a-b6c9-7d1e2f3a4b5c';
const resolved = new Map([
  [PATIENT, 'Patient/3f9e'],
  [ENCOUNTER, 'Encounter/77ab'],
]);

describe('rewriteReferences (transaction Bundle urn:uuid references)', () => {
  it('rewrites every reference to a Bundle fullUrl, however deep, in arrays and in contained resources', () => {
    const obs: Observation = {
      resourceType: 'Observation',
      status: 'final',
      code: { text: 'HbA1c' },
      subject: { reference: PATIENT },
      encounter: { reference: ENCOUNTER, display: 'séjour' },
      performer: [{ reference: 'Practitioner/known' }, { reference: PATIENT }],
      extension: [{ url: 'https://example.org/about', valueReference: { reference: ENCOUNTER } }],
      contained: [
        {
          resourceType: 'Provenance',
          target: [{ reference: PATIENT }],
          recorded: '2026-01-01T00:00:00Z',
          agent: [{ who: { reference: ENCOUNTER } }],
        },
      ],
    };
    rewriteReferences(obs, resolved);
    expect(obs.subject).toEqual({ reference: 'Patient/3f9e' });
    expect(obs.encounter).toEqual({ reference: 'Encounter/77ab', display: 'séjour' });
    expect(obs.performer).toEqual([{ reference: 'Practitioner/known' }, { reference: 'Patient/3f9e' }]);
    expect(obs.extension?.[0]?.valueReference).toEqual({ reference: 'Encounter/77ab' });
    expect(obs.contained?.[0]).toMatchObject({
      target: [{ reference: 'Patient/3f9e' }],
      agent: [{ who: { reference: 'Encounter/77ab' } }],
    });
  });

  it('leaves alone a urn:uuid that is not a fullUrl of the Bundle, and the same text outside a reference', () => {
    const other = 'urn:uuid:99999999-9999-4999-8999-999999999999';
    const obs: Observation = {
      resourceType: 'Observation',
      status: 'final',
      code: { text: PATIENT },
      identifier: [{ system: 'urn:ietf:rfc:3986', value: PATIENT }],
      subject: { reference: other },
    };
    rewriteReferences(obs, resolved);
    expect(obs.subject).toEqual({ reference: other });
    expect(obs.identifier).toEqual([{ system: 'urn:ietf:rfc:3986', value: PATIENT }]);
    expect(obs.code.text).toBe(PATIENT);
  });

  it('accepts an entry without a resource (DELETE, GET)', () => {
    expect(() => rewriteReferences(undefined, resolved)).not.toThrow();
  });
});
