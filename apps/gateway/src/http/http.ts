import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyInstance } from 'fastify';
import { JsonShapeError, checkJsonShape, parseFhirJson } from '@gw/fhir';
import type { JsonLimits } from '@gw/fhir';
import { GatewayError, pathOnly } from '@gw/platform';
import { AppModule } from './app.module';
import { notAcceptableReason } from './content-negotiation';
import type { GatewayCore } from '../core';
import { MDN_TYPES } from '../admin/exchange-admin.controller';
import { DOCUMENT_TYPES, DOCUMENTS_PATH } from '../ingest/documents.controller';
import { FHIR_JSON } from './fhir-response';
import { ER7_TYPES } from '../ingest/hl7.controller';
import { createMetrics, instrumentHttp } from '../ops/metrics';

const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,64}$/;

/** An HTTP route as Fastify registered it: one method, the path pattern (`/fhir/:type/:id`). */
export interface RegisteredRoute {
  method: string;
  url: string;
}

const ROUTES = new WeakMap<object, RegisteredRoute[]>();

/**
 * Every route the application registered (known once it is initialised or listening): the
 * authorization matrix (test/security) checks that each one is classified.
 */
export function registeredRoutes(app: NestFastifyApplication): readonly RegisteredRoute[] {
  return ROUTES.get(app) ?? [];
}

/** Builds the NestJS (Fastify) application over a GatewayCore; does not listen. */
export async function createHttpApp(core: GatewayCore): Promise<NestFastifyApplication> {
  const adapter = new FastifyAdapter({
    bodyLimit: core.config.GW_MAX_BODY_BYTES,
    // FHIR clients post transactions to `[base]/` as often as to `[base]`.
    routerOptions: { ignoreTrailingSlash: true },
    genReqId: (req: { headers: Record<string, string | string[] | undefined> }) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID_RE.test(given) ? given : randomUUID();
    },
  });
  const metrics = createMetrics(core);
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRoot(core, metrics), adapter, {
    logger: ['error', 'warn'],
    bodyParser: false,
  });
  const fastify = app.getHttpAdapter().getInstance() as unknown as FastifyInstance;
  // Nest registers its routes at init (listen), after this: the hook sees all of them.
  const routes: RegisteredRoute[] = [];
  ROUTES.set(app, routes);
  fastify.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      routes.push({ method, url: route.url });
    }
  });
  registerBodyParsers(fastify, {
    maxDepth: core.config.GW_JSON_MAX_DEPTH,
    maxArrayItems: core.config.GW_JSON_MAX_ARRAY_ITEMS,
    maxStringChars: core.config.GW_JSON_MAX_STRING_CHARS,
  });
  instrumentHttp(fastify, metrics);
  fastify.addHook('onRequest', async (req, reply) => {
    void reply.header('x-request-id', req.id);
  });
  fastify.addHook('onRequest', async (req, reply) => {
    // Bulk Data's kick-off and status have their own Accept rules (bulk-export.controller).
    if (!/^\/fhir(?:[/?]|$)/.test(req.url) || /\/(?:\$|%24)export/i.test(pathOnly(req.url))) {
      return undefined;
    }
    const q = req.url.indexOf('?');
    const format = q === -1 ? undefined : (new URLSearchParams(req.url.slice(q + 1)).get('_format') ?? undefined);
    const reason = notAcceptableReason(req.headers.accept, format);
    if (reason) {
      const outcome = new GatewayError('not-acceptable', {
        text: reason,
        expression: format === undefined ? 'Accept' : '_format',
      }).toOutcome();
      return reply.status(406).header('content-type', FHIR_JSON).send(JSON.stringify(outcome));
    }
    return undefined;
  });
  fastify.addHook('onResponse', async (req, reply) => {
    // Path only: query strings carry patient identifiers.
    core.logger.info(
      {
        reqId: req.id,
        method: req.method,
        path: pathOnly(req.url),
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
      },
      'request',
    );
  });
  return app;
}

/**
 * JSON (FHIR or plain) with a clear error on malformed input, decimals keeping their precision
 * (fhir-json.ts), forms as text. A JSON body's shape is checked on its text first (json-shape.ts):
 * a million-item array is refused at its 10 001st item, before anything is built from it.
 */
function registerBodyParsers(fastify: FastifyInstance, limits: JsonLimits): void {
  fastify.addContentTypeParser(
    ['application/json', 'application/fhir+json', 'application/json+fhir'],
    { parseAs: 'string' },
    (_req, body, done) => {
      const text = String(body);
      if (text.trim() === '') {
        done(null, undefined);
        return;
      }
      try {
        checkJsonShape(text, limits);
        done(null, parseFhirJson(text));
      } catch (err) {
        if (err instanceof JsonShapeError) {
          done(
            new GatewayError(err.tooLarge ? 'too-large' : 'invalid', {
              text: err.message,
              expression: err.path,
              code: err.tooLarge ? 'too-costly' : err.limit === 'key' ? 'structure' : 'value',
            }),
            undefined,
          );
          return;
        }
        done(
          new GatewayError('invalid', { text: `Malformed JSON: ${(err as Error).message}`, code: 'structure' }),
          undefined,
        );
      }
    },
  );
  fastify.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) =>
    done(null, String(body)),
  );
  // HL7 v2 ER7 stays bytes: the charset is the message's own (MSH-18 or the source's setting).
  fastify.addContentTypeParser(ER7_TYPES, { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  // Practice documents stay bytes (the CDA's charset is its XML declaration's); only POST /ingest/documents reads them.
  fastify.addContentTypeParser(DOCUMENT_TYPES, { parseAs: 'buffer' }, (req, body, done) =>
    req.url.split('?')[0] === DOCUMENTS_PATH
      ? done(null, body)
      : done(
          new GatewayError('unsupported-media-type', {
            text: 'XML and zip bodies are read only by POST /ingest/documents',
          }),
          undefined,
        ),
  );
  fastify.addContentTypeParser(MDN_TYPES, { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
}
