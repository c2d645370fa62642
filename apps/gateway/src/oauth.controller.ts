import { Controller, Get, Inject, Post, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { TokenRequest } from '@gw/platform';
import type { GatewayCore } from './core';
import { Public } from './public.decorator';
import { CORE } from './tokens';

/** OAuth2 token endpoint (SMART Backend Services) and discovery documents. */
@Controller()
@Public()
export class OAuthController {
  constructor(@Inject(CORE) private readonly core: GatewayCore) {}

  @Post('oauth2/token')
  async token(@Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const form = typeof req.body === 'string' ? Object.fromEntries(new URLSearchParams(req.body)) : ((req.body ?? {}) as Record<string, string>);
    const tokenRequest: TokenRequest = { ...form, authorization: req.headers.authorization };
    const result = await this.core.tokens.issue(tokenRequest);
    void reply.header('cache-control', 'no-store').send(result);
  }

  @Get(['.well-known/smart-configuration', 'fhir/.well-known/smart-configuration'])
  smartConfiguration(): Record<string, unknown> {
    const base = this.core.baseUrl;
    return {
      issuer: base,
      jwks_uri: `${base}/.well-known/jwks.json`,
      token_endpoint: `${base}/oauth2/token`,
      grant_types_supported: ['client_credentials'],
      token_endpoint_auth_methods_supported: ['private_key_jwt', 'client_secret_basic', 'client_secret_post'],
      token_endpoint_auth_signing_alg_values_supported: ['RS384', 'ES384', 'RS256', 'ES256'],
      scopes_supported: ['system/*.cruds', 'system/*.rs', 'system/*.read', 'system/*.write'],
      capabilities: ['client-confidential-asymmetric', 'client-confidential-symmetric', 'permission-v2'],
    };
  }

  @Get('.well-known/jwks.json')
  jwks(): Record<string, unknown> {
    return this.core.tokens.jwks() as unknown as Record<string, unknown>;
  }
}
