import type { FastifyReply } from 'fastify';
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
