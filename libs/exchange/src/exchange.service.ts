import type { Pool } from 'pg';
import { GatewayError, JOB_QUEUE } from '@gw/platform';
import type { GatewayConfig, GatewayFeature, JobContext, JobResult, Logger, QueueService } from '@gw/platform';
import { OutboxRelay } from '@gw/store';
import type { FhirRepository, OutboxEvent } from '@gw/store';
import type { ChannelRegistry } from './channels/channel';
import { channelsFromConfig } from './channels/channel.registry';
import { CptsDirectory } from './records/cpts.directory';
import { DischargeContextLoader } from './records/discharge-context.loader';
import { DischargeRouter } from './routing/discharge.router';
import { DeliveryProcessor } from './delivery/delivery.processor';
import { DeliveryStore } from './records/delivery.store';
import type { Attempt, Delivery } from './records/delivery.store';
import { DestinationGate } from './delivery/destination.gate';
import { FollowUpTracker } from './records/follow-up.tracker';
import { MdnFormatError, parseMdn } from './channels/mss/mdn.parser';
import type { BuildMdnOptions } from './channels/mss/mdn.parser';
import { MssChannel } from './channels/mss/mss.channel';
import { ResourceWriter } from './records/resource.writer';
import { RouteStore } from './records/route.store';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The exchange engine (issue #4): discharge events → routing → MSSanté and MHD deliveries, with
 * durable idempotent jobs, dead letters and operator replay.
 */
export class ExchangeService implements GatewayFeature {
  readonly routes: RouteStore;
  readonly deliveries: DeliveryStore;
  readonly cpts: CptsDirectory;
  private readonly router: DischargeRouter;
  private readonly processor: DeliveryProcessor;
  private readonly relay: OutboxRelay;
  private readonly tracker: FollowUpTracker;
  private readonly channels: ChannelRegistry;

  constructor(
    private readonly pool: Pool,
    databaseUrl: string,
    private readonly repo: FhirRepository,
    private readonly queue: QueueService,
    config: GatewayConfig,
    private readonly logger: Logger,
  ) {
    this.routes = new RouteStore(pool);
    this.deliveries = new DeliveryStore(pool);
    this.cpts = new CptsDirectory(repo, 5000, logger);
    const writer = new ResourceWriter(repo);
    this.channels = channelsFromConfig(config);
    this.tracker = new FollowUpTracker(writer, this.deliveries, this.channels);
    const loader = new DischargeContextLoader(repo, this.cpts);
    this.router = new DischargeRouter(repo, loader, this.routes, this.deliveries, writer, this.tracker, this.channels, {
      maxDischargeAgeMs: config.GW_EXCHANGE_MAX_DISCHARGE_AGE,
    });
    const gate = new DestinationGate(config.GW_EXCHANGE_DESTINATION_CONCURRENCY, config.GW_EXCHANGE_DESTINATION_RATE);
    this.processor = new DeliveryProcessor(
      repo,
      this.deliveries,
      loader,
      this.tracker,
      writer,
      gate,
      this.channels,
      config.GW_XDS_SOURCE_OID,
      logger,
      config.GW_QUEUE_LOCK_MS,
    );
    // Discharge events become routing jobs; the job id derives from the event, so a second hand-over is a no-op.
    const discharges = (events: OutboxEvent[]): string[] =>
      events.filter((e) => e.type === 'encounter.discharged').map((e) => e.id);
    this.relay = new OutboxRelay(
      pool,
      databaseUrl,
      {
        published: (events) =>
          queue.enqueueMany(
            'exchange.route-discharge',
            discharges(events).map((id) => ({ payload: { eventId: id }, jobId: `discharge-${id}` })),
          ),
        withdrawn: (events) =>
          queue.enqueueMany(
            'exchange.withdraw-discharge',
            discharges(events).map((id) => ({ payload: { eventId: id }, jobId: `withdraw-${id}` })),
          ),
      },
      logger,
    );
  }

  readonly name = 'exchange';

  /** Registers the exchange job handlers: routing, withdrawal and one delivery job per channel. */
  register(): void {
    this.queue.register('exchange.route-discharge', (p, ctx) => this.routeJob(p.eventId, ctx));
    this.queue.register('exchange.withdraw-discharge', (p) => this.withdrawJob(p.eventId));
    for (const channel of this.channels.all()) {
      this.queue.register(channel.job.name, (p, ctx) => this.processor.process(p.deliveryId, ctx));
    }
  }

  /** Starts the outbox relay (in every process that runs workers; replicas share the work). */
  async start(): Promise<void> {
    await this.relay.start();
  }

  /** Stops handing events to the queue (before the jobs in flight are awaited). */
  async stop(): Promise<void> {
    await this.relay.stop();
  }

  /**
   * Closes the channels' connections (the SMTP pool), once the jobs in flight have finished: a
   * send in progress on a closed pool may never call back, and its job would then never end.
   */
  async close(): Promise<void> {
    for (const channel of this.channels.all()) {
      channel.close();
    }
  }

  private async routeJob(eventId: string, ctx: JobContext): Promise<JobResult> {
    const result = await this.router.route(eventId);
    await this.enqueue(result.deliveries);
    ctx.logger.info(
      { event: eventId, status: result.status, deliveries: result.deliveries.length },
      'discharge routed',
    );
    if (result.conflict) {
      // Ids only: the patient's commune stays out of the log (GET /admin/cpts names the conflicting communes).
      ctx.logger.warn(
        { event: eventId, cpts: result.conflict },
        'discharge left without a CPTS: several CPTS claim the patient commune (settle it: GET /admin/cpts)',
      );
    }
    return {
      status: result.status === 'skipped' ? 'skipped' : 'success',
      detail: {
        routing: result.status,
        deliveries: result.deliveries.length,
        ...(result.reason ? { reason: result.reason } : {}),
      },
    };
  }

  private async withdrawJob(eventId: string): Promise<JobResult> {
    const { cancelled } = await this.router.withdraw(eventId);
    for (const d of cancelled) {
      // Best effort: a job left in the queue finds its delivery cancelled and skips anyway.
      const job = this.channels.jobOf(d);
      await this.queue
        .queue(JOB_QUEUE[job.name])
        .remove(job.id)
        .catch(() => undefined);
    }
    return { status: 'success', detail: { cancelled: cancelled.length } };
  }

  private async enqueue(list: Delivery[]): Promise<void> {
    for (const channel of this.channels.all()) {
      const jobs = list
        .filter((d) => d.channel === channel.name)
        .map((d) => ({ payload: { deliveryId: d.id }, jobId: this.channels.jobOf(d).id }));
      await this.queue.enqueueMany(channel.job.name, jobs);
    }
  }

  async delivery(id: string): Promise<Delivery & { attempts_detail: Attempt[] }> {
    if (!UUID.test(id)) {
      throw new GatewayError('not-found', { text: 'delivery not found' });
    }
    const d = await this.deliveries.get(id);
    if (!d) {
      throw new GatewayError('not-found', { text: 'delivery not found' });
    }
    return { ...d, attempts_detail: await this.deliveries.attempts(id) };
  }

  /** Operator replay of a dead, failed or refused delivery: back to pending, a fresh job. */
  async replay(id: string): Promise<Delivery> {
    const d = await this.delivery(id);
    const replays = await this.deliveries.reopen(id);
    if (replays === undefined) {
      throw new GatewayError('conflict', {
        text: `delivery is ${d.status}; only dead, failed or refused deliveries can be replayed`,
      });
    }
    const job = this.channels.jobOf(d);
    await this.queue.enqueue(job.name, { deliveryId: id }, `${job.id}-replay-${replays}`);
    return (await this.deliveries.get(id)) as Delivery;
  }

  /**
   * Answers a message the gateway's inbound mailbox received with an RFC 8098 MDN, through the
   * MSSanté relay; undefined when no relay is configured.
   */
  get mdnSender(): ((m: Omit<BuildMdnOptions, 'from'>) => Promise<void>) | undefined {
    const mss = this.channels.get('mssante') as MssChannel;
    return mss.configuredForSending ? (m) => mss.sendMdn(m) : undefined;
  }

  /**
   * An MDN (RFC 8098) from a recipient's MSSanté client: `processed` completes the Communication;
   * an error or a `deleted`/`failed` disposition marks it failed.
   */
  async acceptMdn(raw: Buffer): Promise<{ delivery: string; status: string }> {
    let report;
    try {
      report = await parseMdn(raw);
    } catch (err) {
      if (err instanceof MdnFormatError) {
        throw new GatewayError('invalid', { text: `not a disposition notification: ${err.message}` });
      }
      throw err;
    }
    const id = MssChannel.deliveryIdOf(report.originalMessageId);
    const ok =
      (report.disposition === 'processed' ||
        report.disposition === 'displayed' ||
        report.disposition === 'dispatched') &&
      !report.error;
    const status = await this.repo.withTransaction(async (tx) => {
      const d = id ? await this.deliveries.get(id, tx, true) : undefined;
      if (!d || !this.channels.get(d.channel).acknowledged) {
        throw new GatewayError('not-found', {
          text: 'Original-Message-ID does not match a message sent by this gateway',
        });
      }
      const next = ok ? 'processed' : 'failed';
      const reason = ok
        ? undefined
        : `Accusé de réception : ${report.disposition}${report.error ? ` (${report.error})` : ''}`;
      await this.deliveries.setStatus(tx, d.id, next, { acknowledged: true, error: reason ?? null });
      if (d.communication) {
        await this.tracker.communication(tx, d.communication, ok ? 'completed' : 'not-done', reason, {
          received: new Date().toISOString(),
        });
      }
      if (d.task) {
        await this.tracker.task(tx, d.task);
      }
      return next;
    });
    this.logger.info({ delivery: id, status }, 'MDN recorded');
    return { delivery: id as string, status };
  }

  /** Counts per status, for the admin API and metrics. */
  async summary(): Promise<Record<string, Record<string, number>>> {
    const res = await this.pool.query<{ channel: string; status: string; n: string }>(
      'SELECT channel, status, count(*) AS n FROM exchange_delivery GROUP BY 1, 2',
    );
    const out: Record<string, Record<string, number>> = {};
    for (const r of res.rows) {
      (out[r.channel] ??= {})[r.status] = Number(r.n);
    }
    return out;
  }
}
