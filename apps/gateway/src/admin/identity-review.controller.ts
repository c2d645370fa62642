import { Body, Controller, Get, HttpCode, Inject, Param, Post, Query, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { GatewayError, scopeAllows } from '@gw/platform';
import { REVIEW_STATUSES } from '@gw/ingest';
import type { IdentityReview, ReviewDecision, ReviewStatus } from '@gw/ingest';
import type { Principal } from '@gw/store';
import { principalOf } from '../auth/auth.guard';
import { AdminOnly } from '../auth/access.decorators';
import type { GatewayCore } from '../core';
import { CORE } from '../http/core.token';
import { pageSize } from './page-size';

interface ReviewPage {
  total: number;
  offset: number;
  reviews: IdentityReview[];
}

/** `status` and `_offset` of a listing, checked. */
function listing(status: string | undefined, offset: string | undefined): { status?: ReviewStatus; offset: number } {
  if (status !== undefined && !REVIEW_STATUSES.includes(status as ReviewStatus)) {
    throw new GatewayError('invalid', { text: `status must be one of ${REVIEW_STATUSES.join(', ')}` });
  }
  const n = offset === undefined ? 0 : Number(offset);
  if (!Number.isInteger(n) || n < 0) {
    throw new GatewayError('invalid', { text: '_offset must be a whole number, 0 or more' });
  }
  return { status: status as ReviewStatus | undefined, offset: n };
}

/** The accept body `{ patient: 'Patient/<id>' }` as a decision. */
function acceptance(body: unknown): ReviewDecision {
  const ref = (body as { patient?: unknown } | undefined)?.patient;
  const m = typeof ref === 'string' ? /^Patient\/([A-Za-z0-9\-.]{1,64})$/.exec(ref) : null;
  if (!m) {
    throw new GatewayError('invalid', { text: 'Send { "patient": "Patient/<id>" }', expression: 'patient' });
  }
  return { kind: 'accept', patientId: m[1] };
}

/** The reject body `{ reason?: string }` as a decision. */
function rejection(body: unknown): ReviewDecision {
  const reason = (body as { reason?: unknown } | undefined)?.reason;
  if (reason !== undefined && (typeof reason !== 'string' || reason.length > 500)) {
    throw new GatewayError('invalid', {
      text: 'reason must be a text of at most 500 characters',
      expression: 'reason',
    });
  }
  return { kind: 'reject', ...(reason ? { reason } : {}) };
}

/** Operator side of the identity review queue: every organization's reviews. */
@Controller('admin/identity/reviews')
@AdminOnly()
export class IdentityReviewAdminController {
  constructor(@Inject(CORE) private readonly core: GatewayCore) {}

  @Get()
  async list(
    @Query('status') status?: string,
    @Query('owner') owner?: string,
    @Query('_count') count?: string,
    @Query('_offset') offset?: string,
  ): Promise<ReviewPage> {
    const q = listing(status, offset);
    const page = await this.core.identity.reviews.list({ ...q, owner, count: pageSize(count) });
    return { ...page, offset: q.offset };
  }

  @Get(':id')
  async get(@Param('id') id: string): Promise<IdentityReview> {
    return this.core.identity.reviews.get(id);
  }

  @Post(':id/accept')
  @HttpCode(200)
  async accept(@Req() req: FastifyRequest, @Param('id') id: string, @Body() body: unknown): Promise<IdentityReview> {
    return this.core.identity.reviews.decide(id, acceptance(body), principalOf(req));
  }

  @Post(':id/create')
  @HttpCode(200)
  async create(@Req() req: FastifyRequest, @Param('id') id: string): Promise<IdentityReview> {
    return this.core.identity.reviews.decide(id, { kind: 'create' }, principalOf(req));
  }

  @Post(':id/reject')
  @HttpCode(200)
  async reject(@Req() req: FastifyRequest, @Param('id') id: string, @Body() body: unknown): Promise<IdentityReview> {
    return this.core.identity.reviews.decide(id, rejection(body), principalOf(req));
  }
}

/**
 * A structure's own identity review queue (the documents it sent that wait for a decision): its
 * clients read it with a Patient read scope and decide with Patient create and update scopes.
 */
@Controller('ingest/identity/reviews')
export class IdentityReviewController {
  constructor(@Inject(CORE) private readonly core: GatewayCore) {}

  @Get()
  async list(
    @Req() req: FastifyRequest,
    @Query('status') status?: string,
    @Query('_count') count?: string,
    @Query('_offset') offset?: string,
  ): Promise<ReviewPage> {
    const p = allowed(req, ['r', 's']);
    const q = listing(status, offset);
    const page = await this.core.identity.reviews.list({ ...q, owner: p.organization, count: pageSize(count) });
    return { ...page, offset: q.offset };
  }

  @Get(':id')
  async get(@Req() req: FastifyRequest, @Param('id') id: string): Promise<IdentityReview> {
    return this.core.identity.reviews.get(id, allowed(req, ['r']).organization);
  }

  @Post(':id/accept')
  @HttpCode(200)
  async accept(@Req() req: FastifyRequest, @Param('id') id: string, @Body() body: unknown): Promise<IdentityReview> {
    const p = allowed(req, ['c', 'u']);
    return this.core.identity.reviews.decide(id, acceptance(body), p, p.organization);
  }

  @Post(':id/create')
  @HttpCode(200)
  async create(@Req() req: FastifyRequest, @Param('id') id: string): Promise<IdentityReview> {
    const p = allowed(req, ['c', 'u']);
    return this.core.identity.reviews.decide(id, { kind: 'create' }, p, p.organization);
  }

  @Post(':id/reject')
  @HttpCode(200)
  async reject(@Req() req: FastifyRequest, @Param('id') id: string, @Body() body: unknown): Promise<IdentityReview> {
    const p = allowed(req, ['c', 'u']);
    return this.core.identity.reviews.decide(id, rejection(body), p, p.organization);
  }
}

/** The caller, when its scopes give every one of `actions` on Patient (403 otherwise). */
function allowed(req: FastifyRequest, actions: ('c' | 'r' | 'u' | 's')[]): Principal {
  const p = principalOf(req);
  if (!actions.every((a) => scopeAllows(p.scopes, 'Patient', a))) {
    throw new GatewayError('forbidden', {
      text: `The identity review queue needs Patient scopes ${actions.join('')} (e.g. system/Patient.${actions.join('')})`,
    });
  }
  return p;
}
