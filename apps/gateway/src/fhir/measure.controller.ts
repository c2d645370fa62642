import { Controller, Get, Inject, Param, Post, Query, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError } from '@gw/platform';
import type { EvaluateParams } from '@gw/indicators';
import { principalOf } from '../auth/auth.guard';
import type { GatewayCore } from '../core';
import { FHIR_JSON, operationParameters } from '../http/fhir-response';
import { CORE } from '../http/core.token';

const NAMES = ['periodStart', 'periodEnd', 'reportType', 'subject', 'population'] as const;

/** `Measure/[id]/$evaluate-measure` (GET with query parameters, POST with a Parameters resource). */
@Controller('fhir/Measure')
export class MeasureController {
  constructor(@Inject(CORE) private readonly core: GatewayCore) {}

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
