import type { DischargeContext } from '../records/discharge-context.loader';
import type { Delivery, DeliveryStatus } from '../records/delivery.store';
import type { Submission } from '../documents/document.model';

/** The channels a route may name and a delivery row may carry (exchange_delivery.channel). */
export const CHANNEL_NAMES = ['mssante', 'mhd'] as const;
export type ChannelName = (typeof CHANNEL_NAMES)[number];

/** The jobs that send one delivery (one queue per channel: a dead relay fills only its own retries). */
export type DeliveryJobName = 'exchange.mss-send' | 'exchange.mhd-publish';

/** An answer that will not change by retrying (SMTP 5xx, HTTP 4xx, refused recipient). */
export class PermanentDeliveryError extends Error {}

/** What one delivery outcome does to the discharge's follow-up Task. */
export type TaskEffect = { kind: 'business-status' } | { kind: 'note'; text: string };

/**
 * One way of telling the primary-care team about a discharge (MSSanté message, DMP publication).
 * Everything the exchange engine does differently per channel is asked here, so routing, delivery
 * jobs, replay and the admin API look a channel up by the name its delivery rows carry.
 */
export interface Channel {
  readonly name: ChannelName;
  /** The name people read in Communications and errors (`MSSanté`, `MHD`). */
  readonly label: string;
  /** Where it sends (relay or recipient URL), the destination gate's key; undefined when not configured. */
  readonly destination: string | undefined;
  /** The dead-letter reason of a delivery whose channel is not configured (names the setting). */
  readonly unconfigured: string;
  /**
   * Who its deliveries go to: `recipient`, one per plan recipient with a mailbox (each with its
   * Communication); `destination`, one per discharge to the channel's own destination.
   */
  readonly addressing: 'recipient' | 'destination';
  /** The job that sends one delivery; its job id is `<idPrefix>-<delivery id>`. */
  readonly job: { readonly name: DeliveryJobName; readonly idPrefix: string };
  /** Its deliveries make the follow-up Task's business status (notified, acknowledged, failed…). */
  readonly reportsToTask: boolean;
  /** Recipients acknowledge its messages with MDNs (POST /exchange/mdn). */
  readonly acknowledged: boolean;
  /**
   * The mailboxes the submission names as intended recipients: the delivery's own (`own`) or those
   * of every per-recipient delivery of the discharge (`discharge`).
   */
  readonly intendedRecipients: 'own' | 'discharge';
  /** Why this discharge may not go through this channel at all (no retry), if it may not. */
  refusal(ctx: DischargeContext): string | undefined;
  /** Sends one delivery; resolves with the remote answer, throws PermanentDeliveryError when retrying cannot help. */
  send(delivery: Delivery, submission: Submission, ctx: DischargeContext): Promise<string>;
  /** The id the remote side knows a sent delivery by (Message-ID, document uniqueId). */
  remoteId(delivery: Delivery, submission: Submission | undefined): string | undefined;
  /** What an outcome of one delivery does to the follow-up Task, if anything. */
  taskEffect(status: DeliveryStatus, answer: string): TaskEffect | undefined;
  /** The remote host recorded in the attempt's AuditEvent. */
  host(delivery: Delivery): string;
  /** Releases connections (shutdown). */
  close(): void;
}

/** The channels by name, in routing order (the order their deliveries are made and enqueued). */
export class ChannelRegistry {
  private readonly byName: ReadonlyMap<string, Channel>;

  constructor(channels: Channel[]) {
    this.byName = new Map(channels.map((c) => [c.name, c]));
  }

  /** The channel of a name a delivery row or a route carries. */
  get(name: string): Channel {
    const channel = this.byName.get(name);
    if (!channel) {
      throw new Error(`unknown exchange channel ${name}`);
    }
    return channel;
  }

  all(): Channel[] {
    return [...this.byName.values()];
  }

  /** The job that sends this delivery, with its deterministic id. */
  jobOf(d: Pick<Delivery, 'id' | 'channel'>): { name: DeliveryJobName; id: string } {
    const { name, idPrefix } = this.get(d.channel).job;
    return { name, id: `${idPrefix}-${d.id}` };
  }
}
