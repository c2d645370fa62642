import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import JSZip from 'jszip';
import { createTransport } from 'nodemailer';
import { Pool } from 'pg';
import pino from 'pino';
import { GatewayError, configSchema } from '@gw/platform';
import type { MssInboxConfig } from '@gw/platform';
import { ProfileRegistry, SearchParamRegistry, loadFhirDefinitions } from '@gw/fhir';
import { AuditLog, FhirRepository, OrganizationAccessPolicy } from '@gw/store';
import type { Principal } from '@gw/store';
import { buildMdn } from '@gw/exchange';
import { createTestDatabase, migrateAll } from '@gw/testing/database';
import { TestDovecot, composeMail } from '@gw/testing/dovecot';
import { TestSmtp, eventually } from '@gw/testing/exchange';
import { MailboxFeature } from './mailbox.feature';
import { MailboxStore } from './mailbox.store';
import { IntakePipeline } from '../intake/pipeline';
import type { IntakeResult } from '../intake/pipeline';
import type { IntakeInput } from '../intake/intake-input';
import { PatientMatcher } from '../identity/matcher';
import { IdentityReviewQueue } from '../identity/review-queue';
import type { MailboxIntake, MdnReply } from './mailbox.ports';

const BOX = { user: 'msp@msp.mssante.fr', password: 'secret-imap' };
const SENDER = 'dr.martin@medecin.mssante.fr';
const ORG = 'Organization/msp-mailbox';

/** The ANS vaccination sample, read in place (see ../shared/samples/ans-cda/SOURCES.md). */
const VAC = readFileSync(join(__dirname, '../../../../../shared/samples/ans-cda/VAC_2023.01.xml'), 'utf8');

/**
 * The real intake pipeline behind a fault switch: `down` plays the database behind it going away
 * (the error pg gives); every hand-over is recorded (principal, source, document).
 */
class FaultyIntake implements MailboxIntake {
  readonly calls: { principal: Principal; source?: string }[] = [];
  down = false;

  constructor(private readonly pipeline: IntakePipeline) {}

  async ingest(p: Principal, input: IntakeInput): Promise<IntakeResult> {
    if (this.down) {
      throw new Error('connect ECONNREFUSED 127.0.0.1:5432');
    }
    this.calls.push({ principal: p, source: input.source });
    return this.pipeline.ingest(p, input);
  }
}

/** An IHE XDM zip of the vaccination sample as a document of its own (ClinicalDocument/id and setId made unique). */
async function xdm(n: string): Promise<Buffer> {
  const doc = VAC.replace(
    '<id root="1.2.250.1.213.1.1.1.37.2023.1.1"/>',
    `<id root="1.2.250.1.213.1.1.1.37.2023.1.1.${n}"/>`,
  ).replace('<setId root="1.2.250.1.213.1.1.1.37.2023.1"/>', `<setId root="1.2.250.1.213.1.1.1.37.2023.1.${n}"/>`);
  const zip = new JSZip();
  zip.file('IHE_XDM/SUBSET01/METADATA.XML', '<SubmitObjectsRequest/>');
  zip.file('IHE_XDM/SUBSET01/DOC0001.XML', doc);
  return zip.generateAsync({ type: 'nodebuffer' });
}

/** Resources of a type the mailbox organization owns (what the pipeline wrote for it). */
async function owned(pool: Pool, type: string): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM resource WHERE resource_type = $1 AND NOT deleted AND owner_org LIKE $2`,
    [type, `%${ORG.split('/')[1]}`],
  );
  return rows[0]!.n;
}

let seq = 0;
async function message(opts: { zip?: Buffer; mdn?: boolean; filename?: string } = {}) {
  seq += 1;
  const messageId = `<m${seq}-${Date.now()}@medecin.mssante.fr>`;
  const raw = await composeMail({
    from: SENDER,
    to: BOX.user,
    messageId,
    ...(opts.mdn === false ? {} : { mdnTo: SENDER }),
    attachments: opts.zip
      ? [{ filename: opts.filename ?? 'IHE_XDM.ZIP', content: opts.zip, contentType: 'application/zip' }]
      : [],
  });
  return { raw, messageId };
}

describe('inbound MSSanté mailbox (real dovecot, PostgreSQL, SMTP)', () => {
  let pool: Pool;
  let dovecot: TestDovecot;
  let smtp: TestSmtp;
  let intake: FaultyIntake;
  let pipeline: IntakePipeline;
  let sendMdn: (m: MdnReply) => Promise<void>;
  const features: MailboxFeature[] = [];
  const logger = pino({ level: 'silent' });

  beforeAll(async () => {
    pool = new Pool({ connectionString: await createTestDatabase('mbox'), max: 8 });
    await migrateAll(pool);
    loadFhirDefinitions();
    const profiles = ProfileRegistry.fromDirectory(resolve(__dirname, '../../../../fhir-profiles'));
    const repo = new FhirRepository(pool, new SearchParamRegistry(), new OrganizationAccessPolicy(), profiles);
    pipeline = new IntakePipeline(
      repo,
      new PatientMatcher(repo),
      new IdentityReviewQueue(pool, repo, new AuditLog(pool, pino({ level: 'silent' }))),
      'http://127.0.0.1:8080',
    );
    dovecot = await TestDovecot.start([BOX]);
    smtp = new TestSmtp();
    await smtp.start();
    const transport = createTransport({ host: '127.0.0.1', port: smtp.port, secure: false, ignoreTLS: true });
    sendMdn = async (m) => {
      await transport.sendMail({ envelope: { from: BOX.user, to: m.to }, raw: buildMdn({ ...m, from: BOX.user }) });
    };
  });

  afterAll(async () => {
    await Promise.all(features.map((f) => f.stop()));
    await smtp?.stop();
    await dovecot?.stop();
    await pool?.end();
  });

  beforeEach(() => {
    intake = new FaultyIntake(pipeline);
  });

  /** A gateway process's mailbox feature (a new one stands for a restart), on a mailbox named `name`. */
  function feature(
    name: string,
    extra: Partial<MssInboxConfig> = {},
    ports: { acceptMdn?: (raw: Buffer) => Promise<unknown> } = {},
  ) {
    const inbox = configSchema.shape.GW_MSS_INBOXES.parse(
      JSON.stringify([
        {
          name,
          url: dovecot.url,
          user: BOX.user,
          password: BOX.password,
          organization: ORG,
          insecure: true,
          folder: name,
          ...extra,
        },
      ]),
    );
    const f = new MailboxFeature(pool, inbox, { intake, sendMdn: (m) => sendMdn(m), ...ports }, logger);
    features.push(f);
    return f;
  }

  async function ledger(name: string) {
    return new MailboxStore(pool).list(name);
  }

  it('imports the IHE_XDM.ZIP for the mailbox organization, answers the MDN, flags the message; a restart imports nothing twice', async () => {
    const folder = 'Import';
    const client = await dovecot.client(BOX);
    await client.mailboxCreate(folder);
    await client.logout();
    const m = await message({ zip: await xdm('1') });
    const uid = await dovecot.append(BOX, m.raw, folder);

    const docsBefore = await owned(pool, 'DocumentReference');
    const vaccinesBefore = await owned(pool, 'Immunization');
    const f = feature(folder);
    await f.poller(folder).pass();
    expect(intake.calls).toHaveLength(1);
    expect(intake.calls[0]!.principal).toMatchObject({ organization: ORG, admin: false });
    expect(intake.calls[0]!.source).toMatch(new RegExp(`^mailbox:${folder}:\\d+:${uid}$`));
    const [row] = await ledger(folder);
    expect(row).toMatchObject({
      uid,
      state: 'done',
      outcome: 'created',
      documents: 1,
    });
    expect(row!.resources).toEqual(expect.arrayContaining([expect.stringMatching(/^DocumentReference\//)]));
    expect((await owned(pool, 'DocumentReference')) - docsBefore).toBe(1);
    expect((await owned(pool, 'Immunization')) - vaccinesBefore).toBe(4);
    expect(row!.mdnSentAt).not.toBeNull();
    const stored = await dovecot.messages(BOX, folder);
    expect([...stored[0]!.flags]).toEqual(expect.arrayContaining(['\\Seen', '$GwImported']));
    const mdn = await eventually(async () => smtp.to(SENDER).find((x) => x.raw.toString().includes(m.messageId)));
    expect(mdn.raw.toString()).toMatch(/Disposition: automatic-action\/MDN-sent-automatically; processed\r\n/);
    expect(mdn.raw.toString()).toContain(`Final-Recipient: rfc822; ${BOX.user}`);

    await f.stop();
    const restarted = feature(folder);
    await restarted.poller(folder).pass();
    await restarted.poller(folder).pass();
    expect(intake.calls).toHaveLength(1);
    expect((await owned(pool, 'Immunization')) - vaccinesBefore).toBe(4);
    expect(smtp.to(SENDER).filter((x) => x.raw.toString().includes(m.messageId))).toHaveLength(1);
  });

  it('moves a message it cannot import to Quarantaine with the reason, and answers processed/error', async () => {
    const folder = 'Bad';
    const client = await dovecot.client(BOX);
    await client.mailboxCreate(folder);
    await client.logout();
    const bad = await message({ zip: Buffer.from('PK\u0003\u0004 truncated') });
    const none = await message({ mdn: false });
    await dovecot.append(BOX, bad.raw, folder);
    await dovecot.append(BOX, none.raw, folder);

    await feature(folder).poller(folder).pass();
    expect(await dovecot.messages(BOX, folder)).toEqual([]);
    const moved = await dovecot.messages(BOX, 'Quarantaine');
    expect(moved.map((x) => x.messageId)).toEqual(expect.arrayContaining([bad.messageId, none.messageId]));
    const rows = await ledger(folder);
    expect(rows.map((r) => [r.state, r.outcome, r.reason])).toEqual([
      ['done', 'rejected', 'no IHE_XDM.ZIP attachment'],
      [
        'done',
        'rejected',
        "IHE_XDM.ZIP: Unreadable zip (truncated or corrupt): Corrupted zip: can't find end of central directory",
      ],
    ]);
    const mdn = await eventually(async () => smtp.to(SENDER).find((x) => x.raw.toString().includes(bad.messageId)));
    expect(mdn.raw.toString()).toMatch(
      /; processed\/error\r\nError: IHE_XDM.ZIP: Unreadable zip \(truncated or corrupt\)/,
    );
    expect(smtp.mails.some((x) => x.raw.toString().includes(none.messageId))).toBe(false);
    const summary = (await new MailboxStore(pool).summary()).find((m) => m.mailbox === folder);
    expect(summary).toMatchObject({ messages: { rejected: 2 }, lastError: null });
    expect(summary!.lastPollAt).not.toBeNull();
  });

  it('keeps a message for retry while the database behind the pipeline is down, then imports it once', async () => {
    const folder = 'Retry';
    const client = await dovecot.client(BOX);
    await client.mailboxCreate(folder);
    await client.logout();
    const m = await message({ zip: await xdm('2'), mdn: false });
    const uid = await dovecot.append(BOX, m.raw, folder);
    const poller = feature(folder).poller(folder);

    intake.down = true;
    await poller.pass();
    await poller.pass();
    let [row] = await ledger(folder);
    expect(row).toMatchObject({
      uid,
      state: 'received',
      attempts: 2,
      lastError: 'connect ECONNREFUSED 127.0.0.1:5432',
    });
    expect((await dovecot.messages(BOX, folder))[0]!.flags.has('$GwImported')).toBe(false);

    intake.down = false;
    await poller.pass();
    [row] = await ledger(folder);
    expect(row).toMatchObject({ state: 'done', outcome: 'created', lastError: null });
    expect(intake.calls).toHaveLength(1);
  });

  it('gives a message up after maxAttempts transient failures: moved aside with the last error', async () => {
    const folder = 'GiveUp';
    const client = await dovecot.client(BOX);
    await client.mailboxCreate(folder);
    await client.logout();
    await dovecot.append(BOX, (await message({ zip: await xdm('3'), mdn: false })).raw, folder);
    const poller = feature(folder, { maxAttempts: 2, quarantine: 'GiveUp-aside' }).poller(folder);
    intake.down = true;
    for (let i = 0; i < 3; i += 1) {
      await poller.pass();
    }
    const [row] = await ledger(folder);
    expect(row).toMatchObject({ state: 'done', outcome: 'quarantined' });
    expect(row!.reason).toBe('gave up after 2 attempts: connect ECONNREFUSED 127.0.0.1:5432');
    expect(await dovecot.messages(BOX, 'GiveUp-aside')).toHaveLength(1);
  });

  it('after a crash between the import and its record, hands the same document over again (the pipeline dedupes) and flags it once', async () => {
    const folder = 'Crash';
    const client = await dovecot.client(BOX);
    await client.mailboxCreate(folder);
    await client.logout();
    const m = await message({ zip: await xdm('4') });
    await dovecot.append(BOX, m.raw, folder);
    const docsBefore = await owned(pool, 'DocumentReference');
    const vaccinesBefore = await owned(pool, 'Immunization');
    const f = feature(folder);
    // The ledger write after the pipeline committed fails (database gone at that instant, or the
    // process killed there): the message stays `received`.
    const ingested = jest
      .spyOn(MailboxStore.prototype, 'ingested')
      .mockRejectedValueOnce(new Error('connection terminated'));
    await f.poller(folder).pass();
    ingested.mockRestore();
    let [row] = await ledger(folder);
    expect(row).toMatchObject({ state: 'received', lastError: 'connection terminated' });
    // A restart (the lease given up, as it expires after a crash).
    await f.stop();
    const restarted = feature(folder);
    await restarted.poller(folder).pass();
    [row] = await ledger(folder);
    expect(row).toMatchObject({ state: 'done', outcome: 'created', attempts: 2 });
    expect(intake.calls.map((c) => c.source)).toEqual([intake.calls[0]!.source, intake.calls[0]!.source]);
    expect((await owned(pool, 'DocumentReference')) - docsBefore).toBe(1);
    expect((await owned(pool, 'Immunization')) - vaccinesBefore).toBe(4);
    expect(smtp.to(SENDER).filter((x) => x.raw.toString().includes(m.messageId))).toHaveLength(1);
  });

  it('after a crash between the move aside and its record, finishes the message without moving anything again', async () => {
    const folder = 'CrashMove';
    const client = await dovecot.client(BOX);
    await client.mailboxCreate(folder);
    await client.logout();
    await dovecot.append(BOX, (await message({ mdn: false })).raw, folder);
    const done = jest.spyOn(MailboxStore.prototype, 'done').mockRejectedValueOnce(new Error('process killed'));
    const crashed = feature(folder, { quarantine: 'CrashMove-aside' });
    await expect(crashed.poller(folder).pass()).rejects.toThrow('process killed');
    done.mockRestore();
    // A restart (the lease given up, as it expires after a crash).
    await crashed.stop();
    expect((await ledger(folder))[0]).toMatchObject({ state: 'quarantined' });
    await feature(folder, { quarantine: 'CrashMove-aside' }).poller(folder).pass();
    expect((await ledger(folder))[0]).toMatchObject({ state: 'done', outcome: 'rejected' });
    expect(await dovecot.messages(BOX, 'CrashMove-aside')).toHaveLength(1);
  });

  it('lets one process poll a mailbox at a time (lease), the other taking over once it stops', async () => {
    const folder = 'Lease';
    const client = await dovecot.client(BOX);
    await client.mailboxCreate(folder);
    await client.logout();
    const a = feature(folder);
    const b = feature(folder);
    await a.poller(folder).pass();
    await dovecot.append(BOX, (await message({ zip: await xdm('5'), mdn: false })).raw, folder);
    await b.poller(folder).pass();
    expect(intake.calls).toHaveLength(0);
    await a.stop();
    await b.poller(folder).pass();
    expect(intake.calls).toHaveLength(1);
  });

  it('takes a new message at once while idle (IMAP IDLE), well before the poll interval', async () => {
    const folder = 'Idle';
    const client = await dovecot.client(BOX);
    await client.mailboxCreate(folder);
    await client.logout();
    const f = feature(folder, { pollSeconds: 600 });
    await f.start();
    await eventually(
      async () =>
        (await ledger(folder)).length === 0 &&
        (await pool.query("SELECT 1 FROM mailbox_state WHERE mailbox = 'Idle' AND last_poll_at IS NOT NULL"))
          .rowCount === 1,
    );
    await dovecot.append(BOX, (await message({ zip: await xdm('6'), mdn: false })).raw, folder);
    const row = await eventually(async () => (await ledger(folder)).find((r) => r.state === 'done'), 20_000);
    expect(row.outcome).toBe('created');
    await f.stop();
  });

  it('moves aside a message over maxBytes without downloading it', async () => {
    const folder = 'Big';
    const client = await dovecot.client(BOX);
    await client.mailboxCreate(folder);
    await client.logout();
    await dovecot.append(BOX, (await message({ zip: Buffer.alloc(8 * 1024, 1), mdn: false })).raw, folder);
    await feature(folder, { maxBytes: 4096, quarantine: 'Big-aside' }).poller(folder).pass();
    const [row] = await ledger(folder);
    expect(row!.reason).toMatch(/^message of \d+ bytes, over the mailbox's limit of 4096$/);
    expect(intake.calls).toHaveLength(0);
    expect(await dovecot.messages(BOX, 'Big-aside')).toHaveLength(1);
  });

  it('hands an MDN about a message the gateway sent to the exchange, without answering it; one about no such message is moved aside', async () => {
    const folder = 'Mdn';
    const client = await dovecot.client(BOX);
    await client.mailboxCreate(folder);
    await client.logout();
    const raw = buildMdn({
      from: SENDER,
      to: BOX.user,
      originalMessageId: '<d1@gw>',
      finalRecipient: SENDER,
      disposition: 'processed',
    });
    await dovecot.append(BOX, raw, folder);
    const stray = buildMdn({
      from: SENDER,
      to: BOX.user,
      originalMessageId: '<unknown@elsewhere>',
      finalRecipient: SENDER,
      disposition: 'processed',
    });
    await dovecot.append(BOX, stray, folder);
    const taken: string[] = [];
    // The exchange's answer to an MDN about no message of its own (POST /exchange/mdn answers the same).
    const acceptMdn = async (b: Buffer): Promise<void> => {
      if (b.toString().includes('<unknown@elsewhere>')) {
        throw new GatewayError('not-found', {
          text: 'Original-Message-ID does not match a message sent by this gateway',
        });
      }
      taken.push(b.toString());
    };
    await feature(folder, { quarantine: 'Mdn-aside' }, { acceptMdn }).poller(folder).pass();
    expect(taken).toHaveLength(1);
    expect(taken[0]).toContain('Original-Message-ID: <d1@gw>');
    expect((await ledger(folder)).map((r) => [r.state, r.outcome, r.reason, r.mdnSentAt])).toEqual([
      ['done', 'quarantined', '404: Original-Message-ID does not match a message sent by this gateway', null],
      ['done', 'mdn', null, null],
    ]);
    expect(await dovecot.messages(BOX, 'Mdn-aside')).toHaveLength(1);
    expect(intake.calls).toHaveLength(0);
  });
});
