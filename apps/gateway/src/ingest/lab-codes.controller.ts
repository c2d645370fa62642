import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Put, Query, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError, scopeAllows } from '@gw/platform';
import { checkKey, validateLabCode } from '@gw/ingest';
import type { HeldFiling, LabCodeInput, LabCodeMapping, UnmappedCode } from '@gw/ingest';
import { actorOf } from '@gw/store';
import type { Principal } from '@gw/store';
import { principalOf } from '../auth/auth.guard';
import type { GatewayCore } from '../core';
import { CORE } from '../http/core.token';

const ORGANIZATION = /^Organization\/[A-Za-z0-9\-.]{1,64}$/;

/**
 * Per-lab code maps of HPRIM files (lab-local code → LOINC + UCUM) and the results held until
 * their code is mapped. A structure's client (or person) edits the maps of its own labs; an
 * operator those of any structure (`?organization=`). Saving a mapping files the held results it
 * unblocks.
 */
@Controller('ingest/lab-codes')
export class LabCodesController {
  constructor(@Inject(CORE) private readonly core: GatewayCore) {}

  @Get('unmapped')
  async unmapped(@Req() req: FastifyRequest, @Query('organization') organization?: string): Promise<UnmappedCode[]> {
    const p = principalOf(req);
    // An operator without ?organization= sees every structure's queue.
    return this.core.hprim.unmapped(p.admin && !organization ? undefined : ownerOf(p, organization, 'r'));
  }

  @Get(':lab')
  async list(
    @Req() req: FastifyRequest,
    @Param('lab') lab: string,
    @Query('organization') organization?: string,
  ): Promise<{ organization: string; lab: string; codes: LabCodeMapping[] }> {
    const owner = ownerOf(principalOf(req), organization, 'r');
    return { organization: owner, lab, codes: await this.core.hprim.codes.list(owner, checkKey('lab', lab)) };
  }

  @Put(':lab/:code')
  async put(
    @Req() req: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
    @Param('lab') lab: string,
    @Param('code') code: string,
    @Body() body: LabCodeInput,
    @Query('organization') organization?: string,
  ): Promise<{ mapping: LabCodeMapping; filed: HeldFiling }> {
    const p = principalOf(req);
    const owner = ownerOf(p, organization, 'c');
    const entry = validateLabCode(checkKey('code', code), body);
    const { mapping, created } = await this.core.hprim.codes.put(owner, checkKey('lab', lab), entry, p.clientId);
    this.core.audit.record({
      ...actorOf(p),
      interaction: 'lab-code-map',
      entity: [`${owner}/lab-code/${lab}/${code}`],
      outcome: created ? 201 : 200,
      requestId: req.id,
    });
    const filed = await this.core.hprim.fileHeld(owner, lab);
    void reply.status(created ? 201 : 200);
    return { mapping, filed };
  }

  @Delete(':lab/:code')
  @HttpCode(204)
  async remove(
    @Req() req: FastifyRequest,
    @Param('lab') lab: string,
    @Param('code') code: string,
    @Query('organization') organization?: string,
  ): Promise<void> {
    const p = principalOf(req);
    const owner = ownerOf(p, organization, 'c');
    if (!(await this.core.hprim.codes.remove(owner, checkKey('lab', lab), checkKey('code', code)))) {
      throw new GatewayError('not-found', { text: 'This lab has no mapping for this code' });
    }
    this.core.audit.record({
      ...actorOf(p),
      interaction: 'lab-code-map',
      entity: [`${owner}/lab-code/${lab}/${code}`],
      outcome: 204,
      requestId: req.id,
    });
  }
}

/**
 * The structure whose maps a request reads or edits: the caller's own (results are filed as
 * Observations, so reading needs Observation read and editing Observation create scopes), or any
 * structure for an operator.
 */
function ownerOf(p: Principal, organization: string | undefined, action: 'r' | 'c'): string {
  if (organization && organization !== p.organization) {
    if (!p.admin) {
      throw new GatewayError('forbidden', { text: 'A structure reads and edits the code maps of its own labs only' });
    }
    if (!ORGANIZATION.test(organization)) {
      throw new GatewayError('invalid', { text: 'organization must be Organization/<id>', expression: 'organization' });
    }
    return organization;
  }
  if (!p.admin && !scopeAllows(p.scopes, 'Observation', action)) {
    throw new GatewayError('forbidden', {
      text: `Lab code maps need the system/Observation.${action} scope (or wider): they decide how results are filed`,
    });
  }
  return p.organization;
}
