import { createHash } from 'node:crypto';
import iconv from 'iconv-lite';
import { Hl7ContentError, hl7DateTime } from '../hl7v2/hl7-text';
import type { ExtractionWarning, PatientTraits } from '../intake/extraction';
import { nirAsIns } from './hprim-identity';

/** The charsets HPRIM files come in: labs' software mostly writes windows-1252, newer ones UTF-8. */
export type HprimCharset = 'UTF-8' | 'windows-1252';

/** One `RES|` line: a lab result as the lab codes it (its own local code, never LOINC). */
export interface HprimResult {
  /** 1-based line number in the file (for warnings and the unknown-codes queue). */
  line: number;
  label: string;
  /** The lab's local code (RES field 2). */
  code: string;
  /** N numeric, A alphanumeric, T text, C coded (RES field 3). */
  type: string;
  value: string;
  unit: string;
  low: string;
  high: string;
  /** Abnormality flag as the lab writes it (L, H, LL, HH, N, A, +, -…). */
  flag: string;
  /** Result status (F final/validated, P partial, C corrected…). */
  status: string;
  /** The same result in a second unit, when the lab gives one (RES fields 10–13). */
  alternate?: { value: string; unit: string; low: string; high: string };
  /** The `TEX|` lines that follow it (comments of the lab on this result). */
  notes: string[];
}

/** One patient's part of an HPRIM file: from its first header line to its `****FIN****`. */
export interface HprimPart {
  /** 1-based line number of the part's first line. */
  firstLine: number;
  /** Header line 1: the lab's reference of the file part (dossier). */
  reference: string;
  patient: PatientTraits;
  /** Header line 9: the lab's request (demande) number. */
  requestNumber: string;
  /** Header line 10: the sampling date, ISO 8601. */
  date?: string;
  /** Header line 11: the lab as the file names it. */
  labText: string;
  /** The key of the lab's code map, derived from {@link labText} (see {@link labKeyOf}). */
  lab: string;
  /** Header line 12: the recipient (prescriber / GP) as the file names them. */
  recipient: string;
  /** The printed report between the header and `****LAB****` (free text). */
  report: string[];
  /** `TEX|` lines before any `RES|` line: notes on the whole report. */
  notes: string[];
  results: HprimResult[];
  warnings: ExtractionWarning[];
  /** The part's raw bytes in the file's charset (the document kept as a Binary). */
  raw: Buffer;
  /** SHA-256 (hex) of {@link raw}: the document's unique id. */
  digest: string;
}

export interface HprimFile {
  charset: HprimCharset;
  parts: HprimPart[];
  /** The file had its `****FINFICHIER****` end marker (a file without it may be truncated). */
  complete: boolean;
}

/** An HPRIM file that cannot be read; the location is a line number, never patient data. */
export class HprimFormatError extends Error {
  constructor(
    readonly location: string,
    message: string,
  ) {
    super(message);
  }
}

const END_PART = /^\*{4}FIN\*{4}$/;
const END_FILE = /^\*{4}FINFICHIER\*{4}$/;
const LAB = /^\*{4}LAB\*{4}$/;
const HEADER_LINES = 12;
/** The smallest header a part may have: up to the sampling date (line 10). */
const MIN_HEADER_LINES = 10;

/**
 * Whether bytes look like an HPRIM Médecins file (for the intake's dispatch of `text/plain`
 * bodies): an end-of-part marker and at least one `RES|` line or `****LAB****` marker.
 */
export function looksLikeHprim(body: Buffer): boolean {
  const text = body.toString('latin1');
  return /^\*{4}FIN\*{4}\r?$/m.test(text) && /^(RES\||\*{4}LAB\*{4})/m.test(text);
}

/**
 * Decodes an HPRIM file: UTF-8 when the bytes are valid UTF-8 (a BOM is dropped), windows-1252
 * otherwise (what most labs' software writes; a windows-1252 file with accented letters is never
 * valid UTF-8, so the test cannot misread it).
 */
export function decodeHprim(body: Buffer): { text: string; charset: HprimCharset; bom: number } {
  const bom = body.length >= 3 && body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf ? 3 : 0;
  try {
    return { text: new TextDecoder('utf-8', { fatal: true }).decode(body.subarray(bom)), charset: 'UTF-8', bom };
  } catch {
    return { text: iconv.decode(body, 'windows-1252'), charset: 'windows-1252', bom: 0 };
  }
}

/**
 * Reads an HPRIM Médecins file (H2.1/H2.2 style): one or more patient parts, each a 12-line
 * header, an optional printed report, `****LAB****`, `RES|`/`TEX|` lines and `****FIN****`; the
 * file ends with `****FINFICHIER****`.
 * @throws HprimFormatError when no part can be read (empty file, a header cut short).
 */
export function readHprim(body: Buffer): HprimFile {
  const { text, charset, bom } = decodeHprim(body);
  const lines = splitLines(text, charset, bom);
  const parts: HprimPart[] = [];
  let complete = false;
  let start = 0;
  for (let i = 0; i < lines.length; i++) {
    const t = lines[i]!.text.trim();
    if (END_FILE.test(t)) {
      complete = true;
      if (lines.slice(start, i).some((l) => l.text.trim() !== '')) {
        throw new HprimFormatError(
          `line ${start + 1}`,
          `A patient part starting at line ${start + 1} has no ****FIN****`,
        );
      }
      break;
    }
    if (END_PART.test(t)) {
      parts.push(readPart(lines.slice(start, i + 1), start, body));
      start = i + 1;
    }
  }
  if (!complete && lines.slice(start).some((l) => l.text.trim() !== '')) {
    throw new HprimFormatError(`line ${start + 1}`, `A patient part starting at line ${start + 1} has no ****FIN****`);
  }
  if (parts.length === 0) {
    throw new HprimFormatError('line 1', 'The file has no patient part (header lines … ****FIN****)');
  }
  return { charset, parts, complete };
}

interface Line {
  text: string;
  /** Byte offsets of the line (without its end of line) and of the next line in the body. */
  start: number;
  next: number;
}

/** Lines with their byte offsets, so that each part keeps its raw bytes in the original charset. */
function splitLines(text: string, charset: HprimCharset, bom: number): Line[] {
  const lines: Line[] = [];
  const re = /\r\n|\r|\n/g;
  let from = 0;
  let byte = bom;
  const size = (s: string): number => (charset === 'UTF-8' ? Buffer.byteLength(s, 'utf8') : s.length);
  for (;;) {
    const m = re.exec(text);
    const end = m ? m.index : text.length;
    const lineText = text.slice(from, end);
    const next = byte + size(lineText) + (m ? m[0].length : 0);
    if (m || lineText !== '') {
      lines.push({ text: lineText, start: byte, next });
    }
    if (!m) {
      break;
    }
    byte = next;
    from = re.lastIndex;
  }
  return lines;
}

function readPart(lines: Line[], offset: number, body: Buffer): HprimPart {
  // Blank lines between parts belong to no one.
  let skip = 0;
  while (skip < lines.length && lines[skip]!.text.trim() === '') {
    skip++;
  }
  const own = lines.slice(skip);
  const first = offset + skip + 1;
  const labAt = own.findIndex((l) => LAB.test(l.text.trim()));
  const headerEnd = Math.min(HEADER_LINES, labAt >= 0 ? labAt : own.length - 1);
  if (headerEnd < MIN_HEADER_LINES) {
    throw new HprimFormatError(
      `line ${first}`,
      `The patient part at line ${first} has ${headerEnd} header lines (HPRIM needs ${HEADER_LINES}: reference, name, first name, address ×2, postcode and town, birth date, NIR, request number, date, lab, recipient)`,
    );
  }
  const h = own.slice(0, headerEnd).map((l) => l.text.trim());
  const warnings: ExtractionWarning[] = [];
  const part: HprimPart = {
    firstLine: first,
    reference: h[0]!,
    patient: patientOf(h, first, warnings),
    requestNumber: h[8] ?? '',
    date: dateOf(h[9] ?? '', `line ${first + 9}`, warnings),
    labText: h[10] ?? '',
    lab: labKeyOf(h[10] ?? ''),
    recipient: headerEnd > 11 ? (h[11] ?? '') : '',
    report: [],
    notes: [],
    results: [],
    warnings,
    raw: body.subarray(own[0]!.start, own.at(-1)!.next),
    digest: '',
  };
  part.digest = sha256(part.raw);
  const bodyStart = headerEnd;
  const labStart = labAt >= 0 ? labAt : own.length - 1;
  part.report = own.slice(bodyStart, labStart).map((l) => l.text.replace(/\s+$/, ''));
  for (let i = labStart + 1; i < own.length - 1; i++) {
    readLabLine(own[i]!.text, first + i, part);
  }
  return part;
}

/** A `RES|` or `TEX|` line of the structured part; anything else is a warning. */
function readLabLine(text: string, line: number, part: HprimPart): void {
  if (text.trim() === '') {
    return;
  }
  const f = text.split('|').map((s) => s.trim());
  if (f[0] === 'TEX') {
    const note = f.slice(1).join('|').trim();
    if (note) {
      (part.results.at(-1)?.notes ?? part.notes).push(note);
    }
    return;
  }
  if (f[0] !== 'RES') {
    part.warnings.push({
      location: `line ${line}`,
      text: `Line type "${f[0]!.slice(0, 8)}" is not RES| or TEX|: skipped`,
    });
    return;
  }
  if (!f[2]) {
    // Section titles are RES lines with a label and no code.
    if (f[4]) {
      part.warnings.push({ location: `line ${line}`, text: 'RES line with a value but no local code: skipped' });
    }
    return;
  }
  const alt = f[10] ? { value: f[10], unit: f[11] ?? '', low: f[12] ?? '', high: f[13] ?? '' } : undefined;
  part.results.push({
    line,
    label: f[1] ?? '',
    code: f[2],
    type: (f[3] ?? '').toUpperCase(),
    value: f[4] ?? '',
    unit: f[5] ?? '',
    low: f[6] ?? '',
    high: f[7] ?? '',
    flag: (f[8] ?? '').toUpperCase(),
    status: (f[9] ?? '').toUpperCase(),
    ...(alt ? { alternate: alt } : {}),
    notes: [],
  });
}

function patientOf(h: string[], first: number, warnings: ExtractionWarning[]): PatientTraits {
  const birthDate = dateOf(h[6] ?? '', `line ${first + 6}`, warnings)?.slice(0, 10);
  const traits: PatientTraits = {
    identifiers: [],
    ...(h[1] ? { birthFamily: h[1].toUpperCase() } : {}),
    ...(h[2] ? { given: h[2].split(/[\s,]+/).filter(Boolean) } : {}),
    ...(birthDate ? { birthDate } : {}),
  };
  const nir = (h[7] ?? '').replace(/\s+/g, '').toUpperCase();
  if (nir) {
    const ins = nirAsIns(nir, birthDate);
    if (ins.ins) {
      traits.ins = ins.ins;
      traits.sex = ins.sex;
    } else {
      warnings.push({ location: `line ${first + 7}`, text: ins.reason });
    }
  }
  return traits;
}

/** `JJ/MM/AAAA[ HH:MM[:SS]]` or `JJMMAAAA` (a two-digit year is refused: the century is a guess). */
function dateOf(text: string, location: string, warnings: ExtractionWarning[]): string | undefined {
  if (!text) {
    return undefined;
  }
  const m = /^(\d{2})[/.-]?(\d{2})[/.-]?(\d{4})(?:[ T]+(\d{2})[:hH]?(\d{2})(?::?(\d{2}))?)?$/.exec(text);
  if (!m) {
    warnings.push({ location, text: 'Not a date (JJ/MM/AAAA[ HH:MM]): ignored' });
    return undefined;
  }
  const [, d, mo, y, hh, mi, ss] = m;
  try {
    return hl7DateTime(`${y}${mo}${d}${hh ?? ''}${hh ? mi : ''}${hh ? (ss ?? '') : ''}`, { segment: 'HPRIM' });
  } catch (e) {
    if (e instanceof Hl7ContentError) {
      warnings.push({ location, text: 'Not a valid calendar date: ignored' });
      return undefined;
    }
    throw e;
  }
}

/**
 * The key of a lab's code map from header line 11: its FINESS when the line carries a 9-digit
 * number, else the line itself (upper case, single spaces, at most 80 characters).
 */
export function labKeyOf(text: string): string {
  const finess = /(?:^|\D)(\d{9})(?:\D|$)/.exec(text);
  if (finess) {
    return finess[1]!;
  }
  return text.toUpperCase().replace(/\s+/g, ' ').trim().slice(0, 80) || 'UNKNOWN';
}

export function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}
