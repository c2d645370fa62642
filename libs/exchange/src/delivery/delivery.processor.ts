import type { AuditEvent, Task } from '@medplum/fhirtypes';
import { UnrecoverableError } from '@gw/platform';
import type { JobContext, JobResult, Logger } from '@gw/platform';
import { eventResource } from '@gw/store';
import type { FhirRepository } from '@gw/store';
import { EXCHANGE_PRINCIPAL } from '../records/discharge-context.loader';
import type { DischargeContext, DischargeContextLoader } from '../records/discharge-context.loader';
import type { Attempt, Delivery, DeliveryStatus, DeliveryStore } from '../records/delivery.store';
import type { DestinationGate } from './destination.gate';
import { assembleSubmission } from '../documents/document.assembler';
import type { Submission } from '../documents/document.model';
import { DELIVERY_ID_SYSTEM } from '../exchange.codes';
import type { FollowUpTracker } from '../records/follow-up.tracker';
import { PermanentDeliveryError } from '../channels/channel';
import type { ChannelRegistry } from '../channels/channel';
import type { ResourceWriter } from '../records/resource.writer';

type Prepared = { submission: Submission; ctx: DischargeContext } | { refused: string } | { gone: string };

/**
 * Runs one delivery job: re-reads the delivery (a cancelled or finished one is skipped), builds
 * the document, sends it through the destination's gate and records the outcome — delivery row,
 * Communication, Task business status, attempt row and AuditEvent — whatever it is.
 */
export class DeliveryProcessor {
  constructor(
    private readonly repo: FhirRepository,
    private readonly deliveries: DeliveryStore,
    private readonly loader: DischargeContextLoader,
    private readonly tracker: FollowUpTracker,
    private readonly writer: ResourceWriter,
    private readonly gate: DestinationGate,
    private readonly channels: ChannelRegistry,
    private readonly sourceOid: string,
    private readonly logger: Logger,
    /** How long one attempt holds its delivery: the queue's lock duration (GW_QUEUE_LOCK_MS). */
    private readonly leaseMs: number,
  ) {}

  async process(deliveryId: string, job: JobContext): Promise<JobResult> {
    const d = await this.deliveries.get(deliveryId);
    if (!d || d.status !== 'pending') {
      return { status: 'skipped', detail: { reason: d ? `delivery is ${d.status}` : 'unknown delivery' } };
    }
    if (!(await this.deliveries.claim(d.id, this.leaseMs))) {
      // A duplicate job while another attempt is sending it: retried (backoff) until that attempt
      // records its outcome, then skipped as not pending — never a second message.
      throw new Error('another attempt of this delivery is in progress');
    }
    const prepared = await this.prepare(d).catch(async (err: unknown) => {
      await this.deliveries.release(d.id);
      throw err;
    });
    if ('refused' in prepared || 'gone' in prepared) {
      const refused = 'refused' in prepared;
      const reason = refused ? prepared.refused : prepared.gone;
      await this.finish(d, refused ? 'refused' : 'dead', reason, job.attempt);
      return { status: 'skipped', detail: { reason: refused ? 'refused' : 'gone' } };
    }
    try {
      const answer = await this.send(d, prepared);
      await this.finish(d, 'sent', answer, job.attempt, prepared.submission);
      return { status: 'success', detail: { channel: d.channel } };
    } catch (err) {
      const message = (err as Error).message;
      if (err instanceof PermanentDeliveryError || job.attempt >= job.maxAttempts) {
        await this.finish(d, 'dead', message, job.attempt);
        throw new UnrecoverableError(message);
      }
      await this.deliveries.attempt(this.repo.pool, d.id, job.attempt, 'retry', message);
      await this.deliveries.release(d.id);
      await this.audit(d, 'retry', message);
      throw err;
    }
  }

  private async send(d: Delivery, p: { submission: Submission; ctx: DischargeContext }): Promise<string> {
    const channel = this.channels.get(d.channel);
    const destination = channel.destination;
    if (!destination) {
      throw new PermanentDeliveryError(channel.unconfigured);
    }
    return this.gate.run(destination, () => channel.send(d, p.submission, p.ctx));
  }

  /** Re-reads the discharge and builds the submission; decides refusals for the shared record. */
  private async prepare(d: Delivery): Promise<Prepared> {
    const pool = this.repo.pool;
    const routing = await pool.query<{ document_unique_id: string | null }>(
      'SELECT document_unique_id FROM exchange_routing WHERE event_id = $1',
      [d.eventId],
    );
    const documentUniqueId = routing.rows[0]?.document_unique_id;
    const resource = documentUniqueId ? await eventResource(pool, d.eventId) : undefined;
    const ctx = resource ? await this.loader.load(pool, resource) : undefined;
    if (!ctx || !documentUniqueId) {
      return { gone: 'the discharged Encounter or its Patient no longer exists' };
    }
    const channel = this.channels.get(d.channel);
    const refused = channel.refusal(ctx);
    if (refused) {
      return { refused };
    }
    const recipients =
      channel.intendedRecipients === 'own'
        ? [d]
        : (await this.deliveries.forEvent(pool, d.eventId)).filter(
            (x) => this.channels.get(x.channel).addressing === 'recipient',
          );
    const task = d.task ? await this.readTask(d.task) : undefined;
    const submission = assembleSubmission({
      ctx,
      documentUniqueId,
      deliveryId: d.id,
      sourceOid: this.sourceOid,
      intendedRecipients: recipients.map((r) => ({ email: r.destination })),
      task,
      now: new Date(d.createdAt),
    });
    return { submission, ctx };
  }

  private async readTask(ref: string): Promise<Task | undefined> {
    const stored = await this.repo.read(EXCHANGE_PRINCIPAL, 'Task', ref.split('/')[1] as string).catch(() => undefined);
    return stored?.json ? (JSON.parse(stored.json) as Task) : undefined;
  }

  /** Records the outcome everywhere in one transaction, then the AuditEvent. */
  async finish(
    d: Delivery,
    status: DeliveryStatus,
    answer: string,
    attempt: number,
    submission?: Submission,
  ): Promise<void> {
    const now = new Date().toISOString();
    const channel = this.channels.get(d.channel);
    const effect = d.task ? channel.taskEffect(status, answer) : undefined;
    await this.repo.withTransaction(async (tx) => {
      await this.deliveries.setStatus(tx, d.id, status, {
        remoteId: status === 'sent' ? channel.remoteId(d, submission) : undefined,
        error: status === 'sent' ? null : answer,
        sent: status === 'sent',
      });
      await this.deliveries.attempt(tx, d.id, attempt, outcomeOf(status), answer);
      if (d.communication) {
        await this.tracker.communication(
          tx,
          d.communication,
          status === 'sent' ? 'in-progress' : 'not-done',
          status === 'sent' ? undefined : answer,
          status === 'sent' ? { sent: now } : {},
        );
      }
      if (d.task && effect?.kind === 'business-status') {
        await this.tracker.task(tx, d.task);
      }
      if (d.task && effect?.kind === 'note') {
        await this.tracker.note(tx, d.task, effect.text);
      }
    });
    await this.audit(d, outcomeOf(status), answer);
    this.logger.info({ delivery: d.id, channel: d.channel, status, attempt }, 'delivery attempt recorded');
  }

  /** One AuditEvent per attempt, with the remote answer (DICOM 110106 Export). */
  async audit(d: Delivery, outcome: Attempt['outcome'], remote: string): Promise<void> {
    const event: AuditEvent = {
      resourceType: 'AuditEvent',
      type: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110106', display: 'Export' },
      subtype: [{ system: 'https://gateway.fr-primary-care.org/fhir/CodeSystem/exchange-channel', code: d.channel }],
      action: 'E',
      recorded: new Date().toISOString(),
      outcome: outcome === 'success' || outcome === 'skipped' ? '0' : outcome === 'retry' ? '4' : '8',
      outcomeDesc: `${outcome}: ${remote}`.slice(0, 1000),
      agent: [
        {
          who: { display: 'gateway-exchange' },
          requestor: true,
          network: { address: this.channels.get(d.channel).host(d) },
        },
      ],
      source: { observer: { display: 'fhir-gateway-fr exchange' } },
      entity: [
        { what: { identifier: { system: DELIVERY_ID_SYSTEM, value: d.id } } },
        ...(d.communication ? [{ what: { reference: d.communication } }] : []),
        ...(d.task ? [{ what: { reference: d.task } }] : []),
      ],
    };
    await this.writer
      .create(event, undefined)
      .catch((err: Error) => this.logger.warn({ delivery: d.id, err: err.message }, 'attempt audit not written'));
  }
}

function outcomeOf(status: DeliveryStatus): Attempt['outcome'] {
  return status === 'sent' ? 'success' : status === 'refused' ? 'refused' : status === 'dead' ? 'dead' : 'skipped';
}
