import { Catch, HttpException } from '@nestjs/common';
import type { ArgumentsHost, ExceptionFilter } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError, OAuthError } from '@gw/platform';
import type { Logger } from '@gw/platform';
import { FHIR_JSON } from './fhir-response';

/**
 * One filter for everything thrown: GatewayError and framework errors become an OperationOutcome
 * with the right status; OAuth errors keep the RFC 6749 shape; anything else is a 500 that
 * reveals nothing but the request id.
 */
@Catch()
export class OutcomeFilter implements ExceptionFilter {
  constructor(private readonly logger: Logger) {}

  catch(err: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const reply = ctx.getResponse<FastifyReply>();
    const req = ctx.getRequest<FastifyRequest>();
    if (err instanceof OAuthError) {
      void reply.status(err.status).header('cache-control', 'no-store').send({ error: err.error, error_description: err.description });
      return;
    }
    const ge = toGatewayError(err, req.id);
    if (ge.status >= 500) {
      this.logger.error({ reqId: req.id, err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err) }, 'unhandled error');
    }
    if (ge.status === 401) {
      void reply.header('www-authenticate', 'Bearer realm="fhir-gateway"');
    }
    void reply.status(ge.status).header('content-type', FHIR_JSON).send(JSON.stringify(ge.toOutcome()));
  }
}

function toGatewayError(err: unknown, requestId: string): GatewayError {
  if (err instanceof GatewayError) {
    return err;
  }
  if (err instanceof HttpException) {
    const status = err.getStatus();
    if (status === 404) {
      return new GatewayError('not-found', { text: 'No such endpoint' });
    }
    return new GatewayError(status >= 500 ? 'internal' : 'invalid', { text: err.message });
  }
  const fastifyErr = err as { statusCode?: number; code?: string; message?: string };
  if (fastifyErr?.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return new GatewayError('too-large', { text: 'Request body is larger than the limit (GW_MAX_BODY_BYTES)' });
  }
  if (fastifyErr?.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return new GatewayError('invalid', { text: 'Unsupported Content-Type: send application/fhir+json', code: 'not-supported' });
  }
  if (typeof fastifyErr?.statusCode === 'number' && fastifyErr.statusCode < 500) {
    return new GatewayError('invalid', { text: fastifyErr.message ?? 'Bad request' });
  }
  return new GatewayError('internal', { text: `Internal error (request id ${requestId})` });
}
