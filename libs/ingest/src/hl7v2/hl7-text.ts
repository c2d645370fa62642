import { createHash } from 'node:crypto';
import iconv from 'iconv-lite';
import { Hl7Message } from '@medplum/core';
import type { Hl7Segment } from '@medplum/core';
import { parisParts } from '@gw/fhir';

/** Character sets a source may use or be overridden to (PAM-FR MSH-18 values map onto these). */
export type Charset = 'UTF-8' | 'ISO-8859-1' | 'ISO-8859-15';
export const CHARSETS: readonly Charset[] = ['UTF-8', 'ISO-8859-1', 'ISO-8859-15'];

/** HL7 table 0357 codes used in ERR-3. */
export type ErrCode = '100' | '101' | '102' | '103' | '200' | '201' | '203' | '204' | '205' | '207';

/** Where in the message a problem is (ERR-2: segment^sequence^field^repetition^component). */
export interface Hl7Location {
  segment: string;
  field?: number;
  repetition?: number;
  component?: number;
}

/** A problem with the content of a message: answered AE (or AR when `reject`) with an ERR segment. */
export class Hl7ContentError extends Error {
  constructor(
    readonly location: Hl7Location | undefined,
    readonly code: ErrCode,
    message: string,
    readonly reject = false,
  ) {
    super(message);
  }
}

/** Formats a location for humans and logs (`PID-3[2].4`). */
export function describeLocation(l: Hl7Location | undefined): string {
  if (!l) {
    return 'message';
  }
  const rep = l.repetition && l.repetition > 1 ? `[${l.repetition}]` : '';
  return `${l.segment}${l.field ? `-${l.field}${rep}` : ''}${l.component ? `.${l.component}` : ''}`;
}

const MSH18: Record<string, Charset> = {
  'UNICODE UTF-8': 'UTF-8',
  'UTF-8': 'UTF-8',
  '8859/1': 'ISO-8859-1',
  '8859/15': 'ISO-8859-15',
  ASCII: 'UTF-8',
};

/**
 * Peeks at the MSH segment without knowing the charset yet: MSH-3/4/10/18 are ASCII in practice, and
 * ISO-8859-1 maps every byte to one character, so nothing can fail here.
 */
export function peekHeader(raw: Buffer): { text: string; fields: string[] } | undefined {
  const end = raw.indexOf(0x0d);
  const head = raw.subarray(0, end < 0 ? Math.min(raw.length, 4096) : Math.min(end, 4096)).toString('latin1');
  if (!head.startsWith('MSH') || head.length < 8) {
    return undefined;
  }
  const sep = head[3];
  return { text: head, fields: ['MSH', sep, ...head.slice(4).split(sep)] };
}

/**
 * Decodes the raw bytes: the source's override wins, then MSH-18; without either, UTF-8 when the
 * bytes are valid UTF-8, else ISO-8859-1. A message declared UTF-8 that is not is an error (names
 * would be silently corrupted): the operator sets the source's charset and reprocesses it.
 */
export function decodeMessage(raw: Buffer, override: Charset | undefined): { text: string; charset: Charset } {
  const declaredText = peekHeader(raw)
    ?.fields[18]?.split(peekHeader(raw)?.fields[2]?.[1] ?? '~')[0]
    ?.trim()
    .toUpperCase();
  const declared = declaredText ? MSH18[declaredText] : undefined;
  if (declaredText && !declared && !override) {
    throw new Hl7ContentError(
      { segment: 'MSH', field: 18 },
      '203',
      `Unsupported character set "${declaredText}" (UNICODE UTF-8, 8859/1 and 8859/15 are)`,
    );
  }
  const charset = override ?? declared;
  if (charset === 'UTF-8' || !charset) {
    try {
      return { text: new TextDecoder('utf-8', { fatal: true }).decode(raw), charset: 'UTF-8' };
    } catch {
      if (charset === 'UTF-8') {
        throw new Hl7ContentError(
          { segment: 'MSH', field: 18 },
          '102',
          `The message is declared UTF-8 but its bytes are not valid UTF-8 (set the source's charset, e.g. ISO-8859-1, and reprocess it)`,
        );
      }
      return { text: iconv.decode(raw, 'ISO-8859-1'), charset: 'ISO-8859-1' };
    }
  }
  return { text: iconv.decode(raw, charset), charset };
}

export function encodeText(text: string, charset: Charset): Buffer {
  return charset === 'UTF-8' ? Buffer.from(text, 'utf8') : iconv.encode(text, charset);
}

/** Parses ER7 text (segments separated by CR, LF or CRLF) with @medplum/core. */
export function parseEr7(text: string): Hl7Message {
  const normalized = text.replace(/\r\n|\n/g, '\r').replace(/\r+$/, '');
  if (!/^MSH[^A-Za-z0-9\r]/.test(normalized) || normalized.length < 8) {
    throw new Hl7ContentError({ segment: 'MSH' }, '100', 'The message does not start with an MSH segment', true);
  }
  const segments = normalized.split('\r');
  const bad = segments.findIndex((s) => !/^[A-Z][A-Z0-9]{2}/.test(s));
  if (bad >= 0) {
    throw new Hl7ContentError(
      undefined,
      '100',
      `Segment ${bad + 1} is not an HL7 segment (it does not start with a segment name)`,
      true,
    );
  }
  return Hl7Message.parse(normalized);
}

/** One repetition of a field: its components, still escaped. */
export type Rep = string[];

/** The repetitions of a field (1-based field number as in the standard). */
export function reps(seg: Hl7Segment | undefined, field: number): Rep[] {
  const f = seg?.getField(field) as ReturnType<Hl7Segment['getField']> | undefined;
  if (!f) {
    return [];
  }
  return f.components.filter((r) => r.some((c) => c !== ''));
}

/** Component `c` (1-based) of a repetition, optionally subcomponent `s` (1-based), unescaped. */
export function comp(rep: Rep | undefined, c: number, s?: number, subSep = '&', esc = '\\'): string {
  const raw = rep?.[c - 1] ?? '';
  const value = s === undefined ? raw : (raw.split(subSep)[s - 1] ?? '');
  return unescapeHl7(value, esc).trim();
}

/** The first repetition's component of a field: the common case. */
export function value(seg: Hl7Segment | undefined, field: number, c = 1, s?: number): string {
  return comp(reps(seg, field)[0], c, s);
}

const ESCAPES: Record<string, string> = { F: '|', S: '^', T: '&', R: '~', E: '\\', '.br': '\n' };

/**
 * HL7 escape sequences (v2.5 §2.7): \F\ \S\ \T\ \R\ \E\ \.br\ and \Xhh…\; highlighting and charset
 * switches (\H\ \N\ \C…\ \M…\) carry no text. Separators are the defaults: PAM-FR requires them.
 */
export function unescapeHl7(text: string, esc = '\\'): string {
  if (!text.includes(esc)) {
    return text;
  }
  return text.replace(/\\([^\\]*)\\/g, (_m, code: string) => {
    if (code in ESCAPES) {
      return ESCAPES[code];
    }
    if (/^X([0-9A-Fa-f]{2})+$/.test(code)) {
      const bytes = Buffer.from(code.slice(1), 'hex');
      try {
        return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
      } catch {
        return bytes.toString('latin1');
      }
    }
    return /^(H|N|C[0-9A-F]{4}|M[0-9A-F]{4,6})$/.test(code) ? '' : `\\${code}\\`;
  });
}

const TS = /^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d{1,4})?([+-]\d{4})?$/;

/**
 * HL7 TS/DTM → FHIR date or dateTime. A time without offset is French local time (Europe/Paris,
 * summer time included), which is what French hospital systems send.
 */
export function hl7DateTime(text: string, where: Hl7Location): string | undefined {
  if (!text) {
    return undefined;
  }
  const m = TS.exec(text);
  if (!m) {
    throw new Hl7ContentError(where, '102', `"${text}" is not an HL7 date/time (YYYYMMDD[HHMM[SS]][+/-ZZZZ])`);
  }
  const [, y, mo, d, h, mi, s, tz] = m;
  const check = new Date(Date.UTC(+y, +(mo ?? 1) - 1, +(d ?? 1), +(h ?? 0), +(mi ?? 0), +(s ?? 0)));
  if (
    check.getUTCMonth() + 1 !== +(mo ?? 1) ||
    check.getUTCDate() !== +(d ?? 1) ||
    +(h ?? 0) > 23 ||
    +(mi ?? 0) > 59 ||
    +(s ?? 0) > 59
  ) {
    throw new Hl7ContentError(where, '102', `"${text}" is not a valid calendar date/time`);
  }
  if (!h) {
    return [y, mo, d].filter(Boolean).join('-');
  }
  const local = `${y}-${mo}-${d}T${h}:${mi ?? '00'}:${s ?? '00'}`;
  const offset = tz ? `${tz.slice(0, 3)}:${tz.slice(3)}` : parisOffset(check.getTime());
  return `${local}${offset}`;
}

/** A date only (birth dates): the day part of an HL7 TS. */
export function hl7Date(text: string, where: Hl7Location): string | undefined {
  const dt = hl7DateTime(text, where);
  return dt?.slice(0, 10);
}

/** Offset of Europe/Paris for a wall-clock time given as if it were UTC (±hh:mm). */
function parisOffset(wallAsUtc: number): string {
  const offsetAt = (t: number): number => {
    const p = parisParts(t);
    return Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second) - t;
  };
  // First guess with the offset at that instant, then correct once across a DST change.
  let offset = offsetAt(wallAsUtc);
  offset = offsetAt(wallAsUtc - offset);
  const minutes = Math.round(offset / 60000);
  const sign = minutes < 0 ? '-' : '+';
  const abs = Math.abs(minutes);
  return `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}

/**
 * What makes two messages "the same message" for replay detection: SHA-256 of the segments with
 * MSH-7 (date/time of message, which an engine may restamp on resend) blanked and segment
 * terminators normalised. Bytes are read as latin1 so any charset hashes as sent.
 */
export function contentDigest(raw: Buffer): string {
  const segments = raw
    .toString('latin1')
    .split(/\r\n|\r|\n/)
    .filter((s) => s.length > 0);
  const msh = segments[0];
  if (msh?.startsWith('MSH') && msh.length > 3) {
    const fields = msh.split(msh[3]!);
    if (fields.length > 6) {
      fields[6] = '';
    }
    segments[0] = fields.join(msh[3]!);
  }
  return createHash('sha256').update(segments.join('\r'), 'latin1').digest('hex');
}
