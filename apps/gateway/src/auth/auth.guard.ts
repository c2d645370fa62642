import { Inject, Injectable } from '@nestjs/common';
import type { CanActivate, ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { GatewayError } from '@gw/platform';
import type { AccessClaims, ClientStatus, PersonClaims } from '@gw/platform';
import { PERSON_IDENTITY_GRANT } from '@gw/store';
import type { Principal } from '@gw/store';
import type { GatewayCore } from '../core';
import { IS_ADMIN_ONLY, IS_PUBLIC } from './access.decorators';
import type { RoleStatus } from './person.directory';
import { CORE } from '../http/core.token';

export type AuthedRequest = FastifyRequest & { principal?: Principal };

/** Global guard: every route needs a valid Bearer access token unless marked @Public(). */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    @Inject(CORE) private readonly core: GatewayCore,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, [context.getHandler(), context.getClass()])) {
      return true;
    }
    const req = context.switchToHttp().getRequest<AuthedRequest>();
    // RFC 7235 §2.1: the scheme name is case-insensitive ("bearer" is common in client libraries).
    const token = /^bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];
    if (!token) {
      throw new GatewayError('unauthorized', {
        text: 'A Bearer access token is required (POST /oauth2/token, grant_type=client_credentials)',
      });
    }
    let claims: AccessClaims;
    try {
      claims = await this.core.tokens.verify(token);
    } catch (err) {
      const expired = (err as { code?: string }).code === 'ERR_JWT_EXPIRED';
      throw new GatewayError('unauthorized', {
        text: expired ? 'The access token has expired' : 'The access token is invalid',
        code: expired ? 'expired' : 'login',
      });
    }
    req.principal = await this.currentPrincipal(claims);
    if (
      this.reflector.getAllAndOverride<boolean>(IS_ADMIN_ONLY, [context.getHandler(), context.getClass()]) &&
      !req.principal.admin
    ) {
      throw new GatewayError('forbidden', { text: 'This operation needs an admin client' });
    }
    return true;
  }

  /**
   * The token is verified offline; what the registry says now decides: a deactivated (or deleted)
   * client is refused within seconds of the change, and its organization, admin flag and grants
   * are the current ones, not those of the time the token was issued.
   */
  private async currentPrincipal(claims: AccessClaims): Promise<Principal> {
    let status: ClientStatus | undefined;
    try {
      status = await this.core.clientStatus.get(claims.clientId);
    } catch {
      throw new GatewayError('upstream-unavailable', { text: 'The client registry cannot be read; retry later' });
    }
    if (!status?.active) {
      throw new GatewayError('unauthorized', {
        text: status ? 'The client is deactivated' : 'The client of this access token no longer exists',
      });
    }
    const principal: Principal = {
      clientId: claims.clientId,
      organization: status.organization,
      admin: status.admin,
      scopes: claims.scopes,
      grants: status.grants,
    };
    return claims.person ? this.personPrincipal(principal, claims.person) : principal;
  }

  /**
   * A person token (token exchange) acts through one PractitionerRole: it works while that role is
   * active, held by the same practitioner, in the client's current organization (checked against a
   * status at most seconds old, as the client's). A person is never an admin, whatever the client.
   */
  private async personPrincipal(principal: Principal, person: PersonClaims): Promise<Principal> {
    let role: RoleStatus | undefined;
    try {
      role = await this.core.persons.current(person.role);
    } catch {
      throw new GatewayError('upstream-unavailable', { text: 'The directory cannot be read; retry later' });
    }
    if (
      !role ||
      !role.active ||
      role.practitioner !== person.practitioner ||
      role.organization !== principal.organization
    ) {
      throw new GatewayError('unauthorized', {
        text: `The practitioner role of this access token (${person.role}) is no longer active in ${principal.organization}`,
      });
    }
    return {
      ...principal,
      admin: false,
      person: {
        practitioner: role.practitioner,
        role: role.role,
        ...(role.profession ? { profession: role.profession } : {}),
        health: role.health,
        // Practitioner-level grants (a care circle, a consent, a médecin traitant naming the
        // Practitioner) follow an identity a provider proved, or a client an operator trusts to
        // authenticate its users; otherwise only the role and the organization count.
        identityVerified: person.identityVerified === true || (principal.grants ?? []).includes(PERSON_IDENTITY_GRANT),
        ...(role.idNatPs ? { idNatPs: role.idNatPs } : {}),
        ...(role.display ? { display: role.display } : {}),
        purpose: 'TREAT',
      },
    };
  }
}

/** The principal set by the guard on an authenticated request. */
export function principalOf(req: FastifyRequest): Principal {
  const p = (req as AuthedRequest).principal;
  if (!p) {
    throw new GatewayError('unauthorized', { text: 'Not authenticated' });
  }
  return p;
}
