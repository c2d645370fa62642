import { Body, Controller, Get, HttpCode, Inject, Param, Post, Put, Query, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { GatewayError } from '@gw/platform';
import type { Hl7Source, SourceInput } from '@gw/ingest';
import { principalOf } from '../auth/auth.guard';
import { pageSize } from './page-size';
import { AdminOnly } from '../auth/access.decorators';
import type { GatewayCore } from '../core';
import { CORE } from '../http/core.token';
import { actorOf } from '@gw/store';

const STATUSES = ['processed', 'error', 'rejected', 'ignored', 'duplicate'];

/** Operator API for hospital feeds: sources, the message ledger (list, read, reprocess), domain events. */
@Controller('admin')
@AdminOnly()
export class Hl7AdminController {
  constructor(@Inject(CORE) private readonly core: GatewayCore) {}

  @Post('hl7/sources')
  @HttpCode(201)
  async createSource(@Req() req: FastifyRequest, @Body() body: SourceInput): Promise<Hl7Source> {
    return this.core.hl7.sources.create(body ?? {});
  }

  @Get('hl7/sources')
  async listSources(): Promise<Hl7Source[]> {
    return this.core.hl7.sources.list();
  }

  @Put('hl7/sources/:id')
  async updateSource(
    @Req() req: FastifyRequest,
    @Param('id') id: string,
    @Body() body: SourceInput,
  ): Promise<Hl7Source> {
    const { sendingApplication, sendingFacility, ...options } = body ?? {};
    if (sendingApplication !== undefined || sendingFacility !== undefined) {
      const current = await this.core.hl7.sources.get(id);
      if (
        (sendingApplication ?? current.sendingApplication) !== current.sendingApplication ||
        (sendingFacility ?? current.sendingFacility) !== current.sendingFacility
      ) {
        throw new GatewayError('invalid', {
          text: 'sendingApplication and sendingFacility identify a source and cannot change; register a new source',
        });
      }
    }
    return this.core.hl7.sources.update(id, options);
  }

  @Get('hl7/messages')
  async listMessages(
    @Req() req: FastifyRequest,
    @Query('status') status?: string,
    @Query('source') source?: string,
    @Query('_count') count?: string,
    @Query('before') before?: string,
    @Query('warning') warning?: string,
  ): Promise<unknown[]> {
    if (status && !STATUSES.includes(status)) {
      throw new GatewayError('invalid', { text: `status must be one of ${STATUSES.join(', ')}` });
    }
    if (warning !== undefined && warning !== 'true' && warning !== 'false') {
      throw new GatewayError('invalid', { text: 'warning must be true (accepted with warnings only) or false' });
    }
    if (source && !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(source)) {
      throw new GatewayError('invalid', { text: 'source must be a source id (GET /admin/hl7/sources)' });
    }
    return this.core.hl7.ledger.list({
      status,
      source,
      before: /^\d+$/.test(before ?? '') ? Number(before) : undefined,
      limit: pageSize(count),
      warning: warning === undefined ? undefined : warning === 'true',
    });
  }

  @Get('hl7/messages/:id')
  async getMessage(@Req() req: FastifyRequest, @Param('id') id: string): Promise<unknown> {
    const p = principalOf(req);
    const message = /^\d+$/.test(id) ? await this.core.hl7.ledger.read(Number(id)) : undefined;
    if (!message) {
      throw new GatewayError('not-found', { text: `HL7 message ${id} not found` });
    }
    // The raw message is patient data: reading it is audited like a resource read.
    this.core.audit.record({
      ...actorOf(p),
      interaction: 'read',
      resourceType: 'Hl7Message',
      entity: [`Hl7Message/${id}`],
      outcome: 200,
      requestId: req.id,
    });
    return message;
  }

  @Post('hl7/messages/:id/reprocess')
  @HttpCode(200)
  async reprocess(@Req() req: FastifyRequest, @Param('id') id: string): Promise<unknown> {
    const p = principalOf(req);
    if (!/^\d+$/.test(id)) {
      throw new GatewayError('not-found', { text: `HL7 message ${id} not found` });
    }
    const result = await this.core.hl7.reprocess(Number(id));
    this.core.audit.record({
      ...actorOf(p),
      interaction: 'hl7v2-reprocess',
      entity: [`Hl7Message/${id}`, ...result.resources],
      patients: result.resources.filter((r) => r.startsWith('Patient/')).map((r) => r.slice('Patient/'.length)),
      outcome: 200,
      requestId: req.id,
    });
    return result;
  }

  @Get('events')
  async events(
    @Req() req: FastifyRequest,
    @Query('type') type?: string,
    @Query('since') since?: string,
    @Query('_count') count?: string,
  ): Promise<unknown[]> {
    const events = await this.core.events.list({
      type,
      since: /^\d+$/.test(since ?? '') ? Number(since) : 0,
      limit: pageSize(count),
    });
    const routing = await this.core.exchange.routes.outcomes(events.map((e) => e.id));
    // What routing decided (care-team, mt, cpts, historic, …); null while not yet routed.
    return events.map((e) => ({ ...e, routing: routing.get(e.id) ?? null }));
  }
}
