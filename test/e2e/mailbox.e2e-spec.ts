import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import JSZip from 'jszip';
import type { Bundle } from '@medplum/fhirtypes';
import { MailboxFeature } from '@gw/ingest';
import { startTestGateway } from '@gw/testing/gateway';
import type { TestGateway } from '@gw/testing/gateway';
import { TestDovecot, composeMail } from '@gw/testing/dovecot';
import { TestSmtp, eventually } from '@gw/testing/exchange';

/** The ANS CI-SIS samples, read in place next to the repository (see their SOURCES.md). */
const SAMPLES = join(__dirname, '../../../shared/samples/ans-cda');
const BOX = { user: 'secretariat@msp-e2e.mssante.fr', password: 'imap-e2e-secret' };
const SENDER = 'dr.leroy@medecin.mssante.fr';
const GATEWAY_MAILBOX = 'passerelle@gw.mssante.fr';
const NAME = 'msp-inbox';

/** An IHE XDM package (ITI TF-1 §16) carrying one ANS sample, as an MSSanté client attaches it. */
async function xdmOf(sample: string): Promise<Buffer> {
  const zip = new JSZip();
  zip.file('INDEX.HTM', '<html><body>IHE XDM</body></html>');
  zip.file('README.TXT', 'IHE XDM package');
  zip.file(
    'IHE_XDM/SUBSET01/METADATA.XML',
    '<lcm:SubmitObjectsRequest xmlns:lcm="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"/>',
  );
  zip.file('IHE_XDM/SUBSET01/DOC0001.XML', readFileSync(join(SAMPLES, sample)));
  return zip.generateAsync({ type: 'nodebuffer' });
}

async function mail(attachment: Buffer) {
  const messageId = `<${randomBytes(6).toString('hex')}@medecin.mssante.fr>`;
  const raw = await composeMail({
    from: SENDER,
    to: BOX.user,
    messageId,
    mdnTo: SENDER,
    subject: 'XDM/1.0/DDM+Historique de vaccinations',
    attachments: [{ filename: 'IHE_XDM.ZIP', content: attachment, contentType: 'application/zip' }],
  });
  return { raw, messageId };
}

describe('inbound MSSanté mailbox on a running gateway (dovecot, SMTP relay, ANS sample)', () => {
  let dovecot: TestDovecot;
  let smtp: TestSmtp;
  let gw: TestGateway;
  const org = `msp-mbox-${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    dovecot = await TestDovecot.start([BOX]);
    smtp = new TestSmtp();
    await smtp.start();
    gw = await startTestGateway({
      GW_MSS_INBOXES: JSON.stringify([
        {
          name: NAME,
          url: dovecot.url,
          user: BOX.user,
          password: BOX.password,
          organization: `Organization/${org}`,
          pollSeconds: 1,
          insecure: true,
        },
      ]),
      GW_MSS_SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
      GW_MSS_FROM: GATEWAY_MAILBOX,
      GW_MSS_SMTP_INSECURE: 'true',
    });
  });

  afterAll(async () => {
    await gw?.close();
    await smtp?.stop();
    await dovecot?.stop();
  });

  async function search(token: string, query: string): Promise<Bundle> {
    const res = await fetch(`${gw.fhirUrl}/${query}`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    return (await res.json()) as Bundle;
  }

  it('files the vaccination record of an IHE_XDM.ZIP for the mailbox organization, answers the MDN, and a restart imports nothing twice', async () => {
    const m = await mail(await xdmOf('VAC_2023.01.xml'));
    const uid = await dovecot.append(BOX, m.raw);
    const row = await eventually(
      async () => (await gw.core.mailbox.store.list(NAME)).find((r) => r.uid === uid && r.state === 'done'),
      30_000,
    );
    expect(row).toMatchObject({ outcome: 'created', documents: 1 });

    // The structure's own client sees the facts as its records.
    const { token } = await gw.clientOf(org, ['system/*.rs']);
    const vaccines = await search(token, 'Immunization?_count=50');
    expect(vaccines.entry?.map((e) => e.resource?.resourceType)).toEqual(Array(4).fill('Immunization'));
    const docs = await search(token, 'DocumentReference');
    expect(docs.entry).toHaveLength(1);
    expect(row.resources).toEqual(expect.arrayContaining([`DocumentReference/${docs.entry![0]!.resource!.id}`]));

    const mdn = await eventually(async () => smtp.to(SENDER).find((x) => x.raw.toString().includes(m.messageId)));
    const text = mdn.raw.toString();
    expect(text).toMatch(/^From: passerelle@gw\.mssante\.fr/m);
    expect(text).toMatch(/Disposition: automatic-action\/MDN-sent-automatically; processed\r\n/);
    expect(text).toContain(`Original-Message-ID: ${m.messageId}`);
    const [stored] = await dovecot.messages(BOX);
    expect([...stored!.flags]).toEqual(expect.arrayContaining(['\\Seen', '$GwImported']));

    // The poller stops and a new one (a restarted process) takes the mailbox: nothing twice.
    await gw.core.mailbox.stop();
    const restarted = new MailboxFeature(
      gw.core.db.pool,
      gw.core.config.GW_MSS_INBOXES,
      { intake: gw.core.intake, sendMdn: gw.core.exchange.mdnSender },
      gw.core.logger,
    );
    await restarted.poller(NAME).pass();
    await restarted.poller(NAME).pass();
    expect((await search(token, 'Immunization?_count=50')).entry).toHaveLength(4);
    expect((await search(token, 'DocumentReference')).entry).toHaveLength(1);
    expect(smtp.to(SENDER).filter((x) => x.raw.toString().includes(m.messageId))).toHaveLength(1);
    await restarted.stop();
    await gw.core.mailbox.start();

    // What recovery after a crash between the import and its record relies on: the same document
    // handed over again (here resent in a new message) is recognised by the pipeline, not filed twice.
    const again = await mail(await xdmOf('VAC_2023.01.xml'));
    const uid2 = await dovecot.append(BOX, again.raw);
    await eventually(async () =>
      (await gw.core.mailbox.store.list(NAME)).find((r) => r.uid === uid2 && r.state === 'done'),
    );
    expect((await search(token, 'Immunization?_count=50')).entry).toHaveLength(4);
    expect((await search(token, 'DocumentReference')).entry).toHaveLength(1);
  });

  it('moves a truncated zip to Quarantaine with the reason, and answers processed/error', async () => {
    const whole = await xdmOf('VAC_2023.01.xml');
    const m = await mail(whole.subarray(0, Math.floor(whole.length / 2)));
    const uid = await dovecot.append(BOX, m.raw);
    const row = await eventually(
      async () => (await gw.core.mailbox.store.list(NAME)).find((r) => r.uid === uid && r.state === 'done'),
      30_000,
    );
    expect(row.outcome).toBe('rejected');
    expect(row.reason).toMatch(/^IHE_XDM\.ZIP: Unreadable zip \(truncated or corrupt\)/);
    const aside = await dovecot.messages(BOX, 'Quarantaine');
    expect(aside.map((x) => x.messageId)).toContain(m.messageId);
    const mdn = await eventually(async () => smtp.to(SENDER).find((x) => x.raw.toString().includes(m.messageId)));
    expect(mdn.raw.toString()).toMatch(/; processed\/error\r\nError: IHE_XDM\.ZIP: Unreadable zip/);
    // The operator sees the mailbox's poll status and the reason, never the message's content.
    const admin = { authorization: `Bearer ${await gw.token()}` };
    const summary = (await (await fetch(`${gw.baseUrl}/admin/mailboxes`, { headers: admin })).json()) as {
      mailbox: string;
      lastError: string | null;
      messages: Record<string, number>;
    }[];
    expect(summary.find((x) => x.mailbox === NAME)).toMatchObject({
      lastError: null,
      messages: { created: 2, rejected: 1 },
    });
    const res = await fetch(`${gw.baseUrl}/admin/mailboxes/${NAME}/messages?state=done&_count=1`, { headers: admin });
    expect(await res.json()).toEqual([expect.objectContaining({ uid, outcome: 'rejected', reason: row.reason })]);
    const unknown = await fetch(`${gw.baseUrl}/admin/mailboxes/other/messages`, { headers: admin });
    expect(unknown.status).toBe(404);
    // Nothing of the documents (no patient) in the gateway's logs.
    expect(gw.logs.join('')).not.toMatch(/PAT-TROIS|DOMINIQUE|279035121518989/);
  });
});
