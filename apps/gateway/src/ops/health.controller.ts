import { Controller, Get, Inject, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import type { Registry } from 'prom-client';
import type { GatewayCore } from '../core';
import { Public } from '../auth/access.decorators';
import { CORE } from '../http/core.token';

export const METRICS = Symbol('MetricsRegistry');

/** Liveness, readiness (database and queue reachable) and Prometheus metrics. */
@Controller()
@Public()
export class HealthController {
  constructor(
    @Inject(CORE) private readonly core: GatewayCore,
    @Inject(METRICS) private readonly metrics: Registry,
  ) {}

  @Get('health/live')
  live(): { status: string } {
    return { status: 'ok' };
  }

  @Get('health/ready')
  async ready(@Res() reply: FastifyReply): Promise<void> {
    const checks: Record<string, string> = {};
    checks.database = await this.core.db.pool.query('SELECT 1').then(
      () => 'ok',
      () => 'down',
    );
    checks.queue = await withTimeout(this.core.queue.counts(), 2000).then(
      () => 'ok',
      () => 'down',
    );
    const ok = Object.values(checks).every((c) => c === 'ok');
    void reply
      .status(ok ? 200 : 503)
      .send({ status: ok ? 'ok' : 'unavailable', checks, queueBackend: this.core.queue.backend });
  }

  @Get('metrics')
  async scrape(@Res() reply: FastifyReply): Promise<void> {
    void reply.header('content-type', this.metrics.contentType).send(await this.metrics.metrics());
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error('timeout')), ms).unref())]);
}
