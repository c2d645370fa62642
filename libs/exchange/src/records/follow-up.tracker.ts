import type { Annotation, Communication, Task } from '@medplum/fhirtypes';
import type { PoolClient } from 'pg';
import type { ChannelRegistry } from '../channels/channel';
import { businessStatus } from '../exchange.codes';
import type { BusinessStatus } from '../exchange.codes';
import type { Delivery, DeliveryStore } from './delivery.store';
import type { ResourceWriter } from './resource.writer';

/**
 * Mirrors delivery progress onto the FHIR resources the care team's software reads: the
 * Communication of each message and the business status of the follow-up Task.
 */
export class FollowUpTracker {
  constructor(
    private readonly writer: ResourceWriter,
    private readonly deliveries: DeliveryStore,
    private readonly channels: ChannelRegistry,
  ) {}

  async communication(
    tx: PoolClient,
    ref: string,
    status: Communication['status'],
    reason?: string,
    times: { sent?: string; received?: string } = {},
  ): Promise<void> {
    await this.writer.modify<Communication>(tx, ref, (c) => {
      // A Communication never goes back: a late SMTP success does not undo an MDN already received.
      if (c.status === 'completed' || (c.status === 'stopped' && status !== 'stopped')) {
        return false;
      }
      c.status = status;
      c.statusReason = reason ? { text: reason } : undefined;
      c.sent = times.sent ?? c.sent;
      c.received = times.received ?? c.received;
      return true;
    });
  }

  /** Recomputes the Task's business status from the deliveries of the channels that report to it (MSSanté). */
  async task(tx: PoolClient, ref: string): Promise<void> {
    // Lock the Task before reading the deliveries: concurrent outcomes then summarise in turn.
    await this.writer.lock(tx, ref);
    const all = (await this.deliveries.forTask(tx, ref)).filter(
      (d) => this.channels.get(d.channel).reportsToTask && d.status !== 'cancelled',
    );
    if (all.length === 0) {
      return;
    }
    const code = summarise(all);
    await this.writer.modify<Task>(tx, ref, (t) => {
      if (t.status === 'cancelled' || t.businessStatus?.coding?.[0]?.code === code) {
        return false;
      }
      t.businessStatus = businessStatus(code);
      t.lastModified = new Date().toISOString();
      return true;
    });
  }

  /** A line on the Task (e.g. why the shared record was not fed). */
  async note(tx: PoolClient, ref: string, text: string): Promise<void> {
    await this.writer.modify<Task>(tx, ref, (t) => {
      if (t.note?.some((n) => n.text === text)) {
        return false;
      }
      const note: Annotation = { text, time: new Date().toISOString(), authorString: 'Passerelle' };
      t.note = [...(t.note ?? []), note];
      return true;
    });
  }
}

function summarise(list: Delivery[]): BusinessStatus {
  if (list.some((d) => d.status === 'dead' || d.status === 'failed')) {
    return 'notification-failed';
  }
  if (list.some((d) => d.status === 'pending')) {
    return 'notifications-pending';
  }
  return list.every((d) => d.status === 'processed') ? 'acknowledged' : 'notified';
}
