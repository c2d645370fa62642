import type { FastifyReply } from 'fastify';
import type { Parameters } from '@medplum/fhirtypes';
import { GatewayError } from '@gw/platform';
import type { FhirResponse } from '@gw/store';

export const FHIR_JSON = 'application/fhir+json; charset=utf-8';

/** Writes a FhirResponse (status, ETag, Location, Last-Modified, JSON body) to the reply. */
export function sendFhir(reply: FastifyReply, res: FhirResponse): void {
  if (res.etag) {
    void reply.header('etag', res.etag);
  }
  if (res.location) {
    void reply.header('location', res.location);
  }
  if (res.lastModified) {
    void reply.header('last-modified', res.lastModified);
  }
  void reply.status(res.status);
  if (res.body === undefined) {
    void reply.send();
    return;
  }
  void reply.header('content-type', FHIR_JSON).send(res.body);
}

/**
 * The parameters of an operation invoked by POST: each one's name and primitive value as text
 * (undefined when it has none of the kinds operations take here); 400 unless the body is a
 * Parameters resource.
 */
export function operationParameters(body: unknown, operation: string): { name: string; value: string | undefined }[] {
  const params = body as Parameters | undefined;
  if (params?.resourceType !== 'Parameters') {
    throw new GatewayError('invalid', { text: `POST ${operation} expects a Parameters resource` });
  }
  return (params.parameter ?? []).map((p) => ({
    name: p.name ?? '',
    value:
      p.valueString ?? p.valueCode ?? p.valueDate ?? p.valueDateTime ?? p.valueInstant ?? p.valueReference?.reference,
  }));
}
