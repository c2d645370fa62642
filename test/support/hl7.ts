import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { Hl7Message } from '@medplum/core';
import { Hl7Client } from '@medplum/hl7';
import { luhnKey, nirKey } from '@gw/fhir';
import { INS_TEST } from './fixtures';

/**
 * PAM-FR 2.11 (IHE PAM national extension for France) ADT message builder for the tests, written
 * from DOMAIN.md §4 and docs/hl7v2.md. Segments are joined by CR; nothing here is a copy of a
 * real feed.
 */

export type AdtEvent =
  | 'A01'
  | 'A02'
  | 'A03'
  | 'A04'
  | 'A05'
  | 'A06'
  | 'A07'
  | 'A08'
  | 'A11'
  | 'A12'
  | 'A13'
  | 'A21'
  | 'A22'
  | 'A38'
  | 'A52'
  | 'A53'
  | 'Z99'
  | 'A28'
  | 'A31'
  | 'A40'
  | 'A47';

/** HL7 v2.5 message structure (MSH-9.3) of each trigger event. */
export const STRUCTURE: Record<AdtEvent, string> = {
  A01: 'ADT_A01',
  A04: 'ADT_A01',
  A08: 'ADT_A01',
  A13: 'ADT_A01',
  Z99: 'ADT_A01',
  A02: 'ADT_A02',
  A03: 'ADT_A03',
  A05: 'ADT_A05',
  A28: 'ADT_A05',
  A31: 'ADT_A05',
  A06: 'ADT_A06',
  A07: 'ADT_A06',
  A11: 'ADT_A09',
  A12: 'ADT_A12',
  A21: 'ADT_A21',
  A22: 'ADT_A21',
  A52: 'ADT_A52',
  A53: 'ADT_A52',
  A38: 'ADT_A38',
  A40: 'ADT_A39',
  A47: 'ADT_A30',
};

/** The trigger a cancel event undoes (ZBE-6 of a CANCEL). */
const CANCELLED_TRIGGER: Partial<Record<AdtEvent, string>> = {
  A11: 'A01',
  A12: 'A02',
  A13: 'A03',
  A38: 'A05',
  A52: 'A21',
  A53: 'A22',
};

/** ITI-30 (identity feed) events: no movement, PV1 only as `PV1|1|N`. */
const IDENTITY_EVENTS = new Set<AdtEvent>(['A28', 'A31', 'A40', 'A47']);

/** INS-NIR test OID (DOMAIN.md §3: test data uses 1.2.250.1.213.1.4.10). */
export const INS_TEST_OID = INS_TEST.replace(/^urn:oid:/, '');
export const INS_AUTHORITY = `ASIP-SANTE-INS-NIR&${INS_TEST_OID}&ISO`;
export const RPPS_SYSTEM = 'https://rpps.esante.gouv.fr';
export const IDNATPS_SYSTEM = 'urn:oid:1.2.250.1.71.4.2.1';
export const IDENTITY_RELIABILITY_URL = 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability';
export const BIRTH_PLACE_URL = 'http://hl7.org/fhir/StructureDefinition/patient-birthPlace';
export const INSEE_CODE_URL = 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code';
export const BIRTH_LIST_GIVEN_NAME_URL =
  'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-birth-list-given-name';

let sequence = 0;
const runTag = Date.now().toString(36).slice(-5).toUpperCase();

/** A message control id (MSH-10) unique within the test run. */
export function controlId(prefix = 'MSG'): string {
  sequence += 1;
  return `${prefix}${runTag}${String(sequence).padStart(5, '0')}`;
}

/** A short identifier unique within the test run (IPP, visit or movement numbers). */
export function uniqueId(prefix: string): string {
  sequence += 1;
  return `${prefix}${runTag}${sequence}`;
}

/**
 * A valid test INS-NIR (15 characters matching `^[12][0-9]{4}(2[AB]|[0-9]{2})[0-9]{8}$`) with a
 * correct key, e.g. `nir('2', '79', '03', '63', '220', '004')` (born March 1979 in Puy-de-Dôme).
 */
export function nir(sex: '1' | '2', yy: string, mm: string, dept: string, commune: string, order: string): string {
  const first13 = `${sex}${yy}${mm}${dept}${commune}${order}`;
  if (!/^[12][0-9]{4}(2[AB]|[0-9]{2})[0-9]{6}$/.test(first13)) {
    throw new Error(`bad NIR parts: ${first13}`);
  }
  return first13 + nirKey(first13);
}

/** An 11-digit RPPS number with a Luhn key. */
export function rpps(first10: string): string {
  return first10 + luhnKey(first10);
}

/** A 9-digit FINESS number with a Luhn key. */
export function finess(first8: string): string {
  return first8 + luhnKey(first8);
}

export interface PatientOptions {
  /** IPP (PID-3 with CX-5 `PI`). */
  ipp: string;
  /** CX-4 of the IPP: `CHU-X&<oid>&ISO` (default) or a bare namespace such as `CHU-X`. */
  ippAuthority?: string;
  /** INS-NIR (PID-3 with CX-5 `INS`, test OID). */
  ins?: string;
  /** Birth name (PID-5 type L, XPN-1). */
  birthName?: string;
  /** Birth given names, first one in XPN-2, the whole list (space separated) in XPN-3. */
  birthGivens?: string[];
  /** Used name (PID-5 type D). */
  usedName?: string;
  usedGiven?: string;
  /** PID-7, YYYYMMDD. */
  birthDate?: string;
  /** PID-8. */
  sex?: 'F' | 'M' | 'O' | 'U';
  /** PID-11 home address repetition (XAD type H). */
  address?: { line: string; city: string; zip: string; country?: string; insee?: string };
  /** INSEE code of the birth place (PID-11 repetition with XAD-7 `BDL`, code in XAD-9). */
  birthPlaceInsee?: string;
  /** PID-13 home phone (unformatted number in XTN-12). */
  phone?: string;
  /** PID-29 death date/time, PID-30 death indicator. */
  deathDate?: string;
  /** PID-32 identity reliability codes, e.g. ['VALI'] or ['PROV', 'FICT']. */
  identityStatus?: string[];
}

export interface VisitOptions {
  /** PV1-19 visit number; `null` leaves PV1-19 empty (a content error on ITI-31). */
  visitNumber: string | null;
  /** PV1-2 patient class (I, O, E, R, N). */
  patientClass?: string;
  /** PV1-36 discharge disposition. */
  dischargeDisposition?: string;
  /** PV1-37 discharged to location (FINESS). */
  dischargedTo?: string;
  /** PV1-44 admit date/time. */
  admitDate?: string;
  /** PV1-45 discharge date/time. */
  dischargeDate?: string;
}

export interface MovementOptions {
  /** ZBE-1 movement id. */
  id: string;
  /** ZBE-2 movement date/time. */
  date: string;
  /** ZBE-4. */
  action?: 'INSERT' | 'UPDATE' | 'CANCEL';
  /** ZBE-6 original trigger event (for UPDATE / CANCEL). */
  originalTrigger?: string;
  /** ZBE-7 medical UF: name and code. */
  uf?: { name: string; code: string };
}

export interface AdtOptions {
  controlId?: string;
  /** MSH-3 sending application (namespace id). */
  app?: string;
  /** MSH-4 sending facility (namespace id). */
  facility?: string;
  /** MSH-7 and EVN-2. */
  messageDate?: string;
  /** MSH-18; `null` leaves it empty. Default `UNICODE UTF-8`. */
  charset?: string | null;
  /** MSH-9 override (e.g. `ORU^R01^ORU_R01`). */
  messageType?: string;
  patient: PatientOptions;
  /** ROL ODRP (médecin traitant). */
  gp?: { rpps: string; family: string; given: string };
  /** PV1; defaults to `PV1|1|N` for identity events, required for movement events. */
  visit?: VisitOptions;
  /** ZBE (movement); omitted for identity events. */
  movement?: MovementOptions;
  /** ZFA DMP statuses: ZFA-9 feeding opposition, ZFA-11 consent to consult. */
  dmp?: { feeding: 'INO' | 'IO' | 'NA'; consult: 'IC' | 'INC' | 'NA'; date?: string };
  /** ZFM PMSI: ZFM-1 mode d'entrée, ZFM-2 mode de sortie. */
  pmsi?: { entryMode?: string; exitMode?: string };
  /** MRG-1 prior patient identifier (A40 / A47): its IPP, same authority as PID-3. */
  prior?: { ipp: string; ippAuthority?: string };
  /** Segments appended at the end, as written. */
  extraSegments?: string[];
}

export const DEFAULT_APP = 'GAM';
export const DEFAULT_FACILITY = 'CHU-X';
/** OID of the test hospital (used in CX-4 / XON assigning authorities). */
export const FACILITY_OID = '1.2.250.1.71.4.2.2.10000';
export const DEFAULT_IPP_AUTHORITY = `CHU-X&${FACILITY_OID}&ISO`;

/** Builds one segment from a sparse field map (1-based field numbers). */
export function segment(name: string, fields: Record<number, string | undefined>): string {
  const max = Math.max(
    0,
    ...Object.keys(fields)
      .map(Number)
      .filter((k) => fields[k] !== undefined),
  );
  const out: string[] = [name];
  for (let i = 1; i <= max; i++) {
    out.push(fields[i] ?? '');
  }
  return out.join('|');
}

/** HL7 DTM for a JavaScript date (local wall clock written as UTC digits, no offset). */
export function hl7Date(d: Date): string {
  return d.toISOString().replace(/[-:T]/g, '').slice(0, 14);
}

/** A PAM-FR 2.11 ADT message in ER7 (segments joined by CR). */
export function adt(event: AdtEvent, opts: AdtOptions): string {
  const app = opts.app ?? DEFAULT_APP;
  const facility = opts.facility ?? DEFAULT_FACILITY;
  const date = opts.messageDate ?? '20250312120000';
  const id = opts.controlId ?? controlId();
  const charset = opts.charset === undefined ? 'UNICODE UTF-8' : (opts.charset ?? '');
  const messageType = opts.messageType ?? `ADT^${event}^${STRUCTURE[event]}`;
  const msh = [
    'MSH',
    '^~\\&',
    app,
    facility,
    'GATEWAY',
    'GW-FR',
    date,
    '',
    messageType,
    id,
    'P',
    '2.5^FRA^2.11',
    '',
    '',
    '',
    '',
    'FRA',
    charset,
    'FR',
    '',
    '2.11^IHE_FRANCE-2.11-PAM',
  ].join('|');
  const segments = [msh, segment('EVN', { 1: '', 2: date, 6: opts.movement?.date ?? date })];
  segments.push(pid(opts.patient));
  if (opts.gp) {
    segments.push(
      `ROL||UC|ODRP|${opts.gp.rpps}^${opts.gp.family}^${opts.gp.given}^^^^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO^L^^^RPPS`,
    );
  }
  if (opts.prior) {
    segments.push(
      segment('MRG', {
        1: `${opts.prior.ipp}^^^${opts.prior.ippAuthority ?? opts.patient.ippAuthority ?? DEFAULT_IPP_AUTHORITY}^PI`,
      }),
    );
  }
  if (opts.visit) {
    segments.push(pv1(opts.visit, facility));
  } else if (IDENTITY_EVENTS.has(event) && event !== 'A47') {
    segments.push('PV1|1|N');
  }
  if (opts.movement) {
    const m = opts.movement;
    const action = m.action ?? 'INSERT';
    const uf = m.uf ?? { name: 'Cardio', code: '4012' };
    segments.push(
      segment('ZBE', {
        1: `${m.id}^${facility}^${FACILITY_OID}^ISO`,
        2: m.date,
        4: action,
        5: 'N',
        6: action === 'INSERT' ? '' : (m.originalTrigger ?? CANCELLED_TRIGGER[event] ?? event),
        7: `${uf.name}^^^^^${facility}^UF^^^${uf.code}`,
        9: 'HMS',
      }),
    );
  }
  if (opts.dmp) {
    const d = opts.dmp.date ?? date;
    segments.push(segment('ZFA', { 1: 'ACTIF', 2: d, 9: opts.dmp.feeding, 10: d, 11: opts.dmp.consult, 12: d }));
  }
  if (opts.pmsi) {
    segments.push(segment('ZFM', { 1: opts.pmsi.entryMode ?? '', 2: opts.pmsi.exitMode ?? '', 3: '', 4: '' }));
  }
  segments.push(...(opts.extraSegments ?? []));
  return segments.join('\r');
}

function pid(p: PatientOptions): string {
  const ids = [`${p.ipp}^^^${p.ippAuthority ?? DEFAULT_IPP_AUTHORITY}^PI`];
  if (p.ins) {
    ids.push(`${p.ins}^^^${INS_AUTHORITY}^INS`);
  }
  const givens = p.birthGivens ?? ['HÉLÈNE', 'MARIE'];
  const names = [`${p.birthName ?? 'BÉGAUDEAU'}^${givens[0]}^${givens.join(' ')}^^^^L`];
  if (p.usedName) {
    names.unshift(`${p.usedName}^${p.usedGiven ?? givens[0]}^^^^^D`);
  }
  const addresses: string[] = [];
  if (p.address) {
    addresses.push(
      `${p.address.line}^^${p.address.city}^^${p.address.zip}^${p.address.country ?? 'FRA'}^H^^${p.address.insee ?? ''}`,
    );
  }
  if (p.birthPlaceInsee) {
    addresses.push(`^^^^^^BDL^^${p.birthPlaceInsee}`);
  }
  return segment('PID', {
    1: '1',
    3: ids.join('~'),
    5: names.join('~'),
    7: p.birthDate ?? '19790328',
    8: p.sex ?? 'F',
    11: addresses.join('~') || undefined,
    13: p.phone ? `^PRN^PH^^^^^^^^^${p.phone}` : undefined,
    29: p.deathDate,
    30: p.deathDate ? 'Y' : undefined,
    32: p.identityStatus?.join('~'),
  });
}

function pv1(v: VisitOptions, facility: string): string {
  return segment('PV1', {
    1: '1',
    2: v.patientClass ?? 'I',
    3: `^^^${facility}&${FACILITY_OID}&M^O`,
    19: v.visitNumber === null ? '' : `${v.visitNumber}^^^${facility}&${FACILITY_OID}&ISO^VN`,
    36: v.dischargeDisposition,
    37: v.dischargedTo,
    44: v.admitDate,
    45: v.dischargeDate,
  });
}

/** The ER7 text as bytes in the given charset (latin1 = ISO-8859-1). */
export function encode(er7: string, charset: 'latin1' | 'utf8'): Buffer {
  return Buffer.from(er7, charset);
}

export const VT = 0x0b;
export const FS = 0x1c;
export const CR = 0x0d;

/** An MLLP frame: 0x0B, the message, 0x1C 0x0D. */
export function frame(buf: Buffer | string): Buffer {
  const body = typeof buf === 'string' ? Buffer.from(buf, 'utf8') : buf;
  return Buffer.concat([Buffer.from([VT]), body, Buffer.from([FS, CR])]);
}

export interface SendOptions {
  /** Client encoding (iconv name): `utf-8` (default) or `latin1`. */
  encoding?: string;
  timeoutMs?: number;
  /** Reuse an open client (left open); otherwise one is opened and closed. */
  client?: Hl7Client;
}

/** Sends one message over a real MLLP connection (medplum Hl7Client) and returns the ACK. */
export async function sendMllp(port: number, message: string, opts: SendOptions = {}): Promise<Hl7Message> {
  const client = opts.client ?? mllpClient(port, opts.encoding);
  // Own timeout: medplum's `timeoutMs` timer is not cleared when the ACK arrives and would keep
  // Jest alive after the run.
  let timer: NodeJS.Timeout | undefined;
  const timeoutMs = opts.timeoutMs ?? 15000;
  try {
    return await Promise.race([
      client.sendAndWait(Hl7Message.parse(message)),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no ACK within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    if (!opts.client) {
      await client.close();
    }
  }
}

export function mllpClient(port: number, encoding?: string): Hl7Client {
  return new Hl7Client({ host: '127.0.0.1', port, encoding, connectTimeout: 5000 });
}

/** MSA-1 of an ACK. */
export function ackCode(ack: Hl7Message): string | undefined {
  return ack.getSegment('MSA')?.getField(1)?.toString();
}

/** MSA-2 of an ACK. */
export function ackControlId(ack: Hl7Message): string | undefined {
  return ack.getSegment('MSA')?.getField(2)?.toString();
}

/** MSH-10 of an ER7 message. */
export function controlIdOf(er7: string): string {
  return Hl7Message.parse(er7).getSegment('MSH')?.getField(10)?.toString() ?? '';
}

/**
 * A raw TCP connection for fault tests: writes arbitrary bytes and collects the MLLP frames the
 * gateway sends back.
 */
export class RawMllp {
  readonly frames: Buffer[] = [];
  private pending = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  closed = false;
  readonly closedPromise: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.on('data', (data: Buffer) => {
      this.pending = Buffer.concat([this.pending, data]);
      for (;;) {
        const start = this.pending.indexOf(VT);
        if (start < 0) {
          this.pending = Buffer.alloc(0);
          break;
        }
        const end = this.pending.indexOf(Buffer.from([FS, CR]), start);
        if (end < 0) {
          break;
        }
        this.frames.push(this.pending.subarray(start + 1, end));
        this.pending = this.pending.subarray(end + 2);
      }
      this.wake();
    });
    socket.on('error', () => undefined);
    this.closedPromise = new Promise((resolve) => {
      socket.on('close', () => {
        this.closed = true;
        this.wake();
        resolve();
      });
    });
  }

  static open(port: number, host = '127.0.0.1'): Promise<RawMllp> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port });
      const raw = new RawMllp(socket);
      socket.once('connect', () => resolve(raw));
      socket.once('error', reject);
    });
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    waiters.forEach((w) => w());
  }

  /** Writes bytes as they are (no framing added). */
  write(bytes: Buffer | string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.write(bytes, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Writes one framed message (string encoded as given). */
  send(er7: string, charset: 'latin1' | 'utf8' = 'utf8'): Promise<void> {
    return this.write(frame(encode(er7, charset)));
  }

  /** Resolves once `count` frames were received in total, or the connection closed, or the time ran out. */
  async waitFrames(count: number, timeoutMs = 15000): Promise<Buffer[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.frames.length < count && !this.closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.frames.slice(0, count);
  }

  /** The next ACK (frame number `index`, 0-based) parsed, or undefined when none came. */
  async ack(
    index = this.frames.length,
    timeoutMs = 15000,
    charset: 'latin1' | 'utf8' = 'utf8',
  ): Promise<Hl7Message | undefined> {
    const frames = await this.waitFrames(index + 1, timeoutMs);
    const f = frames[index];
    return f ? Hl7Message.parse(f.toString(charset)) : undefined;
  }

  /** True when the peer closed the connection within the time given. */
  async waitClosed(timeoutMs: number): Promise<boolean> {
    if (this.closed) {
      return true;
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.closedPromise, new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
    return this.closed;
  }

  destroy(): void {
    this.socket.destroy();
  }

  close(): Promise<void> {
    if (this.closed) {
      return Promise.resolve();
    }
    this.socket.end();
    this.socket.destroy();
    return this.closedPromise;
  }
}

// ---------------------------------------------------------------------------------------------
// Gateway-side helpers (FHIR search and the admin API, with the admin token that sees all).

/** The subset of the test gateway the helpers need. */
export interface GatewayLike {
  baseUrl: string;
  fhirUrl: string;
  token(): Promise<string>;
}

export interface JsonResponse<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
}

/** An HTTP call with the admin token (unless `token` is given); JSON in and out. */
export async function call<T = unknown>(
  gw: GatewayLike,
  method: string,
  path: string,
  body?: unknown,
  token?: string,
): Promise<JsonResponse<T>> {
  const res = await fetch(path.startsWith('http') ? path : `${gw.baseUrl}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token ?? (await gw.token())}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, headers: res.headers, body: parsed as T };
}

/** FHIR search (admin token); the matching resources of the first page. */
export async function search<T = Record<string, unknown>>(
  gw: GatewayLike,
  type: string,
  params: Record<string, string>,
): Promise<T[]> {
  const res = await call<{ entry?: Array<{ resource: T; search?: { mode?: string } }> }>(
    gw,
    'GET',
    `${gw.fhirUrl}/${type}?${new URLSearchParams({ _count: '100', ...params })}`,
  );
  if (res.status !== 200) {
    throw new Error(`search ${type} ${JSON.stringify(params)}: ${res.status} ${JSON.stringify(res.body)}`);
  }
  return (res.body.entry ?? []).filter((e) => e.search?.mode !== 'include').map((e) => e.resource);
}

/** FHIR read (admin token). */
export async function read<T = Record<string, unknown>>(gw: GatewayLike, reference: string): Promise<T> {
  const res = await call<T>(gw, 'GET', `${gw.fhirUrl}/${reference}`);
  if (res.status !== 200) {
    throw new Error(`read ${reference}: ${res.status}`);
  }
  return res.body;
}

/** Creates an Organization (a hospital) through the FHIR API; returns its id. */
export async function createOrganization(gw: GatewayLike, name: string, finessNumber?: string): Promise<string> {
  const res = await call<{ id: string }>(gw, 'POST', `${gw.fhirUrl}/Organization`, {
    resourceType: 'Organization',
    name,
    ...(finessNumber ? { identifier: [{ system: 'https://finess.esante.gouv.fr', value: finessNumber }] } : {}),
  });
  if (res.status !== 201) {
    throw new Error(`create Organization: ${res.status} ${JSON.stringify(res.body)}`);
  }
  return res.body.id;
}

export interface SourceBody {
  sendingApplication: string;
  sendingFacility: string;
  organization: string;
  name?: string;
  charset?: string;
  ippSystem?: string;
  visitSystem?: string;
  unknownEvents?: 'reject' | 'ignore';
  active?: boolean;
  allowedAddresses?: string[];
  allowedCertificates?: string[];
  qualifiesIdentity?: boolean;
}

/** Registers an HL7 source (`POST /admin/hl7/sources`); returns its id, failing unless 201. */
export async function registerSource(gw: GatewayLike, body: SourceBody): Promise<string> {
  const res = await call<{ id?: string }>(gw, 'POST', '/admin/hl7/sources', body);
  if (res.status !== 201 || !res.body?.id) {
    throw new Error(`register source: ${res.status} ${JSON.stringify(res.body)}`);
  }
  return res.body.id;
}

/** A ledger row as listed by `GET /admin/hl7/messages`. */
export interface LedgerEntry {
  id: string;
  status: string;
  controlId?: string;
  event?: string;
  source?: string;
  ackCode?: string;
  [key: string]: unknown;
}

function listOf(body: unknown): Array<Record<string, unknown>> {
  if (Array.isArray(body)) {
    return body as Array<Record<string, unknown>>;
  }
  const b = (body ?? {}) as Record<string, unknown>;
  for (const key of ['messages', 'items', 'data', 'events', 'sources', 'results']) {
    if (Array.isArray(b[key])) {
      return b[key] as Array<Record<string, unknown>>;
    }
  }
  if (Array.isArray(b.entry)) {
    return (b.entry as Array<{ resource?: Record<string, unknown> }>).map(
      (e) => e.resource ?? (e as Record<string, unknown>),
    );
  }
  throw new Error(`not a list: ${JSON.stringify(body).slice(0, 300)}`);
}

function str(v: unknown): string | undefined {
  return v === undefined || v === null ? undefined : String(v);
}

/** Lists ledger entries (`GET /admin/hl7/messages?…`). */
export async function ledger(gw: GatewayLike, query: Record<string, string> = {}): Promise<LedgerEntry[]> {
  const res = await call(gw, 'GET', `/admin/hl7/messages?${new URLSearchParams({ _count: '100', ...query })}`);
  if (res.status !== 200) {
    throw new Error(`ledger: ${res.status} ${JSON.stringify(res.body)}`);
  }
  return listOf(res.body).map((r) => ({
    ...r,
    id: String(r.id),
    status: String(r.status),
    controlId: str(r.controlId ?? r.control_id),
    event: str(r.event),
    source: str(r.sourceId ?? r.source_id ?? r.source),
    ackCode: str(r.ackCode ?? r.ack_code),
  }));
}

/** A domain event as listed by `GET /admin/events`. */
export interface DomainEvent {
  id: string;
  type: string;
  resource: string;
  status: string;
  [key: string]: unknown;
}

/** `GET /admin/events?type=…` (all pages of it). */
export async function events(gw: GatewayLike, type: string): Promise<DomainEvent[]> {
  const res = await call(gw, 'GET', `/admin/events?${new URLSearchParams({ type })}`);
  if (res.status !== 200) {
    throw new Error(`events: ${res.status} ${JSON.stringify(res.body)}`);
  }
  return listOf(res.body).map((r) => ({
    ...r,
    id: String(r.id),
    type: String(r.type),
    resource: String(r.resource),
    status: String(r.status),
  }));
}

/** Every extension with this url anywhere in a resource. */
export function extensionsOf(
  node: unknown,
  url: string,
  out: Array<Record<string, unknown>> = [],
): Array<Record<string, unknown>> {
  if (Array.isArray(node)) {
    node.forEach((n) => extensionsOf(n, url, out));
  } else if (node && typeof node === 'object') {
    const o = node as Record<string, unknown>;
    if (o.url === url) {
      out.push(o);
    }
    Object.values(o).forEach((v) => extensionsOf(v, url, out));
  }
  return out;
}

/** Every primitive string/code found under a node (values of codings, strings…). */
export function stringsOf(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) {
    node.forEach((n) => stringsOf(n, out));
  } else if (node && typeof node === 'object') {
    Object.values(node as Record<string, unknown>).forEach((v) => stringsOf(v, out));
  } else if (typeof node === 'string') {
    out.push(node);
  }
  return out;
}
