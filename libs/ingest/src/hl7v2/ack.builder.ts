import type { ErrCode, Hl7Location } from './hl7-text';
import type { Header } from './pam-fr.reader';

export type AckCode = 'AA' | 'AE' | 'AR';

/** What an ACK answers: the header fields of the message, as far as they could be read. */
export interface AckTarget extends Pick<
  Header,
  | 'sendingApplication'
  | 'sendingFacility'
  | 'receivingApplication'
  | 'receivingFacility'
  | 'controlId'
  | 'processingId'
  | 'event'
> {
  /** MSH-18 as received, echoed in the ACK. */
  charsetField: string;
}

export interface AckError {
  location?: Hl7Location;
  code: ErrCode;
  text: string;
  /** ERR-4 (HL7 table 0516): `E` error (default), `W` warning on an accepted message. */
  severity?: 'E' | 'W';
}

const ERR_TEXT: Record<ErrCode, string> = {
  '100': 'Segment sequence error',
  '101': 'Required field missing',
  '102': 'Data type error',
  '103': 'Table value not found',
  '200': 'Unsupported message type',
  '201': 'Unsupported event code',
  '203': 'Unsupported version id',
  '204': 'Unknown key identifier',
  '205': 'Duplicate key identifier',
  '207': 'Application internal error',
};

/** Escapes text for an HL7 field (v2.5 §2.7). */
export function escapeHl7(text: string): string {
  return text
    .replace(/\\/g, '\\E\\')
    .replace(/\|/g, '\\F\\')
    .replace(/\^/g, '\\S\\')
    .replace(/&/g, '\\T\\')
    .replace(/~/g, '\\R\\')
    .replace(/[\r\n]+/g, ' ');
}

function hl7Now(now: Date): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${now.getUTCFullYear()}${p(now.getUTCMonth() + 1)}${p(now.getUTCDate())}${p(now.getUTCHours())}${p(now.getUTCMinutes())}${p(now.getUTCSeconds())}+0000`;
}

/**
 * Original-mode ACK (HL7 v2.5 §2.9.2, PAM-FR): MSH with sender and receiver swapped, MSA-2 = the
 * message's MSH-10, an ERR segment per error or warning (ERR-2 location, ERR-3 table 0357 code,
 * ERR-4 severity, ERR-8 user message). An AA may carry warnings (severity W).
 */
export function buildAck(
  target: AckTarget,
  code: AckCode,
  ackControlId: string,
  errors: AckError[] = [],
  now = new Date(),
): string {
  const f = escapeHl7;
  const msh = [
    'MSH',
    '^~\\&',
    f(target.receivingApplication || 'FHIR-GATEWAY'),
    f(target.receivingFacility),
    f(target.sendingApplication),
    f(target.sendingFacility),
    hl7Now(now),
    '',
    `ACK^${f(target.event)}^ACK`,
    f(ackControlId),
    f(target.processingId || 'P'),
    '2.5^FRA^2.11',
    '',
    '',
    '',
    '',
    '',
    f(target.charsetField),
  ];
  const text =
    code === 'AA'
      ? errors.length > 0
        ? 'Message processed with warnings (see ERR)'
        : 'Message processed'
      : (errors[0]?.text ?? (code === 'AR' ? 'Message rejected' : 'Application error'));
  const segments = [
    msh.join('|').replace(/\|+$/, ''),
    ['MSA', code, f(target.controlId), f(text.slice(0, 80))].join('|'),
  ];
  for (const e of errors) {
    const loc = e.location
      ? [
          e.location.segment,
          '1',
          e.location.field ?? '',
          e.location.repetition ?? (e.location.field ? 1 : ''),
          e.location.component ?? '',
        ]
          .join('^')
          .replace(/\^+$/, '')
      : '';
    segments.push(
      ['ERR', '', loc, `${e.code}^${ERR_TEXT[e.code]}^HL70357`, e.severity ?? 'E', '', '', '', f(e.text)].join('|'),
    );
  }
  return segments.join('\r');
}
