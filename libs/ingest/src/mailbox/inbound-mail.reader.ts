import { simpleParser } from 'mailparser';
import type { AddressObject, Attachment } from 'mailparser';

/** Name of the attachment that carries an IHE XDM package in an MSSanté message (ITI TF-1 §16). */
export const XDM_ATTACHMENT = 'IHE_XDM.ZIP';

/** What the mailbox poller needs of one inbound message. */
export interface InboundMail {
  /** Message-ID with its angle brackets, when the message has one. */
  messageId?: string;
  /** RFC 8098 §2.1: the address asking for a disposition notification (first one only). */
  dispositionNotificationTo?: string;
  subject?: string;
  /** true: the message is itself an MDN (never answered by another, RFC 8098 §2.1). */
  isMdn: boolean;
  /** The IHE XDM packages attached (by name, or a zip whose name says XDM). */
  xdm: Buffer[];
}

/**
 * Reads a raw RFC 5322 message: its ids, whether it asks for an MDN or is one, and its IHE_XDM.ZIP
 * attachments. Nothing else of the message is kept (its text may name the patient).
 */
export async function readInboundMail(raw: Buffer): Promise<InboundMail> {
  const mail = await simpleParser(raw, { skipHtmlToText: true, skipTextToHtml: true, skipImageLinks: true });
  const contentType = mail.headers.get('content-type');
  const reportType =
    typeof contentType === 'object' && contentType !== null && 'params' in contentType
      ? (contentType as { value: string; params: Record<string, string> })
      : undefined;
  const isMdn =
    (reportType?.value.toLowerCase() === 'multipart/report' &&
      reportType.params['report-type']?.toLowerCase() === 'disposition-notification') ||
    mail.attachments.some((a) => a.contentType.toLowerCase() === 'message/disposition-notification');
  return {
    ...(mail.messageId ? { messageId: angle(mail.messageId) } : {}),
    ...(mail.subject ? { subject: mail.subject } : {}),
    ...optional('dispositionNotificationTo', firstAddress(mail.headers.get('disposition-notification-to'))),
    isMdn,
    xdm: isMdn ? [] : mail.attachments.filter(isXdm).map((a) => a.content),
  };
}

function isXdm(a: Attachment): boolean {
  const name = (a.filename ?? '').toUpperCase();
  if (name === XDM_ATTACHMENT) {
    return true;
  }
  // Some clients rename the package (IHE_XDM(1).ZIP, ihe_xdm.zip.zip): a zip named after XDM still is one.
  return name.includes('XDM') && (name.endsWith('.ZIP') || a.contentType.toLowerCase() === 'application/zip');
}

/** The header may come parsed (an AddressObject) or raw, depending on mailparser's header table. */
function firstAddress(value: unknown): string | undefined {
  if (typeof value === 'string') {
    return /<([^<>\s]+@[^<>\s]+)>/.exec(value)?.[1] ?? /([^\s<>,;"]+@[^\s<>,;"]+)/.exec(value)?.[1];
  }
  const objects = (Array.isArray(value) ? value : [value]) as (AddressObject | undefined)[];
  for (const o of objects) {
    const address = o?.value?.find((v) => v.address)?.address;
    if (address) {
      return address;
    }
  }
  if (value && typeof value === 'object' && 'text' in value) {
    return firstAddress((value as { text: string }).text);
  }
  return undefined;
}

function optional<K extends string>(key: K, value: string | undefined): { [P in K]?: string } {
  return (value ? { [key]: value } : {}) as { [P in K]?: string };
}

function angle(id: string): string {
  return `<${id.trim().replace(/^<|>$/g, '')}>`;
}
