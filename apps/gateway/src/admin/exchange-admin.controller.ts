import { Body, Controller, Get, HttpCode, Inject, Param, Post, Put, Query, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { GatewayError } from '@gw/platform';
import { CHANNELS } from '@gw/exchange';
import type { Attempt, Delivery, Route } from '@gw/exchange';
import { AdminOnly } from '../auth/access.decorators';
import type { GatewayCore } from '../core';
import { CORE } from '../http/core.token';

const STATUSES = ['pending', 'sent', 'processed', 'failed', 'dead', 'cancelled', 'refused'];

/** Raw e-mail types an MDN may be posted as (RFC 8098 report inside an RFC 5322 message). */
export const MDN_TYPES = ['message/rfc822', 'message/disposition-notification', 'multipart/report'];

/**
 * Operator API for the exchange engine: routing rules, deliveries (the dead letters included)
 * with their attempts, replay, and the MDN intake of the MSSanté mailbox bridge.
 */
@Controller()
@AdminOnly()
export class ExchangeAdminController {
  constructor(@Inject(CORE) private readonly core: GatewayCore) {}

  @Get('admin/exchange/routes')
  async routes(): Promise<Route[]> {
    return this.core.exchange.routes.list();
  }

  @Post('admin/exchange/routes')
  @HttpCode(201)
  async createRoute(@Req() req: FastifyRequest, @Body() body: unknown): Promise<Route> {
    return this.core.exchange.routes.create(body);
  }

  @Put('admin/exchange/routes/:id')
  async updateRoute(@Req() req: FastifyRequest, @Param('id') id: string, @Body() body: unknown): Promise<Route> {
    return this.core.exchange.routes.update(id, body);
  }

  @Get('admin/exchange/deliveries')
  async deliveries(
    @Req() req: FastifyRequest,
    @Query('status') status?: string,
    @Query('channel') channel?: string,
    @Query('event') event?: string,
    @Query('before') before?: string,
    @Query('_count') count?: string,
  ): Promise<Delivery[]> {
    if (status && !STATUSES.includes(status)) {
      throw new GatewayError('invalid', { text: `status must be one of ${STATUSES.join(', ')}` });
    }
    if (channel && !(CHANNELS as readonly string[]).includes(channel)) {
      throw new GatewayError('invalid', { text: `channel must be ${CHANNELS.join(' or ')}` });
    }
    if ((event && !/^\d+$/.test(event)) || (before && Number.isNaN(Date.parse(before)))) {
      throw new GatewayError('invalid', { text: 'event must be an event id and before a date-time' });
    }
    const limit = Math.min(Math.max(Number(count) || 100, 1), 1000);
    return this.core.exchange.deliveries.list({ status, channel, event, before, limit });
  }

  @Get('admin/exchange/deliveries/:id')
  async delivery(
    @Req() req: FastifyRequest,
    @Param('id') id: string,
  ): Promise<Delivery & { attempts_detail: Attempt[] }> {
    return this.core.exchange.delivery(id);
  }

  @Post('admin/exchange/deliveries/:id/replay')
  @HttpCode(202)
  async replay(@Req() req: FastifyRequest, @Param('id') id: string): Promise<Delivery> {
    return this.core.exchange.replay(id);
  }

  @Get('admin/exchange/summary')
  async summary(): Promise<Record<string, Record<string, number>>> {
    return this.core.exchange.summary();
  }

  /** An MDN received by the gateway's MSSanté mailbox, posted raw by the mail bridge (admin client). */
  @Post('exchange/mdn')
  async mdn(@Req() req: FastifyRequest): Promise<{ delivery: string; status: string }> {
    if (!Buffer.isBuffer(req.body)) {
      throw new GatewayError('unsupported-media-type', { text: `post the raw MDN as ${MDN_TYPES.join(' or ')}` });
    }
    return this.core.exchange.acceptMdn(req.body);
  }
}
