import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Pool } from 'pg';
import { ConfigError, inboxName } from '@gw/platform';
import type { GatewayFeature, Logger, MssInboxConfig } from '@gw/platform';
import { MailboxStore } from './mailbox.store';
import { MailboxMessageProcessor } from './mailbox-message.processor';
import { MailboxPoller } from './mailbox.poller';
import type { InboxSettings } from './mailbox.poller';
import type { MailboxPorts } from './mailbox.ports';

/**
 * The inbound MSSanté mailboxes (GW_MSS_INBOXES) as a gateway feature: one poller per mailbox,
 * started in the processes that run workers (the gateway with GW_WORKERS_INPROCESS, apps/worker);
 * several such processes share the work through each mailbox's lease.
 */
export class MailboxFeature implements GatewayFeature {
  readonly name = 'mailbox';
  readonly store: MailboxStore;
  readonly pollers: MailboxPoller[];

  constructor(pool: Pool, inboxes: readonly MssInboxConfig[], ports: MailboxPorts, logger: Logger) {
    this.store = new MailboxStore(pool);
    // One holder id per process: a restarted process takes its own lease back at once.
    const holder = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    const log = logger.child({ feature: 'mailbox' });
    this.pollers = inboxes.map((m) => {
      const inbox = settings(m);
      const processor = new MailboxMessageProcessor(
        this.store,
        ports,
        {
          address: inbox.user.includes('@') ? inbox.user : `${inbox.user}@${new URL(inbox.url).hostname}`,
          quarantine: inbox.quarantine,
          maxAttempts: inbox.maxAttempts,
          maxBytes: inbox.maxBytes,
          // Documents become the receiving organization's records, written as its system client would.
          principal: {
            clientId: `mailbox:${inbox.name}`,
            organization: inbox.organization,
            admin: false,
            scopes: ['system/*.cruds'],
          },
        },
        log,
      );
      return new MailboxPoller(inbox, this.store, processor, holder, log);
    });
  }

  /** The poller of a mailbox by name (tests, operators). */
  poller(name: string): MailboxPoller {
    const p = this.pollers.find((x) => x.name === name);
    if (!p) {
      throw new Error(`no mailbox named ${name}`);
    }
    return p;
  }

  async start(): Promise<void> {
    for (const p of this.pollers) {
      p.start();
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.pollers.map((p) => p.stop()));
  }
}

function settings(m: MssInboxConfig): InboxSettings {
  let secret = m.password;
  if (secret === undefined && m.passwordFile !== undefined) {
    try {
      secret = readFileSync(m.passwordFile, 'utf8').trim();
    } catch {
      throw new ConfigError(`GW_MSS_INBOXES: cannot read the passwordFile of mailbox ${inboxName(m)}`);
    }
  }
  return { ...m, name: inboxName(m), secret: secret ?? '' };
}
