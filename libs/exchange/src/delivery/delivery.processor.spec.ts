import type { AuditEvent, Task } from '@medplum/fhirtypes';
import type { Pool, PoolClient } from 'pg';
import { UnrecoverableError } from '@gw/platform';
import type { JobContext, Logger } from '@gw/platform';
import type { FhirRepository, StoredResource } from '@gw/store';
import { expectNoUnexpectedUse, strictFake } from '@gw/testing/fakes';
import type { DischargeContext, DischargeContextLoader } from '../records/discharge-context.loader';
import { DeliveryProcessor } from './delivery.processor';
import type { Delivery, DeliveryStore } from '../records/delivery.store';
import type { DestinationGate } from './destination.gate';
import type { FollowUpTracker } from '../records/follow-up.tracker';
import { ChannelRegistry, PermanentDeliveryError } from '../channels/channel';
import { MhdChannel } from '../channels/mhd/mhd.channel';
import { MssChannel } from '../channels/mss/mss.channel';
import type { ResourceWriter } from '../records/resource.writer';

const DOCUMENT_UNIQUE_ID = '1.2.250.1.999.1.42';

const MAIL: Delivery = {
  id: '0b0c6a55-3f1e-4c2a-9d7e-000000000001',
  eventId: '42',
  channel: 'mssante',
  destination: 'mt@cabinet.mssante.fr',
  recipient: 'Practitioner/mt',
  communication: 'Communication/c1',
  task: 'Task/t1',
  status: 'pending',
  attempts: 0,
  replays: 0,
  remoteId: null,
  lastError: null,
  createdAt: '2026-11-22T15:00:00.000Z',
  updatedAt: '2026-11-22T15:00:00.000Z',
  sentAt: null,
  acknowledgedAt: null,
};
const DMP: Delivery = {
  ...MAIL,
  id: '0b0c6a55-3f1e-4c2a-9d7e-000000000002',
  channel: 'mhd',
  destination: 'https://dmp.example/fhir',
  recipient: null,
  communication: null,
};

function discharge(over: Partial<DischargeContext> = {}): DischargeContext {
  return {
    encounter: {
      resourceType: 'Encounter',
      id: 'e1',
      status: 'finished',
      class: { code: 'IMP' },
      period: { start: '2026-11-18T09:00:00Z', end: '2026-11-22T14:00:00Z' },
    },
    patient: {
      resourceType: 'Patient',
      id: 'p1',
      name: [{ family: 'MARTIN', given: ['Jules'] }],
      birthDate: '1955-03-01',
    },
    patientOwner: 'Organization/chu',
    careTeams: [],
    careTeamRecipients: [],
    deceased: false,
    insQualified: true,
    ins: { value: '255037512345678', oid: '1.2.250.1.213.1.4.10' },
    dmpOpposed: false,
    ...over,
  };
}

interface Setup {
  delivery?: Delivery;
  /** Another attempt holds the delivery's lease. */
  leaseHeld?: boolean;
  /** What the loader finds (undefined: the Encounter is gone). */
  ctx?: DischargeContext | undefined;
  /** The loader fails (database down…). */
  loadFails?: Error;
  /** The relay's or the repository's answer. */
  answer?: () => Promise<string>;
  /** GW_MSS_SMTP_URL unset: the MSSanté channel exists but is not configured. */
  mssUnconfigured?: boolean;
}

/**
 * The processor with fakes that write one line per side effect in `effects`, in order, with the
 * transaction's bounds: a test reads as the list of what the attempt did.
 */
function setup(s: Setup = {}) {
  const effects: string[] = [];
  const audits: AuditEvent[] = [];
  const d = 'delivery' in s ? s.delivery : MAIL;
  const ctx = 'ctx' in s ? s.ctx : discharge();
  const answer = s.answer ?? (async () => '250 2.0.0 Ok: queued');
  const pool = strictFake<Pool>('pool', {
    query: (async (sql: string) => {
      if (sql.startsWith('SELECT document_unique_id FROM exchange_routing')) {
        return { rows: [{ document_unique_id: DOCUMENT_UNIQUE_ID }] };
      }
      if (sql.startsWith('SELECT resource FROM domain_event')) {
        return { rows: [{ resource: 'Encounter/e1' }] };
      }
      throw new Error(`unexpected SQL: ${sql}`);
    }) as never,
  });
  const tx = strictFake<PoolClient>('tx', {});
  const task: Task = {
    resourceType: 'Task',
    id: 't1',
    status: 'requested',
    intent: 'order',
    restriction: { period: { end: '2026-11-29T14:00:00Z' } },
  };
  const repo = strictFake<FhirRepository>('repo', {
    pool,
    withTransaction: (async (fn: (db: PoolClient) => Promise<unknown>) => {
      effects.push('begin');
      const result = await fn(tx);
      effects.push('commit');
      return result;
    }) as never,
    read: (async (_p: unknown, type: string, id: string) =>
      ({ id, resourceType: type, json: JSON.stringify(task) }) as unknown as StoredResource) as never,
  });
  const deliveries = strictFake<DeliveryStore>('deliveries', {
    get: async (id) => (d && d.id === id ? d : undefined),
    claim: async (id) => {
      effects.push(`claim ${id}`);
      return !s.leaseHeld;
    },
    release: async (id) => {
      effects.push(`release ${id}`);
    },
    forEvent: async () => [MAIL, DMP],
    setStatus: async (db, id, status, fields) => {
      effects.push(
        `${db === tx ? '' : 'outside transaction: '}status ${status}${fields?.remoteId ? ` remote ${fields.remoteId}` : ''}${fields?.error ? ` error ${fields.error}` : ''}`,
      );
    },
    attempt: async (db, _id, attempt, outcome, remote) => {
      effects.push(`${db === tx ? '' : 'outside transaction: '}attempt ${attempt} ${outcome}: ${remote}`);
    },
  });
  const loader = strictFake<DischargeContextLoader>('loader', {
    load: async () => (s.loadFails ? Promise.reject(s.loadFails) : ctx),
  });
  const tracker = strictFake<FollowUpTracker>('tracker', {
    communication: async (_tx, ref, status, reason) => {
      effects.push(`communication ${ref} ${status}${reason ? `: ${reason}` : ''}`);
    },
    task: async (_tx, ref) => {
      effects.push(`task business status ${ref}`);
    },
    note: async (_tx, ref, text) => {
      effects.push(`task note ${ref}: ${text}`);
    },
  });
  const writer = strictFake<ResourceWriter>('writer', {
    create: (async (event: AuditEvent) => {
      audits.push(event);
      effects.push(`audit ${event.outcomeDesc?.split(':')[0]}`);
    }) as never,
  });
  const gate = strictFake<DestinationGate>('gate', {
    run: (async (_dest: string, fn: () => Promise<unknown>) => fn()) as never,
  });
  // The real channels, so that their rules (refusals, remote ids, Task effects, audit host) run;
  // only the wire is replaced: the SMTP submission and the ITI-65 transaction.
  const mss = new MssChannel(
    s.mssUnconfigured
      ? undefined
      : { url: 'smtp://relay.mssante.example:587', from: 'passerelle@gateway.example', insecure: true, nil: 'nil' },
  );
  jest.spyOn(mss, 'transmit').mockImplementation(async (m) => {
    effects.push(`send to ${m.to}`);
    return answer();
  });
  const mhd = new MhdChannel({ url: DMP.destination });
  jest.spyOn(mhd, 'publish').mockImplementation(async (submission) => {
    effects.push(
      `publish ${submission.documents[0]?.uniqueId} for ${submission.intendedRecipients.map((r) => r.email).join(', ')}`,
    );
    return answer();
  });
  const logger = strictFake<Logger>('logger', { info: jest.fn(), warn: jest.fn() });
  const processor = new DeliveryProcessor(
    repo,
    deliveries,
    loader,
    tracker,
    writer,
    gate,
    new ChannelRegistry([mss, mhd]),
    '1.2.250.1.999',
    logger,
    30_000,
  );
  return { processor, effects, audits, logger };
}

function job(attempt: number, maxAttempts = 6): JobContext {
  return { jobId: `exchange.deliver:${attempt}`, attempt, maxAttempts, logger: strictFake<Logger>('job logger', {}) };
}

describe('DeliveryProcessor.process', () => {
  afterEach(expectNoUnexpectedUse);

  it('skips a delivery that is no longer pending and sends nothing', async () => {
    const { processor, effects } = setup({ delivery: { ...MAIL, status: 'cancelled' } });
    await expect(processor.process(MAIL.id, job(1))).resolves.toEqual({
      status: 'skipped',
      detail: { reason: 'delivery is cancelled' },
    });
    expect(effects).toEqual([]);
  });

  it('skips an unknown delivery', async () => {
    const { processor, effects } = setup({ delivery: undefined });
    await expect(processor.process(MAIL.id, job(1))).resolves.toEqual({
      status: 'skipped',
      detail: { reason: 'unknown delivery' },
    });
    expect(effects).toEqual([]);
  });

  it('throws (BullMQ retries later) without sending while another attempt holds the lease', async () => {
    const { processor, effects } = setup({ leaseHeld: true });
    await expect(processor.process(MAIL.id, job(1))).rejects.toThrow('another attempt of this delivery is in progress');
    expect(effects).toEqual([`claim ${MAIL.id}`]);
  });

  it('records a sent message: delivery row, attempt, Communication in progress and Task status in one transaction, then the audit', async () => {
    const { processor, effects, audits } = setup();
    await expect(processor.process(MAIL.id, job(1))).resolves.toEqual({
      status: 'success',
      detail: { channel: 'mssante' },
    });
    expect(effects).toEqual([
      `claim ${MAIL.id}`,
      'send to mt@cabinet.mssante.fr',
      'begin',
      `status sent remote <${MAIL.id}@gateway.example>`,
      'attempt 1 success: 250 2.0.0 Ok: queued',
      'communication Communication/c1 in-progress',
      'task business status Task/t1',
      'commit',
      'audit success',
    ]);
    expect(audits[0]).toMatchObject({ outcome: '0', agent: [{ network: { address: 'cabinet.mssante.fr' } }] });
  });

  it('publishes to the DMP with the routing document id, naming the MSSanté recipients, and leaves the Communication and Task alone', async () => {
    const { processor, effects } = setup({ delivery: DMP });
    await expect(processor.process(DMP.id, job(1))).resolves.toEqual({ status: 'success', detail: { channel: 'mhd' } });
    expect(effects).toEqual([
      `claim ${DMP.id}`,
      `publish ${DOCUMENT_UNIQUE_ID} for ${MAIL.destination}`,
      'begin',
      `status sent remote ${DOCUMENT_UNIQUE_ID}`,
      'attempt 1 success: 250 2.0.0 Ok: queued',
      'commit',
      'audit success',
    ]);
  });

  it('records a retry and throws the error itself on a temporary failure, so that BullMQ tries again', async () => {
    const failure = new Error('451 4.3.0 try again later');
    const { processor, effects, audits } = setup({ answer: async () => Promise.reject(failure) });
    await expect(processor.process(MAIL.id, job(2))).rejects.toBe(failure);
    expect(effects).toEqual([
      `claim ${MAIL.id}`,
      'send to mt@cabinet.mssante.fr',
      'outside transaction: attempt 2 retry: 451 4.3.0 try again later',
      `release ${MAIL.id}`,
      'audit retry',
    ]);
    expect(audits[0]?.outcome).toBe('4');
  });

  it('records the dead letter and throws an UnrecoverableError (no retry) on a permanent refusal', async () => {
    const { processor, effects } = setup({
      answer: async () => Promise.reject(new PermanentDeliveryError('550 5.1.1 mailbox unknown')),
    });
    const attempt = processor.process(MAIL.id, job(1));
    await expect(attempt).rejects.toThrow(UnrecoverableError);
    await expect(attempt).rejects.toThrow('550 5.1.1 mailbox unknown');
    expect(effects).toEqual([
      `claim ${MAIL.id}`,
      'send to mt@cabinet.mssante.fr',
      'begin',
      'status dead error 550 5.1.1 mailbox unknown',
      'attempt 1 dead: 550 5.1.1 mailbox unknown',
      'communication Communication/c1 not-done: 550 5.1.1 mailbox unknown',
      'task business status Task/t1',
      'commit',
      'audit dead',
    ]);
  });

  it('on the last attempt records the dead letter before throwing, even for a temporary failure', async () => {
    const { processor, effects } = setup({ answer: async () => Promise.reject(new Error('connection timeout')) });
    await expect(processor.process(MAIL.id, job(6, 6))).rejects.toThrow(UnrecoverableError);
    expect(effects).toEqual([
      `claim ${MAIL.id}`,
      'send to mt@cabinet.mssante.fr',
      'begin',
      'status dead error connection timeout',
      'attempt 6 dead: connection timeout',
      'communication Communication/c1 not-done: connection timeout',
      'task business status Task/t1',
      'commit',
      'audit dead',
    ]);
  });

  it('refuses a DMP publication the patient opposed: nothing published, the reason noted on the Task', async () => {
    const { processor, effects } = setup({ delivery: DMP, ctx: discharge({ dmpOpposed: true }) });
    await expect(processor.process(DMP.id, job(1))).resolves.toEqual({
      status: 'skipped',
      detail: { reason: 'refused' },
    });
    const reason = 'Publication au DMP refusée : le patient s’est opposé à l’alimentation de son DMP';
    expect(effects).toEqual([
      `claim ${DMP.id}`,
      'begin',
      `status refused error ${reason}`,
      `attempt 1 refused: ${reason}`,
      `task note Task/t1: ${reason}`,
      'commit',
      'audit refused',
    ]);
  });

  it('refuses a DMP publication when the patient’s INS is not qualified', async () => {
    const { processor, effects } = setup({ delivery: DMP, ctx: discharge({ insQualified: false }) });
    await expect(processor.process(DMP.id, job(1))).resolves.toEqual({
      status: 'skipped',
      detail: { reason: 'refused' },
    });
    const reason = 'Publication au DMP refusée : l’INS du patient n’est pas qualifiée';
    expect(effects).toEqual([
      `claim ${DMP.id}`,
      'begin',
      `status refused error ${reason}`,
      `attempt 1 refused: ${reason}`,
      `task note Task/t1: ${reason}`,
      'commit',
      'audit refused',
    ]);
  });

  it('notes a failed DMP publication on the Task and records the recipient host in the audit', async () => {
    const { processor, effects, audits } = setup({
      delivery: DMP,
      answer: async () => Promise.reject(new PermanentDeliveryError('HTTP 422')),
    });
    await expect(processor.process(DMP.id, job(1))).rejects.toThrow(UnrecoverableError);
    expect(effects).toContain('task note Task/t1: Publication au DMP en échec : HTTP 422');
    expect(audits[0]).toMatchObject({ outcome: '8', agent: [{ network: { address: 'dmp.example' } }] });
  });

  it('records a dead letter naming the setting, without sending, when the channel is not configured', async () => {
    const { processor, effects } = setup({ mssUnconfigured: true });
    await expect(processor.process(MAIL.id, job(1))).rejects.toThrow(
      'MSSanté channel not configured (GW_MSS_SMTP_URL)',
    );
    expect(effects).toEqual([
      `claim ${MAIL.id}`,
      'begin',
      'status dead error MSSanté channel not configured (GW_MSS_SMTP_URL)',
      'attempt 1 dead: MSSanté channel not configured (GW_MSS_SMTP_URL)',
      'communication Communication/c1 not-done: MSSanté channel not configured (GW_MSS_SMTP_URL)',
      'task business status Task/t1',
      'commit',
      'audit dead',
    ]);
  });

  it('records a dead letter without sending when the discharged Encounter is gone', async () => {
    const { processor, effects } = setup({ ctx: undefined });
    await expect(processor.process(MAIL.id, job(1))).resolves.toEqual({
      status: 'skipped',
      detail: { reason: 'gone' },
    });
    expect(effects).toContain('attempt 1 dead: the discharged Encounter or its Patient no longer exists');
    expect(effects.filter((e) => e.startsWith('send'))).toEqual([]);
  });

  it('releases the lease when the document cannot be prepared, and lets the error through', async () => {
    const { processor, effects } = setup({ loadFails: new Error('connection terminated') });
    await expect(processor.process(MAIL.id, job(1))).rejects.toThrow('connection terminated');
    expect(effects).toEqual([`claim ${MAIL.id}`, `release ${MAIL.id}`]);
  });
});
