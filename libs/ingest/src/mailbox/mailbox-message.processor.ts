import type { ImapFlow } from 'imapflow';
import type { OperationOutcome } from '@medplum/fhirtypes';
import { GatewayError } from '@gw/platform';
import type { Logger } from '@gw/platform';
import type { Principal } from '@gw/store';
import { readInboundMail } from './inbound-mail.reader';
import type { InboundMail } from './inbound-mail.reader';
import type { MailboxStore, MailboxMessage, MessageKey } from './mailbox.store';
import type { MailboxPorts } from './mailbox.ports';

/** Keyword set on a message once imported (with \Seen), for whoever reads the mailbox with a client. */
export const IMPORTED_KEYWORD = '$GwImported';

export interface ProcessorSettings {
  /** The mailbox address (MDN Final-Recipient). */
  address: string;
  quarantine: string;
  maxAttempts: number;
  maxBytes: number;
  principal: Principal;
}

/** What became of a message in this pass: finished, or left for the next poll. */
export type Handled = 'done' | 'retry';

/** A failure that will not go away by trying again (the message is moved aside with it). */
class Unimportable extends Error {}

/**
 * Takes one message of a mailbox through its states (mailbox.schema.ts): reads it, hands its XDM
 * packages to the intake pipeline, answers its MDN, then flags it, or moves it aside with the
 * reason. Each step is recorded before the next one starts, so a crash repeats at most the step
 * it interrupted, and those are idempotent (the pipeline on the document's uniqueId; a flag; a move
 * of a message no longer there).
 */
export class MailboxMessageProcessor {
  private mdnUnconfiguredLogged = false;

  constructor(
    private readonly store: MailboxStore,
    private readonly ports: MailboxPorts,
    private readonly settings: ProcessorSettings,
    private readonly logger: Logger,
  ) {}

  async handle(imap: ImapFlow, key: MessageKey, known: MailboxMessage | undefined): Promise<Handled> {
    let row = known;
    if (!row || row.state === 'received') {
      const read = await this.read(imap, key, row);
      if (read === 'vanished') {
        await this.store.vanished(key);
        return 'done';
      }
      row = read;
    }
    if (row.state === 'ingested') {
      return this.finishImported(imap, key, row);
    }
    if (row.state === 'quarantined') {
      return this.finishQuarantined(imap, key, row);
    }
    return row.state === 'received' ? 'retry' : 'done';
  }

  /** Fetches and imports a message still `received`; returns its row after the attempt. */
  private async read(imap: ImapFlow, key: MessageKey, known: MailboxMessage | undefined) {
    const meta = await imap.fetchOne(String(key.uid), { uid: true, size: true }, { uid: true });
    if (!meta) {
      return 'vanished' as const;
    }
    if ((meta.size ?? 0) > this.settings.maxBytes) {
      const row = await this.store.receive(key.mailbox, key.uidValidity, key.uid, {});
      await this.store.quarantined(
        key,
        'quarantined',
        `message of ${meta.size} bytes, over the mailbox's limit of ${this.settings.maxBytes}`,
      );
      return (await this.store.get(key.mailbox, key.uidValidity, key.uid)) ?? row;
    }
    const fetched = await imap.fetchOne(String(key.uid), { uid: true, source: true }, { uid: true });
    if (!fetched || !fetched.source) {
      return 'vanished' as const;
    }
    const mail = await readInboundMail(fetched.source);
    if (!known && mail.messageId) {
      const earlier = await this.store.finishedElsewhere(key.mailbox, key.uidValidity, mail.messageId);
      if (earlier !== undefined) {
        await this.store.duplicate(key, mail.messageId, `already taken as UID ${earlier} before UIDVALIDITY changed`);
        return (await this.store.get(key.mailbox, key.uidValidity, key.uid))!;
      }
    }
    const row = await this.store.receive(key.mailbox, key.uidValidity, key.uid, {
      ...(mail.messageId ? { messageId: mail.messageId } : {}),
      ...(mail.dispositionNotificationTo && !mail.isMdn ? { mdnTo: mail.dispositionNotificationTo } : {}),
    });
    if (row.state === 'received') {
      await this.attempt(key, row, mail, fetched.source);
    }
    return (await this.store.get(key.mailbox, key.uidValidity, key.uid)) ?? row;
  }

  /** One import attempt: ingested, quarantined, or a transient failure recorded for the next poll. */
  private async attempt(key: MessageKey, row: MailboxMessage, mail: InboundMail, raw: Buffer): Promise<void> {
    try {
      if (mail.isMdn) {
        await this.acceptMdn(raw);
        await this.store.ingested(key, { outcome: 'mdn', documents: 0, resources: [] });
        return;
      }
      const result = await this.ingestAll(key, mail);
      await this.store.ingested(key, result);
      this.logger.info(
        { mailbox: key.mailbox, uid: key.uid, outcome: result.outcome, documents: result.documents },
        'mailbox message imported',
      );
    } catch (err) {
      if (err instanceof Unimportable) {
        await this.store.quarantined(key, mail.isMdn ? 'quarantined' : 'rejected', err.message);
        this.logger.warn({ mailbox: key.mailbox, uid: key.uid }, 'mailbox message cannot be imported: moved aside');
        return;
      }
      const text = err instanceof Error ? err.message : String(err);
      if (row.attempts >= this.settings.maxAttempts) {
        await this.store.quarantined(key, 'quarantined', `gave up after ${row.attempts} attempts: ${text}`);
        this.logger.warn({ mailbox: key.mailbox, uid: key.uid, attempts: row.attempts }, 'mailbox message given up');
        return;
      }
      await this.store.failed(key, text);
      this.logger.warn(
        { mailbox: key.mailbox, uid: key.uid, attempts: row.attempts, err: text },
        'mailbox message kept for retry',
      );
    }
  }

  private async ingestAll(key: MessageKey, mail: InboundMail) {
    if (mail.xdm.length === 0) {
      throw new Unimportable('no IHE_XDM.ZIP attachment');
    }
    let review = false;
    const resources: string[] = [];
    for (const [i, body] of mail.xdm.entries()) {
      const source = `mailbox:${key.mailbox}:${key.uidValidity}:${key.uid}${mail.xdm.length > 1 ? `#${i + 1}` : ''}`;
      const result = await this.ports.intake
        .ingest(this.settings.principal, { contentType: 'application/zip', body, source })
        .catch((err: unknown) => {
          throw permanent(err) ? new Unimportable(describeError(err as GatewayError)) : err;
        });
      if (result.status === 'rejected') {
        throw new Unimportable(describe(result.outcome) || 'document rejected by the intake pipeline');
      }
      review ||= result.status === 'review';
      for (const e of result.bundle?.entry ?? []) {
        // A transaction-response names what it wrote by location (`Type/id/_history/n`).
        const ref = e.resource?.id
          ? `${e.resource.resourceType}/${e.resource.id}`
          : e.response?.location?.split('/_history/')[0];
        if (ref) {
          resources.push(ref);
        }
      }
    }
    return { outcome: review ? ('review' as const) : ('created' as const), documents: mail.xdm.length, resources };
  }

  private async acceptMdn(raw: Buffer): Promise<void> {
    if (!this.ports.acceptMdn) {
      throw new Unimportable('a disposition notification, and no MSSanté channel to take it');
    }
    await this.ports.acceptMdn(raw).catch((err: unknown) => {
      throw permanent(err) ? new Unimportable(describeError(err as GatewayError)) : err;
    });
  }

  private async finishImported(imap: ImapFlow, key: MessageKey, row: MailboxMessage): Promise<Handled> {
    if (row.outcome !== 'ignored' && !(await this.answer(key, row, 'processed'))) {
      return 'retry';
    }
    await imap.messageFlagsAdd(String(key.uid), ['\\Seen', IMPORTED_KEYWORD], { uid: true });
    await this.store.done(key);
    return 'done';
  }

  private async finishQuarantined(imap: ImapFlow, key: MessageKey, row: MailboxMessage): Promise<Handled> {
    if (!(await this.answer(key, row, 'processed/error'))) {
      return 'retry';
    }
    await this.ensureFolder(imap, this.settings.quarantine);
    await imap.messageMove(String(key.uid), this.settings.quarantine, { uid: true });
    await this.store.done(key);
    return 'done';
  }

  /**
   * Sends the MDN the message asked for, once (recorded when sent; a crash between the two sends it
   * again, the same Original-Message-ID). false: the relay failed, try again at the next poll.
   */
  private async answer(key: MessageKey, row: MailboxMessage, disposition: 'processed' | 'processed/error') {
    if (!row.mdnTo || row.mdnSentAt || !row.messageId) {
      return true;
    }
    if (!this.ports.sendMdn) {
      if (!this.mdnUnconfiguredLogged) {
        this.mdnUnconfiguredLogged = true;
        this.logger.warn({ mailbox: key.mailbox }, 'MDN requested but no MSSanté relay configured (GW_MSS_SMTP_URL)');
      }
      return true;
    }
    try {
      await this.ports.sendMdn({
        to: row.mdnTo,
        originalMessageId: row.messageId,
        finalRecipient: this.settings.address,
        disposition,
        ...(disposition === 'processed/error' ? { error: row.reason ?? 'not imported' } : {}),
      });
    } catch (err) {
      const text = `MDN not sent: ${err instanceof Error ? err.message : String(err)}`;
      await this.store.failed(key, text);
      this.logger.warn({ mailbox: key.mailbox, uid: key.uid, err: text }, 'MDN kept for retry');
      return false;
    }
    await this.store.mdnSent(key);
    return true;
  }

  private async ensureFolder(imap: ImapFlow, path: string): Promise<void> {
    const exists = (await imap.list()).some((m) => m.path === path);
    if (!exists) {
      await imap.mailboxCreate(path);
    }
  }
}

/** A 4xx GatewayError (the document is wrong) is final; anything else may pass on a retry. */
function permanent(err: unknown): boolean {
  return err instanceof GatewayError && err.status < 500 && err.status !== 429 && err.status !== 408;
}

function describeError(err: GatewayError): string {
  return `${err.status}: ${describe(err.toOutcome())}`;
}

/** The outcome's issues as text: their element and explanation (never the document's content). */
function describe(outcome: OperationOutcome): string {
  return (outcome.issue ?? [])
    .filter((i) => i.severity === 'error' || i.severity === 'fatal')
    .map((i) => {
      const text = i.details?.text ?? i.diagnostics ?? i.code;
      return i.expression?.length ? `${i.expression.join(', ')}: ${text}` : text;
    })
    .join('; ');
}
