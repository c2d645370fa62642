import { insProblem } from '@gw/fhir';
import type { PatientTraits } from '../intake/extraction';

/** INS-NIR (production OID): HPRIM carries no OID; test NIRs are told apart by the identity rules, not here. */
export const INS_NIR_OID = '1.2.250.1.213.1.4.8';

/**
 * The NIR of an HPRIM header as the patient's INS, when it can be theirs. HPRIM line 8 is the
 * social security number the lab billed, which is often the insured person's (a parent, a
 * spouse), not the patient's: it is kept as the INS only when its format and key check out AND its
 * sex digit and birth year/month agree with the header's birth date (NIR positions 2–5); otherwise
 * matching relies on the traits. The reason never repeats the value (patient data).
 */
export function nirAsIns(
  nir: string,
  birthDate: string | undefined,
): { ins: NonNullable<PatientTraits['ins']>; sex: 'male' | 'female' } | { ins?: undefined; reason: string } {
  const problem = insProblem('INS-NIR', nir);
  if (problem) {
    return { reason: `NIR not used as INS: ${problem.reason}` };
  }
  if (!birthDate || birthDate.length < 7) {
    return { reason: 'NIR not used as INS: no birth date to check it is the patient’s own' };
  }
  const year = birthDate.slice(2, 4);
  const month = birthDate.slice(5, 7);
  const nirMonth = Number(nir.slice(3, 5));
  // Months 20–42 and 50–99 are used when the birth month was unknown at registration.
  const monthAgrees = nir.slice(3, 5) === month || nirMonth > 12;
  if (nir.slice(1, 3) !== year || !monthAgrees) {
    return {
      reason: 'NIR not used as INS: its birth year/month differ from the birth date (likely the insured person’s)',
    };
  }
  return { ins: { value: nir, oid: INS_NIR_OID }, sex: nir[0] === '1' ? 'male' : 'female' };
}
