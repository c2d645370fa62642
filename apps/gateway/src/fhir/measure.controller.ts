import { Controller, Get, Inject, Param, Post, Query, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError } from '@gw/platform';
import { Readable } from 'node:stream';
import type { CareGapsParams, EvaluateParams } from '@gw/indicators';
import { principalOf } from '../auth/auth.guard';
import type { GatewayCore } from '../core';
import { FHIR_JSON, operationParameters } from '../http/fhir-response';
import { CORE } from '../http/core.token';

const NAMES = ['periodStart', 'periodEnd', 'reportType', 'subject', 'population'] as const;
/** `$care-gaps` parameters: single ones, and the repeatable measureId and status. */
const GAP_SINGLE = ['periodStart', 'periodEnd', 'subject'] as const;
const GAP_REPEATED = ['measureId', 'status'] as const;

/** `Measure/[id]/$evaluate-measure` (GET with query parameters, POST with a Parameters resource). */
@Controller('fhir/Measure')
export class MeasureController {
  constructor(@Inject(CORE) private readonly core: GatewayCore) {}

  /** DEQM `Measure/$care-gaps` (type level): declared before `:id` routes so the name is never an id. */
  @Get('$care-gaps')
  async careGapsGet(
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
    @Query() query: Record<string, unknown>,
  ): Promise<void> {
    const params: CareGapsParams = {};
    for (const name of GAP_SINGLE) {
      const v = query[name];
      if (Array.isArray(v)) {
        throw new GatewayError('invalid', { text: `${name} given more than once`, expression: name });
      }
      if (typeof v === 'string') {
        params[name] = v;
      }
    }
    for (const name of GAP_REPEATED) {
      const v = query[name];
      const list = (Array.isArray(v) ? v : [v]).filter((x): x is string => typeof x === 'string');
      // A comma-separated value counts as repeated values (FHIR search style).
      params[name] = list.flatMap((x) => x.split(',')).filter((x) => x !== '');
    }
    await this.sendGaps(req, reply, params);
  }

  @Post('$care-gaps')
  async careGapsPost(@Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const params: CareGapsParams = { measureId: [], status: [] };
    for (const p of operationParameters(req.body, '$care-gaps')) {
      if (p.value === undefined) {
        continue;
      }
      if ((GAP_SINGLE as readonly string[]).includes(p.name)) {
        params[p.name as (typeof GAP_SINGLE)[number]] = p.value;
      } else if ((GAP_REPEATED as readonly string[]).includes(p.name)) {
        params[p.name as (typeof GAP_REPEATED)[number]]?.push(p.value);
      }
    }
    await this.sendGaps(req, reply, params);
  }

  private async sendGaps(req: FastifyRequest, reply: FastifyReply, params: CareGapsParams): Promise<void> {
    const answer = await this.core.indicators.careGaps.careGaps(principalOf(req), params, req.id);
    void reply.status(200).header('content-type', FHIR_JSON).send(Readable.from(answer.json()));
  }

  @Get(':id/$evaluate-measure')
  async evaluateGet(
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
    @Param('id') id: string,
    @Query() query: Record<string, unknown>,
  ): Promise<void> {
    const params: EvaluateParams = {};
    for (const name of NAMES) {
      const v = query[name];
      if (Array.isArray(v)) {
        throw new GatewayError('invalid', { text: `${name} given more than once`, expression: name });
      }
      if (typeof v === 'string') {
        params[name] = v;
      }
    }
    await this.send(req, reply, id, params);
  }

  @Post(':id/$evaluate-measure')
  async evaluatePost(@Req() req: FastifyRequest, @Res() reply: FastifyReply, @Param('id') id: string): Promise<void> {
    const params: EvaluateParams = {};
    for (const p of operationParameters(req.body, '$evaluate-measure')) {
      if ((NAMES as readonly string[]).includes(p.name) && p.value !== undefined) {
        params[p.name as (typeof NAMES)[number]] = p.value;
      }
    }
    await this.send(req, reply, id, params);
  }

  private async send(req: FastifyRequest, reply: FastifyReply, id: string, params: EvaluateParams): Promise<void> {
    const report = await this.core.indicators.evaluateMeasure(principalOf(req), id, params, req.id);
    void reply.status(200).header('content-type', FHIR_JSON).send(JSON.stringify(report));
  }
}
