import { Body, Controller, Delete, Get, Inject, Param, Put, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import type { CptsConflict, CptsEntry } from '@gw/exchange';
import { AdminOnly } from '../auth/access.decorators';
import { principalOf } from '../auth/auth.guard';
import type { GatewayCore } from '../core';
import { CORE } from '../http/core.token';

/**
 * Operator API for CPTS territories: being a CPTS, its INSEE communes and its member structures
 * are granted here (or with the CLI cpts:*), never by the organization itself.
 */
@Controller('admin/cpts')
@AdminOnly()
export class CptsAdminController {
  constructor(@Inject(CORE) private readonly core: GatewayCore) {}

  /** Every CPTS with its communes and members, and the communes several active CPTS claim (routed to none). */
  @Get()
  async list(): Promise<{ cpts: CptsEntry[]; conflicts: CptsConflict[] }> {
    return this.core.cpts.list();
  }

  /** Body `{"communes": ["69123", …], "members": ["Organization/x", …]}`: exactly these (members omitted: unchanged). */
  @Put(':id')
  async grant(@Req() req: FastifyRequest, @Param('id') id: string, @Body() body: unknown): Promise<CptsEntry> {
    return this.core.cpts.grant(id, body, { principal: principalOf(req), requestId: req.id });
  }

  /** Takes back the CPTS type, its communes and its members' partOf. */
  @Delete(':id')
  async revoke(@Req() req: FastifyRequest, @Param('id') id: string): Promise<CptsEntry> {
    return this.core.cpts.revoke(id, { principal: principalOf(req), requestId: req.id });
  }
}
