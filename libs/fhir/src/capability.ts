import type { CapabilityStatement, CapabilityStatementRestResource, ResourceType } from '@medplum/fhirtypes';
import { SERVED_RESOURCE_TYPES } from './definitions';
import type { ProfileRegistry } from './profiles';
import type { SearchParamRegistry } from './search-params';

export interface CapabilityInput {
  baseUrl: string;
  version: string;
  registry: SearchParamRegistry;
  profiles: ProfileRegistry;
}

const INTERACTIONS: CapabilityStatementRestResource['interaction'] = [
  { code: 'read' },
  { code: 'vread' },
  { code: 'update' },
  { code: 'delete' },
  { code: 'history-instance' },
  { code: 'history-type' },
  { code: 'create' },
  { code: 'search-type' },
];

/** Operations by type: Bulk Data v2 group export (NDJSON), the indicators' evaluation and care gaps. */
const OPERATIONS: Record<string, { name: string; definition: string }[]> = {
  Group: [{ name: 'export', definition: 'http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export' }],
  Measure: [
    { name: 'evaluate-measure', definition: 'http://hl7.org/fhir/OperationDefinition/Measure-evaluate-measure' },
    // Type level (Measure/$care-gaps), DEQM gaps in care.
    { name: 'care-gaps', definition: 'http://hl7.org/fhir/OperationDefinition/Measure-care-gaps' },
  ],
};

/** `Source:param` for every served reference parameter that can point at `type`. */
function revIncludes(registry: SearchParamRegistry, type: string): string[] {
  return SERVED_RESOURCE_TYPES.flatMap((source) =>
    registry
      .list(source)
      .filter((d) => d.kind === 'reference' && d.targets.includes(type))
      .map((d) => `${source}:${d.code}`),
  );
}

/**
 * The CapabilityStatement, generated from what is implemented: the served types, the search
 * parameters the index really supports, the profiles loaded from fhir-profiles/.
 */
export function buildCapabilityStatement(input: CapabilityInput): CapabilityStatement {
  const profileUrls = input.profiles.urls();
  const resources = SERVED_RESOURCE_TYPES.map((type): CapabilityStatementRestResource => {
    const supported = profileUrls.filter((u) => input.profiles.get(u)?.type === type);
    return {
      type: type as ResourceType,
      ...(supported.length > 0 ? { supportedProfile: supported } : {}),
      interaction: INTERACTIONS,
      versioning: 'versioned',
      readHistory: true,
      // A client cannot choose a new resource's id (an operator can): POST, or a conditional update.
      updateCreate: false,
      conditionalCreate: true,
      conditionalUpdate: true,
      conditionalDelete: 'not-supported',
      searchInclude: input.registry
        .list(type)
        .filter((d) => d.kind === 'reference')
        .map((d) => `${type}:${d.code}`),
      searchRevInclude: revIncludes(input.registry, type),
      ...(OPERATIONS[type] ? { operation: OPERATIONS[type] } : {}),
      searchParam: [
        { name: '_id', type: 'token' },
        { name: '_lastUpdated', type: 'date' },
        ...input.registry.list(type).map((d) => ({
          name: d.code,
          type: d.kind,
          ...(d.definition.url ? { definition: d.definition.url } : {}),
        })),
      ],
    };
  });
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    kind: 'instance',
    instantiates: ['http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data'],
    software: { name: 'fhir-gateway-fr', version: input.version },
    implementation: { description: 'FHIR gateway for French primary care', url: `${input.baseUrl}/fhir` },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    rest: [
      {
        mode: 'server',
        security: {
          cors: false,
          service: [
            {
              coding: [
                { system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' },
              ],
            },
          ],
          extension: [
            {
              url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
              extension: [{ url: 'token', valueUri: `${input.baseUrl}/oauth2/token` }],
            },
          ],
        },
        resource: resources,
        interaction: [{ code: 'transaction' }, { code: 'batch' }, { code: 'history-system' }],
      },
    ],
  };
}
