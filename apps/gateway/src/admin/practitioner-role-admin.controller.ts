import { Controller, Get, HttpCode, Inject, Param, Post, Query, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { GatewayError } from '@gw/platform';
import type { RoleVouchEntry, RoleVouchPage } from '@gw/indicators';
import { AdminOnly } from '../auth/access.decorators';
import { principalOf } from '../auth/auth.guard';
import type { GatewayCore } from '../core';
import { CORE } from '../http/core.token';
import { pageSize } from './page-size';

/** `verified` of a listing: true, false or absent (both). */
function verifiedParam(value: string | undefined): boolean | undefined {
  if (value === undefined || value === 'true' || value === 'false') {
    return value === undefined ? undefined : value === 'true';
  }
  throw new GatewayError('invalid', { text: 'verified must be true or false', expression: 'verified' });
}

function offsetParam(value: string | undefined): number {
  const n = value === undefined ? 0 : Number(value);
  if (!Number.isInteger(n) || n < 0) {
    throw new GatewayError('invalid', { text: '_offset must be a whole number, 0 or more', expression: '_offset' });
  }
  return n;
}

/**
 * Operator API for médecin-traitant verification: a structure's PractitionerRole naming a
 * practitioner it does not own verifies its declarations of that GP only once an operator vouched
 * for it here (or with the CLI practitioner-roles:*).
 */
@Controller('admin/practitioner-roles')
@AdminOnly()
export class PractitionerRoleAdminController {
  constructor(@Inject(CORE) private readonly core: GatewayCore) {}

  /** The roles naming a practitioner their organization does not own; `verified=false`: those to review. */
  @Get()
  async list(
    @Query('verified') verified?: string,
    @Query('_count') count?: string,
    @Query('_offset') offset?: string,
  ): Promise<RoleVouchPage> {
    return this.core.practitionerRoles.list({
      verified: verifiedParam(verified),
      count: pageSize(count),
      offset: offsetParam(offset),
    });
  }

  @Post(':id/verify')
  @HttpCode(200)
  async verify(@Req() req: FastifyRequest, @Param('id') id: string): Promise<RoleVouchEntry> {
    return this.core.practitionerRoles.verify(id, { principal: principalOf(req), requestId: req.id });
  }

  @Post(':id/unverify')
  @HttpCode(200)
  async unverify(@Req() req: FastifyRequest, @Param('id') id: string): Promise<RoleVouchEntry> {
    return this.core.practitionerRoles.unverify(id, { principal: principalOf(req), requestId: req.id });
  }
}
