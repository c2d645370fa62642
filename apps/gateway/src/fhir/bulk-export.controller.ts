import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Controller, Delete, Get, Inject, Param, Post, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError } from '@gw/platform';
import type { RawExportParams } from '@gw/store';
import { principalOf } from '../auth/auth.guard';
import type { GatewayCore } from '../core';
import { FHIR_JSON, operationParameters } from '../http/fhir-response';
import { CORE } from '../http/core.token';

const STATUS_PATH = '/fhir/$export-status';
const PARAMS = ['_type', '_since', '_outputFormat'] as const;
const ACCEPTED = /^(application\/fhir\+json|application\/json|\*\/\*)(\s*;.*)?$/;

/**
 * FHIR Bulk Data Access v2, group level: `Group/[id]/$export` kick-off (GET, or POST with a
 * Parameters resource), then `$export-status/<id>` to poll (GET) or cancel (DELETE), and the
 * NDJSON files under it. Registered before FhirController so these literal routes win.
 */
@Controller('fhir')
export class BulkExportController {
  constructor(@Inject(CORE) private readonly core: GatewayCore) {}

  @Get('Group/:id/$export')
  async kickOffGet(@Req() req: FastifyRequest, @Res() reply: FastifyReply, @Param('id') id: string): Promise<void> {
    const raw = emptyRaw(req);
    for (const [name, value] of new URLSearchParams(req.url.split('?')[1] ?? '')) {
      addParam(raw, name, value);
    }
    await this.kickOff(req, reply, id, raw);
  }

  @Post('Group/:id/$export')
  async kickOffPost(@Req() req: FastifyRequest, @Res() reply: FastifyReply, @Param('id') id: string): Promise<void> {
    const params = operationParameters(req.body, '$export');
    const raw = emptyRaw(req);
    for (const p of params) {
      addParam(raw, p.name, p.value ?? '');
    }
    await this.kickOff(req, reply, id, raw);
  }

  @Get('$export-status/:id')
  async status(@Req() req: FastifyRequest, @Res() reply: FastifyReply, @Param('id') id: string): Promise<void> {
    const s = await this.core.bulk.status(principalOf(req), id, `${this.core.baseUrl}${STATUS_PATH}`);
    switch (s.state) {
      case 'in-progress':
        void reply.status(202).header('x-progress', s.progress).header('retry-after', '2').send();
        return;
      case 'completed':
        void reply
          .status(200)
          .header('expires', s.expires)
          .header('content-type', 'application/json')
          .send(JSON.stringify(s.manifest));
        return;
      case 'failed':
        void reply.status(500).header('content-type', FHIR_JSON).send(JSON.stringify(s.outcome));
        return;
    }
  }

  @Delete('$export-status/:id')
  async cancel(@Req() req: FastifyRequest, @Res() reply: FastifyReply, @Param('id') id: string): Promise<void> {
    await this.core.bulk.cancel(principalOf(req), id, req.id);
    void reply.status(202).send();
  }

  @Get('$export-status/:id/:file')
  async file(
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
    @Param('id') id: string,
    @Param('file') file: string,
  ): Promise<void> {
    const f = await this.core.bulk.file(principalOf(req), id, file, req.id);
    const size = await stat(f.path).then(
      (s) => s.size,
      () => undefined,
    );
    if (size === undefined) {
      throw new GatewayError('not-found', { text: `File ${file} of export ${id} is no longer available` });
    }
    void reply
      .status(200)
      .header('content-type', 'application/fhir+ndjson')
      .header('content-length', String(size))
      .send(createReadStream(f.path));
  }

  private async kickOff(
    req: FastifyRequest,
    reply: FastifyReply,
    groupId: string,
    raw: RawExportParams,
  ): Promise<void> {
    // RFC 7240: preference names are case-insensitive.
    if (!/respond-async/i.test(String(req.headers.prefer ?? ''))) {
      throw new GatewayError('invalid', {
        text: 'Bulk export is asynchronous: send Prefer: respond-async',
        expression: 'Prefer',
      });
    }
    const accept = req.headers.accept;
    if (accept && !accept.split(',').some((a) => ACCEPTED.test(a.trim()))) {
      throw new GatewayError('invalid', {
        text: `Accept ${accept} is not supported: use application/fhir+json`,
        expression: 'Accept',
      });
    }
    const id = await this.core.bulk.kickOff(principalOf(req), groupId, raw, `${this.core.baseUrl}${req.url}`, req.id);
    void reply.status(202).header('content-location', `${this.core.baseUrl}${STATUS_PATH}/${id}`).send();
  }
}

function emptyRaw(req: FastifyRequest): RawExportParams {
  return { unsupported: [], lenient: /handling=lenient/i.test(String(req.headers.prefer ?? '')) };
}

function addParam(raw: RawExportParams, name: string, value: string): void {
  if ((PARAMS as readonly string[]).includes(name)) {
    (raw[name as (typeof PARAMS)[number]] ??= []).push(value);
  } else if (!raw.unsupported.includes(name)) {
    raw.unsupported.push(name);
  }
}
