import { ImapFlow } from 'imapflow';
import type { ImapFlowOptions } from 'imapflow';
import type { Logger, MssInboxConfig } from '@gw/platform';
import type { MailboxStore } from './mailbox.store';
import type { MailboxMessageProcessor } from './mailbox-message.processor';

/** A configured mailbox with its password read. */
export type InboxSettings = MssInboxConfig & { name: string; secret: string };

/**
 * Polls one IMAP mailbox folder: on each pass takes the lease (one process of several polls it),
 * lists the UIDs from the first unfinished one, and hands each to the processor. Between passes
 * the connection stays open in IMAP IDLE, so a new message is taken at once; the poll interval
 * bounds the wait when the server announces nothing. A failed pass (server or database down)
 * drops the connection and is tried again after the interval.
 */
export class MailboxPoller {
  private imap?: ImapFlow;
  private stopping = false;
  private loop?: Promise<void>;
  private wake?: () => void;

  constructor(
    private readonly inbox: InboxSettings,
    private readonly store: MailboxStore,
    private readonly processor: MailboxMessageProcessor,
    private readonly holder: string,
    private readonly logger: Logger,
  ) {}

  get name(): string {
    return this.inbox.name;
  }

  start(): void {
    this.stopping = false;
    this.loop ??= this.run().finally(() => {
      this.loop = undefined;
    });
  }

  /** Ends the pass in progress after its current message, logs out and gives the lease up. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.loop;
    await this.disconnect();
    await this.store.release(this.inbox.name, this.holder).catch(() => undefined);
  }

  /** One pass now (tests, and the loop). Resolves once every message found was handled. */
  async pass(): Promise<void> {
    if (!(await this.store.lease(this.inbox.name, this.holder, this.leaseMs()))) {
      return;
    }
    const imap = await this.connection();
    const lock = await imap.getMailboxLock(this.inbox.folder);
    let uidValidity: string | null = null;
    try {
      const box = imap.mailbox;
      if (!box) {
        throw new Error(`folder ${this.inbox.folder} not selected`);
      }
      uidValidity = String(box.uidValidity);
      await this.walk(imap, uidValidity);
    } finally {
      lock.release();
    }
    await this.store.polled(this.inbox.name, uidValidity, null);
  }

  private async walk(imap: ImapFlow, uidValidity: string): Promise<void> {
    const mailbox = this.inbox.name;
    const floor = await this.store.floor(mailbox, uidValidity);
    // `n:*` always includes the last message, even below n (RFC 9051 §6.4.8): filtered out.
    const found = ((await imap.search({ uid: `${floor}:*` }, { uid: true })) || [])
      .filter((uid) => uid >= floor)
      .sort((a, b) => a - b);
    const present = new Set(found);
    const known = await this.store.from(mailbox, uidValidity, floor);
    for (const row of known.values()) {
      if (row.state !== 'done' && row.state !== 'gone' && !present.has(row.uid)) {
        await this.store.vanished({ mailbox, uidValidity, uid: row.uid });
      }
    }
    for (const uid of found) {
      const row = known.get(uid);
      if (this.stopping || row?.state === 'done' || row?.state === 'gone') {
        continue;
      }
      // Renewed per message: a long backlog keeps the lease; a lost one ends the pass.
      if (!(await this.store.lease(mailbox, this.holder, this.leaseMs()))) {
        return;
      }
      await this.processor.handle(imap, { mailbox, uidValidity, uid }, row);
    }
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      try {
        await this.pass();
      } catch (err) {
        const text = err instanceof Error ? err.message : String(err);
        this.logger.warn({ mailbox: this.inbox.name, err: text }, 'mailbox poll failed; retrying after the interval');
        await this.store.polled(this.inbox.name, null, text).catch(() => undefined);
        await this.disconnect();
      }
      await this.idle(this.inbox.pollSeconds * 1000);
    }
  }

  /** Waits for the interval, a new message announced by IDLE (EXISTS), or stop(). */
  private idle(ms: number): Promise<void> {
    if (this.stopping) {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const onExists = (): void => done();
      const imap = this.imap;
      imap?.on('exists', onExists);
      function done(): void {
        clearTimeout(timer);
        imap?.off('exists', onExists);
        resolve();
      }
      this.wake = done;
    });
  }

  private async connection(): Promise<ImapFlow> {
    if (this.imap?.usable) {
      return this.imap;
    }
    await this.disconnect();
    const url = new URL(this.inbox.url);
    const secure = url.protocol === 'imaps:';
    // doSTARTTLS (imapflow option, not in its typings): true requires STARTTLS on imap://.
    const options: ImapFlowOptions & { doSTARTTLS?: boolean } = {
      host: url.hostname,
      port: Number(url.port || (secure ? 993 : 143)),
      secure,
      ...(secure ? {} : { doSTARTTLS: !this.inbox.insecure }),
      auth: { user: this.inbox.user, pass: this.inbox.secret },
      tls: { rejectUnauthorized: !this.inbox.insecure },
      logger: false,
      connectionTimeout: 15_000,
      greetingTimeout: 15_000,
      // IDLE soon after a pass, so that a new message wakes the poller at once.
      autoIdleDelay: 1000,
      // A message over the limit is never fetched; the bound keeps a broken server from filling memory.
      maxLiteralSize: this.inbox.maxBytes + 1024 * 1024,
    };
    const imap = new ImapFlow(options);
    // Without a listener an 'error' event would be thrown; the pass that uses the connection sees the failure.
    imap.on('error', (err: Error) => {
      this.logger.warn({ mailbox: this.inbox.name, err: err.message }, 'mailbox connection error');
    });
    await imap.connect();
    this.imap = imap;
    return imap;
  }

  private async disconnect(): Promise<void> {
    const imap = this.imap;
    this.imap = undefined;
    if (!imap) {
      return;
    }
    if (imap.usable) {
      await imap.logout().catch(() => imap.close());
    } else {
      imap.close();
    }
  }

  /** Long enough to cover a wait between passes; a crashed holder is replaced after it. */
  private leaseMs(): number {
    return this.inbox.pollSeconds * 2000 + 30_000;
  }
}
