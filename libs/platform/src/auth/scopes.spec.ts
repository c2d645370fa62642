import { isValidScope, parseScope, scopeAllows, scopeWithin } from './scopes';

const actions = (scope: string): string[] | undefined => {
  const p = parseScope(scope);
  return p ? [...p.actions].sort() : undefined;
};

describe('parseScope', () => {
  it('parses SMART v2 system scopes on a type and on every type', () => {
    expect(parseScope('system/Patient.rs')?.type).toBe('Patient');
    expect(actions('system/Patient.rs')).toEqual(['r', 's']);
    expect(parseScope('system/*.cruds')?.type).toBe('*');
    expect(actions('system/*.cruds')).toEqual(['c', 'd', 'r', 's', 'u']);
    expect(actions('system/Observation.c')).toEqual(['c']);
    expect(actions('system/Task.cu')).toEqual(['c', 'u']);
  });

  it('maps the SMART v1 forms read, write and * onto v2 actions', () => {
    expect(actions('system/*.read')).toEqual(['r', 's']);
    expect(actions('system/Patient.write')).toEqual(['c', 'd', 'u']);
    expect(actions('system/Patient.*')).toEqual(['c', 'd', 'r', 's', 'u']);
  });

  it.each([
    ['a patient-context scope', 'patient/Patient.rs'],
    ['a user-context scope', 'user/*.cruds'],
    ['an OpenID scope', 'openid'],
    ['an empty string', ''],
    ['no actions', 'system/Patient.'],
    ['no type', 'system/.rs'],
    ['v2 actions out of order', 'system/Patient.sr'],
    ['a repeated action', 'system/Patient.rr'],
    ['an unknown action letter', 'system/Patient.rx'],
    ['an unknown v1 action', 'system/Patient.readwrite'],
    ['a double wildcard action', 'system/*.**'],
    ['a lower-case type', 'system/patient.rs'],
    ['surrounding spaces', ' system/Patient.rs'],
    ['a name of Object.prototype as action', 'system/Patient.constructor'],
    ['another prototype name as action', 'system/*.__proto__'],
    [
      'a granular (query-restricted) scope, which the gateway cannot enforce',
      'system/Observation.rs?category=laboratory',
    ],
  ])('rejects %s', (_what, scope) => {
    expect(() => parseScope(scope)).not.toThrow();
    expect(parseScope(scope)).toBeUndefined();
    expect(isValidScope(scope)).toBe(false);
  });
});

describe('scopeAllows', () => {
  it('allows exactly the actions granted on the type', () => {
    const granted = ['system/Patient.rs'];
    expect(scopeAllows(granted, 'Patient', 'r')).toBe(true);
    expect(scopeAllows(granted, 'Patient', 's')).toBe(true);
    expect(scopeAllows(granted, 'Patient', 'c')).toBe(false);
    expect(scopeAllows(granted, 'Patient', 'u')).toBe(false);
    expect(scopeAllows(granted, 'Patient', 'd')).toBe(false);
    expect(scopeAllows(granted, 'Observation', 'r')).toBe(false);
  });

  it('applies a wildcard type to every type', () => {
    expect(scopeAllows(['system/*.cruds'], 'Encounter', 'd')).toBe(true);
    expect(scopeAllows(['system/*.read'], 'Encounter', 's')).toBe(true);
    expect(scopeAllows(['system/*.read'], 'Encounter', 'c')).toBe(false);
  });

  it('combines several granted scopes', () => {
    const granted = ['system/Patient.rs', 'system/Observation.c', 'system/Task.write'];
    expect(scopeAllows(granted, 'Observation', 'c')).toBe(true);
    expect(scopeAllows(granted, 'Observation', 'r')).toBe(false);
    expect(scopeAllows(granted, 'Task', 'u')).toBe(true);
    expect(scopeAllows(granted, 'Task', 'r')).toBe(false);
  });

  it('grants nothing from invalid scopes, nor from none', () => {
    expect(scopeAllows([], 'Patient', 'r')).toBe(false);
    expect(scopeAllows(['patient/Patient.rs', 'openid', 'system/Patient.constructor'], 'Patient', 'r')).toBe(false);
  });

  it('does not treat a granular scope as unrestricted access to the type', () => {
    expect(scopeAllows(['system/Observation.rs?category=laboratory'], 'Observation', 's')).toBe(false);
  });
});

describe('scopeWithin', () => {
  it('accepts a request equal to, or narrower than, what the client has', () => {
    expect(scopeWithin('system/Patient.rs', ['system/Patient.rs'])).toBe(true);
    expect(scopeWithin('system/Patient.r', ['system/Patient.rs'])).toBe(true);
    expect(scopeWithin('system/Patient.rs', ['system/*.cruds'])).toBe(true);
    expect(scopeWithin('system/*.rs', ['system/*.cruds'])).toBe(true);
  });

  it('accepts actions spread over several allowed scopes', () => {
    expect(scopeWithin('system/Patient.crs', ['system/Patient.c', 'system/*.rs'])).toBe(true);
  });

  it('mixes v1 and v2 forms', () => {
    expect(scopeWithin('system/*.read', ['system/*.rs'])).toBe(true);
    expect(scopeWithin('system/Patient.rs', ['system/*.read'])).toBe(true);
    expect(scopeWithin('system/Patient.write', ['system/Patient.cud'])).toBe(true);
    expect(scopeWithin('system/*.write', ['system/*.read'])).toBe(false);
    expect(scopeWithin('system/Patient.*', ['system/*.cruds'])).toBe(true);
  });

  it('refuses more actions than allowed', () => {
    expect(scopeWithin('system/Patient.cruds', ['system/Patient.rs'])).toBe(false);
    expect(scopeWithin('system/Patient.rs', ['system/Patient.r'])).toBe(false);
  });

  it('refuses a wildcard type when only some types are allowed', () => {
    expect(scopeWithin('system/*.rs', ['system/Patient.rs'])).toBe(false);
    expect(scopeWithin('system/*.r', ['system/Patient.rs', 'system/Observation.rs'])).toBe(false);
  });

  it('refuses another type', () => {
    expect(scopeWithin('system/Observation.rs', ['system/Patient.rs'])).toBe(false);
  });

  it('refuses invalid requests, and grants nothing from invalid allowed scopes', () => {
    expect(scopeWithin('patient/Patient.rs', ['system/*.cruds'])).toBe(false);
    expect(scopeWithin('openid', ['system/*.cruds'])).toBe(false);
    expect(scopeWithin('system/Patient.constructor', ['system/*.cruds'])).toBe(false);
    expect(scopeWithin('system/Patient.rs', ['patient/Patient.rs'])).toBe(false);
    expect(scopeWithin('system/Patient.rs', [])).toBe(false);
  });

  it('refuses to widen a granular scope into the whole type', () => {
    expect(scopeWithin('system/Observation.rs', ['system/Observation.rs?category=laboratory'])).toBe(false);
  });
});
