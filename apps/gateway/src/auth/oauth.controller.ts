import { Controller, Get, Inject, Post, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { OAuthError, TOKEN_EXCHANGE_GRANT } from '@gw/platform';
import type { TokenRequest } from '@gw/platform';
import type { GatewayCore } from '../core';
import { Public } from './access.decorators';
import { CORE } from '../http/core.token';

/** OAuth2 token endpoint (SMART Backend Services, RFC 8693 token exchange) and discovery documents. */
@Controller()
@Public()
export class OAuthController {
  constructor(@Inject(CORE) private readonly core: GatewayCore) {}

  @Post('oauth2/token')
  async token(@Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const tokenRequest: TokenRequest = {
      ...formFields(req.body),
      authorization: req.headers.authorization,
      address: req.ip,
    };
    try {
      const result = await this.core.tokens.issue(tokenRequest);
      // RFC 6749 §5.1: a token response is 200 OK (Nest would answer a POST with 201).
      void reply.status(200).header('cache-control', 'no-store').send(result);
    } catch (err) {
      // RFC 6749 §5.2: a client that authenticated with HTTP Basic gets a challenge with its 401.
      if (err instanceof OAuthError && err.status === 401 && /^basic\s/i.test(req.headers.authorization ?? '')) {
        void reply.header('www-authenticate', 'Basic realm="fhir-gateway"');
      }
      if (err instanceof OAuthError && err.retryAfter !== undefined) {
        void reply.header('retry-after', String(err.retryAfter));
      }
      throw err;
    }
  }

  @Get(['.well-known/smart-configuration', 'fhir/.well-known/smart-configuration'])
  smartConfiguration(): Record<string, unknown> {
    const base = this.core.baseUrl;
    return {
      issuer: base,
      jwks_uri: `${base}/.well-known/jwks.json`,
      token_endpoint: `${base}/oauth2/token`,
      grant_types_supported: ['client_credentials', TOKEN_EXCHANGE_GRANT],
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

/**
 * The token request parameters: a form (RFC 6749), or a JSON object tolerated for convenience.
 * Only string values are kept: TokenService expects strings, and a JSON array or number would
 * otherwise surface as a 500.
 */
function formFields(body: unknown): Record<string, string> {
  const entries =
    typeof body === 'string'
      ? [...new URLSearchParams(body)]
      : body && typeof body === 'object'
        ? Object.entries(body)
        : [];
  return Object.fromEntries(entries.filter((e): e is [string, string] => typeof e[1] === 'string'));
}
