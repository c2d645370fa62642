import type { Communication, Task } from '@medplum/fhirtypes';
import type { PoolClient } from 'pg';
import { lockEvent, markEventsDispatched } from '@gw/store';
import type { FhirRepository, NewVersion } from '@gw/store';
import type { DischargeContext, DischargeContextLoader, Recipient } from '../records/discharge-context.loader';
import { MAILBOX_NOT_VERIFIED, planDischarge } from './discharge.plan';
import type { DischargePlan } from './discharge.plan';
import {
  DELIVERY_ID_SYSTEM,
  ROUTING_ID_SYSTEM,
  TASK_CODE_SYSTEM,
  TASK_INPUT_SYSTEM,
  TASK_TEXT,
  businessStatus,
} from '../exchange.codes';
import { nameUuid, uuidOid } from '@gw/platform';
import { dateRange } from '@gw/fhir';
import type { Delivery, DeliveryStore } from '../records/delivery.store';
import type { Channel, ChannelRegistry } from '../channels/channel';
import type { FollowUpTracker } from '../records/follow-up.tracker';
import type { ResourceWriter } from '../records/resource.writer';
import type { RouteStore } from '../records/route.store';

export interface RouterSettings {
  /** A discharge older than this (ms before routing time) is recorded as historic and not routed. */
  maxDischargeAgeMs: number;
}

export interface RouteResult {
  status: 'routed' | 'already-routed' | 'skipped';
  reason?: string;
  deliveries: Delivery[];
  /** The CPTS that all claim the patient's commune, when that left the discharge without a CPTS. */
  conflict?: string[];
}

/** Routing outcome of a discharge older than GW_EXCHANGE_MAX_DISCHARGE_AGE (history load, late feed). */
export const HISTORIC = 'historic';
const HISTORIC_REASON = 'discharge older than GW_EXCHANGE_MAX_DISCHARGE_AGE: stored, not routed';

/**
 * A loaded past is not news (the synthetic territory, a migration of history): marks the
 * discharge events of these Encounters dispatched in the caller's transaction, so the outbox relay
 * never routes them, and records their routing as `historic-load`, so that even a replayed route
 * job does nothing. Returns how many events were marked.
 */
export async function markHistoricDischarges(tx: PoolClient, encounters: string[]): Promise<number> {
  const ids = await markEventsDispatched(tx, 'encounter.discharged', encounters);
  if (ids.length > 0) {
    await tx.query(
      `INSERT INTO exchange_routing (event_id, route_id, outcome) SELECT id, NULL, 'historic-load' FROM unnest($1::bigint[]) AS id ON CONFLICT DO NOTHING`,
      [ids],
    );
  }
  return ids.length;
}

/** When a FHIR date or dateTime ends (a date alone: the end of that day, to be lenient); undefined if absent or unreadable. */
function fhirDate(value: string | undefined): Date | undefined {
  const range = value ? dateRange(value) : undefined;
  return range ? new Date(range.high) : undefined;
}

/**
 * Turns one `encounter.discharged` event into a follow-up Task, a Communication per recipient and
 * the delivery rows, in one transaction recorded in exchange_routing (so a redelivered event or a
 * retried job routes once).
 */
export class DischargeRouter {
  constructor(
    private readonly repo: FhirRepository,
    private readonly loader: DischargeContextLoader,
    private readonly routes: RouteStore,
    private readonly deliveries: DeliveryStore,
    private readonly writer: ResourceWriter,
    private readonly tracker: FollowUpTracker,
    private readonly channels: ChannelRegistry,
    private readonly settings: RouterSettings,
  ) {}

  async route(eventId: string, now = new Date()): Promise<RouteResult> {
    return this.repo.withTransaction(async (tx) => {
      const event = await lockEvent(tx, eventId);
      if (!event || event.type !== 'encounter.discharged') {
        return { status: 'skipped', reason: 'no such discharge event', deliveries: [] };
      }
      const done = await tx.query('SELECT 1 FROM exchange_routing WHERE event_id = $1', [eventId]);
      if (done.rowCount) {
        // A retried job after a crash: hand the still-pending deliveries to the queue again.
        const pending = (await this.deliveries.forEvent(tx, eventId)).filter((d) => d.status === 'pending');
        return { status: 'already-routed', deliveries: pending };
      }
      if (event.status === 'withdrawn') {
        await recordRouting(tx, eventId, null, 'withdrawn-before-routing', []);
        return { status: 'skipped', reason: 'discharge cancelled before routing', deliveries: [] };
      }
      const occurredAt = event.occurredAt ? new Date(event.occurredAt) : undefined;
      if (this.isHistoric(occurredAt, now)) {
        await recordRouting(tx, eventId, null, HISTORIC, []);
        return { status: 'skipped', reason: HISTORIC_REASON, deliveries: [] };
      }
      const ctx = await this.loader.load(tx, event.resource);
      if (!ctx) {
        await recordRouting(tx, eventId, null, 'encounter-not-found', []);
        return { status: 'skipped', reason: 'encounter or patient not found', deliveries: [] };
      }
      // A date-only period.end has no occurred_at on the event: judge it from the Encounter.
      if (!occurredAt && this.isHistoric(fhirDate(ctx.encounter.period?.end), now)) {
        await recordRouting(tx, eventId, null, HISTORIC, []);
        return { status: 'skipped', reason: HISTORIC_REASON, deliveries: [] };
      }
      const coverage = await this.loader.directory.coverage(ctx.commune, tx);
      const route = await this.routes.pick(tx, ctx.hospitalRef ?? event.organization ?? undefined, coverage.cpts?.ref);
      if (!route) {
        await recordRouting(tx, eventId, null, 'no-active-route', []);
        return { status: 'skipped', reason: 'no active route', deliveries: [] };
      }
      const plan = planDischarge(ctx, route, coverage, now);
      const rows = this.write(eventId, ctx, plan, route.channels, now);
      await this.writer.flush(tx, rows.versions);
      await this.deliveries.insert(tx, rows.deliveries);
      await recordRouting(
        tx,
        eventId,
        route.id,
        plan.outcome,
        rows.task ? [rows.task] : [],
        documentUniqueId(eventId, ctx),
      );
      return {
        status: 'routed',
        deliveries: await this.deliveries.forEvent(tx, eventId),
        ...(plan.outcome === 'cpts-conflict' ? { conflict: coverage.conflict?.map((c) => c.ref) } : {}),
      };
    });
  }

  private isHistoric(dischargedAt: Date | undefined | null, now: Date): boolean {
    return !!dischargedAt && now.getTime() - dischargedAt.getTime() > this.settings.maxDischargeAgeMs;
  }

  /** A13: Tasks cancelled, pending deliveries cancelled, unsent Communications stopped. */
  async withdraw(eventId: string): Promise<{ cancelled: Delivery[] }> {
    return this.repo.withTransaction(async (tx) => {
      await lockEvent(tx, eventId);
      const routing = await tx.query<{ tasks: string[] }>(
        'UPDATE exchange_routing SET withdrawn_at = now() WHERE event_id = $1 AND withdrawn_at IS NULL RETURNING tasks',
        [eventId],
      );
      const cancelled = await this.deliveries.cancelPending(tx, eventId);
      for (const d of cancelled) {
        if (d.communication) {
          await this.tracker.communication(tx, d.communication, 'stopped', 'Sortie annulée par l’établissement');
        }
      }
      for (const task of routing.rows[0]?.tasks ?? []) {
        await this.writer.modify<Task>(tx, task, (t) => {
          t.status = 'cancelled';
          t.businessStatus = businessStatus('discharge-cancelled');
          t.statusReason = { text: 'Sortie annulée par l’établissement (A13)' };
          t.lastModified = new Date().toISOString();
          return true;
        });
      }
      return { cancelled };
    });
  }

  /** The Task, Communications and delivery rows of a plan (prepared, not yet persisted). */
  private write(eventId: string, ctx: DischargeContext, plan: DischargePlan, channels: string[], now: Date) {
    const versions: NewVersion[] = [];
    const deliveries: Parameters<DeliveryStore['insert']>[1] = [];
    let task: string | undefined;
    const fileUnder = plan.task?.fileUnder ?? ctx.patientOwner ?? undefined;
    if (plan.task) {
      const prepared = this.writer.prepare<Task>(
        followUpTask(eventId, ctx, plan, now),
        fileUnder,
        nameUuid(`task:${eventId}`),
      );
      versions.push(prepared.version);
      task = prepared.ref;
    }
    for (const channel of this.channels.all()) {
      const on = channels.includes(channel.name) && !!channel.destination;
      if (channel.addressing === 'recipient') {
        // One message per recipient, each with the Communication the care team's software reads.
        for (const r of plan.recipients) {
          const deliveryId = nameUuid(`${eventId}|${channel.name}|${r.mailbox ?? r.ref}`);
          const comm = this.writer.prepare<Communication>(
            communication(deliveryId, ctx, r, task, notSent(channel, on, r)),
            r.organization ?? fileUnder,
            nameUuid(`comm:${deliveryId}`),
          );
          versions.push(comm.version);
          if (on && r.mailbox) {
            deliveries.push({
              id: deliveryId,
              eventId,
              channel: channel.name,
              destination: r.mailbox,
              recipient: r.ref,
              communication: comm.ref,
              task: task ?? null,
              status: 'pending',
            });
          }
        }
      } else if (on) {
        const destination = channel.destination as string;
        const id = nameUuid(`${eventId}|${channel.name}|${destination}`);
        deliveries.push({
          id,
          eventId,
          channel: channel.name,
          destination,
          recipient: null,
          communication: null,
          task: task ?? null,
          status: 'pending',
        });
      }
    }
    return { versions, deliveries, task };
  }
}

/** Why a recipient's Communication is not sent (no mailbox or an unverified one, channel off), or undefined when it is. */
function notSent(channel: Channel, on: boolean, r: Recipient): string | undefined {
  return !r.mailbox
    ? r.mailboxUnverified
      ? `Boîte ${channel.label} ${MAILBOX_NOT_VERIFIED}`
      : `Pas de boîte ${channel.label} connue pour ce destinataire`
    : !on
      ? `Canal ${channel.label} non configuré`
      : undefined;
}

function followUpTask(eventId: string, ctx: DischargeContext, plan: DischargePlan, now: Date): Task {
  const t = plan.task as NonNullable<DischargePlan['task']>;
  return {
    resourceType: 'Task',
    identifier: [{ system: ROUTING_ID_SYSTEM, value: eventId }],
    status: 'requested',
    businessStatus: businessStatus(t.status),
    intent: 'order',
    priority: 'urgent',
    code: { coding: [{ system: TASK_CODE_SYSTEM, code: t.kind, display: TASK_TEXT[t.kind] }], text: TASK_TEXT[t.kind] },
    description: TASK_TEXT[t.kind],
    focus: { reference: `Encounter/${ctx.encounter.id}` },
    for: { reference: `Patient/${ctx.patient.id}` },
    authoredOn: now.toISOString(),
    lastModified: now.toISOString(),
    requester: ctx.hospitalRef ? { reference: ctx.hospitalRef, display: ctx.hospital?.name } : undefined,
    owner: t.owner ? { reference: t.owner } : undefined,
    // The hospital's letter is what the follow-up works from: the Task's owner may read its inputs.
    input: ctx.letter
      ? [
          {
            type: { coding: [{ system: TASK_INPUT_SYSTEM, code: 'discharge-letter' }], text: 'Lettre de liaison' },
            valueReference: { reference: `DocumentReference/${ctx.letter.document.id}` },
          },
        ]
      : undefined,
    statusReason: t.reason ? { text: t.reason } : undefined,
    restriction: { period: { end: t.due } },
  };
}

function communication(
  deliveryId: string,
  ctx: DischargeContext,
  r: Recipient,
  task: string | undefined,
  notDone: string | undefined,
): Communication {
  return {
    resourceType: 'Communication',
    identifier: [{ system: DELIVERY_ID_SYSTEM, value: deliveryId }],
    basedOn: task ? [{ reference: task }] : undefined,
    status: notDone ? 'not-done' : 'preparation',
    statusReason: notDone ? { text: notDone } : undefined,
    category: [
      { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/communication-category', code: 'notification' }] },
    ],
    medium: [
      {
        coding: [
          {
            system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationMode',
            code: 'EMAILWRIT',
            display: 'MSSanté',
          },
        ],
      },
    ],
    subject: { reference: `Patient/${ctx.patient.id}` },
    about: [{ reference: `Encounter/${ctx.encounter.id}` }],
    recipient: [{ reference: r.ref, display: r.display }],
    sender: ctx.hospitalRef ? { reference: ctx.hospitalRef } : undefined,
    payload: [
      {
        contentString: ctx.deceased
          ? 'Avis de décès au cours de l’hospitalisation'
          : 'Avis de sortie d’hospitalisation',
      },
    ],
  };
}

/** The hospital's letter keeps its own uniqueId; a generated notice gets one derived from the event. */
export function documentUniqueId(eventId: string, ctx: Pick<DischargeContext, 'letter'>): string {
  const master = ctx.letter?.document.masterIdentifier?.value;
  return master ? master.replace(/^urn:oid:/, '') : uuidOid(nameUuid(`document:${eventId}`));
}

async function recordRouting(
  tx: PoolClient,
  eventId: string,
  routeId: string | null,
  outcome: string,
  tasks: string[],
  uniqueId?: string,
): Promise<void> {
  await tx.query(
    'INSERT INTO exchange_routing (event_id, route_id, outcome, tasks, document_unique_id) VALUES ($1, $2, $3, $4, $5)',
    [eventId, routeId, outcome, tasks, uniqueId ?? null],
  );
}
