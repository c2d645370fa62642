import { getExpressionForResourceType } from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';
import { loadFhirDefinitions, SERVED_RESOURCE_TYPES } from './definitions';
import { rootElements, SearchParamRegistry } from './search-params';

describe('SearchParamRegistry: parameters skipped when their starting elements are absent', () => {
  let registry: SearchParamRegistry;

  beforeAll(() => {
    loadFhirDefinitions();
    registry = new SearchParamRegistry();
  });

  it('reads the starting elements of plain navigation only', () => {
    expect(rootElements('Observation', 'Observation.subject.where(resolve() is Patient)')).toEqual(['subject']);
    expect(
      rootElements('Observation', '(Observation.value as Quantity) | (Observation.component.value as Quantity)'),
    ).toEqual(['value', 'component']);
    expect(rootElements('Observation', '(Observation.value as CodeableConcept).text')).toEqual(['value']);
    expect(rootElements('Bundle', 'Bundle.entry[0].resource')).toEqual(['entry']);
    expect(rootElements('Condition', 'Condition.onset.as(Age) | Condition.onset.as(Range)')).toEqual(['onset']);
    expect(rootElements('Library', "Library.relatedArtifact.where(type='depends-on').resource")).toEqual([
      'relatedArtifact',
    ]);
    // A value out of nothing, another type's elements, a function that answers on empty: always evaluated.
    expect(rootElements('Patient', '(Patient.deceased.exists() and (Patient.deceased != false))')).toBeUndefined();
    expect(rootElements('Patient', 'Patient.address | RelatedPerson.address')).toBeUndefined();
    expect(rootElements('Patient', 'Patient.name.exists()')).toBeUndefined();
    expect(rootElements('Patient', 'Patient.name.count()')).toBeUndefined();
    expect(rootElements('Patient', "Patient.name.where(use = 'official'")).toBeUndefined();
  });

  it('skips only expressions that give nothing on a resource without their starting elements', () => {
    let skippable = 0;
    for (const type of SERVED_RESOURCE_TYPES) {
      const bare = { resourceType: type, id: 'x' } as Resource;
      for (const def of registry.list(type)) {
        if (!def.roots) {
          continue;
        }
        skippable++;
        const expression = getExpressionForResourceType(type, def.definition.expression as string);
        expect({
          type,
          code: def.code,
          expression,
          values: def.atom.eval({ variables: {} }, [{ type, value: bare }]),
        }).toEqual({ type, code: def.code, expression, values: [] });
      }
    }
    // Most parameters are plain navigation: the skip is what makes extraction cheap.
    expect(skippable).toBeGreaterThan(400);
  });

  it('extracts the same rows with and without the skip, choices and primitive extensions included', () => {
    const resources: Resource[] = [
      {
        resourceType: 'Patient',
        id: 'p',
        _birthDate: { extension: [{ url: 'http://example.org/x', valueString: 'y' }] },
        deceasedBoolean: false,
        name: [{ family: 'Martin', given: ['Zoé'] }],
        gender: 'female',
      } as Resource,
      {
        resourceType: 'Observation',
        id: 'o',
        status: 'final',
        code: { coding: [{ system: 'http://loinc.org', code: '4548-4' }] },
        subject: { reference: 'Patient/p' },
        effectiveDateTime: '2026-03-01',
        valueQuantity: { value: 7.1, unit: '%', system: 'http://unitsofmeasure.org', code: '%' },
      },
      { resourceType: 'Condition', id: 'c', subject: { reference: 'Patient/p' }, onsetPeriod: { start: '2020-01-01' } },
      {
        resourceType: 'Encounter',
        id: 'e',
        status: 'finished',
        class: { code: 'IMP' },
        period: { start: '2026-01-02' },
      },
    ];
    for (const r of resources) {
      const fast = registry.extract(r);
      expect(fast).toEqual(registry.extract(r, true));
    }
    expect(registry.extract(resources[1] as Resource).numbers).toContainEqual({
      code: 'value-quantity',
      value: 7.1,
      system: 'http://unitsofmeasure.org',
      unit: '%',
    });
    expect(registry.extract(resources[0] as Resource).tokens).toContainEqual({
      code: 'deceased',
      system: null,
      value: 'false',
    });
  });
});
