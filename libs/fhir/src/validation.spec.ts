import type { OperationOutcomeIssue, Patient } from '@medplum/fhirtypes';
import { join } from 'node:path';
import { GatewayError } from '@gw/platform';
import { GW_PATIENT_PROFILE, RELIABILITY_EXTENSION, insProblem, nirKey } from './fr-core';
import { ProfileRegistry } from './profiles';
import { validateForWrite } from './validation';

const INS_NIR_TEST = 'urn:oid:1.2.250.1.213.1.4.10';
const GOOD = `2790363220004${nirKey('2790363220004')}`;
const BAD_KEY = `2790363220004${nirKey('2790363220004') === '90' ? '91' : '90'}`;

let profiles: ProfileRegistry;
beforeAll(() => {
  profiles = ProfileRegistry.fromDirectory(join(__dirname, '../../../fhir-profiles'));
});

function patient(ins: string | undefined, status?: string, profiled = false): Patient {
  return {
    resourceType: 'Patient',
    ...(profiled ? { meta: { profile: [GW_PATIENT_PROFILE] } } : {}),
    identifier: [
      { system: 'urn:oid:1.2.250.1.71.4.2.2.10000', value: 'IPP1' },
      ...(ins ? [{ use: 'official' as const, system: INS_NIR_TEST, value: ins }] : []),
    ],
    name: [{ use: 'official', family: 'MARTIN', given: ['JULES'] }],
    birthDate: '1979-03-28',
    gender: 'female',
    ...(status
      ? {
          extension: [
            { url: RELIABILITY_EXTENSION, extension: [{ url: 'identityStatus', valueCoding: { code: status } }] },
          ],
        }
      : {}),
  };
}

function issuesOf(p: Patient): OperationOutcomeIssue[] {
  try {
    validateForWrite(p, profiles);
    return [];
  } catch (err) {
    if (err instanceof GatewayError) {
      return err.issues;
    }
    throw err;
  }
}

describe('INS rules of every Patient write', () => {
  it('checks the INS-NIR key and format, Corsica included, without repeating the value', () => {
    expect(insProblem('INS-NIR', GOOD)).toBeUndefined();
    expect(insProblem('INS-NIR', BAD_KEY)).toEqual({
      problem: 'key',
      reason: expect.not.stringContaining(BAD_KEY.slice(0, 13)),
    });
    expect(insProblem('INS-NIR', '27903632200')?.problem).toBe('format');
    expect(insProblem('INS-NIR', '279035121518989')).toBeUndefined();
    expect(insProblem('INS-NIR', '279035121518988')?.problem).toBe('key');
    expect(insProblem('INS-NIR', `185032A123456${nirKey('185032A123456')}`)).toBeUndefined();
    expect(insProblem('INS-NIA', `7790363220004${nirKey('7790363220004')}`)).toBeUndefined();
    expect(insProblem('INS-NIR', `7790363220004${nirKey('7790363220004')}`)?.problem).toBe('format');
  });

  it.each([false, true])(
    'refuses an INS-NIR with a wrong key at Patient.identifier[1] (profile declared: %s)',
    (profiled) => {
      const issues = issuesOf(patient(BAD_KEY, 'PROV', profiled));
      expect(issues).toContainEqual(
        expect.objectContaining({
          severity: 'error',
          expression: ['Patient.identifier[1]'],
          details: { text: expect.stringContaining('key') },
        }),
      );
      expect(JSON.stringify(issues)).not.toContain(BAD_KEY);
    },
  );

  it('refuses a wrong format on a plain R4 Patient (the profile says it when declared)', () => {
    expect(issuesOf(patient('27903632200', undefined))).toContainEqual(
      expect.objectContaining({ expression: ['Patient.identifier[1]'] }),
    );
    const profiled = issuesOf(patient('27903632200', undefined, true)).filter(
      (i) => i.expression?.[0] === 'Patient.identifier[1]',
    );
    expect(profiled).toHaveLength(1);
  });

  it.each(['QUAL', 'RECUP'])('refuses %s without a valid INS, on a plain R4 Patient too', (status) => {
    expect(issuesOf(patient(undefined, status))).toContainEqual(
      expect.objectContaining({
        expression: ['Patient.extension[0]'],
        details: { text: expect.stringContaining(status) },
      }),
    );
    expect(issuesOf(patient(BAD_KEY, status, true))).toContainEqual(
      expect.objectContaining({ expression: ['Patient.extension[0]'] }),
    );
  });

  it('accepts a valid qualified INS, a provisional identity without INS, and VALI without INS (ID document checked, INSi not queried)', () => {
    expect(issuesOf(patient(GOOD, 'QUAL'))).toEqual([]);
    expect(issuesOf(patient(GOOD, 'QUAL', true))).toEqual([]);
    expect(issuesOf(patient(undefined, 'PROV'))).toEqual([]);
    expect(issuesOf(patient(undefined, 'VALI', true))).toEqual([]);
  });

  it('an old INS does not make an identity qualified', () => {
    const p = patient(undefined, 'QUAL');
    p.identifier?.push({ use: 'old', system: INS_NIR_TEST, value: GOOD });
    expect(issuesOf(p)).toContainEqual(expect.objectContaining({ expression: ['Patient.extension[0]'] }));
  });
});

describe('base64Binary with whitespace (R4 allows it between groups)', () => {
  const doc = (data: string): Parameters<typeof validateForWrite>[0] => ({
    resourceType: 'DocumentReference',
    status: 'current',
    content: [{ attachment: { contentType: 'text/plain', data } }],
  });

  it('accepts MIME-wrapped base64 (line breaks between groups of four)', () => {
    expect(() => validateForWrite(doc('SGVsbG8g\r\nV29ybGQg\nZnJvbSBGSElS\n'))).not.toThrow();
  });

  it('still refuses what is not base64 once the whitespace is ignored, naming the element', () => {
    let err: unknown;
    try {
      validateForWrite(doc('SGVsbG8g\n*29ybGQ='));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).issues.map((i) => i.expression?.[0])).toContain(
      'DocumentReference.content[0].attachment.data',
    );
  });
});
