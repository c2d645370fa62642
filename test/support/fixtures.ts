import type { Patient } from '@medplum/fhirtypes';

/** INS-NIR system for test and demo patients (DOMAIN.md §3: test data uses 1.2.250.1.213.1.4.10). */
export const INS_TEST = 'urn:oid:1.2.250.1.213.1.4.10';

/** A patient identified by a test INS-NIR, with an official name, sex and birth date. */
export function insPatient(nir: string, family = 'Martin', extra: Partial<Patient> = {}): Patient {
  return {
    resourceType: 'Patient',
    identifier: [{ system: INS_TEST, value: nir }],
    name: [{ use: 'official', family, given: ['Claire'] }],
    gender: 'female',
    birthDate: '1980-02-27',
    ...extra,
  };
}
