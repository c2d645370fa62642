import type { IntakePipelineApi } from '../intake/pipeline';

/**
 * What the mailbox needs of the intake pipeline ({@link IntakePipelineApi.ingest}): one IHE XDM
 * zip in, what became of it out. The pipeline is idempotent on the document's uniqueId: a message
 * whose import committed just before a crash is handed over again after the restart, harmlessly.
 */
export type MailboxIntake = Pick<IntakePipelineApi, 'ingest'>;

/** An RFC 8098 disposition notification answering a message the mailbox received. */
export interface MdnReply {
  /** The Disposition-Notification-To address. */
  to: string;
  originalMessageId: string;
  /** The mailbox that processed the message. */
  finalRecipient: string;
  disposition: 'processed' | 'processed/error';
  /** Why the message could not be imported (processed/error). */
  error?: string;
}

/** Collaborators given by the composition root (the mailbox depends on no other lib's SMTP code). */
export interface MailboxPorts {
  intake: MailboxIntake;
  /** Sends an MDN through the MSSanté relay; undefined: no relay configured (MDNs are not sent). */
  sendMdn?: (mdn: MdnReply) => Promise<void>;
  /**
   * An MDN that arrived in the mailbox, about a message the gateway sent (exchange's acceptMdn);
   * undefined: such a message is moved aside like any message without an XDM package.
   */
  acceptMdn?: (raw: Buffer) => Promise<unknown>;
}
