/**
 * Exchange engine benchmark (issue #4): discharges/s end-to-end, from the HL7 A03 sent over MLLP to
 * the MSSanté e-mail accepted by the SMTP relay, on each queue backend (PostgreSQL, Redis), with the
 * per-discharge latency percentiles (A03 sent → end of DATA accepted by the relay).
 *
 * Starts, on loopback only: a lean SMTP sink standing for the MSSanté relay (records arrival time
 * and recipient, parses nothing), the built gateway (dist/, embedded PostgreSQL in a temporary data
 * directory, queue workers in process) and, for the Redis backend, a redis-server without
 * persistence. For each size N:
 *   - preparation (not timed): N stays admitted (A01 over MLLP), each with its own médecin traitant
 *     (ROL, unique RPPS), whose Practitioner is then given a MSSanté mailbox (search by RPPS, PUT
 *     with a telecom of MSSANTE type): one discharge ↔ one e-mail ↔ one mailbox;
 *   - timed: the N A03 (ZFM-2 = 8, home) sent as fast as 8 closed-loop MLLP connections go, the
 *     time of each send recorded; the sink matches each e-mail to its stay by recipient.
 *
 *   npm run bench:exchange -- --discharges 500,2000 --backends postgres,redis [--concurrency 16]
 *
 * Writes test/bench/results/exchange-<date>.json and prints a summary table.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Hl7Message } from '@medplum/core';
import { Hl7Client } from '@medplum/hl7';
import { SMTPServer } from 'smtp-server';
import { freePort } from '../support/ports';
import { startRedis } from '../support/redis';
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
  ackCode,
  ackControlId,
  adt,
  call,
  createOrganization,
  finess,
  hl7Date,
  nir,
  registerSource,
  rpps,
  search,
} from '../support/hl7';
import type { AdtOptions, GatewayLike } from '../support/hl7';

const APP = 'GAM';
const FACILITY = 'CHU-BENCH';
const FROM = 'passerelle@bench.mssante.fr';
const MAILBOX_EXT = 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-contact-point-email-type';
/** A prefix unique to this run for the identifiers it makes (IPP, visit, movement, MSH-10, mailboxes). */
const RUN = Date.now().toString(36).slice(-4).toUpperCase();

type Backend = 'postgres' | 'redis';

// ---------------------------------------------------------------------------------------------
// Workload: one stay per discharge, each with its own médecin traitant and mailbox.

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
  'NGUYEN',
];
const GIVENS = ['HÉLÈNE', 'CLAIRE', 'LOUIS', 'JULES', 'LÉA', 'HUGO', 'INÈS', 'NOÉ', 'ZOÉ', 'FRANÇOIS'];
const CITIES = [
  { city: 'LYON', zip: '69003', insee: '69383' },
  { city: 'CLERMONT-FERRAND', zip: '63000', insee: '63113' },
  { city: 'MARSEILLE', zip: '13005', insee: '13205' },
  { city: 'RENNES', zip: '35000', insee: '35238' },
];
const pad = (v: number, n: number): string => String(v).padStart(n, '0');

interface Stay {
  n: number;
  rpps: string;
  mailbox: string;
  a01: string;
  a01Id: string;
  a03: string;
  a03Id: string;
}

function makeStay(n: number): Stay {
  const female = n % 2 === 0;
  const year = 1930 + (n % 80);
  const month = 1 + (n % 12);
  const city = CITIES[n % CITIES.length];
  const ipp = `${RUN}P${n}`;
  const visit = `${RUN}V${n}`;
  const gp = {
    rpps: rpps(String(1000100000 + n)),
    family: FAMILIES[(n * 7) % FAMILIES.length],
    given: GIVENS[(n * 3) % GIVENS.length],
  };
  const base: AdtOptions = {
    app: APP,
    facility: FACILITY,
    patient: {
      ipp,
      // Unique INS-NIR (valid key) for up to 10^6 stays.
      ins: nir(
        female ? '2' : '1',
        pad(year % 100, 2),
        pad(month, 2),
        city.insee.slice(0, 2),
        pad(Math.floor(n / 1000) % 1000, 3),
        pad(n % 1000, 3),
      ),
      birthName: FAMILIES[n % FAMILIES.length],
      birthGivens: [GIVENS[n % GIVENS.length]],
      birthDate: `${year}${pad(month, 2)}${pad(1 + (n % 28), 2)}`,
      sex: female ? 'F' : 'M',
      identityStatus: ['VALI', 'QUAL'],
      address: { line: `${1 + (n % 150)} rue de la République`, city: city.city, zip: city.zip, insee: city.insee },
    },
    gp,
    dmp: { feeding: 'INO', consult: 'IC' },
  };
  const admit = hl7Date(new Date(Date.now() - 3 * 86400_000));
  const discharge = hl7Date(new Date());
  const uf = { name: 'Cardiologie', code: '4012' };
  const a01Id = `${RUN}M${n}A`;
  const a03Id = `${RUN}M${n}D`;
  const a01 = adt('A01', {
    ...base,
    controlId: a01Id,
    messageDate: admit,
    visit: { visitNumber: visit, patientClass: 'I', admitDate: admit },
    movement: { id: `${RUN}Z${n}-1`, date: admit, uf },
    pmsi: { entryMode: '8' },
  });
  const a03 = adt('A03', {
    ...base,
    controlId: a03Id,
    messageDate: discharge,
    visit: { visitNumber: visit, patientClass: 'I', admitDate: admit, dischargeDate: discharge },
    movement: { id: `${RUN}Z${n}-3`, date: discharge, uf },
    pmsi: { entryMode: '8', exitMode: '8' },
  });
  return { n, rpps: gp.rpps, mailbox: `mt.${RUN.toLowerCase()}.${n}@medecin.bench.mssante.fr`, a01, a01Id, a03, a03Id };
}

// ---------------------------------------------------------------------------------------------
// The SMTP sink: accepts everything, records when each message was accepted and for whom.

class SmtpSink {
  /** mailbox → times (performance.now(), ms) at which a message for it was accepted. */
  readonly arrivals = new Map<string, number[]>();
  total = 0;
  port = 0;
  private server?: SMTPServer;

  async start(): Promise<void> {
    this.server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['AUTH', 'STARTTLS'],
      disableReverseLookup: true,
      logger: false,
      onData: (stream, session, cb) => {
        stream.on('end', () => {
          // End of DATA: the relay accepts here (250 sent when cb runs).
          const at = performance.now();
          this.total += 1;
          for (const r of session.envelope.rcptTo) {
            const box = r.address.toLowerCase();
            const list = this.arrivals.get(box);
            if (list) {
              list.push(at);
            } else {
              this.arrivals.set(box, [at]);
            }
          }
          cb();
        });
        stream.resume();
      },
    });
    this.server.on('error', () => undefined);
    await new Promise<void>((done, fail) => {
      this.server?.once('error', fail);
      this.server?.listen(0, '127.0.0.1', () => done());
    });
    this.port = (this.server.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    await new Promise<void>((done) => (s ? s.close(() => done()) : done()));
  }
}

// ---------------------------------------------------------------------------------------------
// MLLP.

/** One MLLP connection (medplum Hl7Client) whose pending message fails at once when the peer goes away. */
class Connection {
  readonly client: Hl7Client;
  private closed = false;
  private failPending?: (err: Error) => void;

  constructor(port: number) {
    this.client = new Hl7Client({ host: '127.0.0.1', port, connectTimeout: 5000 });
    this.client.addEventListener('close', () => {
      this.closed = true;
      this.failPending?.(new Error('connection closed by the gateway'));
    });
    this.client.addEventListener('error', () => undefined);
  }

  send(er7: string, timeoutMs = 30_000): Promise<Hl7Message> {
    if (this.closed) {
      return Promise.reject(new Error('connection closed by the gateway'));
    }
    return new Promise<Hl7Message>((done, fail) => {
      const settle = (f: () => void): void => {
        this.failPending = undefined;
        f();
      };
      this.failPending = (err) => settle(() => fail(err));
      this.client.sendAndWait(Hl7Message.parse(er7), { timeoutMs }).then(
        (ack) => settle(() => done(ack)),
        (err: unknown) => settle(() => fail(err)),
      );
    });
  }

  async close(): Promise<void> {
    await this.client.close().catch(() => undefined);
  }
}

/**
 * Sends `messages` over `connections` closed loops (next message when the previous ACK arrives);
 * every ACK must be AA for the same MSH-10. `onSend`/`onAck` get the index and performance.now().
 * With `onNoAck`, a message without ACK within `timeoutMs` is reported there and its connection
 * replaced (the loop goes on); otherwise it throws.
 */
async function sendAll(
  port: number,
  connections: number,
  messages: Array<{ er7: string; controlId: string }>,
  timeoutMs: number,
  onSend?: (i: number, at: number) => void,
  onAck?: (i: number, at: number) => void,
  onNoAck?: (i: number, error: string) => void,
): Promise<void> {
  let next = 0;
  const conns = Array.from({ length: Math.min(connections, messages.length) }, () => new Connection(port));
  try {
    await Promise.all(
      conns.map(async (_, k) => {
        while (next < messages.length) {
          const i = next++;
          const m = messages[i];
          onSend?.(i, performance.now());
          let ack: Hl7Message;
          try {
            ack = await conns[k].send(m.er7, timeoutMs);
          } catch (err) {
            if (!onNoAck) {
              throw err;
            }
            onNoAck(i, err instanceof Error ? err.message : String(err));
            await conns[k].close();
            conns[k] = new Connection(port);
            continue;
          }
          const at = performance.now();
          const code = ackCode(ack);
          if (code !== 'AA' || ackControlId(ack) !== m.controlId) {
            throw new Error(
              `${m.controlId}: ACK ${code} for ${ackControlId(ack)} ${ack.getSegment('ERR')?.toString() ?? ''}`,
            );
          }
          onAck?.(i, at);
        }
      }),
    );
  } finally {
    await Promise.all(conns.map((c) => c.close()));
  }
}

// ---------------------------------------------------------------------------------------------
// CPU shares (cores used) from /proc.

interface CpuShare {
  machineCores: number;
  gatewayCores: number;
  postgresCores: number;
  redisCores?: number;
  benchCores: number;
}

function cpuProbe(env: BenchEnv): () => CpuShare {
  const t0 = performance.now();
  const gwPid = env.gateway.proc.child.pid;
  const redisPid = env.redis?.pid;
  const ticks = (pid: number | undefined): number => (pid ? (procTicks(pid)?.ticks ?? 0) : 0);
  const gw0 = ticks(gwPid);
  const pg0 = postgresTicks(env.dataDir);
  const rd0 = ticks(redisPid);
  const m0 = machineBusyTicks();
  const self0 = process.cpuUsage();
  return () => {
    const s = (performance.now() - t0) / 1000;
    const self = process.cpuUsage(self0);
    return {
      machineCores: round((machineBusyTicks() - m0) / TICK / s),
      gatewayCores: round((ticks(gwPid) - gw0) / TICK / s),
      postgresCores: round((postgresTicks(env.dataDir) - pg0) / TICK / s),
      ...(redisPid ? { redisCores: round((ticks(redisPid) - rd0) / TICK / s) } : {}),
      benchCores: round((self.user + self.system) / 1e6 / s),
    };
  };
}

/** Waits until the gateway and its database are (nearly) idle: < 0.1 core over 500 ms, at most `maxMs`. */
async function quiesce(env: BenchEnv, maxMs = 30_000): Promise<void> {
  const deadline = Date.now() + maxMs;
  while (Date.now() < deadline) {
    const probe = cpuProbe(env);
    await sleep(500);
    const c = probe();
    if (c.gatewayCores + c.postgresCores + (c.redisCores ?? 0) < 0.1) {
      return;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Processes.

interface BenchEnv {
  backend: Backend;
  dataDir: string;
  httpPort: number;
  mllpPort: number;
  gateway: { proc: Proc };
  redis?: { url: string; pid?: number; stop: () => Promise<void> };
  api: GatewayLike;
}

/** Stops the gateway (SIGTERM, SIGKILL after 30 s), then the embedded postmaster if it is still up, then Redis. */
async function stopEnv(env: BenchEnv | undefined): Promise<void> {
  if (!env) {
    return;
  }
  const child = env.gateway.proc.child;
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await env.gateway.proc.exited;
    clearTimeout(timer);
  }
  await stopPostmaster(env.dataDir);
  await env.redis?.stop();
}

function gatewayApi(baseUrl: string, dataDir: string): GatewayLike {
  let token: { value: string; at: number } | undefined;
  return {
    baseUrl,
    fhirUrl: `${baseUrl}/fhir`,
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

interface Settings {
  concurrency: number;
  destinationConcurrency?: number;
  destinationRate?: number;
}

async function startEnv(backend: Backend, smtpPort: number, s: Settings): Promise<BenchEnv> {
  const dataDir = mkdtempSync(join(tmpdir(), `gw-bench-exchange-${backend}-`));
  // mkdtemp makes it 0700; as root, the embedded PostgreSQL runs as another user and must enter it.
  chmodSync(dataDir, 0o755);
  const [httpPort, mllpPort, pgPort] = [await freePort(), await freePort(), await freePort()];
  const redis = backend === 'redis' ? await startRedis() : undefined;
  const vars: Record<string, string> = {
    GW_DATA_DIR: dataDir,
    GW_HTTP_HOST: '127.0.0.1',
    GW_HTTP_PORT: String(httpPort),
    GW_MLLP_HOST: '127.0.0.1',
    GW_MLLP_PORT: String(mllpPort),
    GW_EMBEDDED_PG_PORT: String(pgPort),
    GW_LOG_LEVEL: 'warn',
    GW_MSS_SMTP_URL: `smtp://127.0.0.1:${smtpPort}`,
    GW_MSS_FROM: FROM,
    GW_MSS_SMTP_INSECURE: 'true',
    GW_EXCHANGE_CONCURRENCY: String(s.concurrency),
    ...(s.destinationConcurrency ? { GW_EXCHANGE_DESTINATION_CONCURRENCY: String(s.destinationConcurrency) } : {}),
    ...(s.destinationRate ? { GW_EXCHANGE_DESTINATION_RATE: String(s.destinationRate) } : {}),
    ...(redis ? { GW_REDIS_URL: redis.url } : {}),
  };
  const env: BenchEnv = {
    backend,
    dataDir,
    httpPort,
    mllpPort,
    gateway: { proc: run(GATEWAY_MAIN, vars) },
    redis,
    api: gatewayApi(`http://127.0.0.1:${httpPort}`, dataDir),
  };
  try {
    const deadline = Date.now() + 180_000;
    for (;;) {
      const child = env.gateway.proc.child;
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(
          `gateway exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${env.gateway.proc.out().slice(-2000)}`,
        );
      }
      const ready = await fetch(`http://127.0.0.1:${httpPort}/health/ready`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ready && (await tcpOpen(mllpPort)) && existsSync(join(dataDir, 'admin-client.json'))) {
        break;
      }
      if (Date.now() > deadline) {
        throw new Error(`gateway not ready after 180 s:\n${env.gateway.proc.out().slice(-2000)}`);
      }
      await sleep(100);
    }
  } catch (err) {
    await stopEnv(env);
    throw err;
  }
  return env;
}

// ---------------------------------------------------------------------------------------------
// Phases.

/** Admits the stays (A01 over MLLP, several connections) and gives each médecin traitant its mailbox. */
async function prepare(env: BenchEnv, stays: Stay[], connections: number, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  await sendAll(
    env.mllpPort,
    connections,
    stays.map((s) => ({ er7: s.a01, controlId: s.a01Id })),
    timeoutMs,
  );
  await pool(stays, 8, async (s) => {
    const [p] = await search<Record<string, unknown> & { id: string }>(env.api, 'Practitioner', {
      identifier: `https://rpps.esante.gouv.fr|${s.rpps}`,
    });
    if (!p) {
      throw new Error(`Practitioner RPPS ${s.rpps} not found after the A01`);
    }
    const res = await call(env.api, 'PUT', `${env.api.fhirUrl}/Practitioner/${p.id}`, {
      ...p,
      telecom: [
        { system: 'email', value: s.mailbox, extension: [{ url: MAILBOX_EXT, valueCoding: { code: 'MSSANTE' } }] },
      ],
    });
    if (res.status !== 200) {
      throw new Error(`PUT Practitioner/${p.id}: ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
    }
  });
  return round((performance.now() - t0) / 1000);
}

interface DischargeResult {
  backend: Backend;
  discharges: number;
  preparationSeconds: number;
  /** The A03 intake alone: ACKs received / (last ACK − first send). */
  intake: { seconds: number; perSecond: number; ackP50ms: number; ackP99ms: number };
  /** First A03 sent → last e-mail accepted. */
  endToEnd: { seconds: number; dischargesPerSecond: number };
  /** First e-mail → last e-mail accepted (the exchange engine's own pace while the intake runs). */
  exchangeOnly: { seconds: number; emailsPerSecond: number };
  /** A03 sent → e-mail accepted, per discharge. */
  latencyMs: { p50: number; p95: number; p99: number; max: number; min: number };
  /** A03 without ACK within --ack-timeout (the connection is then replaced; the e-mail may still come). */
  a03WithoutAck: number;
  noAckExamples: string[];
  delivered: number;
  missing: number;
  duplicates: number;
  otherMails: number;
  cpu: CpuShare;
  goal: { rateMet: boolean; p99Met: boolean };
}

/** Sends the A03 of every stay and waits for the e-mails; the timed phase. */
async function discharge(
  env: BenchEnv,
  sink: SmtpSink,
  stays: Stay[],
  connections: number,
  timeoutMs: number,
  drainMs: number,
  stallMs: number,
): Promise<DischargeResult> {
  const n = stays.length;
  const sentAt = new Float64Array(n);
  const ackMs = new Float64Array(n).fill(NaN);
  const noAck: string[] = [];
  const mailsBefore = sink.total;
  const probe = cpuProbe(env);
  const t0 = performance.now();
  await sendAll(
    env.mllpPort,
    connections,
    stays.map((s) => ({ er7: s.a03, controlId: s.a03Id })),
    timeoutMs,
    (i, at) => (sentAt[i] = at),
    (i, at) => (ackMs[i] = at - sentAt[i]),
    (i, error) => {
      noAck.push(`${stays[i].a03Id}: ${error}`);
      console.warn(`A03 ${stays[i].a03Id}: no ACK (${error})`);
    },
  );
  const lastAck = performance.now();
  const delivered = (): number => stays.reduce((k, s) => k + (sink.arrivals.has(s.mailbox) ? 1 : 0), 0);
  // Wait for every e-mail: bounded by --drain-seconds after the last ACK, and by a stall (no new e-mail).
  const deadline = lastAck + drainMs;
  let seen = sink.total;
  let progressAt = performance.now();
  let got = delivered();
  while (got < n && performance.now() < deadline) {
    await sleep(50);
    if (sink.total !== seen) {
      seen = sink.total;
      progressAt = performance.now();
      got = delivered();
    } else if (performance.now() - progressAt > stallMs) {
      console.warn(`no e-mail for ${stallMs / 1000} s with ${n - got} missing: giving up on them`);
      break;
    }
  }
  const cpu = probe();
  const latencies: number[] = [];
  let first = Infinity;
  let last = 0;
  let duplicates = 0;
  stays.forEach((s, i) => {
    const times = sink.arrivals.get(s.mailbox);
    if (!times) {
      return;
    }
    duplicates += times.length - 1;
    latencies.push(times[0] - sentAt[i]);
    first = Math.min(first, times[0]);
    last = Math.max(last, times[0]);
  });
  const lat = Float64Array.from(latencies).sort();
  const acks = ackMs.filter((v) => !Number.isNaN(v)).sort();
  const e2eSeconds = (last - t0) / 1000;
  const exchangeSeconds = (last - first) / 1000;
  const intakeSeconds = (lastAck - t0) / 1000;
  const result: DischargeResult = {
    backend: env.backend,
    discharges: n,
    preparationSeconds: 0,
    intake: {
      seconds: round(intakeSeconds),
      perSecond: Math.round(acks.length / intakeSeconds),
      ackP50ms: round(percentile(acks, 50)),
      ackP99ms: round(percentile(acks, 99)),
    },
    endToEnd: { seconds: round(e2eSeconds), dischargesPerSecond: lat.length ? Math.round(lat.length / e2eSeconds) : 0 },
    exchangeOnly: {
      seconds: round(exchangeSeconds),
      emailsPerSecond: lat.length > 1 ? Math.round((lat.length - 1) / exchangeSeconds) : 0,
    },
    latencyMs: {
      p50: Math.round(percentile(lat, 50)),
      p95: Math.round(percentile(lat, 95)),
      p99: Math.round(percentile(lat, 99)),
      max: Math.round(lat.length ? lat[lat.length - 1] : 0),
      min: Math.round(lat.length ? lat[0] : 0),
    },
    a03WithoutAck: noAck.length,
    noAckExamples: noAck.slice(0, 5),
    delivered: lat.length,
    missing: n - lat.length,
    duplicates,
    otherMails: sink.total - mailsBefore - lat.length - duplicates,
    cpu,
    goal: { rateMet: false, p99Met: false },
  };
  result.goal = {
    rateMet: result.missing === 0 && result.endToEnd.dischargesPerSecond >= 300,
    p99Met: result.missing === 0 && result.latencyMs.p99 <= 2000,
  };
  return result;
}

// ---------------------------------------------------------------------------------------------

const USAGE =
  'usage: --discharges 500,2000 --backends postgres,redis [--connections 8] [--prep-connections 4] [--concurrency 16] ' +
  '[--destination-concurrency N] [--destination-rate N] [--warmup 50] [--ack-timeout 30] [--drain-seconds 300] [--stall-seconds 60] [--keep-data]';

async function main(): Promise<boolean> {
  const { values } = parseArgs({
    options: {
      discharges: { type: 'string', default: '500,2000' },
      backends: { type: 'string', default: 'postgres,redis' },
      connections: { type: 'string', default: '8' },
      'prep-connections': { type: 'string', default: '4' },
      concurrency: { type: 'string', default: '16' },
      'destination-concurrency': { type: 'string' },
      'destination-rate': { type: 'string' },
      warmup: { type: 'string', default: '50' },
      'ack-timeout': { type: 'string', default: '30' },
      'drain-seconds': { type: 'string', default: '300' },
      'stall-seconds': { type: 'string', default: '60' },
      'keep-data': { type: 'boolean', default: false },
      mhd: { type: 'boolean', default: false },
    },
  });
  if (values.mhd) {
    throw new Error(
      '--mhd (ITI-65 publication in the timed path) is not implemented by this benchmark: it measures the MSSanté channel only',
    );
  }
  const sizes = values.discharges.split(',').map((s) => Number(s.trim()));
  const backends = values.backends.split(',').map((b) => b.trim()) as Backend[];
  const connections = Number(values.connections);
  const prepConnections = Number(values['prep-connections']);
  const warmup = Number(values.warmup);
  const ackTimeoutMs = Number(values['ack-timeout']) * 1000;
  const drainMs = Number(values['drain-seconds']) * 1000;
  const stallMs = Number(values['stall-seconds']) * 1000;
  const settings: Settings = {
    concurrency: Number(values.concurrency),
    ...(values['destination-concurrency'] ? { destinationConcurrency: Number(values['destination-concurrency']) } : {}),
    ...(values['destination-rate'] ? { destinationRate: Number(values['destination-rate']) } : {}),
  };
  const numbers = [
    ...sizes,
    ackTimeoutMs,
    connections,
    prepConnections,
    warmup,
    drainMs,
    stallMs,
    settings.concurrency,
    settings.destinationConcurrency ?? 1,
    settings.destinationRate ?? 1,
  ];
  if (
    !numbers.every((v) => Number.isInteger(v) && v >= 0) ||
    sizes.some((s) => s < 1 || s > 100_000) ||
    connections < 1 ||
    prepConnections < 1 ||
    settings.concurrency < 1 ||
    backends.length === 0 ||
    !backends.every((b) => b === 'postgres' || b === 'redis')
  ) {
    throw new Error(USAGE);
  }

  const results: Record<string, unknown> = {
    date: new Date().toISOString(),
    machine:
      '2 cores; gateway (queue workers in process), embedded PostgreSQL 18, Redis (redis backend), SMTP sink and load generator on the same machine, loopback',
    settings: {
      discharges: sizes,
      backends,
      connections,
      prepConnections,
      warmup,
      ackTimeoutSeconds: ackTimeoutMs / 1000,
      exchangeConcurrency: settings.concurrency,
      destinationConcurrency: settings.destinationConcurrency ?? 'gateway default (8)',
      destinationRate: settings.destinationRate ?? 'gateway default (200/s)',
      logLevel: 'warn',
      workload:
        'per discharge: A01 (prepared, not timed), then A03 ZFM-2 = 8 over MLLP; one médecin traitant with a MSSanté mailbox per stay, no care team, no MHD: one e-mail (XDM ZIP) per discharge',
      latency: 'A03 sent (MLLP write, bench clock) → end of DATA accepted by the SMTP sink (same process, same clock)',
    },
  };
  const runs: Array<DischargeResult & { warmup?: boolean }> = [];
  const sink = new SmtpSink();
  await sink.start();
  let env: BenchEnv | undefined;
  let ok = true;
  const onSignal = (): void => {
    void stopEnv(env).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let stayNo = 0;
  try {
    for (const backend of backends) {
      console.log(`\n=== ${backend} backend: starting the gateway…`);
      env = await startEnv(backend, sink.port, settings);
      const completed = { value: false };
      try {
        const org = await createOrganization(
          env.api,
          'CHU Bench',
          finess(String(69000000 + backends.indexOf(backend))),
        );
        await registerSource(env.api, {
          sendingApplication: APP,
          sendingFacility: FACILITY,
          organization: `Organization/${org}`,
          name: 'CHU Bench (benchmark)',
        });
        if (warmup > 0) {
          const stays = Array.from({ length: warmup }, () => makeStay(stayNo++));
          await prepare(env, stays, prepConnections, ackTimeoutMs);
          await quiesce(env);
          const w = await discharge(env, sink, stays, connections, ackTimeoutMs, drainMs, stallMs);
          console.log(`warm-up (${warmup}): ${w.delivered} e-mails, p50 ${w.latencyMs.p50} ms`);
          runs.push({ ...w, warmup: true });
        }
        for (const size of sizes) {
          const stays = Array.from({ length: size }, () => makeStay(stayNo++));
          console.log(`${backend}: preparing ${size} stays (A01 + mailbox)…`);
          const prep = await prepare(env, stays, prepConnections, ackTimeoutMs);
          await quiesce(env);
          console.log(`${backend}: prepared in ${prep} s; discharging ${size}…`);
          const r = await discharge(env, sink, stays, connections, ackTimeoutMs, drainMs, stallMs);
          r.preparationSeconds = prep;
          runs.push(r);
          console.log(JSON.stringify(r));
          if (r.missing > 0 || r.duplicates > 0 || r.a03WithoutAck > 0) {
            ok = false;
          }
          await quiesce(env);
        }
        completed.value = true;
      } catch (err) {
        console.error(`gateway output (last 3000 characters):\n${env.gateway.proc.out().slice(-3000)}`);
        throw err;
      } finally {
        const dataDir = env.dataDir;
        await stopEnv(env);
        env = undefined;
        if (values['keep-data'] || !completed.value) {
          console.log(`data directory kept: ${dataDir}`);
        } else {
          rmSync(dataDir, { recursive: true, force: true });
        }
      }
    }
  } finally {
    await stopEnv(env);
    await sink.stop();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
  results.runs = runs;
  results.ok = ok;
  const outDir = resolve(ROOT, 'test/bench/results');
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `exchange-${new Date().toISOString().slice(0, 10)}.json`);
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  printSummary(runs.filter((r) => !r.warmup));
  console.log(`results written to ${file}`);
  if (!ok) {
    console.error(
      'CHECK FAILED: an e-mail is missing or was sent twice, or an A03 got no ACK (see missing / duplicates / a03WithoutAck)',
    );
  }
  return ok;
}

function printSummary(runs: DischargeResult[]): void {
  const rows: string[][] = [
    [
      'backend',
      'N',
      'A03 intake /s',
      'end-to-end /s',
      'e-mails/s (exchange only)',
      'p50 ms',
      'p95 ms',
      'p99 ms',
      'max ms',
      'missing/dup',
      'cores gw/pg/redis/bench (machine)',
      'goal ≥300/s, p99 ≤2 s',
    ],
  ];
  for (const r of runs) {
    rows.push([
      r.backend,
      String(r.discharges),
      String(r.intake.perSecond),
      String(r.endToEnd.dischargesPerSecond),
      String(r.exchangeOnly.emailsPerSecond),
      String(r.latencyMs.p50),
      String(r.latencyMs.p95),
      String(r.latencyMs.p99),
      String(r.latencyMs.max),
      `${r.missing}/${r.duplicates}${r.a03WithoutAck ? ` (${r.a03WithoutAck} A03 no ACK)` : ''}`,
      `${r.cpu.gatewayCores}/${r.cpu.postgresCores}/${r.cpu.redisCores ?? '-'}/${r.cpu.benchCores} (${r.cpu.machineCores})`,
      `${r.goal.rateMet ? 'rate met' : 'rate missed'}, ${r.goal.p99Met ? 'p99 met' : 'p99 missed'}`,
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
