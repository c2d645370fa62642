import { Body, Controller, Get, HttpCode, Inject, Param, Post, Put, Query, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { GatewayError, QUEUE_NAMES, splitScopes } from '@gw/platform';
import type { ClientRecord } from '@gw/platform';
import { pageSize } from './page-size';
import { AdminOnly } from '../auth/access.decorators';
import { principalOf } from '../auth/auth.guard';
import type { GatewayCore } from '../core';
import { CORE } from '../http/core.token';
import { actorOf } from '@gw/store';

interface CreateClientBody {
  name?: string;
  organization?: string;
  scopes?: string | string[];
  admin?: boolean;
  jwks?: { keys: unknown[] };
}

/** Operator API (admin clients only): clients, dead-letter jobs, access audit. */
@Controller('admin')
@AdminOnly()
export class AdminController {
  constructor(@Inject(CORE) private readonly core: GatewayCore) {}

  @Post('clients')
  async createClient(
    @Req() req: FastifyRequest,
    @Body() body: CreateClientBody,
  ): Promise<{ client: ClientRecord; client_secret?: string }> {
    if (!body?.name || !body.organization || !body.scopes) {
      throw new GatewayError('invalid', { text: 'name, organization (Organization/<id>) and scopes are required' });
    }
    try {
      const { client, secret } = await this.core.clients.create({
        name: body.name,
        organization: body.organization,
        scopes: scopeList(body.scopes),
        admin: body.admin === true,
        withSecret: !body.jwks,
        jwks: body.jwks as never,
      });
      this.auditClientChange(req, 'client-create', client.id);
      return { client, ...(secret ? { client_secret: secret } : {}) };
    } catch (err) {
      throw new GatewayError('invalid', { text: (err as Error).message });
    }
  }

  @Get('clients')
  async listClients(): Promise<ClientRecord[]> {
    return this.core.clients.list();
  }

  /** Deactivates a client: no new token, and its live tokens are refused within seconds. */
  @Post('clients/:id/deactivate')
  @HttpCode(200)
  async deactivateClient(@Req() req: FastifyRequest, @Param('id') id: string): Promise<ClientRecord> {
    const client = await this.core.clients.setActive(id, false);
    this.auditClientChange(req, 'client-deactivate', id);
    return client;
  }

  @Post('clients/:id/activate')
  @HttpCode(200)
  async activateClient(@Req() req: FastifyRequest, @Param('id') id: string): Promise<ClientRecord> {
    const client = await this.core.clients.setActive(id, true);
    this.auditClientChange(req, 'client-activate', id);
    return client;
  }

  /** Replaces the operator-granted capabilities of a client (e.g. `ins-qualification`). */
  @Put('clients/:id/grants')
  async setClientGrants(
    @Req() req: FastifyRequest,
    @Param('id') id: string,
    @Body() body: { grants?: unknown },
  ): Promise<ClientRecord> {
    const grants = body?.grants;
    if (!Array.isArray(grants) || grants.some((g) => typeof g !== 'string')) {
      throw new GatewayError('invalid', {
        text: 'The body must be {"grants": ["<grant>", ...]}',
        expression: 'grants',
      });
    }
    const client = await this.core.clients.setGrants(id, grants as string[]);
    this.auditClientChange(req, 'client-grants', id);
    return client;
  }

  private auditClientChange(req: FastifyRequest, interaction: string, clientId: string): void {
    const p = principalOf(req);
    this.core.audit.record({
      ...actorOf(p),
      interaction,
      entity: [`Client/${clientId}`],
      outcome: 200,
      requestId: req.id,
    });
  }

  @Get('jobs/failed')
  async failedJobs(): Promise<unknown[]> {
    const out: unknown[] = [];
    for (const queue of QUEUE_NAMES) {
      for (const job of await this.core.queue.failed(queue)) {
        out.push({
          queue,
          id: job.id,
          name: job.name,
          attempts: job.attemptsMade,
          failedReason: job.failedReason,
          finishedOn: job.finishedOn,
        });
      }
    }
    return out;
  }

  @Post('jobs/:queue/:id/retry')
  async retryJob(
    @Req() req: FastifyRequest,
    @Param('queue') queue: string,
    @Param('id') id: string,
  ): Promise<{ retried: boolean }> {
    if (!QUEUE_NAMES.includes(queue)) {
      throw new GatewayError('not-found', { text: `Unknown queue ${queue}` });
    }
    if (!(await this.core.queue.retry(queue, id))) {
      throw new GatewayError('not-found', { text: `No failed job ${id} in ${queue}` });
    }
    return { retried: true };
  }

  @Get('audit')
  async audit(
    @Req() req: FastifyRequest,
    @Query('client') client?: string,
    @Query('_count') count?: string,
  ): Promise<unknown> {
    const events = await this.core.audit.list({ clientId: client, limit: pageSize(count) });
    return { resourceType: 'Bundle', type: 'collection', entry: events.map((resource) => ({ resource })) };
  }
}

/** Scopes as a list, from a JSON array or a space-separated string (spaces around are noise). */
function scopeList(scopes: string | string[]): string[] {
  return Array.isArray(scopes) ? scopes.map(String).filter(Boolean) : splitScopes(String(scopes));
}
