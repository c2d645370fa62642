import { Body, Controller, Get, HttpCode, Inject, Param, Post, Put, Query, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { GatewayError } from '@gw/platform';
import type { Hl7Source, SourceInput } from '@gw/ingest';
import { requireAdmin } from './auth.guard';
import type { GatewayCore } from './core';
import { CORE } from './tokens';

const STATUSES = ['processed', 'error', 'rejected', 'ignored', 'duplicate'];

/** Operator API for hospital feeds: sources, the message ledger (list, read, reprocess), domain events. */
@Controller('admin')
export class Hl7AdminController {
  constructor(@Inject(CORE) private readonly core: GatewayCore) {}

  @Post('hl7/sources')
  @HttpCode(201)
  async createSource(@Req() req: FastifyRequest, @Body() body: SourceInput): Promise<Hl7Source> {
    requireAdmin(req);
    return this.core.hl7.sources.create(body ?? {});
  }

  @Get('hl7/sources')
  async listSources(@Req() req: FastifyRequest): Promise<Hl7Source[]> {
    requireAdmin(req);
    return this.core.hl7.sources.list();
  }

  @Put('hl7/sources/:id')
  async updateSource(@Req() req: FastifyRequest, @Param('id') id: string, @Body() body: SourceInput): Promise<Hl7Source> {
    requireAdmin(req);
    const { sendingApplication, sendingFacility, ...options } = body ?? {};
    if (sendingApplication !== undefined || sendingFacility !== undefined) {
      const current = await this.core.hl7.sources.get(id);
      if ((sendingApplication ?? current.sendingApplication) !== current.sendingApplication || (sendingFacility ?? current.sendingFacility) !== current.sendingFacility) {
        throw new GatewayError('invalid', { text: 'sendingApplication and sendingFacility identify a source and cannot change; register a new source' });
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
    requireAdmin(req);
    if (status && !STATUSES.includes(status)) {
      throw new GatewayError('invalid', { text: `status must be one of ${STATUSES.join(', ')}` });
    }
    if (warning !== undefined && warning !== 'true' && warning !== 'false') {
      throw new GatewayError('invalid', { text: 'warning must be true (accepted with warnings only) or false' });
    }
    if (source && !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(source)) {
      throw new GatewayError('invalid', { text: 'source must be a source id (GET /admin/hl7/sources)' });
    }
    const res = await this.core.db.pool.query(
      `SELECT id, received_at, transport, source_key, source_id, control_id, event, status, ack_code, error, warning, resources, duplicate_of, reuse_of, attempts, processed_at
       FROM hl7_message WHERE ($1::text IS NULL OR status = $1) AND ($2::uuid IS NULL OR source_id = $2::uuid) AND ($3::bigint IS NULL OR id < $3)
         AND ($5::boolean IS NULL OR (warning IS NOT NULL) = $5)
       ORDER BY id DESC LIMIT $4`,
      [status ?? null, source ?? null, /^\d+$/.test(before ?? '') ? before : null, pageSize(count), warning === undefined ? null : warning === 'true'],
    );
    return res.rows.map(toMessage);
  }

  @Get('hl7/messages/:id')
  async getMessage(@Req() req: FastifyRequest, @Param('id') id: string): Promise<unknown> {
    const p = requireAdmin(req);
    const res = /^\d+$/.test(id) ? await this.core.db.pool.query('SELECT * FROM hl7_message WHERE id = $1', [id]) : { rows: [] };
    const row = res.rows[0] as Record<string, unknown> | undefined;
    if (!row) {
      throw new GatewayError('not-found', { text: `HL7 message ${id} not found` });
    }
    // The raw message is patient data: reading it is audited like a resource read.
    this.core.audit.record({ clientId: p.clientId, organization: p.organization, interaction: 'read', resourceType: 'Hl7Message', entity: [`Hl7Message/${id}`], outcome: 200, requestId: req.id });
    const raw = row.raw as Buffer;
    return { ...toMessage(row), charset: row.charset, raw: raw.toString('base64'), text: decodeForDisplay(raw, row.charset as string | null), ack: row.ack };
  }

  @Post('hl7/messages/:id/reprocess')
  @HttpCode(200)
  async reprocess(@Req() req: FastifyRequest, @Param('id') id: string): Promise<unknown> {
    const p = requireAdmin(req);
    if (!/^\d+$/.test(id)) {
      throw new GatewayError('not-found', { text: `HL7 message ${id} not found` });
    }
    const result = await this.core.hl7.reprocess(Number(id));
    this.core.audit.record({ clientId: p.clientId, organization: p.organization, interaction: 'hl7v2-reprocess', entity: [`Hl7Message/${id}`, ...result.resources], outcome: 200, requestId: req.id });
    return result;
  }

  @Get('events')
  async events(@Req() req: FastifyRequest, @Query('type') type?: string, @Query('since') since?: string, @Query('_count') count?: string): Promise<unknown[]> {
    requireAdmin(req);
    const res = await this.core.db.pool.query(
      `SELECT e.id, e.type, e.resource, e.version_id, e.subject, e.owner_org, e.occurred_at, e.status, e.created_at, e.withdrawn_at,
              r.outcome AS routing
         FROM domain_event e LEFT JOIN exchange_routing r ON r.event_id = e.id
        WHERE ($1::text IS NULL OR e.type = $1) AND e.id > $2 ORDER BY e.id LIMIT $3`,
      [type ?? null, /^\d+$/.test(since ?? '') ? since : 0, pageSize(count)],
    );
    return res.rows.map((r: Record<string, unknown>) => ({
      id: Number(r.id),
      type: r.type,
      resource: r.resource,
      versionId: Number(r.version_id),
      subject: r.subject,
      organization: r.owner_org,
      occurredAt: r.occurred_at ? (r.occurred_at as Date).toISOString() : null,
      status: r.status,
      createdAt: (r.created_at as Date).toISOString(),
      withdrawnAt: r.withdrawn_at ? (r.withdrawn_at as Date).toISOString() : null,
      // What routing decided (care-team, mt, cpts, historic, …); null while not yet routed.
      routing: r.routing ?? null,
    }));
  }
}

function pageSize(count: string | undefined): number {
  const n = Math.floor(Number(count));
  return Number.isFinite(n) && n >= 1 ? Math.min(n, 1000) : 100;
}

function toMessage(r: Record<string, unknown>): Record<string, unknown> {
  return {
    id: Number(r.id),
    receivedAt: (r.received_at as Date).toISOString(),
    transport: r.transport,
    source: r.source_key,
    sourceId: r.source_id,
    controlId: r.control_id,
    event: r.event,
    status: r.status,
    ackCode: r.ack_code,
    error: r.error,
    warning: r.warning ?? undefined,
    resources: r.resources,
    duplicateOf: r.duplicate_of ? Number(r.duplicate_of) : undefined,
    // An earlier message from the same source with this MSH-10 and other content (the sender reused the id).
    reuseOf: r.reuse_of ? Number(r.reuse_of) : undefined,
    attempts: r.attempts,
    processedAt: r.processed_at ? (r.processed_at as Date).toISOString() : null,
  };
}

function decodeForDisplay(raw: Buffer, charset: string | null): string {
  return (charset && charset !== 'UTF-8' ? raw.toString('latin1') : raw.toString('utf8')).replace(/\r/g, '\n');
}
