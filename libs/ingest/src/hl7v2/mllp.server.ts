import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from '@gw/platform';

const VT = 0x0b;
const FS = 0x1c;
const CR = 0x0d;
/** Bytes of an oversized frame kept to read its MSH (for the AR's MSA-2). */
const HEAD_KEEP = 64 * 1024;
/** Frames waiting on one connection before it stops reading (a pipelining flood). */
const MAX_PENDING = 32;

export interface MllpOptions {
  host: string;
  port: number;
  maxMessageBytes: number;
  idleTimeoutMs: number;
  /**
   * TLS: with `caFile`, client certificates are requested and verified against it; with
   * `requireClientCert` (default true) a client without a valid one is refused at the handshake.
   */
  tls?: { certFile: string; keyFile: string; caFile?: string; requireClientCert?: boolean };
  /** Addresses or CIDR blocks; empty = everyone. */
  allowedIps?: string[];
  /** Connections open at once; a connection over it is closed at once (the others go on). */
  maxConnections?: number;
  logger: Logger;
}

/** What the handler gets: one complete frame (or the head of an oversized one). */
export interface MllpFrame {
  payload: Buffer;
  oversized: boolean;
  peer: string;
  /** The client certificate of a TLS connection, when presented and verified. */
  certificate?: { fingerprint256: string; subjectCN?: string };
}

export type MllpHandler = (frame: MllpFrame) => Promise<Buffer>;

/**
 * MLLP listener (HL7 v2 MLLP release 2 framing: VT message FS CR). @medplum/hl7's Hl7Server is not
 * used here: it listens on every interface, has no TLS, decodes with one fixed charset before the
 * sender is known (the ledger needs the raw bytes), merges pipelined frames and buffers without
 * limit. The client side of the tests and the benchmark is @medplum/hl7's Hl7Client.
 */
export class MllpServer {
  private server?: net.Server;
  private readonly connections = new Set<Connection>();
  private readonly blockList?: net.BlockList;

  constructor(
    private readonly handler: MllpHandler,
    private readonly opts: MllpOptions,
  ) {
    if (opts.allowedIps && opts.allowedIps.length > 0) {
      this.blockList = new net.BlockList();
      for (const entry of opts.allowedIps) {
        const [address, prefix] = entry.split('/');
        const family = net.isIPv6(address) ? 'ipv6' : 'ipv4';
        if (prefix) {
          this.blockList.addSubnet(address, Number(prefix), family);
        } else {
          this.blockList.addAddress(address, family);
        }
      }
    }
  }

  /** Starts listening; resolves with the port actually bound. */
  async listen(): Promise<number> {
    const onSocket = (socket: net.Socket): void => this.accept(socket);
    const t = this.opts.tls;
    this.server = t
      ? tls.createServer(
          {
            cert: readFileSync(t.certFile),
            key: readFileSync(t.keyFile),
            ...(t.caFile
              ? { ca: readFileSync(t.caFile), requestCert: true, rejectUnauthorized: t.requireClientCert ?? true }
              : {}),
          },
          onSocket,
        )
      : net.createServer(onSocket);
    if (this.opts.maxConnections) {
      // Counted on the TCP connection, before any TLS handshake; node closes the extra one at once.
      this.server.maxConnections = this.opts.maxConnections;
      this.server.on('drop', (data?: { remoteAddress?: string }) =>
        this.opts.logger.warn(
          { peer: normalizeAddress(data?.remoteAddress ?? ''), maxConnections: this.opts.maxConnections },
          'mllp connection refused: GW_MLLP_MAX_CONNECTIONS reached',
        ),
      );
    }
    this.server.on('tlsClientError', (err: Error) =>
      this.opts.logger.warn({ err: err.message }, 'mllp tls handshake failed'),
    );
    const server = this.server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.opts.logger.error({ err: err.message }, 'mllp listener error'));
    return (server.address() as net.AddressInfo).port;
  }

  /** Stops accepting, lets in-flight messages finish (up to `graceMs`), then closes connections. */
  async close(graceMs = 5000): Promise<void> {
    const server = this.server;
    if (!server) {
      return;
    }
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    const deadline = Date.now() + graceMs;
    await Promise.all([...this.connections].map((c) => c.drain(deadline)));
    await closed;
  }

  private accept(socket: net.Socket): void {
    const peer = normalizeAddress(socket.remoteAddress ?? '');
    if (this.blockList && !this.blockList.check(peer, net.isIPv6(peer) ? 'ipv6' : 'ipv4')) {
      this.opts.logger.warn({ peer }, 'mllp connection refused: address not allowed');
      socket.destroy();
      return;
    }
    const conn = new Connection(socket, peer, verifiedCertificate(socket), this.handler, this.opts);
    this.connections.add(conn);
    socket.on('close', () => this.connections.delete(conn));
  }
}

/** The client certificate of a TLS socket, only when it was verified against the CA. */
function verifiedCertificate(socket: net.Socket): MllpFrame['certificate'] {
  const t = socket as tls.TLSSocket;
  if (!t.encrypted || !t.authorized) {
    return undefined;
  }
  const cert = t.getPeerCertificate();
  const cn = cert.subject?.CN as string | string[] | undefined;
  return cert.fingerprint256
    ? { fingerprint256: cert.fingerprint256, subjectCN: Array.isArray(cn) ? cn[0] : cn }
    : undefined;
}

function normalizeAddress(a: string): string {
  return a.startsWith('::ffff:') && net.isIPv4(a.slice(7)) ? a.slice(7) : a;
}

/** One MLLP connection: frames in, ACKs out in the same order. */
class Connection {
  private inFrame = false;
  private parts: Buffer[] = [];
  private size = 0;
  private oversized = false;
  private pendingFs = false;
  private pending = 0;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly socket: net.Socket,
    private readonly peer: string,
    private readonly certificate: MllpFrame['certificate'],
    private readonly handler: MllpHandler,
    private readonly opts: MllpOptions,
  ) {
    socket.setNoDelay(true);
    socket.setTimeout(opts.idleTimeoutMs, () => {
      opts.logger.info({ peer }, 'mllp connection idle: closed');
      socket.destroy();
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    // A connection dropped mid-frame: the partial frame is simply discarded (nothing was written).
    socket.on('error', (err) => opts.logger.info({ peer, err: err.message }, 'mllp connection error'));
  }

  /** Waits for queued messages, then ends the connection. */
  async drain(deadline: number): Promise<void> {
    this.socket.pause();
    await Promise.race([this.chain, new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())))]);
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    let pos = 0;
    if (this.pendingFs) {
      this.pendingFs = false;
      if (chunk[0] === CR) {
        this.emit();
        pos = 1;
      } else {
        this.append(Buffer.from([FS]));
      }
    }
    while (pos < chunk.length) {
      if (!this.inFrame) {
        const start = chunk.indexOf(VT, pos);
        const outside = chunk.subarray(pos, start < 0 ? chunk.length : start);
        if (outside.some((b) => b !== CR && b !== 0x0a && b !== 0x20)) {
          this.opts.logger.warn(
            { peer: this.peer, bytes: outside.length },
            'mllp: data outside a frame, connection closed',
          );
          this.socket.destroy();
          return;
        }
        if (start < 0) {
          return;
        }
        this.startFrame();
        pos = start + 1;
        continue;
      }
      const end = chunk.indexOf(FS, pos);
      const restart = chunk.indexOf(VT, pos);
      if (restart >= 0 && (end < 0 || restart < end)) {
        // A new start block inside a frame: the previous frame was truncated; drop it.
        this.opts.logger.warn({ peer: this.peer }, 'mllp: truncated frame discarded');
        this.startFrame();
        pos = restart + 1;
        continue;
      }
      if (end < 0) {
        this.append(chunk.subarray(pos));
        return;
      }
      this.append(chunk.subarray(pos, end));
      if (end + 1 === chunk.length) {
        this.pendingFs = true;
        return;
      }
      if (chunk[end + 1] === CR) {
        this.emit();
        pos = end + 2;
      } else {
        this.append(chunk.subarray(end, end + 1));
        pos = end + 1;
      }
    }
  }

  private startFrame(): void {
    this.inFrame = true;
    this.parts = [];
    this.size = 0;
    this.oversized = false;
  }

  private append(b: Buffer): void {
    if (b.length === 0) {
      return;
    }
    this.size += b.length;
    if (this.size > this.opts.maxMessageBytes) {
      if (!this.oversized) {
        this.oversized = true;
        const head = Buffer.concat(this.parts);
        this.parts = [head.subarray(0, HEAD_KEEP)];
      }
      const kept = this.parts.reduce((n, p) => n + p.length, 0);
      if (kept < HEAD_KEEP) {
        this.parts.push(b.subarray(0, HEAD_KEEP - kept));
      }
      return;
    }
    this.parts.push(b);
  }

  private emit(): void {
    const frame: MllpFrame = {
      payload: Buffer.concat(this.parts),
      oversized: this.oversized,
      peer: this.peer,
      certificate: this.certificate,
    };
    this.inFrame = false;
    this.parts = [];
    this.size = 0;
    this.pending++;
    if (this.pending >= MAX_PENDING) {
      this.socket.pause();
    }
    this.chain = this.chain
      .then(async () => {
        const ack = await this.handler(frame);
        if (!this.socket.destroyed) {
          this.socket.write(Buffer.concat([Buffer.from([VT]), ack, Buffer.from([FS, CR])]));
        }
      })
      .catch((err: unknown) => {
        this.opts.logger.error(
          { peer: this.peer, err: (err as Error).message },
          'mllp handler failed; connection closed',
        );
        this.socket.destroy();
      })
      .finally(() => {
        this.pending--;
        if (this.pending < MAX_PENDING && this.socket.isPaused() && !this.socket.destroyed) {
          this.socket.resume();
        }
      });
  }
}
