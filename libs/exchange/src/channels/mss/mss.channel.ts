import { readFileSync } from 'node:fs';
import { createTransport } from 'nodemailer';
import type { Transporter } from 'nodemailer';
import { PermanentDeliveryError } from '../channel';
import type { Channel, TaskEffect } from '../channel';
import type { DischargeContext } from '../../records/discharge-context.loader';
import type { Delivery } from '../../records/delivery.store';
import type { Submission } from '../../documents/document.model';
import { buildXdmZip, mssanteSubject, XDM_ZIP_NAME } from './xdm.builder';
import { buildMdn } from './mdn.parser';
import type { BuildMdnOptions } from './mdn.parser';

export interface MssSettings {
  /** `smtp://host:port` (STARTTLS) or `smtps://host:port`. */
  url: string;
  from: string;
  clientCert?: string;
  clientKey?: string;
  ca?: string;
  /** No STARTTLS required (tests and demo only). */
  insecure: boolean;
  nil: string;
}

export { PermanentDeliveryError } from '../channel';

export interface MssMessage {
  /** Message-ID derived from the delivery: a retried send carries the same one. */
  messageId: string;
  to: string;
  submission: Submission;
  /** Qualified INS inside (X-MSS-INS = O). */
  insQualified: boolean;
}

/**
 * MSSanté sender (DOMAIN §6): SMTP submission with STARTTLS and client certificate through
 * nodemailer; one message per recipient mailbox with the IHE XDM ZIP and the readable document.
 * Without settings (GW_MSS_SMTP_URL or GW_MSS_FROM unset) the channel exists but is not configured.
 */
export class MssChannel implements Channel {
  readonly name = 'mssante';
  readonly label = 'MSSanté';
  readonly unconfigured = 'MSSanté channel not configured (GW_MSS_SMTP_URL)';
  readonly addressing = 'recipient';
  readonly job = { name: 'exchange.mss-send', idPrefix: 'mss' } as const;
  // The Task says whether the care team was told: notified, acknowledged (MDN) or failed.
  readonly reportsToTask = true;
  readonly acknowledged = true;
  readonly intendedRecipients = 'own';
  private readonly transport?: Transporter;

  constructor(private readonly settings: MssSettings | undefined) {
    if (settings) {
      this.transport = createTransport(transportOptions(settings));
    }
  }

  get destination(): string | undefined {
    return this.settings?.url;
  }

  refusal(): string | undefined {
    return undefined;
  }

  async send(d: Delivery, submission: Submission, ctx: DischargeContext): Promise<string> {
    return this.transmit({
      messageId: this.messageId(d.id),
      to: d.destination,
      submission,
      insQualified: ctx.insQualified,
    });
  }

  remoteId(d: Delivery): string | undefined {
    return this.settings ? this.messageId(d.id) : undefined;
  }

  taskEffect(): TaskEffect {
    return { kind: 'business-status' };
  }

  host(d: Delivery): string {
    return d.destination.split('@')[1] ?? '';
  }

  /**
   * The Message-ID of a delivery: a retry sends the same one, and an MDN's Original-Message-ID
   * leads back to the delivery.
   */
  messageId(deliveryId: string): string {
    return `<${deliveryId}@${this.configured().from.split('@')[1] ?? 'gateway.invalid'}>`;
  }

  /** The delivery a Message-ID made by {@link messageId} stands for. */
  static deliveryIdOf(messageId: string): string | undefined {
    return /^<?([0-9a-f-]{36})@/.exec(messageId)?.[1];
  }

  /** Sends one message; resolves with the relay's answer, throws PermanentDeliveryError on a 5xx. */
  async transmit(m: MssMessage): Promise<string> {
    const settings = this.configured();
    const transport = this.transport as Transporter;
    const doc = m.submission.documents[0];
    const zip = await buildXdmZip(m.submission);
    try {
      const info = await transport.sendMail({
        from: settings.from,
        to: m.to,
        subject: mssanteSubject(m.submission.title),
        messageId: m.messageId,
        text: `${m.submission.title}\r\n\r\nDocument joint au format IHE XDM (${XDM_ZIP_NAME}) et en version lisible.\r\n`,
        headers: {
          'X-MSS-CODECDA': m.submission.documents.map((d) => d.typeCode.code).join(','),
          'X-MSS-INS': m.insQualified ? 'O' : 'N',
          'X-MSS-NIL': settings.nil,
          'Disposition-Notification-To': settings.from,
        },
        attachments: [
          { filename: XDM_ZIP_NAME, content: zip, contentType: 'application/zip' },
          ...(doc ? [{ filename: doc.fileName, content: doc.data, contentType: doc.contentType }] : []),
        ],
      });
      return String(info.response ?? 'accepted');
    } catch (err) {
      const e = err as { responseCode?: number; response?: string; code?: string; message: string };
      const answer = e.response ?? `${e.code ?? 'error'}: ${e.message}`;
      if (e.responseCode && e.responseCode >= 500) {
        throw new PermanentDeliveryError(answer);
      }
      throw new Error(answer);
    }
  }

  /** true when a relay is configured (GW_MSS_SMTP_URL and GW_MSS_FROM). */
  get configuredForSending(): boolean {
    return this.settings !== undefined;
  }

  /**
   * Sends an RFC 8098 MDN from the gateway's mailbox, answering a message its inbound mailbox
   * received. Throws like {@link transmit} (PermanentDeliveryError on a 5xx).
   */
  async sendMdn(m: Omit<BuildMdnOptions, 'from'>): Promise<void> {
    const settings = this.configured();
    const raw = buildMdn({ ...m, from: settings.from });
    try {
      await (this.transport as Transporter).sendMail({ envelope: { from: settings.from, to: m.to }, raw });
    } catch (err) {
      const e = err as { responseCode?: number; response?: string; message: string };
      if (e.responseCode && e.responseCode >= 500) {
        throw new PermanentDeliveryError(e.response ?? e.message);
      }
      throw err;
    }
  }

  close(): void {
    this.transport?.close();
  }

  private configured(): MssSettings {
    if (!this.settings) {
      throw new PermanentDeliveryError(this.unconfigured);
    }
    return this.settings;
  }
}

function transportOptions(settings: MssSettings) {
  const url = new URL(settings.url);
  return {
    host: url.hostname,
    port: Number(url.port || (url.protocol === 'smtps:' ? 465 : 587)),
    secure: url.protocol === 'smtps:',
    // MSSanté operators require TLS; only an explicit insecure setting lets plain SMTP through.
    requireTLS: !settings.insecure,
    tls: {
      cert: settings.clientCert ? readFileSync(settings.clientCert) : undefined,
      key: settings.clientKey ? readFileSync(settings.clientKey) : undefined,
      ca: settings.ca ? readFileSync(settings.ca) : undefined,
      rejectUnauthorized: !settings.insecure,
    },
    pool: true,
    maxConnections: 8,
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 30_000,
  };
}
