import type { Communication, Task } from '@medplum/fhirtypes';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { startRedis } from '../support/redis';
import { Stays, TestSmtp, eventually } from '../support/exchange';
import { createOrganization, finess, registerSource, search, uniqueId } from '../support/hl7';
import { WORKER_MAIN, killAll, run } from '../support/process';
import type { Proc } from '../support/process';

const FROM = 'passerelle@gw-test.mssante.fr';
const LOCK_MS = 2000;

afterAll(killAll);

/**
 * The gateway takes the hospital feed; an out-of-process worker (apps/worker) routes and sends.
 * The worker is SIGKILLed while the relay holds its message mid-DATA: the job must resume on a
 * new worker and the mailbox receive the message exactly once, under the same Message-ID.
 */
describe.each(['postgres', 'redis'] as const)('exchange engine: worker killed mid-job (%s queue)', (backend) => {
  let gw: TestGateway;
  let smtp: TestSmtp;
  let redis: { url: string; stop: () => Promise<void> } | undefined;
  let workerEnv: Record<string, string>;
  const stays = new Stays(() => gw, uniqueId('K'));

  beforeAll(async () => {
    smtp = new TestSmtp();
    await smtp.start();
    redis = backend === 'redis' ? await startRedis() : undefined;
    const exchangeEnv = {
      GW_MSS_SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
      GW_MSS_FROM: FROM,
      GW_MSS_SMTP_INSECURE: 'true',
      GW_EXCHANGE_BACKOFF_MS: '300',
      // The stays below carry fixed 2026 dates: route them however long ago that is.
      GW_EXCHANGE_MAX_DISCHARGE_AGE: '36500d',
      GW_QUEUE_LOCK_MS: String(LOCK_MS),
      ...(redis ? { GW_REDIS_URL: redis.url } : {}),
    };
    gw = await startTestGateway({ ...exchangeEnv, GW_WORKERS_INPROCESS: 'false' });
    workerEnv = { ...exchangeEnv, GW_DATABASE_URL: gw.core.db.url, GW_LOG_LEVEL: 'info' };
    const hospital = await createOrganization(gw, 'CHU Test', finess('75000001'));
    await registerSource(gw, {
      sendingApplication: 'GAM',
      sendingFacility: 'CHU-X',
      organization: `Organization/${hospital}`,
      name: 'CHU Test',
    });
  }, 120_000);

  afterAll(async () => {
    await killAll();
    await gw?.close();
    await smtp?.stop();
    await redis?.stop();
  });

  async function worker(): Promise<Proc> {
    const w = run(WORKER_MAIN, workerEnv);
    await w.waitFor(/worker ready/);
    return w;
  }

  async function delivery(
    eventResource: string,
  ): Promise<{ id: string; status: string; attempts: number; remote_id: string | null } | undefined> {
    const rows = await gw.core.db.pool.query<{
      id: string;
      status: string;
      attempts: number;
      remote_id: string | null;
    }>(
      `SELECT d.id::text, d.status, d.attempts, d.remote_id FROM exchange_delivery d JOIN domain_event e ON e.id = d.event_id WHERE e.resource = $1`,
      [eventResource],
    );
    return rows.rows[0];
  }

  it('resumes the send on a new worker: one e-mail, same Message-ID, Task and Communication updated', async () => {
    const first = await worker();
    const s = stays.stay();
    await s.send('A01', { date: '20261120100000' });
    const enc = await stays.encounterOf(s.visit);
    const mt = await stays.mailboxForMt(s.base.gp!.rpps, `k${stays.seq}`);

    smtp.hold = true;
    await s.send('A03', { date: '20261122150000', exitMode: '8' });
    // The worker routed the discharge and is inside the SMTP DATA exchange when it dies.
    await eventually(async () => smtp.held.length === 1);
    first.child.kill('SIGKILL');
    await first.exited;

    const stuck = await delivery(`Encounter/${enc.id}`);
    expect(stuck?.status).toBe('pending');
    expect(smtp.to(mt)).toHaveLength(0);
    const task = (await search<Task>(gw, 'Task', { focus: `Encounter/${enc.id}` }))[0];
    expect(task?.businessStatus?.coding?.[0]?.code).not.toBe('notified');

    // A new worker finds the job whose lock expired and runs it again.
    smtp.hold = false;
    const second = await worker();
    const sent = await eventually(async () => {
      const d = await delivery(`Encounter/${enc.id}`);
      return d?.status === 'sent' ? d : undefined;
    }, 30_000);
    expect(smtp.to(mt)).toHaveLength(1);
    expect(smtp.to(mt)[0]!.parsed.messageId).toBe(smtp.held[0]);
    expect(sent.remote_id).toBe(smtp.held[0]);

    const notified = await eventually(async () => {
      const t = (await search<Task>(gw, 'Task', { focus: `Encounter/${enc.id}` }))[0];
      return t?.businessStatus?.coding?.[0]?.code === 'notified' ? t : undefined;
    });
    expect(notified.id).toBe(task!.id);
    const comms = await search<Communication>(gw, 'Communication', { subject: enc.subject.reference });
    expect(comms.map((c) => c.status)).toEqual(['in-progress']);

    // Nothing else pending or sent twice once the new worker settles.
    await new Promise((r) => setTimeout(r, LOCK_MS * 2));
    expect(smtp.to(mt)).toHaveLength(1);
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  }, 90_000);
});
