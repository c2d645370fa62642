import { Body, Controller, Get, HttpCode, Inject, Post, Query, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError, OAuthError } from '@gw/platform';
import type { GatewayCore } from '../core';
import { Public } from './access.decorators';
import { CORE } from '../http/core.token';

/** The cookie binding a pending login's state to the browser that started it. */
const STATE_COOKIE = 'gw_dashboard_login';

/**
 * Dashboard login of persons through the configured OpenID Connect provider (the gateway is the
 * relying party). Public routes: the provider authenticates the person; the session route gives a
 * token only for a one-time code the callback produced.
 */
@Controller('dashboard')
@Public()
export class DashboardLoginController {
  constructor(@Inject(CORE) private readonly core: GatewayCore) {}

  /** Whether the page offers the provider login. */
  @Get('login/options')
  options(): { oidc: boolean } {
    return { oidc: this.enabled() && this.core.dashboardLogin.enabled };
  }

  @Get('login')
  async login(@Res() reply: FastifyReply): Promise<void> {
    this.requireEnabled();
    const { location, state } = await this.core.dashboardLogin.start();
    void reply
      .status(302)
      .header('cache-control', 'no-store')
      .header('set-cookie', this.cookie(state, 600))
      .header('location', location)
      .send();
  }

  /** The provider's redirect; the page gets a one-time code (or the error) in the fragment. */
  @Get('callback')
  async callback(
    @Query('code') code: string | undefined,
    @Query('state') state: string | undefined,
    @Query('error') error: string | undefined,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    this.requireEnabled();
    let fragment: string;
    try {
      if (error) {
        throw new OAuthError(400, 'access_denied', `The provider refused the login (${error.slice(0, 64)})`);
      }
      const oneTime = await this.core.dashboardLogin.callback(code, state, cookieOf(req, STATE_COOKIE));
      fragment = new URLSearchParams({ login_code: oneTime }).toString();
    } catch (err) {
      if (!(err instanceof OAuthError)) {
        throw err;
      }
      fragment = new URLSearchParams({ login_error: err.description }).toString();
    }
    // Relative to /dashboard/callback: the page itself (proxy-safe, as the page's own redirect).
    void reply
      .status(302)
      .header('cache-control', 'no-store')
      .header('referrer-policy', 'no-referrer')
      .header('set-cookie', this.cookie('', 0))
      .header('location', `./#${fragment}`)
      .send();
  }

  @Post('session')
  @HttpCode(200)
  async session(@Body() body: unknown, @Res({ passthrough: true }) reply: FastifyReply): Promise<unknown> {
    this.requireEnabled();
    const code = body && typeof body === 'object' ? (body as { code?: unknown }).code : undefined;
    void reply.header('cache-control', 'no-store');
    return this.core.dashboardLogin.redeem(typeof code === 'string' ? code : undefined);
  }

  private cookie(value: string, maxAge: number): string {
    const secure = this.core.baseUrl.startsWith('https:') ? '; Secure' : '';
    return `${STATE_COOKIE}=${value}; Path=/dashboard; HttpOnly; SameSite=Lax; Max-Age=${maxAge}${secure}`;
  }

  private enabled(): boolean {
    return this.core.config.GW_DASHBOARD_ENABLED;
  }

  private requireEnabled(): void {
    if (!this.enabled() || !this.core.dashboardLogin.enabled) {
      throw new GatewayError('not-found', { text: 'Dashboard login through a provider is not configured' });
    }
  }
}

function cookieOf(req: FastifyRequest, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) {
      return v.join('=');
    }
  }
  return undefined;
}
