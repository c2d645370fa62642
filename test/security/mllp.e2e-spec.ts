import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { Hl7Message } from '@medplum/core';
import type { Patient } from '@medplum/fhirtypes';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import {
  FACILITY_OID,
  FS,
  RawMllp,
  VT,
  ackCode,
  adt,
  call,
  createOrganization,
  frame,
  registerSource,
  search,
  sendMllp,
  uniqueId,
} from '../support/hl7';

const IPP_SYSTEM = `urn:oid:${FACILITY_OID}`;

function a28(app: string, facility: string, ipp: string): string {
  return adt('A28', {
    app,
    facility,
    controlId: uniqueId('MSG'),
    patient: { ipp, birthName: 'GARDE', birthGivens: ['ALICE'], birthDate: '19800202', sex: 'F' },
  });
}

/** ERR-8 (user message) of an ACK. */
function errText(ack: Hl7Message | undefined): string | undefined {
  return ack?.getSegment('ERR')?.getField(8)?.toString();
}

describe('MLLP connection cap', () => {
  let gw: TestGateway;
  const sockets: RawMllp[] = [];

  beforeAll(async () => {
    gw = await startTestGateway({ GW_MLLP_MAX_CONNECTIONS: '3', GW_HL7_ACCEPT_UNKNOWN_SOURCES: 'true' });
  });
  afterAll(async () => {
    await Promise.all(sockets.map((s) => s.close()));
    await gw?.close();
  });

  it('closes a connection over GW_MLLP_MAX_CONNECTIONS at once; the open ones still get their ACKs', async () => {
    for (let i = 0; i < 3; i++) {
      sockets.push(await RawMllp.open(gw.mllpPort));
    }
    const extra = await RawMllp.open(gw.mllpPort);
    sockets.push(extra);
    expect(await extra.waitClosed(3000)).toBe(true);
    expect(gw.logs.join('')).toMatch(/mllp connection refused: GW_MLLP_MAX_CONNECTIONS reached/);
    for (const s of sockets.slice(0, 3)) {
      await s.send(a28('GAM', 'CHU-CAP', uniqueId('CAP')));
      expect(ackCode((await s.ack(0)) as Hl7Message)).toBe('AA');
    }
    // Once one closes, a new connection is served again.
    await sockets[0]!.close();
    await new Promise((r) => setTimeout(r, 100));
    expect(ackCode(await sendMllp(gw.mllpPort, a28('GAM', 'CHU-CAP', uniqueId('CAP'))))).toBe('AA');
  });
});

describe('MLLP per-source address allow-list', () => {
  let gw: TestGateway;
  let org: string;

  beforeAll(async () => {
    gw = await startTestGateway();
    org = await createOrganization(gw, 'CHU allow-list');
  });
  afterAll(async () => gw?.close());

  it('refuses (AR, ERR 207, nothing written) a registered source sending from an address not on its list', async () => {
    const id = await registerSource(gw, {
      sendingApplication: 'GAM',
      sendingFacility: 'CHU-AL',
      organization: `Organization/${org}`,
      allowedAddresses: ['10.20.30.0/24'],
    });
    const ipp = uniqueId('AL');
    const ack = await sendMllp(gw.mllpPort, a28('GAM', 'CHU-AL', ipp));
    expect(ackCode(ack)).toBe('AR');
    expect(ack.getSegment('ERR')?.getField(3)?.getComponent(1)).toBe('207');
    expect(errText(ack)).toMatch(/not allowed to send from this address/);
    expect(await search<Patient>(gw, 'Patient', { identifier: `${IPP_SYSTEM}|${ipp}` })).toHaveLength(0);

    const updated = await call(gw, 'PUT', `/admin/hl7/sources/${id}`, {
      organization: `Organization/${org}`,
      allowedAddresses: ['10.20.30.0/24', '127.0.0.1'],
    });
    expect(updated.status).toBe(200);
    expect(ackCode(await sendMllp(gw.mllpPort, a28('GAM', 'CHU-AL', ipp)))).toBe('AA');
  });

  it('refuses an allow-list entry that is not an address or a CIDR block', async () => {
    const res = await call(gw, 'POST', '/admin/hl7/sources', {
      sendingApplication: 'GAM',
      sendingFacility: 'CHU-BAD',
      organization: `Organization/${org}`,
      allowedAddresses: ['everyone'],
    });
    expect(res.status).toBe(400);
  });
});

describe('MLLP over TLS with client certificates', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-mllp-tls-'));
  let gw: TestGateway;
  let org: string;

  /** A throwaway CA and certificates, made with the openssl CLI in a temporary folder (never committed). */
  function openssl(...args: string[]): void {
    execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  }
  function issue(name: string, cn: string, ca: string, ext?: string): void {
    openssl(
      ...['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'],
      ...['-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`],
    );
    if (ext) {
      writeFileSync(join(dir, `${name}.ext`), ext);
    }
    openssl(
      ...['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial'],
      ...['-out', `${name}.crt`, '-days', '2', ...(ext ? ['-extfile', `${name}.ext`] : [])],
    );
  }
  function makeCa(name: string): void {
    openssl(
      ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'],
      ...['-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`],
    );
  }
  const file = (f: string): Buffer => readFileSync(join(dir, f));

  /** Sends one framed message over TLS; the ACK, or undefined when the connection failed or closed first. */
  function sendTls(port: number, message: string, client?: string): Promise<Hl7Message | undefined> {
    return new Promise((resolve) => {
      const socket = tls.connect({
        host: '127.0.0.1',
        port,
        ca: file('ca.crt'),
        servername: 'localhost',
        ...(client ? { cert: file(`${client}.crt`), key: file(`${client}.key`) } : {}),
      });
      let data = Buffer.alloc(0);
      const done = (ack?: Hl7Message): void => {
        socket.destroy();
        resolve(ack);
      };
      socket.setTimeout(10_000, () => done());
      socket.on('secureConnect', () => socket.write(frame(message)));
      socket.on('data', (d: Buffer) => {
        data = Buffer.concat([data, d]);
        const end = data.indexOf(Buffer.from([FS, 0x0d]));
        if (data[0] === VT && end > 0) {
          done(Hl7Message.parse(data.subarray(1, end).toString('utf8')));
        }
      });
      socket.on('error', () => done());
      socket.on('close', () => done());
    });
  }

  beforeAll(async () => {
    makeCa('ca');
    makeCa('rogue-ca');
    issue('server', 'localhost', 'ca', 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
    issue('gam', 'gam.chu-tls.example', 'ca');
    issue('other', 'other.example', 'ca');
    issue('rogue', 'gam.chu-tls.example', 'rogue-ca');
    gw = await startTestGateway({
      GW_MLLP_TLS_CERT: join(dir, 'server.crt'),
      GW_MLLP_TLS_KEY: join(dir, 'server.key'),
      GW_MLLP_TLS_CA: join(dir, 'ca.crt'),
    });
    org = await createOrganization(gw, 'CHU TLS');
  }, 60_000);
  afterAll(async () => {
    await gw?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('accepts a client certificate signed by GW_MLLP_TLS_CA; refuses none, or one from another CA', async () => {
    await registerSource(gw, {
      sendingApplication: 'GAM',
      sendingFacility: 'CHU-TLS',
      organization: `Organization/${org}`,
    });
    expect(ackCode((await sendTls(gw.mllpPort, a28('GAM', 'CHU-TLS', uniqueId('T')), 'gam'))!)).toBe('AA');
    expect(await sendTls(gw.mllpPort, a28('GAM', 'CHU-TLS', uniqueId('T')))).toBeUndefined();
    expect(await sendTls(gw.mllpPort, a28('GAM', 'CHU-TLS', uniqueId('T')), 'rogue')).toBeUndefined();
    expect(gw.logs.join('')).toMatch(/mllp tls handshake failed/);
  });

  it('binds a source to its certificate: another valid certificate of the same CA gets AR', async () => {
    const fingerprint = new X509Certificate(file('gam.crt')).fingerprint256;
    await registerSource(gw, {
      sendingApplication: 'GAM',
      sendingFacility: 'CHU-TLS-BOUND',
      organization: `Organization/${org}`,
      allowedCertificates: [fingerprint],
    });
    const ipp = uniqueId('B');
    const refused = await sendTls(gw.mllpPort, a28('GAM', 'CHU-TLS-BOUND', ipp), 'other');
    expect(ackCode(refused!)).toBe('AR');
    expect(errText(refused)).toMatch(/registered client certificate/);
    expect(await search<Patient>(gw, 'Patient', { identifier: `${IPP_SYSTEM}|${ipp}` })).toHaveLength(0);
    expect(ackCode((await sendTls(gw.mllpPort, a28('GAM', 'CHU-TLS-BOUND', ipp), 'gam'))!)).toBe('AA');

    await registerSource(gw, {
      sendingApplication: 'GAM',
      sendingFacility: 'CHU-TLS-CN',
      organization: `Organization/${org}`,
      allowedCertificates: ['CN=gam.chu-tls.example'],
    });
    expect(ackCode((await sendTls(gw.mllpPort, a28('GAM', 'CHU-TLS-CN', uniqueId('C')), 'other'))!)).toBe('AR');
    expect(ackCode((await sendTls(gw.mllpPort, a28('GAM', 'CHU-TLS-CN', uniqueId('C')), 'gam'))!)).toBe('AA');
  });

  it('with GW_MLLP_TLS_REQUIRE_CLIENT_CERT=false takes clients without a certificate, but not for a bound source', async () => {
    const open = await startTestGateway({
      GW_MLLP_TLS_CERT: join(dir, 'server.crt'),
      GW_MLLP_TLS_KEY: join(dir, 'server.key'),
      GW_MLLP_TLS_CA: join(dir, 'ca.crt'),
      GW_MLLP_TLS_REQUIRE_CLIENT_CERT: 'false',
    });
    try {
      const o = await createOrganization(open, 'CHU TLS optional');
      await registerSource(open, {
        sendingApplication: 'GAM',
        sendingFacility: 'FREE',
        organization: `Organization/${o}`,
      });
      await registerSource(open, {
        sendingApplication: 'GAM',
        sendingFacility: 'BOUND',
        organization: `Organization/${o}`,
        allowedCertificates: ['CN=gam.chu-tls.example'],
      });
      expect(ackCode((await sendTls(open.mllpPort, a28('GAM', 'FREE', uniqueId('F'))))!)).toBe('AA');
      expect(ackCode((await sendTls(open.mllpPort, a28('GAM', 'BOUND', uniqueId('F'))))!)).toBe('AR');
      // A certificate from another CA is not verified: it does not count as the bound one.
      expect(ackCode((await sendTls(open.mllpPort, a28('GAM', 'BOUND', uniqueId('F')), 'rogue'))!)).toBe('AR');
      expect(ackCode((await sendTls(open.mllpPort, a28('GAM', 'BOUND', uniqueId('F')), 'gam'))!)).toBe('AA');
    } finally {
      await open.close();
    }
  });
});
