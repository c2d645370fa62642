import { timingSafeEqual } from 'node:crypto';
import { Controller, Get, Inject, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError } from '@gw/platform';
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

  /**
   * Open on a loopback listener (a local scraper, the default start); elsewhere it needs
   * `GW_METRICS_TOKEN` as a Bearer token: queue depths, failure counts and request rates are not
   * for whoever reaches the port.
   */
  @Get('metrics')
  async scrape(@Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const expected = this.core.config.GW_METRICS_TOKEN;
    if (expected) {
      const given = /^bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1] ?? '';
      if (!sameSecret(given, expected)) {
        throw new GatewayError('unauthorized', { text: '/metrics needs the Bearer token set in GW_METRICS_TOKEN' });
      }
    } else if (!LOOPBACK_HOSTS.has(this.core.config.GW_HTTP_HOST)) {
      throw new GatewayError('forbidden', {
        text: '/metrics is open on a loopback listener only: set GW_METRICS_TOKEN and send it as a Bearer token',
      });
    }
    void reply.header('content-type', this.metrics.contentType).send(await this.metrics.metrics());
  }
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1', 'localhost']);

/** Constant-time comparison of two secrets of any length. */
function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error('timeout')), ms).unref())]);
}
