import { createServer, request } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { simpleParser } from 'mailparser';
import type { ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';

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
  port = 0;
  private server?: SMTPServer;

  async start(port = 0): Promise<void> {
    this.server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['AUTH', 'STARTTLS'],
      logger: false,
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
      res.end(JSON.stringify(canned.body ?? { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'transient', diagnostics: 'repository unavailable' }] }));
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
