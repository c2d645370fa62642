/**
 * MLLP intake benchmark (issue #3): sustained HL7 v2 ADT (PAM-FR 2.11) messages/s over MLLP from 8
 * closed-loop connections (ACK round trip included), ACK latency percentiles, zero loss checked
 * through the API, then a SIGKILL of the gateway mid-run: every ACKed message must be in the store,
 * and resending the un-ACKed ones (same MSH-10) must create no duplicate. Starts its own gateway
 * (the built dist/, embedded PostgreSQL in a temporary data directory, loopback only).
 *
 *   npm run bench:mllp -- --messages 20000 [--sizes 0,20000,100000]
 *
 * Writes test/bench/results/mllp-<date>.json and prints a summary.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Hl7Message } from '@medplum/core';
import { Hl7Client } from '@medplum/hl7';
import type { Encounter, Patient } from '@medplum/fhirtypes';
import { freePort } from '../support/ports';
import {
  TICK,
  machineBusyTicks,
  percentile,
  pool,
  postgresTicks,
  procTicks,
  round,
  sleep,
  tcpOpen,
} from './bench-support';
import { GATEWAY_MAIN, ROOT, run, stopPostmaster } from '../support/process';
import type { Proc } from '../support/process';
import {
  FACILITY_OID,
  ackCode,
  ackControlId,
  adt,
  call,
  createOrganization,
  hl7Date,
  ledger,
  nir,
  registerSource,
  rpps,
  search,
} from '../support/hl7';
import type { AdtEvent, AdtOptions, GatewayLike, LedgerEntry, PatientOptions } from '../support/hl7';

const APP = 'GAM';
const FACILITY = 'CHU-BENCH';
/** IPP and visit numbers carry the default CX-4 of test/support/hl7.ts (`CHU-X&<oid>&ISO`): system urn:oid:<oid>. */
const IPP_SYSTEM = `urn:oid:${FACILITY_OID}`;
const VISIT_SYSTEM = `urn:oid:${FACILITY_OID}`;
/** A prefix unique to this run for every identifier it makes (IPP, visit, movement, MSH-10). */
const RUN = Date.now().toString(36).slice(-4).toUpperCase();

// ---------------------------------------------------------------------------------------------
// Workload: simulated hospital stays, each a short ordered sequence of ADT messages.

const FAMILIES = [
  'MARTIN',
  'BERNARD',
  'DUBOIS',
  'THOMAS',
  'ROBERT',
  'RICHARD',
  'PETIT',
  'DURAND',
  'LEROY',
  'MOREAU',
  'LEFÈVRE',
  'GIRARD',
  'FAURÉ',
  'BÉGAUDEAU',
  'NGUYEN',
  'MÜLLER',
];
const GIVEN_F = ['HÉLÈNE', 'CLAIRE', 'EMMA', 'LÉA', 'CHLOÉ', 'INÈS', 'MARIE', 'ANAÏS', 'ZOÉ', 'JEANNE'];
const GIVEN_M = ['LOUIS', 'JULES', 'HUGO', 'GABRIEL', 'RAPHAËL', 'NOÉ', 'ARTHUR', 'JÉRÔME', 'FRANÇOIS', 'PAUL'];
const USED_NAMES = ['DUPONT', 'LAMBERT', 'FONTAINE', 'CHEVALIER', 'ROUSSEAU'];
const CITIES: Array<{ city: string; zip: string; dept: string; commune: string }> = [
  { city: 'LYON', zip: '69003', dept: '69', commune: '123' },
  { city: 'CLERMONT-FERRAND', zip: '63000', dept: '63', commune: '113' },
  { city: 'MARSEILLE', zip: '13005', dept: '13', commune: '055' },
  { city: 'LILLE', zip: '59000', dept: '59', commune: '350' },
  { city: 'RENNES', zip: '35000', dept: '35', commune: '238' },
  { city: 'SAINT-ÉTIENNE', zip: '42000', dept: '42', commune: '218' },
];
const STREETS = [
  'rue de la République',
  'avenue Jean Jaurès',
  'boulevard Gambetta',
  'place de l’Église',
  'chemin des Écoliers',
  'rue Émile Zola',
];
const UFS = [
  { name: 'Cardiologie', code: '4012' },
  { name: 'Pneumologie', code: '4021' },
  { name: 'Médecine interne', code: '4030' },
  { name: 'Chirurgie viscérale', code: '4101' },
  { name: 'Gériatrie', code: '4210' },
  { name: 'Réanimation', code: '4300' },
];
const GP_COUNT = 200;
/** The médecins traitants: a pool of 200 RPPS (Luhn key), each always sent with the same name. */
const GPS = Array.from({ length: GP_COUNT }, (_, i) => ({
  rpps: rpps(String(1000100000 + i * 37)),
  family: FAMILIES[i % FAMILIES.length],
  given: (i % 2 === 0 ? GIVEN_F : GIVEN_M)[(i * 7) % 10],
}));
const MOVEMENT_EVENTS = new Set<AdtEvent>(['A01', 'A02', 'A03']);
/** Stays start 7 minutes apart from here (HL7 dates are written as UTC digits). */
const EPOCH = Date.UTC(2025, 0, 1, 8, 0, 0);

interface Step {
  event: AdtEvent;
  controlId: string;
  er7: string;
}

interface Stay {
  n: number;
  ipp: string;
  visit: string;
  gp: number;
  steps: Step[];
}

/** MSH-10 of step k of stay n. */
function controlIdOf(n: number, k: number): string {
  return `${RUN}M${n}E${k}`;
}

/** A small deterministic PRNG (mulberry32): stay n is the same in every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(r: () => number, list: T[]): T {
  return list[Math.floor(r() * list.length)];
}

const pad = (v: number, n: number): string => String(v).padStart(n, '0');

/**
 * Stay number n: A01 admission of a new patient (test INS-NIR with a valid key, IPP, médecin
 * traitant, ZBE, ZFA, ZFM), an A31 identity update for 30 % (new address, identity qualified),
 * an A02 transfer for 50 %, then the A03 discharge (ZFM-2 8 = home, 9 = death for 4 %).
 * Every message carries the whole PID as it is at that point (PAM-FR sends snapshots).
 */
function makeStay(n: number): Stay {
  const r = prng(n * 2654435761 + 17);
  const female = r() < 0.5;
  const year = 1930 + Math.floor(r() * 90);
  const month = 1 + Math.floor(r() * 12);
  const day = 1 + Math.floor(r() * 28);
  const born = CITIES[n % CITIES.length];
  // (dept, commune, order) from n: unique INS for up to 10^6 stays per birth place, valid key.
  const ins = nir(
    female ? '2' : '1',
    pad(year % 100, 2),
    pad(month, 2),
    born.dept,
    pad(Math.floor(n / 1000) % 1000, 3),
    pad(n % 1000, 3),
  );
  const home = pick(r, CITIES);
  const givens = female ? [pick(r, GIVEN_F), pick(r, GIVEN_F)] : [pick(r, GIVEN_M)];
  const patient: PatientOptions = {
    ipp: `${RUN}P${n}`,
    ins,
    birthName: pick(r, FAMILIES),
    birthGivens: givens,
    ...(female && r() < 0.4 ? { usedName: pick(r, USED_NAMES) } : {}),
    birthDate: `${year}${pad(month, 2)}${pad(day, 2)}`,
    sex: female ? 'F' : 'M',
    address: { line: `${1 + Math.floor(r() * 150)} ${pick(r, STREETS)}`, city: home.city, zip: home.zip },
    birthPlaceInsee: `${born.dept}${born.commune}`,
    phone: `0${4 + Math.floor(r() * 3)}${pad(Math.floor(r() * 1e8), 8)}`,
    identityStatus: [r() < 0.75 ? 'VALI' : 'PROV'],
  };
  const gp = Math.floor(r() * GP_COUNT);
  const visit = `${RUN}V${n}`;
  const admit = new Date(EPOCH + n * 7 * 60_000);
  const admitDate = hl7Date(admit);
  let uf = pick(r, UFS);
  const steps: Step[] = [];
  const base = (k: number, date: Date): Pick<AdtOptions, 'app' | 'facility' | 'controlId' | 'messageDate' | 'gp'> => ({
    app: APP,
    facility: FACILITY,
    controlId: controlIdOf(n, k),
    messageDate: hl7Date(date),
    gp: GPS[gp],
  });
  const push = (event: AdtEvent, opts: AdtOptions): void => {
    steps.push({ event, controlId: opts.controlId as string, er7: adt(event, opts) });
  };
  push('A01', {
    ...base(0, admit),
    patient: { ...patient },
    visit: { visitNumber: visit, patientClass: 'I', admitDate },
    movement: { id: `${RUN}Z${n}-1`, date: admitDate, uf },
    dmp: { feeding: r() < 0.9 ? 'INO' : 'IO', consult: r() < 0.8 ? 'IC' : 'INC' },
    pmsi: { entryMode: '8' },
  });
  let at = admit.getTime();
  if (r() < 0.3) {
    at += 2 * 3600_000;
    const moved = pick(r, CITIES);
    patient.address = { line: `${1 + Math.floor(r() * 150)} ${pick(r, STREETS)}`, city: moved.city, zip: moved.zip };
    patient.identityStatus = ['QUAL'];
    push('A31', { ...base(steps.length, new Date(at)), patient: { ...patient } });
  }
  if (r() < 0.5) {
    at += (1 + Math.floor(r() * 48)) * 3600_000;
    uf = pick(
      r,
      UFS.filter((u) => u !== uf),
    );
    const date = hl7Date(new Date(at));
    push('A02', {
      ...base(steps.length, new Date(at)),
      patient: { ...patient },
      visit: { visitNumber: visit, patientClass: 'I', admitDate },
      movement: { id: `${RUN}Z${n}-2`, date, uf },
    });
  }
  at += (6 + Math.floor(r() * 96)) * 3600_000;
  const dischargeDate = hl7Date(new Date(at));
  push('A03', {
    ...base(steps.length, new Date(at)),
    patient: { ...patient },
    visit: { visitNumber: visit, patientClass: 'I', admitDate, dischargeDate },
    movement: { id: `${RUN}Z${n}-3`, date: dischargeDate, uf },
    pmsi: { entryMode: '8', exitMode: r() < 0.04 ? '9' : '8' },
  });
  return { n, ipp: patient.ipp, visit, gp, steps };
}

/** What the gateway answered to each step of each stay sent so far (the whole run). */
class AckBook {
  /** stay number → bitmask of the steps answered AA. */
  readonly acked = new Map<number, number>();
  /** stay number → number of its steps sent (attempted). */
  readonly sent = new Map<number, number>();
  /** stay number → its steps' events (kept small: events only). */
  readonly events = new Map<number, AdtEvent[]>();
  /** stay number → its médecin traitant (index in GPS). */
  readonly gps = new Map<number, number>();

  record(stay: Stay, step: number, code: string | undefined): void {
    if (!this.events.has(stay.n)) {
      this.events.set(
        stay.n,
        stay.steps.map((s) => s.event),
      );
      this.gps.set(stay.n, stay.gp);
    }
    this.sent.set(stay.n, Math.max(this.sent.get(stay.n) ?? 0, step + 1));
    if (code === 'AA') {
      this.acked.set(stay.n, (this.acked.get(stay.n) ?? 0) | (1 << step));
    }
  }

  ackedSteps(n: number): number[] {
    const mask = this.acked.get(n) ?? 0;
    return (this.events.get(n) ?? []).map((_, k) => k).filter((k) => (mask & (1 << k)) !== 0);
  }

  /** What the store must hold: one Patient per stay with an AA, one Encounter per stay with an AA'd movement. */
  expected(): { messagesAcked: number; patients: number; encounters: number; practitioners: number } {
    let messagesAcked = 0;
    let patients = 0;
    let encounters = 0;
    const gps = new Set<number>();
    for (const [n, mask] of this.acked) {
      if (mask === 0) {
        continue;
      }
      const steps = this.ackedSteps(n);
      messagesAcked += steps.length;
      patients++;
      gps.add(this.gps.get(n) as number);
      const events = this.events.get(n) ?? [];
      if (steps.some((k) => MOVEMENT_EVENTS.has(events[k]))) {
        encounters++;
      }
    }
    return { messagesAcked, patients, encounters, practitioners: gps.size };
  }

  /** The encounter status the last AA'd movement of stay n implies. */
  expectedStatus(n: number): string | undefined {
    const events = this.events.get(n) ?? [];
    const last = this.ackedSteps(n)
      .filter((k) => MOVEMENT_EVENTS.has(events[k]))
      .pop();
    return last === undefined ? undefined : events[last] === 'A03' ? 'finished' : 'in-progress';
  }
}

// ---------------------------------------------------------------------------------------------
// MLLP connections and the closed loop.

/** One MLLP connection (medplum Hl7Client) whose pending message fails at once when the peer goes away. */
class Connection {
  readonly client: Hl7Client;
  closed = false;
  private failPending?: (err: Error) => void;

  constructor(port: number) {
    this.client = new Hl7Client({ host: '127.0.0.1', port, connectTimeout: 5000 });
    // Hl7Client does not reject a pending sendAndWait when the server drops the connection.
    this.client.addEventListener('close', () => {
      this.closed = true;
      this.failPending?.(new Error('connection closed by the gateway'));
    });
    this.client.addEventListener('error', () => undefined);
  }

  send(msg: Hl7Message, timeoutMs: number): Promise<Hl7Message> {
    if (this.closed) {
      return Promise.reject(new Error('connection closed by the gateway'));
    }
    return new Promise<Hl7Message>((done, fail) => {
      // Cleared synchronously on settle: a deferred clean-up would run after the caller's next send.
      const settle = (f: () => void): void => {
        this.failPending = undefined;
        f();
      };
      this.failPending = (err) => settle(() => fail(err));
      this.client.sendAndWait(msg, { timeoutMs }).then(
        (ack) => settle(() => done(ack)),
        (err: unknown) => settle(() => fail(err)),
      );
    });
  }

  async close(): Promise<void> {
    await this.client.close().catch(() => undefined);
  }
}

interface Outcome {
  stay: Stay;
  step: number;
  /** MSA-1, or undefined when no ACK came (connection lost, timeout). */
  code?: string;
  /** MSH-10 of the ACK (to recognise the original ACK when it is replayed). */
  ackId?: string;
  ms?: number;
  error?: string;
}

interface LoopOptions {
  port: number;
  connections: number;
  /** Messages to send (bounded), counted when sent. */
  budget: number;
  /** No new message after this many milliseconds. */
  maxMs: number;
  nextStay: () => Stay;
  timeoutMs: number;
  /** Stop a connection after its first failure to get an ACK (crash phase); otherwise throw. */
  tolerateLoss: boolean;
  onOutcome: (o: Outcome) => void;
}

interface LoopResult {
  sent: number;
  seconds: number;
  latencies: Float64Array;
  codes: Record<string, number>;
  /** Per connection: the stay it was in when it stopped, and the first step not ACKed. */
  interrupted: Array<{ stay: Stay; step: number }>;
  errors: string[];
}

/**
 * `connections` closed loops: each sends the next message of its current stay when the previous
 * ACK arrives, and takes a new stay when its stay is done, until `budget` messages were sent.
 */
async function closedLoop(o: LoopOptions): Promise<LoopResult> {
  let sent = 0;
  const latencies = new Float64Array(o.budget);
  let measured = 0;
  const codes: Record<string, number> = {};
  const interrupted: LoopResult['interrupted'] = [];
  const errors: string[] = [];
  const started = process.hrtime.bigint();
  const deadline = Date.now() + o.maxMs;
  const conns = Array.from({ length: o.connections }, () => new Connection(o.port));
  try {
    await Promise.all(
      conns.map(async (conn) => {
        while (sent < o.budget && Date.now() < deadline) {
          const stay = o.nextStay();
          for (let step = 0; step < stay.steps.length; step++) {
            if (sent >= o.budget || Date.now() >= deadline) {
              return;
            }
            sent++;
            const msg = Hl7Message.parse(stay.steps[step].er7);
            const t0 = process.hrtime.bigint();
            let ack: Hl7Message;
            try {
              ack = await conn.send(msg, o.timeoutMs);
            } catch (err) {
              const error = err instanceof Error ? err.message : String(err);
              codes.none = (codes.none ?? 0) + 1;
              o.onOutcome({ stay, step, error });
              if (o.tolerateLoss) {
                interrupted.push({ stay, step });
                return;
              }
              throw new Error(`${stay.steps[step].event} ${stay.steps[step].controlId}: no ACK (${error})`);
            }
            const ms = Number(process.hrtime.bigint() - t0) / 1e6;
            const code = ackCode(ack) ?? 'none';
            if (ackControlId(ack) !== stay.steps[step].controlId) {
              throw new Error(`ACK for ${stay.steps[step].controlId} carries MSA-2 ${ackControlId(ack)}`);
            }
            latencies[measured++] = ms;
            codes[code] = (codes[code] ?? 0) + 1;
            if (code !== 'AA' && errors.length < 10) {
              errors.push(
                `${stay.steps[step].event} ${stay.steps[step].controlId}: ${code} ${ack.getSegment('ERR')?.toString() ?? ''}`,
              );
            }
            o.onOutcome({ stay, step, code, ackId: ack.getSegment('MSH')?.getField(10)?.toString(), ms });
          }
        }
      }),
    );
  } finally {
    await Promise.all(conns.map((c) => c.close()));
  }
  if (sent < o.budget && !o.tolerateLoss) {
    console.warn(`stopped after ${sent} of ${o.budget} messages: --max-seconds reached`);
  }
  return {
    sent,
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
    latencies: latencies.slice(0, measured),
    codes,
    interrupted,
    errors,
  };
}

interface PhaseStats {
  messages: number;
  acked: number;
  seconds: number;
  perSecond: number;
  p50ms: number;
  p95ms: number;
  p99ms: number;
  maxms: number;
  nonAA: number;
  codes: Record<string, number>;
  cpu?: CpuShare;
}

function phaseStats(r: LoopResult, cpu?: CpuShare): PhaseStats {
  const s = r.latencies.slice().sort();
  const acked = r.codes.AA ?? 0;
  return {
    messages: r.sent,
    acked,
    seconds: round(r.seconds),
    perSecond: Math.round(r.latencies.length / r.seconds),
    p50ms: round(percentile(s, 50)),
    p95ms: round(percentile(s, 95)),
    p99ms: round(percentile(s, 99)),
    maxms: round(s.length ? s[s.length - 1] : 0),
    nonAA: r.sent - acked,
    codes: r.codes,
    ...(cpu ? { cpu } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// CPU shares (cores used) of the gateway, PostgreSQL and this load generator, from /proc.

interface CpuShare {
  machineCores: number;
  gatewayCores: number;
  postgresCores: number;
  loadGeneratorCores: number;
}

function cpuProbe(gatewayPid: number | undefined, dataDir: string): () => CpuShare {
  const t0 = Date.now();
  const gw0 = gatewayPid ? (procTicks(gatewayPid)?.ticks ?? 0) : 0;
  const pg0 = postgresTicks(dataDir);
  const m0 = machineBusyTicks();
  const self0 = process.cpuUsage();
  return () => {
    const s = (Date.now() - t0) / 1000;
    const self = process.cpuUsage(self0);
    return {
      machineCores: round((machineBusyTicks() - m0) / TICK / s),
      gatewayCores: round(((gatewayPid ? (procTicks(gatewayPid)?.ticks ?? gw0) : 0) - gw0) / TICK / s),
      postgresCores: round((postgresTicks(dataDir) - pg0) / TICK / s),
      loadGeneratorCores: round((self.user + self.system) / 1e6 / s),
    };
  };
}

// ---------------------------------------------------------------------------------------------
// The gateway process.

interface GatewayProcess {
  proc: Proc;
  env: Record<string, string>;
  httpPort: number;
  mllpPort: number;
  dataDir: string;
}

/** Waits until HTTP readiness answers 200 and the MLLP port accepts (GW_LOG_LEVEL=warn hides 'gateway ready'). */
async function waitReady(gw: GatewayProcess, timeoutMs: number, firstStart: boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (gw.proc.child.exitCode !== null || gw.proc.child.signalCode !== null) {
      throw new Error(
        `gateway exited (${gw.proc.child.exitCode ?? gw.proc.child.signalCode}) before it was ready:\n${gw.proc.out().slice(-2000)}`,
      );
    }
    const ready = await fetch(`http://127.0.0.1:${gw.httpPort}/health/ready`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ready && (await tcpOpen(gw.mllpPort)) && (!firstStart || existsSync(join(gw.dataDir, 'admin-client.json')))) {
      return;
    }
    if (Date.now() > deadline) {
      throw new Error(`gateway not ready after ${timeoutMs} ms:\n${gw.proc.out().slice(-2000)}`);
    }
    await sleep(100);
  }
}

function startGateway(env: Record<string, string>): Proc {
  return run(GATEWAY_MAIN, env);
}

/** Stops the gateway (SIGTERM, then SIGKILL after 30 s) and the embedded postmaster a SIGKILL may have left behind. */
async function stopAll(gw: GatewayProcess | undefined): Promise<void> {
  if (!gw) {
    return;
  }
  const child = gw.proc.child;
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await gw.proc.exited;
    clearTimeout(timer);
  }
  await stopPostmaster(gw.dataDir);
}

// ---------------------------------------------------------------------------------------------
// Checks through the gateway's API (admin client).

function gatewayApi(baseUrl: string, dataDir: string): GatewayLike & { reset(): void } {
  let token: { value: string; at: number } | undefined;
  return {
    baseUrl,
    fhirUrl: `${baseUrl}/fhir`,
    reset: () => (token = undefined),
    async token() {
      if (token && Date.now() - token.at < 60_000) {
        return token.value;
      }
      const creds = JSON.parse(readFileSync(join(dataDir, 'admin-client.json'), 'utf8')) as {
        client_id: string;
        client_secret: string;
      };
      const res = await fetch(`${baseUrl}/oauth2/token`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${creds.client_id}:${creds.client_secret}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: 'grant_type=client_credentials',
      });
      const body = (await res.json()) as { access_token?: string };
      if (!res.ok || !body.access_token) {
        throw new Error(`token: ${res.status} ${JSON.stringify(body)}`);
      }
      token = { value: body.access_token, at: Date.now() };
      return token.value;
    },
  };
}

async function countOf(api: GatewayLike, type: string): Promise<number> {
  const res = await call<{ total?: number }>(api, 'GET', `/fhir/${type}?_summary=count&_total=accurate`);
  if (res.status !== 200 || typeof res.body.total !== 'number') {
    throw new Error(`count ${type}: ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
  }
  return res.body.total;
}

/** The ledger rows of `source` newer than `afterId`, every page (bounded), newest first. */
async function ledgerSince(
  api: GatewayLike,
  source: string,
  afterId: number,
  status?: string,
  maxRows = 2_000_000,
): Promise<LedgerEntry[]> {
  const rows: LedgerEntry[] = [];
  let before: string | undefined;
  for (let page = 0; page < Math.ceil(maxRows / 1000) + 1; page++) {
    const batch = await ledger(api, {
      source,
      _count: '1000',
      ...(status ? { status } : {}),
      ...(before ? { before } : {}),
    });
    const fresh = batch.filter((r) => Number(r.id) > afterId);
    rows.push(...fresh);
    if (batch.length < 1000 || fresh.length < batch.length) {
      break;
    }
    before = batch[batch.length - 1].id;
  }
  return rows;
}

async function newestLedgerId(api: GatewayLike, source: string): Promise<number> {
  const rows = await ledger(api, { source, _count: '1' });
  return rows[0] ? Number(rows[0].id) : 0;
}

interface StayCheck {
  patientsMissing: number;
  patientDuplicates: number;
  encountersMissing: number;
  encounterDuplicates: number;
  wrongStatus: number;
  problems: string[];
}

/** Each stay's Patient (by IPP) and Encounter (by visit number) exist exactly once, in the status its AA'd messages imply. */
async function checkStays(
  api: GatewayLike,
  book: AckBook,
  stays: number[],
  finalStatus?: (n: number) => string | undefined,
): Promise<StayCheck> {
  const out: StayCheck = {
    patientsMissing: 0,
    patientDuplicates: 0,
    encountersMissing: 0,
    encounterDuplicates: 0,
    wrongStatus: 0,
    problems: [],
  };
  const note = (s: string): void => {
    if (out.problems.length < 20) {
      out.problems.push(s);
    }
  };
  await pool(stays, 4, async (n) => {
    const ipp = `${RUN}P${n}`;
    const visit = `${RUN}V${n}`;
    const patients = await search<Patient>(api, 'Patient', { identifier: `${IPP_SYSTEM}|${ipp}` });
    if (patients.length === 0) {
      out.patientsMissing++;
      note(`Patient IPP ${ipp} missing`);
    } else if (patients.length > 1) {
      out.patientDuplicates += patients.length - 1;
      note(`Patient IPP ${ipp}: ${patients.length} resources`);
    }
    const status = finalStatus ? finalStatus(n) : book.expectedStatus(n);
    if (status === undefined) {
      return;
    }
    const encounters = await search<Encounter>(api, 'Encounter', { identifier: `${VISIT_SYSTEM}|${visit}` });
    if (encounters.length === 0) {
      out.encountersMissing++;
      note(`Encounter visit ${visit} missing`);
      return;
    }
    if (encounters.length > 1) {
      out.encounterDuplicates += encounters.length - 1;
      note(`Encounter visit ${visit}: ${encounters.length} resources`);
    }
    // A message committed whose ACK was lost may have moved the stay further than what was ACKed:
    // only an ACKed discharge is required to show (finished); otherwise in-progress or finished.
    const got = encounters[0].status;
    if (status === 'finished' ? got !== 'finished' : got !== 'in-progress' && got !== 'finished') {
      out.wrongStatus++;
      note(`Encounter visit ${visit}: status ${got}, expected ${status}`);
    }
  });
  return out;
}

// ---------------------------------------------------------------------------------------------

/** Runs the benchmark; false when a zero-loss or crash check failed (figures are written all the same). */
async function main(): Promise<boolean> {
  const { values } = parseArgs({
    options: {
      messages: { type: 'string', default: '20000' },
      warmup: { type: 'string', default: '500' },
      connections: { type: 'string', default: '8' },
      sizes: { type: 'string' },
      'crash-after': { type: 'string', default: '3' },
      'max-seconds': { type: 'string', default: '900' },
      'keep-data': { type: 'boolean', default: false },
      'skip-crash': { type: 'boolean', default: false },
    },
  });
  const messages = Number(values.messages);
  const warmup = Number(values.warmup);
  const connections = Number(values.connections);
  const sizes = values.sizes
    ? values.sizes
        .split(',')
        .map((s) => Number(s.trim()))
        .sort((a, b) => a - b)
    : [];
  const crashAfterMs = Number(values['crash-after']) * 1000;
  const maxMs = Number(values['max-seconds']) * 1000;
  if (
    ![messages, warmup, connections, crashAfterMs, maxMs, ...sizes].every((v) => Number.isFinite(v) && v >= 0) ||
    connections < 1 ||
    messages < 1
  ) {
    throw new Error(
      'usage: --messages N [--warmup N] [--connections N] [--sizes 0,20000,100000] [--crash-after S] [--max-seconds S] [--keep-data] [--skip-crash]',
    );
  }

  const dataDir = mkdtempSync(join(tmpdir(), 'gw-bench-mllp-'));
  // mkdtemp makes it 0700; as root, the embedded PostgreSQL runs as another user and must enter it.
  chmodSync(dataDir, 0o755);
  const [httpPort, mllpPort, pgPort] = [await freePort(), await freePort(), await freePort()];
  const env = {
    GW_DATA_DIR: dataDir,
    GW_HTTP_HOST: '127.0.0.1',
    GW_HTTP_PORT: String(httpPort),
    GW_MLLP_HOST: '127.0.0.1',
    GW_MLLP_PORT: String(mllpPort),
    GW_EMBEDDED_PG_PORT: String(pgPort),
    GW_LOG_LEVEL: 'warn',
  };
  const results: Record<string, unknown> = {
    date: new Date().toISOString(),
    machine: '2 cores, embedded PostgreSQL 18 (gateway + database + load generator on the same machine)',
    settings: {
      messages,
      warmup,
      connections,
      sizes,
      crashAfterSeconds: crashAfterMs / 1000,
      logLevel: 'warn',
      transport: 'MLLP, one message in flight per connection (closed loop)',
    },
  };
  const book = new AckBook();
  let nextStay = 0;
  const takeStay = (): Stay => makeStay(nextStay++);
  const record = (o: Outcome): void => book.record(o.stay, o.step, o.code);

  let gw: GatewayProcess | undefined = { proc: startGateway(env), env, httpPort, mllpPort, dataDir };
  let completed = false;
  const api = gatewayApi(`http://127.0.0.1:${httpPort}`, dataDir);
  try {
    await waitReady(gw, 180_000, true);

    // The hospital and its source, registered as an operator would (auto-registration works too).
    const org = await createOrganization(api, 'CHU Bench', undefined);
    const sourceId = await registerSource(api, {
      sendingApplication: APP,
      sendingFacility: FACILITY,
      organization: `Organization/${org}`,
      name: 'CHU Bench (benchmark)',
    });
    const loop = (budget: number, tolerateLoss = false, timeoutMs = 30_000, ms = maxMs): Promise<LoopResult> =>
      closedLoop({
        port: mllpPort,
        connections,
        budget,
        maxMs: ms,
        nextStay: takeStay,
        timeoutMs,
        tolerateLoss,
        onOutcome: record,
      });

    // 1. Warm-up (JIT, caches, connection pools), then the sustained phase(s).
    if (warmup > 0) {
      const w = await loop(warmup);
      results.warmup = phaseStats(w);
      console.log('warm-up:', results.warmup);
    }
    const sustained: Array<{ storeMessagesBefore: number; fill?: PhaseStats } & PhaseStats> = [];
    for (const size of sizes.length > 0 ? sizes : [-1]) {
      let fill: PhaseStats | undefined;
      const stored = book.expected().messagesAcked;
      if (size > stored) {
        console.log(`filling the store to ${size} messages…`);
        fill = phaseStats(await loop(size - stored));
        console.log('fill:', fill);
      }
      const before = book.expected().messagesAcked;
      const probe = cpuProbe(gw.proc.child.pid, dataDir);
      const r = await loop(messages);
      const s = {
        storeMessagesBefore: before,
        ...(fill ? { fill } : {}),
        ...phaseStats(r, probe()),
        ...(r.errors.length > 0 ? { nonAAExamples: r.errors } : {}),
      };
      sustained.push(s);
      console.log(`sustained, ${connections} connections, store of ${before} messages:`, s);
    }
    results.sustained = sustained;

    // 2. Zero loss: every AA'd message processed in the ledger, the store holds what was ACKed.
    const expected = book.expected();
    const processed = new Set((await ledgerSince(api, sourceId, 0, 'processed')).map((r) => r.controlId));
    let notInLedger = 0;
    for (const [n] of book.acked) {
      for (const k of book.ackedSteps(n)) {
        if (!processed.has(controlIdOf(n, k))) {
          notInLedger++;
        }
      }
    }
    const counts = {
      patients: await countOf(api, 'Patient'),
      encounters: await countOf(api, 'Encounter'),
      practitioners: await countOf(api, 'Practitioner'),
    };
    const ackedStays = [...book.acked.keys()];
    const sample = ackedStays.filter((_, i) => i % Math.max(1, Math.floor(ackedStays.length / 200)) === 0);
    const sampleCheck = await checkStays(api, book, sample);
    results.zeroLoss = {
      messagesAcked: expected.messagesAcked,
      ledgerProcessed: processed.size,
      ackedNotInLedger: notInLedger,
      patients: { expected: expected.patients, found: counts.patients },
      encounters: { expected: expected.encounters, found: counts.encounters },
      practitioners: { expected: expected.practitioners, found: counts.practitioners },
      sampledStays: sample.length,
      sampleCheck,
      ok:
        notInLedger === 0 &&
        counts.patients === expected.patients &&
        counts.encounters === expected.encounters &&
        counts.practitioners === expected.practitioners &&
        sampleCheck.patientsMissing +
          sampleCheck.patientDuplicates +
          sampleCheck.encountersMissing +
          sampleCheck.encounterDuplicates +
          sampleCheck.wrongStatus ===
          0,
    };
    console.log('zero loss:', results.zeroLoss);

    if (!values['skip-crash']) {
      // 3. Crash: the same closed loop, SIGKILL of the gateway after --crash-after seconds.
      const crashMarker = await newestLedgerId(api, sourceId);
      const crashStaysFrom = nextStay;
      const crashOutcomes = new Map<string, Outcome>();
      const onCrashOutcome = (o: Outcome): void => {
        record(o);
        crashOutcomes.set(o.stay.steps[o.step].controlId, o);
      };
      const killedGw = gw;
      let killedAt = 0n;
      const killer = setTimeout(() => {
        killedAt = process.hrtime.bigint();
        killedGw.proc.child.kill('SIGKILL');
      }, crashAfterMs);
      const crash = await closedLoop({
        port: mllpPort,
        connections,
        budget: 1_000_000,
        maxMs: crashAfterMs + 60_000,
        nextStay: takeStay,
        timeoutMs: 20_000,
        tolerateLoss: true,
        onOutcome: onCrashOutcome,
      });
      clearTimeout(killer);
      await killedGw.proc.exited;
      const crashStays = Array.from({ length: nextStay - crashStaysFrom }, (_, i) => crashStaysFrom + i).filter((n) =>
        book.sent.has(n),
      );
      const ackedBeforeKill = [...crashOutcomes.values()].filter((o) => o.code === 'AA');
      const notAcked = [...crashOutcomes.values()].filter((o) => o.code !== 'AA');
      console.log(
        `crash: ${crash.sent} sent in ${round(crash.seconds)} s, ${ackedBeforeKill.length} AA, ${notAcked.length} without ACK; gateway SIGKILLed`,
      );

      // Restart on the same data directory (stops the orphaned postmaster, recovers the database).
      gw = { proc: startGateway(env), env, httpPort, mllpPort, dataDir };
      await waitReady(gw, 180_000, false);
      const recoverySeconds = round(Number(process.hrtime.bigint() - killedAt) / 1e9);
      api.reset();
      console.log(`gateway restarted and ready ${recoverySeconds} s after the kill`);

      // Every ACKed message is in the ledger (processed) and its resources in the store.
      const crashLedger = await ledgerSince(api, sourceId, crashMarker, 'processed');
      const crashProcessed = new Set(crashLedger.map((r) => r.controlId));
      const ackedMissingFromLedger = ackedBeforeKill
        .filter((o) => !crashProcessed.has(o.stay.steps[o.step].controlId))
        .map((o) => o.stay.steps[o.step].controlId);
      const committedUnacked = notAcked.filter((o) => crashProcessed.has(o.stay.steps[o.step].controlId)).length;
      const afterRestart = await checkStays(
        api,
        book,
        crashStays.filter((n) => book.acked.has(n)),
      );
      console.log('after restart, before resend:', {
        ackedMissingFromLedger: ackedMissingFromLedger.length,
        committedButNotAcked: committedUnacked,
        ...afterRestart,
      });

      // Resend: each interrupted stay from its un-ACKed message (same MSH-10) to its end, as a sender
      // resumes its queue; plus a few ACKed messages, which must come back with their original ACK.
      const resendMarker = await newestLedgerId(api, sourceId);
      const resent: Array<{ controlId: string; wasAcked: boolean; code?: string; sameAck?: boolean }> = [];
      const resumed: Outcome[] = [];
      await pool(crash.interrupted, connections, async ({ stay, step }) => {
        const conn = new Connection(mllpPort);
        try {
          for (let k = step; k < stay.steps.length; k++) {
            const ack = await conn.send(Hl7Message.parse(stay.steps[k].er7), 30_000);
            const code = ackCode(ack);
            book.record(stay, k, code);
            if (k === step) {
              resent.push({ controlId: stay.steps[k].controlId, wasAcked: false, code });
            } else {
              resumed.push({ stay, step: k, code });
            }
          }
        } finally {
          await conn.close();
        }
      });
      const ackedSample = ackedBeforeKill
        .filter((_, i) => i % Math.max(1, Math.floor(ackedBeforeKill.length / 10)) === 0)
        .slice(0, 10);
      const replayConn = new Connection(mllpPort);
      try {
        for (const o of ackedSample) {
          const ack = await replayConn.send(Hl7Message.parse(o.stay.steps[o.step].er7), 30_000);
          resent.push({
            controlId: o.stay.steps[o.step].controlId,
            wasAcked: true,
            code: ackCode(ack),
            sameAck: ack.getSegment('MSH')?.getField(10)?.toString() === o.ackId,
          });
        }
      } finally {
        await replayConn.close();
      }
      const resendLedger = new Map(
        (await ledgerSince(api, sourceId, resendMarker)).map((r) => [r.controlId, r.status]),
      );
      const unackedResent = resent.filter((r) => !r.wasAcked);
      const ackedResent = resent.filter((r) => r.wasAcked);

      // Final state of every stay of the crash phase: all were completed, so every one is discharged.
      const finalCheck = await checkStays(api, book, crashStays, (n) =>
        book.sent.get(n) === makeStay(n).steps.length ? 'finished' : book.expectedStatus(n),
      );
      const finalExpected = book.expected();
      const finalCounts = { patients: await countOf(api, 'Patient'), encounters: await countOf(api, 'Encounter') };
      const crashResult = {
        sent: crash.sent,
        secondsUntilKill: round(crashAfterMs / 1000),
        ackedBeforeKill: ackedBeforeKill.length,
        notAcked: notAcked.length,
        notAckedButCommitted: committedUnacked,
        recoverySeconds,
        ackedMissingFromLedger: ackedMissingFromLedger.length,
        afterRestart,
        unackedResent: unackedResent.length,
        unackedResentAnswers: countBy(
          unackedResent.map((r) => `${r.code ?? 'none'}/${resendLedger.get(r.controlId) ?? 'not in ledger'}`),
        ),
        restOfInterruptedStaysSent: resumed.length,
        restOfInterruptedStaysAA: resumed.filter((o) => o.code === 'AA').length,
        ackedResent: ackedResent.length,
        ackedResentSameAck: ackedResent.filter(
          (r) => r.code === 'AA' && r.sameAck && resendLedger.get(r.controlId) === 'duplicate',
        ).length,
        finalCheck,
        patients: { expected: finalExpected.patients, found: finalCounts.patients },
        encounters: { expected: finalExpected.encounters, found: finalCounts.encounters },
        duplicates:
          finalCheck.patientDuplicates +
          finalCheck.encounterDuplicates +
          afterRestart.patientDuplicates +
          afterRestart.encounterDuplicates,
        missing:
          ackedMissingFromLedger.length +
          afterRestart.patientsMissing +
          afterRestart.encountersMissing +
          finalCheck.patientsMissing +
          finalCheck.encountersMissing,
        ok: false,
      };
      crashResult.ok =
        crashResult.duplicates === 0 &&
        crashResult.missing === 0 &&
        afterRestart.wrongStatus === 0 &&
        finalCheck.wrongStatus === 0 &&
        crashResult.ackedResentSameAck === ackedResent.length &&
        unackedResent.every((r) => r.code === 'AA') &&
        finalCounts.patients === finalExpected.patients &&
        finalCounts.encounters === finalExpected.encounters;
      results.crash = crashResult;
      console.log('crash phase:', JSON.stringify(crashResult, null, 2));
    }
    printSummary(results);
    completed = true;
  } finally {
    await stopAll(gw);
    if (values['keep-data'] || !completed) {
      console.log(`data directory kept: ${dataDir}`);
    } else {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }
  const ok = (results.zeroLoss as { ok: boolean }).ok && (results.crash as { ok: boolean } | undefined)?.ok !== false;
  results.ok = ok;
  const outDir = resolve(ROOT, 'test/bench/results');
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `mllp-${new Date().toISOString().slice(0, 10)}.json`);
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`results written to ${file}`);
  if (!ok) {
    console.error('CHECK FAILED: an ACKed message is missing or duplicated (see zeroLoss / crash above)');
  }
  return ok;
}

function countBy(items: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  items.forEach((i) => (out[i] = (out[i] ?? 0) + 1));
  return out;
}

function printSummary(results: Record<string, unknown>): void {
  const sustained = results.sustained as Array<PhaseStats & { storeMessagesBefore: number }>;
  const zero = results.zeroLoss as { ok: boolean; messagesAcked: number; ackedNotInLedger: number };
  const crash = results.crash as (Record<string, unknown> & { ok: boolean }) | undefined;
  const rows: string[][] = [['measure', 'result', 'goal']];
  for (const s of sustained) {
    const met = s.perSecond >= 1000 && s.p99ms <= 50 ? 'met' : 'missed';
    rows.push([
      `sustained, store of ${s.storeMessagesBefore} msgs`,
      `${s.perSecond} msg/s, p50 ${s.p50ms} ms, p95 ${s.p95ms} ms, p99 ${s.p99ms} ms, max ${s.maxms} ms, non-AA ${s.nonAA}`,
      `≥ 1 000 /s, p99 ≤ 50 ms: ${met}`,
    ]);
    if (s.cpu) {
      rows.push([
        '  cores used',
        `machine ${s.cpu.machineCores}, gateway ${s.cpu.gatewayCores}, PostgreSQL ${s.cpu.postgresCores}, load generator ${s.cpu.loadGeneratorCores}`,
        '',
      ]);
    }
  }
  rows.push([
    'zero loss (ledger + counts)',
    `${zero.messagesAcked} AA, ${zero.ackedNotInLedger} not in ledger`,
    zero.ok ? 'ok' : 'FAILED',
  ]);
  if (!crash) {
    rows.push(['crash phase', 'skipped (--skip-crash)', '']);
  } else {
    rows.push([
      'crash: sent / AA before kill / no ACK',
      `${crash.sent} / ${crash.ackedBeforeKill} / ${crash.notAcked} (committed but not ACKed: ${crash.notAckedButCommitted})`,
      '',
    ]);
    rows.push(['crash: restart to ready', `${crash.recoverySeconds} s after the kill`, '']);
    rows.push(['crash: un-ACKed resent', `${crash.unackedResent} ${JSON.stringify(crash.unackedResentAnswers)}`, '']);
    rows.push(['crash: ACKed resent → original ACK', `${crash.ackedResentSameAck} / ${crash.ackedResent}`, '']);
    rows.push([
      'crash: duplicates / missing',
      `${crash.duplicates} / ${crash.missing}`,
      crash.ok ? '0 / 0: ok' : 'FAILED',
    ]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  console.log('');
  rows.forEach((r, i) => {
    console.log(r.map((cell, c) => cell.padEnd(widths[c])).join(' | '));
    if (i === 0) {
      console.log(widths.map((w) => '-'.repeat(w)).join('-|-'));
    }
  });
  console.log('');
}

main().then(
  (ok) => process.exit(ok ? 0 : 2),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
