import { SERVED_RESOURCE_TYPES, isKnownR4ResourceType, isServedResourceType } from './definitions';

describe('served resource types', () => {
  it("serves every R4 resource type, Synthea's claims and care plans included, but not Parameters", () => {
    for (const type of [
      'Patient',
      'DiagnosticReport',
      'CarePlan',
      'Goal',
      'Claim',
      'ExplanationOfBenefit',
      'MedicationAdministration',
      'Bundle',
      'Basic',
    ]) {
      expect({ type, served: isServedResourceType(type) }).toEqual({ type, served: true });
    }
    expect(isServedResourceType('Parameters')).toBe(false);
    expect(isKnownR4ResourceType('Parameters')).toBe(true);
    expect(SERVED_RESOURCE_TYPES.length).toBeGreaterThanOrEqual(144);
    expect(SERVED_RESOURCE_TYPES.every(isKnownR4ResourceType)).toBe(true);
  });
});
