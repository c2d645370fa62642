import { Controller, Get, Inject, Param, Post, Query, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError, scopeAllows } from '@gw/platform';
import { checkIntakeScopes } from '@gw/ingest';
import { actorOf } from '@gw/store';
import { principalOf } from '../auth/auth.guard';
import type { Principal } from '@gw/store';
import type { GatewayCore } from '../core';
import { CORE } from '../http/core.token';

/** Bodies POST /ingest/documents reads as bytes (text/plain is shared with POST /hl7v2's parser). */
export const DOCUMENT_TYPES = ['application/xml', 'text/xml', 'application/hl7-cda+xml', 'application/zip'];
export const DOCUMENTS_PATH = '/ingest/documents';

/**
 * The organization the documents are filed for: the caller's own; an operator names any one
 * (`?organization=Organization/<id>`), a structure only its own.
 */
function forOrganization(p: Principal, organization: string | undefined): Principal {
  if (organization === undefined || organization === p.organization) {
    return p;
  }
  if (!/^Organization\/[A-Za-z0-9\-.]{1,64}$/.test(organization)) {
    throw new GatewayError('invalid', { text: 'organization must be Organization/<id>', expression: 'organization' });
  }
  if (!p.admin) {
    throw new GatewayError('forbidden', { text: 'A structure files documents for its own organization only' });
  }
  return { ...p, organization };
}

/**
 * Practice documents in: a CI-SIS CDA, an IHE XDM zip or an HPRIM file, filed for the caller's
 * organization through the intake pipeline. 201 + Bundle of what was written (the OperationOutcome
 * of the warnings in the last entry's response.outcome), 202 + OperationOutcome when
 * the patient waits in the identity review queue; unreadable documents 400/413/415/422.
 */
@Controller('ingest/documents')
export class DocumentsController {
  constructor(@Inject(CORE) private readonly core: GatewayCore) {}

  @Post()
  async receive(
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
    @Query('organization') organization?: string,
  ): Promise<void> {
    const principal = forOrganization(principalOf(req), organization);
    // The types every document writes, before reading anything (the facts' types are checked once read).
    checkIntakeScopes(principal, []);
    if (!Buffer.isBuffer(req.body) || req.body.length === 0) {
      throw new GatewayError('unsupported-media-type', {
        text: `Send the document as the body, with Content-Type ${[...DOCUMENT_TYPES, 'text/plain'].join(', ')}`,
        expression: 'Content-Type',
      });
    }
    const contentType = String(req.headers['content-type'] ?? '')
      .split(';')[0]
      .trim();
    // Unreadable input throws here (GatewayError naming the element): nothing was written.
    const extractions = await this.core.intake.read({ contentType, body: req.body, source: 'api' });
    const result = await this.core.intake.ingestExtractions(principal, extractions, 'api');
    const status = result.status === 'review' && !result.bundle ? 202 : 201;
    this.core.audit.record({
      ...actorOf(principal),
      interaction: 'ingest-documents',
      entity: (result.bundle?.entry ?? []).flatMap((e) => (e.fullUrl ? [e.fullUrl] : [])),
      outcome: status,
      requestId: req.id,
    });
    const body =
      status === 202
        ? result.outcome
        : {
            ...result.bundle,
            entry: [...(result.bundle?.entry ?? []), { response: { status: '200 OK', outcome: result.outcome } }],
          };
    void reply.status(status).header('content-type', 'application/fhir+json; charset=utf-8').send(body);
  }

  /** The original of a filed document too large for a Binary (DocumentReference.content.attachment.url). */
  @Get(':id/content')
  async content(@Param('id') id: string, @Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const principal = principalOf(req);
    if (!scopeAllows(principal.scopes, 'DocumentReference', 'r')) {
      throw new GatewayError('forbidden', { text: 'Reading an original needs system/DocumentReference.r (or wider)' });
    }
    const found = await this.core.intake.original(principal, id);
    if (!found) {
      throw new GatewayError('not-found', { text: `Document ${id} not found` });
    }
    this.core.audit.record({
      ...actorOf(principal),
      interaction: 'read',
      entity: [`IntakeDocument/${id}`],
      outcome: 200,
      requestId: req.id,
    });
    void reply.status(200).header('content-type', found.contentType).send(found.content);
  }
}
