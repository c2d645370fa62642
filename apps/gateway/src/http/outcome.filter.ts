import { Catch, HttpException } from '@nestjs/common';
import type { ArgumentsHost, ExceptionFilter } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError, OAuthError } from '@gw/platform';
import { actorOf, isAudited } from '@gw/store';
import type { ErrorCategory, Logger } from '@gw/platform';
import type { AuditLog } from '@gw/store';
import type { AuthedRequest } from '../auth/auth.guard';
import { FHIR_JSON } from './fhir-response';

/**
 * One filter for everything thrown: GatewayError and framework errors become an OperationOutcome
 * with the right status; OAuth errors keep the RFC 6749 shape; anything else is a 500 that
 * reveals nothing but the request id.
 */
@Catch()
export class OutcomeFilter implements ExceptionFilter {
  constructor(
    private readonly logger: Logger,
    private readonly audit?: AuditLog,
  ) {}

  catch(err: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const reply = ctx.getResponse<FastifyReply>();
    const req = ctx.getRequest<FastifyRequest>();
    if (err instanceof OAuthError) {
      void reply
        .status(err.status)
        .header('cache-control', 'no-store')
        .send({ error: err.error, error_description: err.description });
      return;
    }
    const sqlstate = sqlStateOf(err);
    const ge = sqlstate ? fromDatabase(sqlstate, req.id) : toGatewayError(err, req.id);
    if (sqlstate) {
      // A database error's message and detail quote the values of the statement (the request's
      // own: names, birth dates): only its SQLSTATE is logged.
      this.logger[ge.status >= 500 ? 'error' : 'warn']({ reqId: req.id, sqlstate }, 'database error');
    } else if (ge.status >= 500) {
      this.logger.error(
        { reqId: req.id, err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err) },
        'unhandled error',
      );
    }
    if (ge.status === 401) {
      void reply.header('www-authenticate', 'Bearer realm="fhir-gateway"');
    }
    if (!isAudited(err)) {
      this.auditRefusal(req as AuthedRequest, ge.status);
    }
    void reply.status(ge.status).header('content-type', FHIR_JSON).send(JSON.stringify(ge.toOutcome()));
  }

  /** Refused or failed requests of an authenticated client are part of the access trail too. */
  private auditRefusal(req: AuthedRequest, status: number): void {
    const p = req.principal;
    if (!p || !this.audit) {
      return;
    }
    const type = (req.params as Record<string, string> | undefined)?.type;
    const id = (req.params as Record<string, string> | undefined)?.id;
    this.audit.record({
      ...actorOf(p),
      interaction: `${req.method.toLowerCase()}-refused`,
      resourceType: type,
      entity: type && id && !id.startsWith('_') ? [`${type}/${id}`] : [],
      outcome: status,
      requestId: req.id,
    });
  }
}

/**
 * Framework errors keep their HTTP meaning: Nest wraps Fastify's own errors (body too large,
 * unsupported media type) in an HttpException carrying the original status, so mapping by status
 * (not only by Fastify code) is what turns a too-large body into a 413 rather than a 400.
 */
const STATUS_CATEGORY: Record<number, ErrorCategory> = {
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not-found',
  406: 'not-acceptable',
  409: 'conflict',
  410: 'gone',
  412: 'precondition-failed',
  413: 'too-large',
  415: 'unsupported-media-type',
  422: 'business-rule',
  429: 'throttled',
};

/** Our own wording where the framework's message says less than we know. */
const STATUS_TEXT: Record<number, string> = {
  404: 'No such endpoint',
  413: 'Request body is larger than the limit (GW_MAX_BODY_BYTES)',
  415: 'Unsupported Content-Type: send application/fhir+json',
};

function toGatewayError(err: unknown, requestId: string): GatewayError {
  if (err instanceof GatewayError) {
    return err;
  }
  if (err instanceof HttpException) {
    return fromStatus(err.getStatus(), err.message, requestId);
  }
  const fastifyErr = err as { statusCode?: number; message?: string };
  if (typeof fastifyErr?.statusCode === 'number') {
    return fromStatus(fastifyErr.statusCode, fastifyErr.message, requestId);
  }
  return internal(requestId);
}

function fromStatus(status: number, message: string | undefined, requestId: string): GatewayError {
  if (status >= 500) {
    // Framework 5xx messages can carry internals: same opaque text as any other crash.
    return internal(requestId);
  }
  return new GatewayError(STATUS_CATEGORY[status] ?? 'invalid', {
    text: STATUS_TEXT[status] ?? (message || 'Bad request'),
  });
}

function internal(requestId: string): GatewayError {
  return new GatewayError('internal', { text: `Internal error (request id ${requestId})` });
}

/** The SQLSTATE of a PostgreSQL error (pg's DatabaseError), or undefined for anything else. */
function sqlStateOf(err: unknown): string | undefined {
  const e = err as { code?: unknown; severity?: unknown } | undefined;
  return typeof e?.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) && typeof e.severity === 'string'
    ? e.code
    : undefined;
}

/**
 * Input that only PostgreSQL found wrong (class 22, data exception: a value out of range, a
 * malformed date) is the client's error; a cancelled statement (57014) is the search's timeout
 * or its client gone. Neither echoes the database's text.
 */
function fromDatabase(sqlstate: string, requestId: string): GatewayError {
  if (sqlstate.startsWith('22')) {
    return new GatewayError('invalid', {
      text: `A value of the request is not valid for its parameter or element (SQLSTATE ${sqlstate})`,
      code: 'value',
    });
  }
  if (sqlstate === '57014') {
    return new GatewayError('upstream-unavailable', {
      text: 'The request took longer than the database statement timeout (GW_STATEMENT_TIMEOUT_MS) and was cancelled: narrow it',
      code: 'timeout',
    });
  }
  return new GatewayError('internal', { text: `Internal error (request id ${requestId})` });
}
