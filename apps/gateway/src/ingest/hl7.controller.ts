import { Controller, Inject, Post, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError, scopeAllows } from '@gw/platform';
import { principalOf } from '../auth/auth.guard';
import type { GatewayCore } from '../core';
import { CORE } from '../http/core.token';

export const ER7_TYPES = ['text/plain', 'x-application/hl7-v2+er7', 'application/hl7-v2'];

/** HL7 v2 over HTTP: the ER7 message in, its ACK out (200 whatever the ACK code, as MLLP would). */
@Controller('hl7v2')
export class Hl7Controller {
  constructor(@Inject(CORE) private readonly core: GatewayCore) {}

  @Post()
  async receive(@Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const principal = principalOf(req);
    if (
      !['Patient', 'Encounter'].every(
        (t) => scopeAllows(principal.scopes, t, 'c') && scopeAllows(principal.scopes, t, 'u'),
      )
    ) {
      throw new GatewayError('forbidden', {
        text: 'Sending HL7 v2 ADT needs system/Patient.cu and system/Encounter.cu scopes (or wider)',
      });
    }
    if (!Buffer.isBuffer(req.body) || req.body.length === 0) {
      throw new GatewayError('unsupported-media-type', {
        text: `Send the ER7 message as the body, with Content-Type ${ER7_TYPES.slice(0, 2).join(' or ')}`,
      });
    }
    const result = await this.core.hl7.handle(req.body, { transport: 'http', principal });
    this.core.audit.record({
      clientId: principal.clientId,
      organization: principal.organization,
      interaction: 'hl7v2',
      entity: result.messageId ? [`Hl7Message/${result.messageId}`] : [],
      outcome: result.ackCode === 'AA' ? 200 : result.ackCode === 'AE' ? 422 : 400,
      requestId: req.id,
    });
    void reply
      .status(200)
      .header('content-type', `x-application/hl7-v2+er7; charset=${result.charset.toLowerCase()}`)
      .send(result.ack);
  }
}
