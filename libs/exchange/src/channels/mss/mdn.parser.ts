import { createHash } from 'node:crypto';
import { simpleParser } from 'mailparser';
import type { Attachment, ParsedMail } from 'mailparser';

/** RFC 8098 §3.2.6 disposition types, plus `failed` from RFC 3798 (still sent by older clients). */
export type MdnDisposition = 'processed' | 'displayed' | 'deleted' | 'dispatched' | 'denied' | 'failed';

/** What a Message Disposition Notification says about a message the gateway sent. */
export interface MdnReport {
  /** Message-ID of the original message, with its angle brackets. */
  originalMessageId: string;
  /** The mailbox that processed the message (address part of Final-Recipient, without `rfc822;`). */
  finalRecipient?: string;
  disposition: MdnDisposition;
  /** The Error field, or a generic text when only the `/error` modifier is present. */
  error?: string;
}

/** The input is not a usable MDN (not a disposition-notification report, or a field is missing). */
export class MdnFormatError extends Error {
  override readonly name = 'MdnFormatError';
}

const DISPOSITIONS: readonly MdnDisposition[] = ['processed', 'displayed', 'deleted', 'dispatched', 'denied', 'failed'];
const MDN_TYPE = 'message/disposition-notification';

/**
 * Parses an RFC 8098 MDN (multipart/report; report-type=disposition-notification). MSSanté returns
 * `processed` or `processed/error` (DOMAIN §6). Throws {@link MdnFormatError} when it is not one.
 */
export async function parseMdn(raw: Buffer | string): Promise<MdnReport> {
  const mail = await simpleParser(raw, { skipHtmlToText: true, skipTextToHtml: true, skipImageLinks: true });
  const report = reportPart(mail);
  if (report === undefined) {
    throw new MdnFormatError('not an MDN: no message/disposition-notification part');
  }
  return readReport(parseFields(report));
}

/** mailparser gives the report part as an attachment; some clients send it as inline text. */
function reportPart(mail: ParsedMail): string | undefined {
  const isReport = (a: Attachment): boolean =>
    a.contentType.toLowerCase() === MDN_TYPE ||
    a.contentType.toLowerCase() === 'message/global-disposition-notification';
  const att = mail.attachments.find(isReport);
  if (att) {
    return att.content.toString('utf8');
  }
  // Fallback: the fields were folded into the text body (report part typed text/plain).
  const text = mail.text ?? '';
  return /^Disposition\s*:/im.test(text) ? text : undefined;
}

function readReport(fields: Map<string, string>): MdnReport {
  const original = fields.get('original-message-id');
  if (!original) {
    throw new MdnFormatError('MDN without Original-Message-ID');
  }
  const disposition = fields.get('disposition');
  if (!disposition) {
    throw new MdnFormatError('MDN without Disposition field');
  }
  const { type, modifiers } = parseDisposition(disposition);
  const finalRecipient = fields
    .get('final-recipient')
    ?.replace(/^[^;]*;\s*/, '')
    .trim();
  const error =
    fields.get('error') ??
    (modifiers.includes('error') || type === 'failed'
      ? `disposition ${disposition.replace(/^[^;]*;\s*/, '')}`
      : undefined);
  return {
    originalMessageId: angle(original),
    ...(finalRecipient ? { finalRecipient } : {}),
    disposition: type,
    ...(error ? { error } : {}),
  };
}

/** RFC 8098 §3.2.6: `action-mode/sending-mode; type[/modifier,...]`. */
function parseDisposition(value: string): { type: MdnDisposition; modifiers: string[] } {
  const after = value.includes(';') ? value.slice(value.indexOf(';') + 1) : value;
  const [rawType, rawModifiers = ''] = after.trim().split('/', 2);
  const type = rawType.trim().toLowerCase();
  const known = DISPOSITIONS.find((d) => d === type);
  if (!known) {
    throw new MdnFormatError(`MDN with an unknown disposition type: ${JSON.stringify(type.slice(0, 40))}`);
  }
  return {
    type: known,
    modifiers: rawModifiers
      .split(',')
      .map((m) => m.trim().toLowerCase())
      .filter(Boolean),
  };
}

/** Header-style fields (RFC 5322 §2.2), unfolded, keyed by lower-case name; the first wins. */
function parseFields(block: string): Map<string, string> {
  const unfolded = block.replace(/\r\n/g, '\n').replace(/\n[ \t]+/g, ' ');
  const fields = new Map<string, string>();
  for (const line of unfolded.split('\n')) {
    const m = /^([A-Za-z][A-Za-z0-9-]*)\s*:\s*(.*)$/.exec(line);
    if (m && !fields.has(m[1].toLowerCase())) {
      fields.set(m[1].toLowerCase(), m[2].trim());
    }
  }
  return fields;
}

function angle(id: string): string {
  const bare = id.trim().replace(/^<|>$/g, '');
  return `<${bare}>`;
}

/** Options of {@link buildMdn}. */
export interface BuildMdnOptions {
  from: string;
  to: string;
  originalMessageId: string;
  finalRecipient: string;
  disposition: 'processed' | 'processed/error' | 'displayed' | 'deleted';
  error?: string;
  subject?: string;
  /** Date header; defaults to now. */
  date?: Date;
  /** Message-ID; defaults to one derived from the original id and the disposition. */
  messageId?: string;
}

/**
 * Builds a raw RFC 8098 MDN (CRLF line endings) as an MSSanté client returns it: a human-readable
 * part and the message/disposition-notification part. Used by tests and the demo to play the
 * recipient. Throws a TypeError when a header value contains a line break.
 */
export function buildMdn(opts: BuildMdnOptions): string {
  for (const v of [opts.from, opts.to, opts.originalMessageId, opts.finalRecipient, opts.subject ?? '']) {
    if (/[\r\n]/.test(v)) {
      throw new TypeError('MDN header values must not contain line breaks');
    }
  }
  const original = angle(opts.originalMessageId);
  const seed = createHash('sha1')
    .update(`${original}|${opts.finalRecipient}|${opts.disposition}`)
    .digest('hex')
    .slice(0, 24);
  const boundary = `mdn-${seed}`;
  const domain = /@([^>\s]+)/.exec(opts.from)?.[1] ?? 'localhost';
  const headers = [
    `From: ${opts.from}`,
    `To: ${opts.to}`,
    `Subject: ${encodeHeader(opts.subject ?? `Disposition notification: ${opts.disposition}`)}`,
    `Date: ${(opts.date ?? new Date()).toUTCString().replace('GMT', '+0000')}`,
    `Message-ID: ${opts.messageId ? angle(opts.messageId) : `<${seed}@${domain}>`}`,
    `In-Reply-To: ${original}`,
    `References: ${original}`,
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=disposition-notification; boundary="${boundary}"`,
  ];
  return [
    ...headers,
    '',
    ...humanPart(opts, boundary),
    ...reportLines(opts, original, boundary),
    `--${boundary}--`,
    '',
  ].join('\r\n');
}

function humanPart(opts: BuildMdnOptions, boundary: string): string[] {
  const text =
    opts.disposition === 'processed/error'
      ? `Le message ${opts.originalMessageId} n'a pas pu être intégré : ${opts.error ?? 'erreur'}.`
      : `Le message ${opts.originalMessageId} a été traité (${opts.disposition}).`;
  const b64 = Buffer.from(text, 'utf8')
    .toString('base64')
    .replace(/.{1,76}/g, '$&\r\n')
    .trimEnd();
  return [`--${boundary}`, 'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: base64', '', b64, ''];
}

function reportLines(opts: BuildMdnOptions, original: string, boundary: string): string[] {
  const fields = [
    'Reporting-UA: fhir-gateway-fr',
    `Final-Recipient: rfc822; ${opts.finalRecipient}`,
    `Original-Message-ID: ${original}`,
    `Disposition: automatic-action/MDN-sent-automatically; ${opts.disposition}`,
  ];
  if (opts.error !== undefined) {
    fields.push(`Error: ${asciiField(opts.error)}`);
  }
  return [`--${boundary}`, `Content-Type: ${MDN_TYPE}`, '', ...fields, ''];
}

/** message/disposition-notification fields are US-ASCII (RFC 8098 §3.1): fold accents, drop the rest. */
function asciiField(v: string): string {
  return v
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[\r\n\t]+/g, ' ')
    .replace(/[^\x20-\x7e]/g, '?');
}

/** RFC 2047 encoded-word for a non-ASCII subject. */
function encodeHeader(v: string): string {
  return /^[\x20-\x7e]*$/.test(v) ? v : `=?UTF-8?B?${Buffer.from(v, 'utf8').toString('base64')}?=`;
}
