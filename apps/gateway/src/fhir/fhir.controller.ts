import { All, Controller, Get, Inject, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FhirRequest } from '@gw/store';
import { principalOf } from '../auth/auth.guard';
import type { GatewayCore } from '../core';
import { FHIR_JSON, sendFhir } from '../http/fhir-response';
import { Public } from '../auth/access.decorators';
import { CORE } from '../http/core.token';

/** The FHIR R4 REST API: a thin mapping from HTTP onto FhirService interactions. */
@Controller('fhir')
export class FhirController {
  constructor(@Inject(CORE) private readonly core: GatewayCore) {}

  @Public()
  @Get('metadata')
  metadata(@Res() reply: FastifyReply): void {
    void reply.header('content-type', FHIR_JSON).send(JSON.stringify(this.core.capability));
  }

  @All(['', ':type', ':type/:id', ':type/:id/:op', ':type/:id/:op/:vid'])
  async interact(@Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    // The client going away before its answer cancels the work in flight (a running search).
    const gone = new AbortController();
    const onClose = (): void => {
      if (!reply.raw.writableFinished) {
        gone.abort();
      }
    };
    reply.raw.once('close', onClose);
    try {
      const res = await this.core.service.handle(
        principalOf(req),
        { ...toFhirRequest(req), signal: gone.signal },
        req.id,
      );
      sendFhir(reply, res);
    } finally {
      reply.raw.off('close', onClose);
    }
  }
}

function toFhirRequest(req: FastifyRequest): FhirRequest {
  const url = req.url;
  const q = url.indexOf('?');
  const path = (q === -1 ? url : url.slice(0, q)).replace(/^\/fhir\/?/, '');
  const prefer = String(req.headers.prefer ?? '');
  const ret = /return=(minimal|representation|OperationOutcome)/.exec(prefer)?.[1] as FhirRequest['preferReturn'];
  return {
    method: req.method,
    path: decodeURIComponent(path),
    query: q === -1 ? [] : [...new URLSearchParams(url.slice(q + 1))],
    body: req.body,
    ifMatch: header(req, 'if-match'),
    ifNoneExist: header(req, 'if-none-exist'),
    strict: /handling=strict/.test(prefer),
    preferReturn: ret,
  };
}

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
