import { Body, Controller, Get, HttpCode, Inject, Param, Post, Query, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import type { ImportProgress } from '@gw/ingest';
import { actorOf } from '@gw/store';
import { principalOf } from '../auth/auth.guard';
import { AdminOnly } from '../auth/access.decorators';
import type { GatewayCore } from '../core';
import { CORE } from '../http/core.token';
import { pageSize } from './page-size';

/**
 * Operator API for portability archives: start an import of an archive placed in the import
 * folder (it runs as a job in the worker), list imports, follow one's progress and problems.
 */
@Controller('admin/intake/imports')
@AdminOnly()
export class IntakeAdminController {
  constructor(@Inject(CORE) private readonly core: GatewayCore) {}

  @Post()
  @HttpCode(202)
  async start(
    @Req() req: FastifyRequest,
    @Body() body: { path?: unknown; organization?: unknown } | undefined,
  ): Promise<ImportProgress> {
    const p = principalOf(req);
    const progress = await this.core.portability.startImport(p, body ?? {}, { requestId: String(req.id) });
    this.core.audit.record({
      ...actorOf(p),
      interaction: 'intake-import',
      entity: [`intake-import/${progress.id}`, progress.organization],
      outcome: 202,
      requestId: String(req.id),
    });
    return progress;
  }

  @Get()
  async list(@Query('_count') count?: string): Promise<ImportProgress[]> {
    return this.core.portability.list(pageSize(count));
  }

  @Get(':id')
  async progress(@Param('id') id: string): Promise<ImportProgress> {
    return this.core.portability.progress(id);
  }
}
