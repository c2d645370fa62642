import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Controller, Get, Inject, Param, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError } from '@gw/platform';
import type { GatewayCore } from '../core';
import { Public } from '../auth/access.decorators';
import { CORE } from '../http/core.token';

/**
 * Where the page's files are: `apps/gateway/dashboard` next to `src` when running from the
 * sources, `dist/apps/gateway/dashboard` once built (the build script copies them there).
 */
export const DASHBOARD_DIR = join(__dirname, '..', '..', 'dashboard');

const TYPES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'dashboard.js': 'text/javascript; charset=utf-8',
  'benchmark.js': 'text/javascript; charset=utf-8',
  'fhir.js': 'text/javascript; charset=utf-8',
  'recall.js': 'text/javascript; charset=utf-8',
  'worklist.js': 'text/javascript; charset=utf-8',
  'view.js': 'text/javascript; charset=utf-8',
  'table.js': 'text/javascript; charset=utf-8',
  'dashboard.css': 'text/css; charset=utf-8',
};

/** chart.js's browser build, served from node_modules (its `exports` only name the module builds). */
function chartJsPath(): string {
  return join(dirname(require.resolve('chart.js')), 'chart.umd.min.js');
}

/**
 * The indicator dashboard (issue #5): static files only, public. Every data call the page makes
 * goes through the FHIR API with the user's own bearer token, so the usual access rules apply.
 */
@Controller('dashboard')
@Public()
export class DashboardController {
  private readonly cache = new Map<string, Buffer>();

  constructor(@Inject(CORE) private readonly core: GatewayCore) {}

  @Get()
  index(@Req() req: FastifyRequest, @Res() reply: FastifyReply): void {
    // The page's links are relative: `/dashboard` must become `/dashboard/` (relative redirect, proxy-safe).
    if (this.core.config.GW_DASHBOARD_ENABLED && !req.url.split('?')[0]?.endsWith('/')) {
      void reply.status(302).header('location', 'dashboard/').send();
      return;
    }
    this.send(reply, 'index.html');
  }

  @Get('vendor/chart.umd.min.js')
  chart(@Res() reply: FastifyReply): void {
    this.send(reply, 'chart.umd.min.js', chartJsPath(), 'text/javascript; charset=utf-8');
  }

  /**
   * The FMT amounts the care-gaps worklist's estimate uses: catalogue data next to the Measures
   * (`<GW_PROFILES_DIR>/fmt/fmt-amounts.json`), each amount with its source; no patient data.
   */
  @Get('fmt-amounts.json')
  fmtAmounts(@Res() reply: FastifyReply): void {
    const path = join(resolve(this.core.config.GW_PROFILES_DIR), 'fmt', 'fmt-amounts.json');
    this.send(reply, 'fmt-amounts.json', path, 'application/json; charset=utf-8');
  }

  @Get(':file')
  file(@Param('file') file: string, @Res() reply: FastifyReply): void {
    this.send(reply, file);
  }

  private send(reply: FastifyReply, name: string, path = join(DASHBOARD_DIR, name), type = TYPES[name]): void {
    if (!this.core.config.GW_DASHBOARD_ENABLED || !type || !existsSync(path)) {
      throw new GatewayError('not-found', { text: `No dashboard file ${name}` });
    }
    let body = this.cache.get(path);
    if (!body) {
      body = readFileSync(path);
      this.cache.set(path, body);
    }
    void reply
      .status(200)
      .header('content-type', type)
      .header('cache-control', 'no-cache')
      .header('x-content-type-options', 'nosniff')
      // The page talks to its own origin only; no inline script.
      .header(
        'content-security-policy',
        "default-src 'self'; img-src 'self' data:; style-src 'self'; object-src 'none'; frame-ancestors 'none'",
      )
      .send(body);
  }
}
