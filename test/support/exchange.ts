import { createServer, request } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { simpleParser } from 'mailparser';
import type { ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import type { TestGateway } from './gateway';
import { ackCode, adt, call, controlId, nir, rpps, search, sendMllp } from './hl7';
import type { AdtEvent, AdtOptions } from './hl7';

export interface ReceivedMail {
  raw: Buffer;
  to: string[];
  parsed: ParsedMail;
}

/**
 * A real SMTP server (smtp-server) on loopback standing for the MSSanté relay: records what it
 * accepts, can answer 4xx/5xx, can go down and come back on the same port.
 */
export class TestSmtp {
  readonly mails: ReceivedMail[] = [];
  mode: 'accept' | 'tempfail' | 'permfail' = 'accept';
  /** true: a message's data is read but never answered (a relay stuck mid-DATA). */
  hold = false;
  /** Message-IDs of the messages received while holding (never accepted). */
  readonly held: string[] = [];
  port = 0;
  private server?: SMTPServer;

  async start(port = 0): Promise<void> {
    this.server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['AUTH', 'STARTTLS'],
      logger: false,
      // A relay going away drops its clients' connections: close() would otherwise wait 30 s for
      // the gateway's pooled connections to end by themselves.
      closeTimeout: 100,
      onRcptTo: (address, _session, cb) => {
        if (this.mode === 'permfail') {
          cb(Object.assign(new Error('5.1.1 mailbox unknown'), { responseCode: 550 }));
          return;
        }
        cb();
      },
      onData: (stream, session, cb) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          if (this.hold) {
            this.held.push(/^message-id:\s*(\S+)/im.exec(Buffer.concat(chunks).toString('latin1'))?.[1] ?? '');
            return;
          }
          if (this.mode === 'tempfail') {
            cb(Object.assign(new Error('4.3.0 try again later'), { responseCode: 451 }));
            return;
          }
          const raw = Buffer.concat(chunks);
          const to = session.envelope.rcptTo.map((r) => r.address);
          void simpleParser(raw).then((parsed) => {
            this.mails.push({ raw, to, parsed });
            cb();
          }, cb);
        });
      },
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    await new Promise<void>((resolve) => (s ? s.close(() => resolve()) : resolve()));
  }

  to(mailbox: string): ReceivedMail[] {
    return this.mails.filter((m) => m.to.includes(mailbox));
  }
}

/** An HTTP proxy in front of a FHIR server that can answer errors instead (fault injection). */
export class FaultProxy {
  /** Answers queued for the next requests, then forwarding. */
  readonly script: { status: number; body?: unknown }[] = [];
  requests = 0;
  private server?: Server;
  port = 0;

  constructor(private readonly target: string) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', () => resolve()));
    this.port = (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.requests += 1;
    const canned = req.url?.startsWith('/fhir') ? this.script.shift() : undefined;
    if (canned) {
      req.resume();
      res.writeHead(canned.status, { 'content-type': 'application/fhir+json' });
      res.end(
        JSON.stringify(
          canned.body ?? {
            resourceType: 'OperationOutcome',
            issue: [{ severity: 'error', code: 'transient', diagnostics: 'repository unavailable' }],
          },
        ),
      );
      return;
    }
    const target = new URL(req.url ?? '/', this.target);
    const out = request(target, { method: req.method, headers: { ...req.headers, host: target.host } }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    out.on('error', () => {
      res.writeHead(502);
      res.end();
    });
    req.pipe(out);
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

/** Polls until `fn` returns a truthy value (or throws the last error after `ms`). */
export async function eventually<T>(fn: () => Promise<T | undefined | false>, ms = 20_000, step = 100): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) {
        return v;
      }
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw last instanceof Error ? last : new Error('condition not met in time');
    }
    await new Promise((r) => setTimeout(r, step));
  }
}

const MAILBOX_EXT = 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-contact-point-email-type';

/** A telecom entry marked as an MSSanté mailbox (FR Core email type). */
export function mailbox(address: string): Record<string, unknown> {
  return { system: 'email', value: address, extension: [{ url: MAILBOX_EXT, valueCoding: { code: 'MSSANTE' } }] };
}

export interface Stay {
  ipp: string;
  visit: string;
  base: AdtOptions;
  send(
    event: AdtEvent,
    opts: Partial<AdtOptions> & { date: string; exitMode?: string; action?: 'INSERT' | 'CANCEL'; original?: string },
  ): Promise<void>;
}

/**
 * Hospital stays sent over MLLP by the test "hospital" (GAM / CHU-X): each stay is a new patient
 * with a qualified INS living in Paris 6e and a médecin traitant (ROL), numbered from `stamp`.
 */
export class Stays {
  seq = 0;

  constructor(
    private readonly gw: () => TestGateway,
    private readonly stamp: string,
  ) {}

  stay(patient: Partial<AdtOptions['patient']> = {}, extra: Partial<AdtOptions> = {}): Stay {
    this.seq += 1;
    const seq = this.seq;
    const ipp = `${this.stamp}P${seq}`;
    const visit = `${this.stamp}V${seq}`;
    const base: AdtOptions = {
      patient: {
        ipp,
        ins: nir('1', '55', '03', '75', '156', String(100 + seq).padStart(3, '0')),
        birthName: 'MARTIN',
        birthGivens: ['Jules'],
        birthDate: '19550301',
        sex: 'M',
        identityStatus: ['VALI', 'QUAL'],
        address: { line: '1 rue de la Paix', city: 'PARIS', zip: '75002', insee: '75156' },
        ...patient,
      },
      gp: { rpps: rpps(String(1000000000 + seq).slice(0, 10)), family: 'DURAND', given: 'Anne' },
      dmp: { feeding: 'INO', consult: 'IC' },
      ...extra,
    };
    const send: Stay['send'] = async (event, opts) => {
      const msg = adt(event, {
        ...base,
        ...opts,
        controlId: controlId(),
        visit: {
          visitNumber: visit,
          patientClass: 'I',
          admitDate: '20261120100000',
          ...(event === 'A03' ? { dischargeDate: opts.date } : {}),
        },
        movement: {
          id: `${visit}-${opts.original ?? event}-${opts.date}`,
          date: opts.date,
          action: opts.action,
          originalTrigger: opts.original,
          uf: { name: 'CARDIO', code: 'UF100' },
        },
        pmsi: opts.exitMode ? { exitMode: opts.exitMode } : undefined,
      });
      const ack = await sendMllp(this.gw().mllpPort, msg);
      if (ackCode(ack) !== 'AA') {
        throw new Error(`${event} not accepted: ${ack.toString()}`);
      }
    };
    return { ipp, visit, base, send };
  }

  async encounterOf(visit: string): Promise<{ id: string; subject: { reference: string } }> {
    return eventually(
      async () =>
        (
          await search<{ id: string; subject: { reference: string } }>(this.gw(), 'Encounter', { identifier: visit })
        )[0],
    );
  }

  /** Gives the MT of a stay a MSSanté mailbox (the directory feed's job); returns the address. */
  async mailboxForMt(mtRpps: string, tag: string): Promise<string> {
    const gw = this.gw();
    const [practitioner] = await search<{ id: string } & Record<string, unknown>>(gw, 'Practitioner', {
      identifier: `https://rpps.esante.gouv.fr|${mtRpps}`,
    });
    const mt = `mt.${tag}@medecin.mssante.fr`;
    await call(gw, 'PUT', `${gw.fhirUrl}/Practitioner/${practitioner!.id}`, {
      ...practitioner,
      telecom: [mailbox(mt)],
    });
    return mt;
  }

  /** The MT's mailbox plus a care team (nurse, coordinator) with their own mailboxes. */
  async teamFor(
    patientRef: string,
    mtRpps: string,
    tag: string,
  ): Promise<{ mt: string; nurse: string; coord: string }> {
    const gw = this.gw();
    const mt = await this.mailboxForMt(mtRpps, tag);
    const nurseRes = await call<{ id: string }>(gw, 'POST', `${gw.fhirUrl}/Practitioner`, {
      resourceType: 'Practitioner',
      name: [{ family: 'IDE', given: ['Léa'] }],
      telecom: [mailbox(`ide.${tag}@msp.mssante.fr`)],
    });
    const coordRes = await call<{ id: string }>(gw, 'POST', `${gw.fhirUrl}/Practitioner`, {
      resourceType: 'Practitioner',
      name: [{ family: 'COORD', given: ['Max'] }],
      telecom: [mailbox(`coord.${tag}@msp.mssante.fr`)],
    });
    const team = await call(gw, 'POST', `${gw.fhirUrl}/CareTeam`, {
      resourceType: 'CareTeam',
      status: 'active',
      subject: { reference: patientRef },
      participant: [
        { member: { reference: `Practitioner/${nurseRes.body.id}` }, role: [{ coding: [{ code: 'nurse' }] }] },
        { member: { reference: `Practitioner/${coordRes.body.id}` }, role: [{ coding: [{ code: 'coordinator' }] }] },
      ],
    });
    if (team.status !== 201) {
      throw new Error(`CareTeam not created: ${team.status}`);
    }
    return { mt, nurse: `ide.${tag}@msp.mssante.fr`, coord: `coord.${tag}@msp.mssante.fr` };
  }
}
