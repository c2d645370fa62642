import { Controller, Get, Inject, Param, Query } from '@nestjs/common';
import { GatewayError } from '@gw/platform';
import type { MailboxMessage, MailboxSummary, MessageState } from '@gw/ingest';
import { AdminOnly } from '../auth/access.decorators';
import type { GatewayCore } from '../core';
import { CORE } from '../http/core.token';
import { pageSize } from './page-size';

const STATES: readonly MessageState[] = ['received', 'ingested', 'quarantined', 'done', 'gone'];

/** Operator view of the inbound MSSanté mailboxes: poll status, and each message's fate with its reason. */
@Controller('admin/mailboxes')
@AdminOnly()
export class MailboxAdminController {
  constructor(@Inject(CORE) private readonly core: GatewayCore) {}

  @Get()
  async list(): Promise<MailboxSummary[]> {
    return this.core.mailbox.store.summary();
  }

  @Get(':name/messages')
  async messages(
    @Param('name') name: string,
    @Query('state') state?: string,
    @Query('_count') count?: string,
  ): Promise<MailboxMessage[]> {
    if (!this.core.mailbox.pollers.some((p) => p.name === name)) {
      throw new GatewayError('not-found', { text: 'no configured mailbox of that name' });
    }
    if (state !== undefined && !STATES.includes(state as MessageState)) {
      throw new GatewayError('invalid', { text: `state must be one of ${STATES.join(', ')}`, expression: 'state' });
    }
    return this.core.mailbox.store.list(name, pageSize(count), state as MessageState | undefined);
  }
}
