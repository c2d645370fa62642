import type { Hl7Message, Hl7Segment } from '@medplum/core';
import { insProblem } from '@gw/fhir';
import { Hl7ContentError, comp, hl7Date, hl7DateTime, reps, value } from './hl7-text';
import type { ErrCode, Hl7Location, Rep } from './hl7-text';

/** ITI-31 (patient encounter management) and ITI-30 (identity) events of PAM-FR 2.11. */
export const ITI31_EVENTS = [
  'A01',
  'A02',
  'A03',
  'A04',
  'A05',
  'A06',
  'A07',
  'A11',
  'A12',
  'A13',
  'A21',
  'A22',
  'A38',
  'A52',
  'A53',
  'Z99',
] as const;
export const ITI30_EVENTS = ['A28', 'A31', 'A40', 'A47'] as const;
export type AdtEvent = (typeof ITI31_EVENTS)[number] | (typeof ITI30_EVENTS)[number];

/** What an INSERT movement does to the stay. */
export type MovementKind = 'preadmit' | 'admit' | 'transfer' | 'class' | 'leave' | 'return' | 'discharge';
export const MOVEMENT_KIND: Record<string, MovementKind> = {
  A05: 'preadmit',
  A01: 'admit',
  A04: 'admit',
  A02: 'transfer',
  A06: 'class',
  A07: 'class',
  A21: 'leave',
  A22: 'return',
  A03: 'discharge',
};
/** Cancel events and the trigger of the movement they cancel (PAM-FR: cancel only the current movement). */
export const CANCELS: Record<string, string> = {
  A11: 'A01',
  A12: 'A02',
  A13: 'A03',
  A38: 'A05',
  A52: 'A21',
  A53: 'A22',
};

export interface Header {
  sendingApplication: string;
  sendingFacility: string;
  receivingApplication: string;
  receivingFacility: string;
  controlId: string;
  processingId: string;
  messageCode: string;
  event: string;
  structure: string;
  version: string;
}

export interface Cx {
  value: string;
  namespace: string;
  oid?: string;
  type: string;
  rep: number;
}

export interface NameData {
  use: 'official' | 'usual';
  family: string;
  given: string;
  birthGivenList?: string;
}
export interface AddressData {
  use?: 'home' | 'work' | 'temp';
  line: string[];
  city?: string;
  postalCode?: string;
  country?: string;
  insee?: string;
}
export interface TelecomData {
  system: 'phone' | 'fax' | 'email';
  value: string;
  use?: 'home' | 'work' | 'mobile';
}

export interface PatientData {
  ipp?: Cx;
  ins?: { value: string; oid: string; kind: 'INS-NIR' | 'INS-NIA' };
  names: NameData[];
  birthDate?: string;
  gender?: 'male' | 'female' | 'other' | 'unknown';
  addresses: AddressData[];
  birthPlace?: { insee: string; city?: string; country?: string };
  telecoms: TelecomData[];
  identityStatus?: IdentityStatus;
  deceased?: boolean | string;
  /**
   * Set when PID-3 carried an INS that failed its checks: it is not used (`ins` is empty) and
   * `identityStatus` is PROV; `declaredStatus` is what PID-32 said (FICT/DOUT read as PROV).
   */
  insRejected?: { declaredStatus?: IdentityStatus };
}

export type IdentityStatus = 'PROV' | 'RECUP' | 'VALI' | 'QUAL';

/** A problem that does not stop the message: answered AA with an ERR of severity W. */
export interface ReadWarning {
  location: Hl7Location;
  code: ErrCode;
  text: string;
}

export interface DoctorData {
  rpps?: string;
  idNatPs: string;
  family?: string;
  given?: string;
  remove: boolean;
}

export interface UnitData {
  code: string;
  display?: string;
}

/** The data a movement contributes to the stay; kept as JSON with the movement. */
export interface MovementData {
  trigger: string;
  start?: string;
  class?: string;
  admit?: string;
  discharge?: string;
  ufMed?: UnitData;
  ufSoins?: UnitData;
  pv136?: string;
  modeEntree?: string;
  modeSortie?: string;
  destination?: string;
}

export interface MovementRef {
  id: string;
  action: 'INSERT' | 'UPDATE' | 'CANCEL';
  originalTrigger: string;
}

export interface AdtMessage {
  header: Header;
  event: AdtEvent;
  patient: PatientData;
  prior: Cx[];
  doctor?: DoctorData;
  visit?: Cx;
  movement?: MovementRef & { data: MovementData };
  consent: { dmpFeeding?: 'INO' | 'IO'; consult?: 'IC' | 'INC' };
  warnings: ReadWarning[];
}

/** Reads the MSH fields the gateway needs (also for ACKs of messages it cannot otherwise parse). */
export function readHeader(msg: Hl7Message): Header {
  const msh = msg.getSegment('MSH');
  return {
    sendingApplication: value(msh, 3),
    sendingFacility: value(msh, 4),
    receivingApplication: value(msh, 5),
    receivingFacility: value(msh, 6),
    controlId: value(msh, 10),
    processingId: value(msh, 11) || 'P',
    messageCode: value(msh, 9, 1),
    event: value(msh, 9, 2),
    structure: value(msh, 9, 3),
    version: value(msh, 12),
  };
}

/** Reads a PAM-FR ADT message into the gateway's model; content errors name the field. */
export function readAdt(msg: Hl7Message, header: Header): AdtMessage {
  const event = header.event as AdtEvent;
  const pid = msg.getSegment('PID');
  if (!pid) {
    throw new Hl7ContentError({ segment: 'PID' }, '100', 'PID segment missing');
  }
  const iti31 = (ITI31_EVENTS as readonly string[]).includes(event);
  const warnings: ReadWarning[] = [];
  const out: AdtMessage = {
    header,
    event,
    patient: readPatient(pid, warnings),
    prior: readCxList(msg.getSegment('MRG'), 1, 'MRG'),
    doctor: readDoctor(msg.getAllSegments('ROL')),
    consent: readConsent(msg.getSegment('ZFA')),
    warnings,
  };
  if ((event === 'A40' || event === 'A47') && out.prior.length === 0) {
    throw new Hl7ContentError(
      { segment: 'MRG', field: 1 },
      '101',
      `${event} requires the prior patient identifier in MRG-1`,
    );
  }
  if (iti31) {
    const pv1 = msg.getSegment('PV1');
    const visit = readCxList(pv1, 19, 'PV1')[0];
    if (!visit) {
      throw new Hl7ContentError(
        { segment: 'PV1', field: 19 },
        '101',
        'PV1-19 (visit number) is required on ITI-31 events',
      );
    }
    out.visit = visit;
    out.movement = readMovement(msg, event, pv1);
  }
  return out;
}

function readPatient(pid: Hl7Segment, warnings: ReadWarning[]): PatientData {
  const ids = readCxList(pid, 3, 'PID');
  const ipp = ids.find((c) => c.type === 'PI');
  if (!ipp) {
    throw new Hl7ContentError({ segment: 'PID', field: 3 }, '101', 'PID-3 has no IPP (an identifier with CX-5 = PI)');
  }
  const ins = readIns(ids);
  const p: PatientData = {
    ipp,
    ins: ins && 'value' in ins ? ins : undefined,
    names: readNames(pid),
    birthDate: hl7Date(value(pid, 7), { segment: 'PID', field: 7 }),
    gender: readGender(value(pid, 8)),
    addresses: [],
    telecoms: [...readTelecoms(reps(pid, 13)), ...readTelecoms(reps(pid, 14))],
    identityStatus: readIdentityStatus(reps(pid, 32).map((r) => comp(r, 1))),
  };
  reps(pid, 11).forEach((r) => readAddress(r, p));
  const deathDate = hl7DateTime(value(pid, 29), { segment: 'PID', field: 29 });
  p.deceased = deathDate ?? (value(pid, 30) === 'Y' ? true : value(pid, 30) === 'N' ? false : undefined);
  if (ins && 'warning' in ins) {
    // INS guide: an INS that fails its checks is not an INS (not stored, never qualified, never used
    // to find or merge a patient), but the stay is still recorded: the identity becomes provisional.
    warnings.push(ins.warning);
    p.insRejected = { declaredStatus: p.identityStatus };
    p.identityStatus = 'PROV';
  }
  if ((p.identityStatus === 'QUAL' || p.identityStatus === 'RECUP') && !p.ins) {
    throw new Hl7ContentError(
      { segment: 'PID', field: 3 },
      '101',
      `Identity status ${p.identityStatus} (PID-32) requires an INS in PID-3`,
    );
  }
  return p;
}

/** A list of CX (PID-3, MRG-1, PV1-19). */
function readCxList(seg: Hl7Segment | undefined, field: number, name: string): Cx[] {
  return reps(seg, field)
    .map((r, i) => ({ r, i }))
    .filter(({ r }) => comp(r, 1) !== '')
    .map(({ r, i }) => {
      const oidType = comp(r, 4, 3);
      const oid = comp(r, 4, 2);
      if (comp(r, 1).length > 64) {
        throw new Hl7ContentError(
          { segment: name, field, repetition: i + 1, component: 1 },
          '102',
          'Identifier longer than 64 characters',
        );
      }
      return {
        value: comp(r, 1),
        namespace: comp(r, 4, 1),
        oid: oid && /^ISO$/i.test(oidType) ? oid : undefined,
        type: comp(r, 5).toUpperCase(),
        rep: i + 1,
      };
    });
}

const INS_OIDS: Record<string, 'INS-NIR' | 'INS-NIA'> = {
  '1.2.250.1.213.1.4.8': 'INS-NIR',
  '1.2.250.1.213.1.4.9': 'INS-NIA',
  '1.2.250.1.213.1.4.10': 'INS-NIR',
  '1.2.250.1.213.1.4.11': 'INS-NIR',
};

/**
 * The INS of PID-3, or why it cannot be used. ERR-3 codes (HL7 table 0357): 103 "table value not
 * found" for an assigning authority that is not an INS OID (table 0363), 102 "data type error" for a
 * value whose format or check digits (the key is part of the identifier's format) are wrong.
 */
function readIns(ids: Cx[]): NonNullable<PatientData['ins']> | { warning: ReadWarning } | undefined {
  const cx = ids.find((c) => c.type === 'INS' || (c.oid && c.oid in INS_OIDS));
  if (!cx) {
    return undefined;
  }
  const kind = cx.oid ? INS_OIDS[cx.oid] : undefined;
  const at = (component: number): Hl7Location => ({ segment: 'PID', field: 3, repetition: cx.rep, component });
  const notUsed = 'the INS is not used and the identity is recorded as provisional (PROV)';
  if (!cx.oid || !kind) {
    return {
      warning: {
        location: at(4),
        code: '103',
        text: `INS assigning authority must be an INS OID (1.2.250.1.213.1.4.8, .9, .10 or .11), got "${cx.oid ?? cx.namespace}": ${notUsed}`,
      },
    };
  }
  const problem = insProblem(kind, cx.value);
  if (problem) {
    return { warning: { location: at(1), code: '102', text: `${problem.reason}: ${notUsed}` } };
  }
  return { value: cx.value, oid: cx.oid, kind };
}

function readNames(pid: Hl7Segment): NameData[] {
  const all = reps(pid, 5).map((r) => ({
    type: comp(r, 7).toUpperCase(),
    family: comp(r, 1, 1),
    given: comp(r, 2),
    further: comp(r, 3),
  }));
  const hasL = all.some((n) => n.type === 'L');
  const out: NameData[] = [];
  for (const n of all) {
    // PAM-FR: L = birth (legal) name, always sent; D = used name. An untyped name stands for L only if none is typed L.
    const use = n.type === 'L' || (!n.type && !hasL) ? 'official' : n.type === 'D' ? 'usual' : undefined;
    if (use && n.family) {
      out.push({
        use,
        family: n.family,
        given: n.given,
        ...(use === 'official' && n.further ? { birthGivenList: n.further } : {}),
      });
    }
  }
  return out;
}

function readGender(code: string): PatientData['gender'] {
  const map: Record<string, PatientData['gender']> = {
    M: 'male',
    F: 'female',
    O: 'other',
    A: 'other',
    U: 'unknown',
    N: 'unknown',
  };
  if (code && !map[code.toUpperCase()]) {
    throw new Hl7ContentError(
      { segment: 'PID', field: 8 },
      '103',
      `PID-8 "${code}" is not an administrative sex (F, M, O, U)`,
    );
  }
  return code ? map[code.toUpperCase()] : undefined;
}

function readAddress(r: Rep, p: PatientData): void {
  const type = comp(r, 7).toUpperCase();
  if (type === 'BDL') {
    // PAM-FR: the birth place is an address repetition typed BDL with the INSEE code in XAD-9.
    const insee = comp(r, 9);
    if (insee) {
      p.birthPlace = { insee, city: comp(r, 3) || undefined, country: comp(r, 6) || undefined };
    }
    return;
  }
  const line = [comp(r, 1, 1), comp(r, 2)].filter(Boolean);
  const a: AddressData = {
    line,
    city: comp(r, 3) || undefined,
    postalCode: comp(r, 5) || undefined,
    country: comp(r, 6) || undefined,
  };
  // XAD-9 (county/parish) carries the INSEE commune code in France: it routes to the CPTS.
  if (comp(r, 9)) {
    a.insee = comp(r, 9);
  }
  const use = ({ H: 'home', O: 'work', B: 'work', C: 'temp' } as const)[type as 'H'];
  if (use) {
    a.use = use;
  }
  if (line.length > 0 || a.city || a.postalCode) {
    p.addresses.push(a);
  }
}

function readTelecoms(list: Rep[]): TelecomData[] {
  const out: TelecomData[] = [];
  for (const r of list) {
    const useCode = comp(r, 2).toUpperCase();
    const equip = comp(r, 3).toUpperCase();
    if (useCode === 'NET' || equip === 'INTERNET' || equip === 'X.400') {
      const email = comp(r, 4);
      if (email) {
        out.push({ system: 'email', value: email });
      }
      continue;
    }
    const number = comp(r, 12) || comp(r, 1);
    if (!number) {
      continue;
    }
    const use =
      equip === 'CP'
        ? 'mobile'
        : useCode === 'WPN'
          ? 'work'
          : useCode === 'PRN' || useCode === 'ORN'
            ? 'home'
            : undefined;
    out.push({ system: equip === 'FX' ? 'fax' : 'phone', value: number, ...(use ? { use } : {}) });
  }
  return out;
}

/** PID-32: FICT or DOUT force PROV (FR Core identity reliability rules). */
function readIdentityStatus(codes: string[]): IdentityStatus | undefined {
  const set = new Set(codes.map((c) => c.toUpperCase()));
  if (set.has('FICT') || set.has('DOUT')) {
    return 'PROV';
  }
  return (['QUAL', 'VALI', 'RECUP', 'PROV'] as const).find((c) => set.has(c));
}

function readDoctor(rols: Hl7Segment[]): DoctorData | undefined {
  const rol = rols.find((s) => value(s, 3).toUpperCase() === 'ODRP');
  if (!rol) {
    return undefined;
  }
  const r = reps(rol, 4)[0];
  const id = comp(r, 1);
  const type = comp(r, 13).toUpperCase();
  const where = { segment: 'ROL', field: 4, component: 1 };
  let rpps: string | undefined;
  let idNatPs: string;
  if (/^\d{11}$/.test(id) && type !== 'ADELI') {
    rpps = id;
    idNatPs = `8${id}`;
  } else if (/^8\d{11}$/.test(id)) {
    rpps = id.slice(1);
    idNatPs = id;
  } else if (/^0?[0-9A-Z]{9}$/.test(id)) {
    idNatPs = id.length === 9 ? `0${id}` : id;
  } else {
    throw new Hl7ContentError(
      where,
      '102',
      'ROL-4 must carry an RPPS (11 digits), an IdNatPS (8 + RPPS) or an ADELI number',
    );
  }
  return {
    rpps,
    idNatPs,
    family: comp(r, 2) || undefined,
    given: comp(r, 3) || undefined,
    remove: value(rol, 2).toUpperCase() === 'DE',
  };
}

function readConsent(zfa: Hl7Segment | undefined): AdtMessage['consent'] {
  const feeding = value(zfa, 9).toUpperCase();
  const consult = value(zfa, 11).toUpperCase();
  return {
    dmpFeeding: feeding === 'IO' || feeding === 'INO' ? feeding : undefined,
    consult: consult === 'IC' || consult === 'INC' ? consult : undefined,
  };
}

const ACTIONS = ['INSERT', 'UPDATE', 'CANCEL'] as const;

function readMovement(msg: Hl7Message, event: AdtEvent, pv1: Hl7Segment | undefined): AdtMessage['movement'] {
  const zbe = msg.getSegment('ZBE');
  if (!zbe) {
    throw new Hl7ContentError({ segment: 'ZBE' }, '100', 'ZBE segment (movement) is required on ITI-31 events');
  }
  const id = [value(zbe, 1, 1), value(zbe, 1, 2)].filter(Boolean).join('^');
  if (!id) {
    throw new Hl7ContentError({ segment: 'ZBE', field: 1 }, '101', 'ZBE-1 (movement id) is required');
  }
  // Some feeds shift the action to ZBE-5 (seen in published samples); accept it when ZBE-4 is empty.
  const actionText = (
    value(zbe, 4) || (ACTIONS.includes(value(zbe, 5).toUpperCase() as 'INSERT') ? value(zbe, 5) : '')
  ).toUpperCase();
  const action = ACTIONS.find((a) => a === actionText);
  const expected = event === 'Z99' ? 'UPDATE' : event in CANCELS ? 'CANCEL' : 'INSERT';
  if (actionText && action !== expected) {
    throw new Hl7ContentError(
      { segment: 'ZBE', field: 4 },
      '103',
      `ZBE-4 is "${actionText}" but ${event} requires ${expected}`,
    );
  }
  const originalTrigger = (value(zbe, 6) || (event === 'Z99' ? '' : (CANCELS[event] ?? event))).toUpperCase();
  if (event === 'Z99' && !MOVEMENT_KIND[originalTrigger]) {
    throw new Hl7ContentError(
      { segment: 'ZBE', field: 6 },
      '101',
      'Z99 requires ZBE-6, the trigger of the movement it updates (A01, A02, A03…)',
    );
  }
  const zfm = msg.getSegment('ZFM');
  const start = hl7DateTime(value(zbe, 2), { segment: 'ZBE', field: 2 });
  const data: MovementData = {
    trigger: event === 'Z99' || event in CANCELS ? originalTrigger : event,
    start,
    class: value(pv1, 2).toUpperCase() || undefined,
    admit: hl7DateTime(value(pv1, 44), { segment: 'PV1', field: 44 }),
    discharge: hl7DateTime(value(pv1, 45), { segment: 'PV1', field: 45 }),
    ufMed: readUnit(reps(zbe, 7)[0]),
    ufSoins: readUnit(reps(zbe, 8)[0]),
    pv136: value(pv1, 36) || undefined,
    modeEntree: value(zfm, 1) || undefined,
    modeSortie: value(zfm, 2) || undefined,
    destination: value(pv1, 37) || undefined,
  };
  return { id, action: action ?? expected, originalTrigger: data.trigger, data: stripUndefined(data) };
}

/** ZBE-7/8 XON: name in XON-1, unit code in XON-10. */
function readUnit(r: Rep | undefined): UnitData | undefined {
  const code = comp(r, 10) || comp(r, 3);
  return code ? { code, ...(comp(r, 1) ? { display: comp(r, 1) } : {}) } : undefined;
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
