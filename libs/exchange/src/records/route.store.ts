import type { Pool } from 'pg';
import { z } from 'zod';
import { GatewayError } from '@gw/platform';
import type { Queryable } from '@gw/store';
import { CHANNEL_NAMES } from '../channels/channel';
import type { ChannelName } from '../channels/channel';

const ORG_REF = /^Organization\/[A-Za-z0-9\-.]{1,64}$/;

export const RECIPIENT_ROLES = ['mt', 'care-team', 'coordinator', 'cpts'] as const;
/** The channel names a route may list (see channel.ts). */
export const CHANNELS = CHANNEL_NAMES;

const routeInput = z
  .object({
    name: z.string().min(1).max(200),
    hospital: z.string().regex(ORG_REF, 'expected Organization/<id>').nullable().optional(),
    territory: z.string().regex(ORG_REF, 'expected Organization/<id>').nullable().optional(),
    followUpDays: z.number().int().min(0).max(365).optional(),
    recipients: z.array(z.enum(RECIPIENT_ROLES)).min(1).optional(),
    channels: z.array(z.enum(CHANNELS)).optional(),
    active: z.boolean().optional(),
  })
  .strict();

export type RouteInput = z.infer<typeof routeInput>;

/** A routing rule: who is told, how, and the follow-up delay, for a hospital, a territory or by default. */
export interface Route {
  id: string;
  name: string;
  hospital: string | null;
  territory: string | null;
  followUpDays: number;
  recipients: (typeof RECIPIENT_ROLES)[number][];
  channels: ChannelName[];
  active: boolean;
  updatedAt: string;
}

const COLUMNS = 'id, name, hospital, territory, follow_up_days, recipients, channels, active, updated_at';

/** Routing rules are rows (admin API), not code: the most specific active one applies. */
export class RouteStore {
  constructor(private readonly pool: Pool) {}

  async list(): Promise<Route[]> {
    const res = await this.pool.query(
      `SELECT ${COLUMNS} FROM exchange_route ORDER BY hospital NULLS LAST, territory NULLS LAST, name`,
    );
    return res.rows.map(toRoute);
  }

  /** Hospital and territory → hospital+territory, hospital, territory, default. */
  async pick(db: Queryable, hospital: string | undefined, territory: string | undefined): Promise<Route | undefined> {
    const res = await db.query(
      `SELECT ${COLUMNS} FROM exchange_route
       WHERE active AND (hospital IS NULL OR hospital = $1) AND (territory IS NULL OR territory = $2)
       ORDER BY (hospital IS NOT NULL) DESC, (territory IS NOT NULL) DESC LIMIT 1`,
      [hospital ?? null, territory ?? null],
    );
    return res.rows[0] ? toRoute(res.rows[0]) : undefined;
  }

  /** What routing decided for each of these domain events (care-team, mt, cpts, historic, …); absent while not routed. */
  async outcomes(eventIds: number[]): Promise<Map<number, string>> {
    const res = await this.pool.query<{ event_id: string; outcome: string }>(
      'SELECT event_id, outcome FROM exchange_routing WHERE event_id = ANY($1::bigint[])',
      [eventIds],
    );
    return new Map(res.rows.map((r) => [Number(r.event_id), r.outcome]));
  }

  async create(body: unknown): Promise<Route> {
    const input = parse(body);
    return this.write(
      `INSERT INTO exchange_route (name, hospital, territory, follow_up_days, recipients, channels, active)
       VALUES ($1, $2, $3, coalesce($4, 7), coalesce($5, '{mt,care-team}'), coalesce($6, '{mssante,mhd}'), coalesce($7, true)) RETURNING ${COLUMNS}`,
      [
        input.name,
        input.hospital ?? null,
        input.territory ?? null,
        input.followUpDays ?? null,
        input.recipients ?? null,
        input.channels ?? null,
        input.active ?? null,
      ],
    );
  }

  async update(id: string, body: unknown): Promise<Route> {
    const input = parse({ name: 'unchanged', ...(body as object) });
    const named = (body as { name?: string } | null)?.name;
    const route = await this.write(
      `UPDATE exchange_route SET name = coalesce($2, name), follow_up_days = coalesce($3, follow_up_days),
         recipients = coalesce($4, recipients), channels = coalesce($5, channels), active = coalesce($6, active), updated_at = now()
       WHERE id = $1::uuid RETURNING ${COLUMNS}`,
      [
        id,
        named ?? null,
        input.followUpDays ?? null,
        input.recipients ?? null,
        input.channels ?? null,
        input.active ?? null,
      ],
    );
    return route;
  }

  private async write(sql: string, values: unknown[]): Promise<Route> {
    try {
      const res = await this.pool.query(sql, values);
      if (!res.rows[0]) {
        throw new GatewayError('not-found', { text: 'route not found' });
      }
      return toRoute(res.rows[0]);
    } catch (err) {
      if ((err as { code?: string }).code === '23505') {
        throw new GatewayError('conflict', { text: 'an active route already exists for this hospital and territory' });
      }
      if ((err as { code?: string }).code === '22P02') {
        throw new GatewayError('not-found', { text: 'route not found' });
      }
      throw err;
    }
  }
}

function parse(body: unknown): RouteInput {
  const result = routeInput.safeParse(body ?? {});
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new GatewayError('invalid', {
      text: `route ${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}`,
    });
  }
  return result.data;
}

function toRoute(r: Record<string, unknown>): Route {
  return {
    id: r.id as string,
    name: r.name as string,
    hospital: r.hospital as string | null,
    territory: r.territory as string | null,
    followUpDays: r.follow_up_days as number,
    recipients: r.recipients as Route['recipients'],
    channels: r.channels as ChannelName[],
    active: r.active as boolean,
    updatedAt: (r.updated_at as Date).toISOString(),
  };
}
