import type { GatewayError } from '@gw/platform';
import type { Principal } from '../repository/access.policy';
import { validateExportParams } from './bulk-export.params';
import type { RawExportParams } from './bulk-export.params';

const all: Principal = { clientId: 'c', organization: 'Organization/o', admin: false, scopes: ['system/*.rs'] };
const raw = (r: Partial<RawExportParams>): RawExportParams => ({ unsupported: [], lenient: false, ...r });

function refusal(p: Principal, r: Partial<RawExportParams>): { category: string; text: string } {
  try {
    validateExportParams(p, raw(r));
  } catch (err) {
    const e = err as GatewayError;
    return { category: e.category, text: e.message };
  }
  throw new Error('expected a refusal');
}

describe('bulk export parameters', () => {
  it('keeps the requested types in export order, from a comma list or repeated _type', () => {
    expect(validateExportParams(all, raw({ _type: ['Observation,Patient', 'Encounter'] })).types).toEqual([
      'Patient',
      'Encounter',
      'Observation',
    ]);
  });

  it('names an unknown type, and refuses a type outside the Patient compartment', () => {
    expect(refusal(all, { _type: ['Patient,Frobnicator'] })).toEqual({
      category: 'invalid',
      text: '_type: unknown resource type Frobnicator',
    });
    expect(refusal(all, { _type: ['Organization'] }).category).toBe('invalid');
  });

  it('accepts only FHIR instants for _since and ndjson output formats', () => {
    expect(validateExportParams(all, raw({ _since: ['2025-01-01T00:00:00+01:00'] })).since).toBe(
      '2025-01-01T00:00:00+01:00',
    );
    for (const since of ['2025-01-01', 'yesterday', '2025-13-01T00:00:00Z']) {
      expect(refusal(all, { _since: [since] }).category).toBe('invalid');
    }
    for (const f of ['application/fhir+ndjson', 'application/ndjson', 'ndjson']) {
      expect(() => validateExportParams(all, raw({ _outputFormat: [f] }))).not.toThrow();
    }
    expect(refusal(all, { _outputFormat: ['text/csv'] }).category).toBe('invalid');
  });

  it('refuses unsupported parameters unless the client asked for lenient handling', () => {
    expect(refusal(all, { unsupported: ['_typeFilter'] }).text).toContain('_typeFilter');
    expect(() => validateExportParams(all, raw({ unsupported: ['_typeFilter'], lenient: true }))).not.toThrow();
  });

  it('needs read on Group; refuses an explicit type outside the scopes, skips it when no _type is given', () => {
    const narrow: Principal = { ...all, scopes: ['system/Group.rs', 'system/Patient.r', 'system/Observation.s'] };
    expect(refusal({ ...all, scopes: ['system/Patient.rs'] }, {}).category).toBe('forbidden');
    expect(refusal(narrow, { _type: ['Observation'] })).toEqual({
      category: 'forbidden',
      text: "The client's scopes do not allow reading Observation",
    });
    const p = validateExportParams(narrow, raw({}));
    expect(p.types).toEqual(['Patient', 'Group']);
    expect(p.skipped).toContain('Observation');
  });
});
