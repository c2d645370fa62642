import { createHash } from 'node:crypto';
import JSZip from 'jszip';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { buildMdn } from '@gw/exchange';
import type { Communication, DocumentReference, Task } from '@medplum/fhirtypes';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { freePort } from '../support/ports';
import { startRedis } from '../support/redis';
import { FaultProxy, Stays, TestSmtp, eventually, mailbox } from '../support/exchange';
import type { ReceivedMail } from '../support/exchange';
import { call, createOrganization, finess, registerSource, search, uniqueId } from '../support/hl7';

const FROM = 'passerelle@gw-test.mssante.fr';

describe.each(['postgres', 'redis'] as const)(
  'exchange engine: discharges to the primary-care team (%s queue)',
  (backend) => {
    let recipient: TestGateway;
    let gw: TestGateway;
    let smtp: TestSmtp;
    let proxy: FaultProxy;
    let redis: { url: string; stop: () => Promise<void> } | undefined;
    let hospital: string;
    let cpts: string;
    const stamp = uniqueId('X');

    beforeAll(async () => {
      smtp = new TestSmtp();
      await smtp.start();
      // The shared record: a second gateway acting as MHD Document Recipient, behind a fault proxy.
      recipient = await startTestGateway({ GW_MLLP_ENABLED: 'false' });
      const repoOrg = await createOrganization(recipient, 'Entrepôt DMP régional');
      const publisher = await recipient.core.clients.create({
        name: 'exchange',
        organization: `Organization/${repoOrg}`,
        scopes: ['system/*.cruds'],
        withSecret: true,
      });
      proxy = new FaultProxy(recipient.baseUrl);
      await proxy.start();
      redis = backend === 'redis' ? await startRedis() : undefined;
      const port = await freePort();
      gw = await startTestGateway({
        GW_HTTP_PORT: String(port),
        GW_MSS_SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
        GW_MSS_FROM: FROM,
        GW_MSS_SMTP_INSECURE: 'true',
        GW_MHD_RECIPIENT_URL: `${proxy.url}/fhir`,
        GW_MHD_TOKEN_URL: `${recipient.baseUrl}/oauth2/token`,
        GW_MHD_CLIENT_ID: publisher.client.id,
        GW_MHD_CLIENT_SECRET: publisher.secret as string,
        GW_EXCHANGE_BACKOFF_MS: '300',
        // The stays below carry fixed 2026 dates: route them however long ago that is.
        GW_EXCHANGE_MAX_DISCHARGE_AGE: '36500d',
        // Enough attempts that a relay down for a few seconds on a loaded machine is retried, not dead-lettered
        // (backoff 300 ms doubling: ~38 s before the last attempt).
        GW_EXCHANGE_ATTEMPTS: '8',
        ...(redis ? { GW_REDIS_URL: redis.url } : {}),
      });
      hospital = await createOrganization(gw, 'CHU Test', finess('75000001'));
      await registerSource(gw, {
        sendingApplication: 'GAM',
        sendingFacility: 'CHU-X',
        organization: `Organization/${hospital}`,
        name: 'CHU Test',
      });
      const res = await call<{ id: string }>(gw, 'POST', `${gw.fhirUrl}/Organization`, {
        resourceType: 'Organization',
        name: 'CPTS Centre',
        identifier: [{ system: 'https://finess.esante.gouv.fr', value: finess('75000099') }],
        type: [
          {
            coding: [{ system: 'https://gateway.fr-primary-care.org/fhir/CodeSystem/organization-type', code: 'CPTS' }],
          },
        ],
        telecom: [mailbox('coordination@cpts-centre.mssante.fr')],
        extension: [
          { url: 'https://gateway.fr-primary-care.org/fhir/StructureDefinition/territory-commune', valueCode: '75156' },
        ],
      });
      cpts = res.body.id;
    }, 120_000);

    afterAll(async () => {
      await gw?.close();
      await recipient?.close();
      await proxy?.stop();
      await smtp?.stop();
      await redis?.stop();
    });

    const stays = new Stays(() => gw, stamp);
    const stay = stays.stay.bind(stays);
    const encounterOf = stays.encounterOf.bind(stays);
    const teamFor = stays.teamFor.bind(stays);

    /** The discharge events recorded for an Encounter. */
    async function eventsOf(encounterId: string): Promise<{ id: string }[]> {
      return (
        await gw.core.db.pool.query<{ id: string }>('SELECT id::text FROM domain_event WHERE resource = $1', [
          `Encounter/${encounterId}`,
        ])
      ).rows;
    }

    async function taskFor(encounterId: string): Promise<Task | undefined> {
      return (await search<Task>(gw, 'Task', { focus: `Encounter/${encounterId}` }))[0];
    }

    async function communicationsOf(patientRef: string): Promise<Communication[]> {
      return search<Communication>(gw, 'Communication', { subject: patientRef });
    }

    async function unzipXdm(mail: ReceivedMail): Promise<{ metadata: string; files: Record<string, Buffer> }> {
      const att = mail.parsed.attachments.find((a) => a.filename === 'IHE_XDM.ZIP');
      expect(att).toBeDefined();
      const zip = await JSZip.loadAsync(att!.content);
      const files: Record<string, Buffer> = {};
      for (const name of Object.keys(zip.files)) {
        if (!zip.files[name]!.dir) {
          files[name] = await zip.files[name]!.async('nodebuffer');
        }
      }
      return { metadata: files['IHE_XDM/SUBSET01/METADATA.XML']!.toString('utf8'), files };
    }

    it('routes an A03 to the MT and the care team: Task, Communications, one XDM e-mail each, ITI-65 to the shared record, MDNs close the loop', async () => {
      const s = stay();
      await s.send('A01', { date: '20261120100000' });
      const enc = await encounterOf(s.visit);
      const team = await teamFor(enc.subject.reference, s.base.gp!.rpps, `a${stays.seq}`);
      await s.send('A03', { date: '20261122150000', exitMode: '8' });

      const task = await eventually(async () => {
        const t = await taskFor(enc.id);
        return t?.businessStatus?.coding?.[0]?.code === 'notified' ? t : undefined;
      });
      expect(task.status).toBe('requested');
      expect(task.code?.coding?.[0]?.code).toBe('discharge-follow-up');
      expect(task.for?.reference).toBe(enc.subject.reference);
      expect(task.requester?.reference).toBe(`Organization/${hospital}`);
      expect(task.owner?.reference).toMatch(/^CareTeam\//);
      // Discharge 22/11 15:00 Paris + 7 days.
      expect(new Date(task.restriction!.period!.end!).toISOString()).toBe('2026-11-29T14:00:00.000Z');

      const comms = await communicationsOf(enc.subject.reference);
      expect(comms).toHaveLength(3);
      expect(comms.every((c) => c.status === 'in-progress' && c.sent)).toBe(true);

      for (const box of [team.mt, team.nurse, team.coord]) {
        expect(smtp.to(box)).toHaveLength(1);
      }
      const mail = smtp.to(team.mt)[0]!;
      expect(mail.parsed.subject).toMatch(/^XDM\/1\.0\/DDM\+Notification de sortie/);
      expect(mail.parsed.headers.get('x-mss-ins')).toBe('O');
      expect(mail.parsed.headers.get('x-mss-nil')).toBeTruthy();
      expect(mail.parsed.headers.get('x-mss-codecda')).toBe('18842-5');
      expect(JSON.stringify(mail.parsed.headers.get('disposition-notification-to'))).toContain(FROM);
      const { metadata, files } = await unzipXdm(mail);
      expect(XMLValidator.validate(metadata)).toBe(true);
      const doc = files['IHE_XDM/SUBSET01/DOC0001.TXT']!;
      expect(doc.toString('utf8')).toContain('29/11/2026');
      const parsed = new XMLParser({ ignoreAttributes: false }).parse(metadata) as Record<string, unknown>;
      expect(JSON.stringify(parsed)).toContain(createHash('sha1').update(doc).digest('hex'));
      expect(metadata).toContain(s.base.patient.ins);

      // The shared record received the same document once, with its SubmissionSet and Binary.
      const published = await eventually(async () =>
        (await search<DocumentReference>(recipient, 'DocumentReference', { _count: '100' })).find((d) =>
          JSON.stringify(d).includes(s.base.patient.ins!),
        ),
      );
      expect(published.content?.[0]?.attachment?.hash).toBe(createHash('sha1').update(doc).digest('base64'));
      const lists = await search<{ id: string }>(recipient, 'List', { code: 'submissionset' });
      expect(lists.length).toBeGreaterThan(0);

      // MDNs from the three mailboxes: the Communications complete, the Task is acknowledged.
      for (const m of [team.mt, team.nurse, team.coord].map((b) => smtp.to(b)[0]!)) {
        const res = await fetch(`${gw.baseUrl}/exchange/mdn`, {
          method: 'POST',
          headers: { authorization: `Bearer ${await gw.token()}`, 'content-type': 'message/rfc822' },
          body: buildMdn({
            from: m.to[0]!,
            to: FROM,
            originalMessageId: m.parsed.messageId!,
            finalRecipient: m.to[0]!,
            disposition: 'processed',
          }),
        });
        expect(res.status).toBe(201);
      }
      const acked = await eventually(async () =>
        (await taskFor(enc.id))?.businessStatus?.coding?.[0]?.code === 'acknowledged' ? true : undefined,
      );
      expect(acked).toBe(true);
      expect((await communicationsOf(enc.subject.reference)).every((c) => c.status === 'completed' && c.received)).toBe(
        true,
      );

      // Nothing about the patient in the logs.
      const logs = gw.logs.join('');
      expect(logs).not.toContain(s.base.patient.ins!);
      expect(logs).not.toContain('MARTIN');
    });

    it('routes and sends once when the same discharge event is delivered again', async () => {
      const s = stay();
      await s.send('A01', { date: '20261120100000' });
      const enc = await encounterOf(s.visit);
      const team = await teamFor(enc.subject.reference, s.base.gp!.rpps, `b${stays.seq}`);
      await s.send('A03', { date: '20261122150000', exitMode: '8' });
      await eventually(async () => smtp.to(team.mt).length === 1);
      const [event] = await eventsOf(enc.id);
      // A redelivery (another job for the same event) and a retried delivery job.
      await gw.core.queue.enqueue('exchange.route-discharge', { eventId: event!.id }, `discharge-${event!.id}-again`);
      const deliveries = await gw.core.exchange.deliveries.forEvent(gw.core.db.pool, event!.id);
      for (const d of deliveries) {
        await gw.core.queue.enqueue(
          d.channel === 'mhd' ? 'exchange.mhd-publish' : 'exchange.mss-send',
          { deliveryId: d.id },
          `again-${d.id}`,
        );
      }
      await new Promise((r) => setTimeout(r, 1500));
      expect(smtp.to(team.mt)).toHaveLength(1);
      expect(await search(gw, 'Task', { focus: `Encounter/${enc.id}` })).toHaveLength(1);
      expect(await communicationsOf(enc.subject.reference)).toHaveLength(3);
      const docs = (await search<DocumentReference>(recipient, 'DocumentReference', { _count: '1000' })).filter((d) =>
        JSON.stringify(d).includes(s.base.patient.ins!),
      );
      expect(docs).toHaveLength(1);
    });

    it('sends the task to the CPTS coordination queue when there is no médecin traitant', async () => {
      const s = stay({}, { gp: undefined });
      await s.send('A01', { date: '20261120100000' });
      await s.send('A03', { date: '20261122150000', exitMode: '8' });
      const enc = await encounterOf(s.visit);
      const task = await eventually(async () => taskFor(enc.id));
      expect(task.code?.coding?.[0]?.code).toBe('find-mt');
      expect(task.owner?.reference).toBe(`Organization/${cpts}`);
      await eventually(
        async () =>
          smtp.mails.some(
            (m) =>
              m.to.includes('coordination@cpts-centre.mssante.fr') &&
              m.raw.toString().includes(s.base.patient.ins!.slice(0, 5)),
          ) || smtp.to('coordination@cpts-centre.mssante.fr').length > 0,
      );
    });

    it('on death at discharge notifies the MT and creates no follow-up task', async () => {
      const s = stay();
      await s.send('A01', { date: '20261120100000' });
      const enc = await encounterOf(s.visit);
      const team = await teamFor(enc.subject.reference, s.base.gp!.rpps, `d${stays.seq}`);
      await s.send('A03', { date: '20261122150000', exitMode: '9' });
      await eventually(async () => smtp.to(team.mt).length === 1);
      expect(smtp.to(team.nurse)).toHaveLength(0);
      expect(await taskFor(enc.id)).toBeUndefined();
      const text = (await unzipXdm(smtp.to(team.mt)[0]!)).files['IHE_XDM/SUBSET01/DOC0001.TXT']!.toString('utf8');
      expect(text).toMatch(/décès/i);
    });

    it('keeps retrying while the relay is down and delivers exactly once when it is back', async () => {
      const s = stay();
      await s.send('A01', { date: '20261120100000' });
      const enc = await encounterOf(s.visit);
      const team = await teamFor(enc.subject.reference, s.base.gp!.rpps, `e${stays.seq}`);
      const port = smtp.port;
      await smtp.stop();
      await s.send('A03', { date: '20261122150000', exitMode: '8' });
      const [event] = await eventsOf(enc.id);
      const mssOf = async () =>
        (await gw.core.exchange.deliveries.forEvent(gw.core.db.pool, event!.id)).filter((d) => d.channel === 'mssante');
      // Routing writes every delivery of the event in one transaction: wait until each one has been
      // tried against the dead relay, since each is asserted on below.
      await eventually(async () => {
        const mss = await mssOf();
        return mss.length > 0 && mss.every((d) => d.attempts >= 1);
      }, 60_000);
      await smtp.start(port);
      await eventually(
        async () =>
          smtp.to(team.mt).length === 1 && smtp.to(team.nurse).length === 1 && smtp.to(team.coord).length === 1,
        60_000,
      );
      const mss = await eventually(async () => {
        const all = await mssOf();
        return all.every((d) => d.status === 'sent') ? all : undefined;
      });
      expect(mss).toHaveLength(3);
      // Exactly once: nothing more arrives once every delivery is recorded as sent.
      await new Promise((r) => setTimeout(r, 1000));
      expect([smtp.to(team.mt), smtp.to(team.nurse), smtp.to(team.coord)].map((m) => m.length)).toEqual([1, 1, 1]);
      for (const d of mss) {
        const detail = await gw.core.exchange.delivery(d.id);
        expect(detail.attempts_detail.some((a) => a.outcome === 'retry')).toBe(true);
        expect(detail.attempts_detail.at(-1)?.outcome).toBe('success');
      }
    });

    it('withdraws the task and stops pending deliveries when the discharge is cancelled (A13)', async () => {
      const s = stay();
      await s.send('A01', { date: '20261120100000' });
      const enc = await encounterOf(s.visit);
      const team = await teamFor(enc.subject.reference, s.base.gp!.rpps, `f${stays.seq}`);
      smtp.mode = 'tempfail';
      try {
        await s.send('A03', { date: '20261122150000', exitMode: '8' });
        await eventually(async () => taskFor(enc.id));
        await s.send('A13', { date: '20261122150000', action: 'CANCEL', original: 'A03' });
        const task = await eventually(async () =>
          (await taskFor(enc.id))?.status === 'cancelled' ? taskFor(enc.id) : undefined,
        );
        expect(task?.businessStatus?.coding?.[0]?.code).toBe('discharge-cancelled');
        // An attempt already talking to the relay when the A13 arrived cannot be recalled: let it
        // meet the relay's refusal and end its lease before the relay accepts again, so that what
        // is asserted below is that no new attempt starts once the deliveries are cancelled.
        const [event] = await eventsOf(enc.id);
        await eventually(async () => {
          const leased = await gw.core.db.pool.query(
            'SELECT 1 FROM exchange_delivery WHERE event_id = $1 AND lease_until > clock_timestamp()',
            [event!.id],
          );
          return leased.rowCount === 0;
        });
      } finally {
        smtp.mode = 'accept';
      }
      await new Promise((r) => setTimeout(r, 1500));
      expect(smtp.to(team.mt)).toHaveLength(0);
      expect((await communicationsOf(enc.subject.reference)).every((c) => c.status === 'stopped')).toBe(true);
    });

    it('publishes after 5xx answers from the repository, dead-letters a 4xx with its reason, and replays it', async () => {
      proxy.script.push({ status: 503 }, { status: 502 });
      const s = stay();
      await s.send('A01', { date: '20261120100000' });
      await s.send('A03', { date: '20261122150000', exitMode: '8' });
      const enc = await encounterOf(s.visit);
      const [event] = await eventually(async () => eventsOf(enc.id));
      const mhd = await eventually(async () =>
        (await gw.core.exchange.deliveries.forEvent(gw.core.db.pool, event!.id)).find(
          (d) => d.channel === 'mhd' && d.status === 'sent',
        ),
      );
      const detail = await gw.core.exchange.delivery(mhd.id);
      expect(detail.attempts_detail.map((a) => a.outcome)).toEqual(['retry', 'retry', 'success']);

      proxy.script.push({
        status: 422,
        body: {
          resourceType: 'OperationOutcome',
          issue: [{ severity: 'error', code: 'business-rule', diagnostics: 'typeCode not allowed' }],
        },
      });
      const s2 = stay();
      await s2.send('A01', { date: '20261120100000' });
      await s2.send('A03', { date: '20261122150000', exitMode: '8' });
      const enc2 = await encounterOf(s2.visit);
      const dead = await eventually(async () => {
        const res = await call<Array<{ id: string; last_error: string; lastError: string; event_id: string }>>(
          gw,
          'GET',
          '/admin/exchange/deliveries?status=dead&channel=mhd',
        );
        return res.body.find((d) => d.lastError?.includes('typeCode not allowed'));
      });
      expect(dead.lastError).toContain('HTTP 422');
      const task = await eventually(async () =>
        (await taskFor(enc2.id))?.note?.length ? taskFor(enc2.id) : undefined,
      );
      expect(task?.note?.[0]?.text).toContain('typeCode not allowed');
      const replay = await call<{ status: string }>(gw, 'POST', `/admin/exchange/deliveries/${dead.id}/replay`);
      expect(replay.status).toBe(202);
      await eventually(async () => (await gw.core.exchange.delivery(dead.id)).status === 'sent');
    });

    it('refuses the DMP publication when the patient opposed it or the INS is not qualified, and says why on the Task', async () => {
      const opposed = stay({}, { dmp: { feeding: 'IO', consult: 'IC' } });
      await opposed.send('A01', { date: '20261120100000' });
      await opposed.send('A03', { date: '20261122150000', exitMode: '8' });
      const unqualified = stay({ identityStatus: ['PROV'] });
      await unqualified.send('A01', { date: '20261120100000' });
      await unqualified.send('A03', { date: '20261122150000', exitMode: '8' });
      for (const [s, why] of [
        [opposed, /opposé/],
        [unqualified, /INS du patient n’est pas qualifiée/],
      ] as const) {
        const enc = await encounterOf(s.visit);
        const task = await eventually(async () =>
          (await taskFor(enc.id))?.note?.length ? taskFor(enc.id) : undefined,
        );
        expect(task!.note![0]!.text).toMatch(why);
        const [event] = await eventsOf(enc.id);
        const mhd = (await gw.core.exchange.deliveries.forEvent(gw.core.db.pool, event!.id)).find(
          (d) => d.channel === 'mhd',
        )!;
        expect(mhd.status).toBe('refused');
        expect(mhd.attempts).toBe(1);
      }
    });

    it('answers a tampered ITI-65 bundle with an OperationOutcome that says where', async () => {
      const res = await call<{ issue: Array<{ expression?: string[]; details?: { text?: string } }> }>(
        recipient,
        'POST',
        recipient.fhirUrl,
        {
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [
            {
              fullUrl: 'urn:uuid:4b7a1d2e-0000-4000-8000-000000000001',
              resource: {
                resourceType: 'List',
                status: 'current',
                mode: 'working',
                code: {
                  coding: [
                    { system: 'https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes', code: 'submissionset' },
                  ],
                },
              },
              request: { method: 'POST', url: 'List' },
            },
          ],
        },
      );
      expect(res.status).toBe(422);
      expect(res.body.issue.some((i) => i.expression?.[0]?.startsWith('Bundle'))).toBe(true);
    });

    it('lists routes and rejects an invalid one with a clear error', async () => {
      const routes = await call<Array<{ name: string; followUpDays: number }>>(gw, 'GET', '/admin/exchange/routes');
      expect(routes.body.find((r) => r.name === 'default')?.followUpDays).toBe(7);
      const bad = await call<{ issue: Array<{ details: { text: string } }> }>(gw, 'POST', '/admin/exchange/routes', {
        name: 'x',
        channels: ['fax'],
      });
      expect(bad.status).toBe(400);
      expect(bad.body.issue[0]!.details.text).toContain('channels');
    });
  },
);
