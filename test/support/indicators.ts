import { ORGANIZATION_TYPE_SYSTEM } from '@gw/fhir';
import type { TestGateway } from './gateway';
import { call } from './hl7';

/** Creates an Organization of a gateway organization type (MSP, CDS, CPTS…), optionally part of another; returns its id. */
export async function typedOrganization(gw: TestGateway, name: string, type: string, partOf?: string): Promise<string> {
  const res = await call<{ id: string }>(gw, 'POST', `${gw.fhirUrl}/Organization`, {
    resourceType: 'Organization',
    name,
    type: [{ coding: [{ system: ORGANIZATION_TYPE_SYSTEM, code: type }] }],
    ...(partOf ? { partOf: { reference: `Organization/${partOf}` } } : {}),
  });
  if (res.status !== 201) {
    throw new Error(`creating Organization ${name}: HTTP ${res.status}`);
  }
  return res.body.id;
}
