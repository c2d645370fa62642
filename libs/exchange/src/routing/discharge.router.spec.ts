import type { Communication, Resource, Task } from '@medplum/fhirtypes';
import type { PoolClient } from 'pg';
import { nameUuid } from '@gw/platform';
import { lockEvent } from '@gw/store';
import type { DomainEventEntry, FhirRepository, NewVersion } from '@gw/store';
import { expectNoUnexpectedUse, strictFake } from '@gw/testing/fakes';
import type { CptsDirectory } from '../records/cpts.directory';
import type { DischargeContext, DischargeContextLoader, Recipient } from '../records/discharge-context.loader';
import { ChannelRegistry } from '../channels/channel';
import type { Channel } from '../channels/channel';
import { DischargeRouter, documentUniqueId } from './discharge.router';
import type { Delivery, DeliveryStore } from '../records/delivery.store';
import type { FollowUpTracker } from '../records/follow-up.tracker';
import type { ResourceWriter } from '../records/resource.writer';
import type { Route, RouteStore } from '../records/route.store';

// The event row and its lock are the store's business: the router only reads what lockEvent returns.
jest.mock('@gw/store', () => ({ ...jest.requireActual<object>('@gw/store'), lockEvent: jest.fn() }));
const lockedEvent = jest.mocked(lockEvent);

const DAY = 24 * 3600 * 1000;
const NOW = new Date('2026-11-22T15:00:00Z');
const DMP_URL = 'https://dmp.example/fhir';
const SETTINGS = { maxDischargeAgeMs: 30 * DAY };

/** The channels as routing sees them: a name, whether and where it is configured, how it addresses. */
function channels(mss: string | null = 'smtp://relay.example:587', mhd: string | null = DMP_URL): ChannelRegistry {
  return new ChannelRegistry([
    strictFake<Channel>('mss channel', {
      name: 'mssante',
      label: 'MSSanté',
      destination: mss ?? undefined,
      addressing: 'recipient',
    }),
    strictFake<Channel>('mhd channel', {
      name: 'mhd',
      label: 'MHD',
      destination: mhd ?? undefined,
      addressing: 'destination',
    }),
  ]);
}

function discharged(over: Partial<DomainEventEntry> = {}): DomainEventEntry {
  return {
    id: 42,
    type: 'encounter.discharged',
    resource: 'Encounter/e1',
    versionId: 3,
    subject: 'Patient/p1',
    organization: 'Organization/chu',
    occurredAt: '2026-11-22T14:00:00.000Z',
    status: 'published',
    createdAt: '2026-11-22T14:00:01.000Z',
    withdrawnAt: null,
    ...over,
  };
}

const ROUTE: Route = {
  id: 'route-1',
  name: 'default',
  hospital: null,
  territory: null,
  followUpDays: 7,
  recipients: ['mt', 'care-team'],
  channels: ['mssante', 'mhd'],
  active: true,
  updatedAt: '',
};
const MT: Recipient = {
  ref: 'Practitioner/mt',
  kind: 'mt',
  display: 'Dr Morel',
  mailbox: 'mt@cabinet.mssante.fr',
  organization: 'Organization/msp',
};
const NURSE_WITHOUT_MAILBOX: Recipient = { ref: 'Practitioner/ide', kind: 'care-team', display: 'IDE Roux' };

function discharge(over: Partial<DischargeContext> = {}): DischargeContext {
  return {
    encounter: {
      resourceType: 'Encounter',
      id: 'e1',
      status: 'finished',
      class: { code: 'IMP' },
      period: { end: '2026-11-22T14:00:00Z' },
    },
    patient: { resourceType: 'Patient', id: 'p1' },
    patientOwner: 'Organization/chu',
    hospitalRef: 'Organization/chu',
    mt: MT,
    careTeams: [{ resourceType: 'CareTeam', id: 'ct', managingOrganization: [{ reference: 'Organization/msp' }] }],
    careTeamRecipients: [NURSE_WITHOUT_MAILBOX],
    deceased: false,
    insQualified: true,
    dmpOpposed: false,
    ...over,
  };
}

interface Setup {
  /** exchange_routing already has a row for the event (with these Tasks). */
  routed?: { tasks: string[] };
  ctx?: DischargeContext | undefined;
  route?: Route | undefined;
  /** Pending deliveries of the event, as DeliveryStore finds them. */
  pending?: Delivery[];
  channels?: ChannelRegistry;
}

/**
 * The router with fakes that note each side effect in `effects`; the transaction's own statements
 * on exchange_routing are answered by a fake client that only knows those.
 */
function setup(s: Setup = {}) {
  const effects: string[] = [];
  const written: { resource: Resource; owner: string | undefined }[] = [];
  const inserted: Parameters<DeliveryStore['insert']>[1] = [];
  const routing: { routeId: string | null; outcome: string; tasks: string[]; documentUniqueId: string | null }[] = [];
  const ctx = 'ctx' in s ? s.ctx : discharge();
  const tx = strictFake<PoolClient>('tx', {
    query: (async (sql: string, params: unknown[]) => {
      if (sql.startsWith('SELECT 1 FROM exchange_routing')) {
        return { rows: [], rowCount: s.routed ? 1 : 0 };
      }
      if (sql.startsWith('INSERT INTO exchange_routing')) {
        const [, routeId, outcome, tasks, uniqueId] = params as [
          string,
          string | null,
          string,
          string[],
          string | null,
        ];
        routing.push({ routeId, outcome, tasks, documentUniqueId: uniqueId });
        effects.push(`routing recorded: ${outcome}`);
        return { rows: [], rowCount: 1 };
      }
      if (sql.startsWith('UPDATE exchange_routing SET withdrawn_at')) {
        effects.push('routing withdrawn');
        return { rows: s.routed ? [s.routed] : [], rowCount: s.routed ? 1 : 0 };
      }
      throw new Error(`unexpected SQL: ${sql}`);
    }) as never,
  });
  const repo = strictFake<FhirRepository>('repo', {
    withTransaction: (async (fn: (db: PoolClient) => Promise<unknown>) => fn(tx)) as never,
  });
  const cpts = strictFake<CptsDirectory>('cpts', { coverage: async () => ({}) });
  const loader = strictFake<DischargeContextLoader>('loader', {
    directory: cpts,
    load: async (_db, ref) => {
      effects.push(`load ${ref}`);
      return ctx;
    },
  });
  const routes = strictFake<RouteStore>('routes', { pick: async () => ('route' in s ? s.route : ROUTE) });
  const deliveries = strictFake<DeliveryStore>('deliveries', {
    insert: async (_db, rows) => {
      inserted.push(...rows);
      effects.push(`deliveries inserted: ${rows.length}`);
    },
    forEvent: async () => s.pending ?? inserted.map((r) => ({ ...MAIL_DELIVERY, ...r })),
    cancelPending: async () => {
      effects.push('pending deliveries cancelled');
      return s.pending ?? [];
    },
  });
  const tasks = new Map<string, Task>();
  const writer = strictFake<ResourceWriter>('writer', {
    prepare: ((resource: Resource, owner: string | undefined, id: string) => ({
      version: { resource, owner } as unknown as NewVersion,
      ref: `${resource.resourceType}/${id}`,
    })) as never,
    flush: async (_db, versions) => {
      written.push(...(versions as unknown as { resource: Resource; owner: string | undefined }[]));
      effects.push(`resources written: ${versions.length}`);
    },
    modify: (async (_db: PoolClient, ref: string, mutate: (r: Task) => boolean) => {
      const task: Task = { resourceType: 'Task', id: ref.split('/')[1], status: 'requested', intent: 'order' };
      if (mutate(task)) {
        tasks.set(ref, task);
        effects.push(`${ref} ${task.status}`);
      }
      return true;
    }) as never,
  });
  const tracker = strictFake<FollowUpTracker>('tracker', {
    communication: async (_tx, ref, status, reason) => {
      effects.push(`${ref} ${status}: ${reason}`);
    },
  });
  const router = new DischargeRouter(
    repo,
    loader,
    routes,
    deliveries,
    writer,
    tracker,
    s.channels ?? channels(),
    SETTINGS,
  );
  return { router, effects, written, inserted, routing, tasks };
}

const MAIL_DELIVERY: Delivery = {
  id: 'd1',
  eventId: '42',
  channel: 'mssante',
  destination: MT.mailbox as string,
  recipient: MT.ref,
  communication: 'Communication/c1',
  task: 'Task/t1',
  status: 'pending',
  attempts: 0,
  replays: 0,
  remoteId: null,
  lastError: null,
  createdAt: '',
  updatedAt: '',
  sentAt: null,
  acknowledgedAt: null,
};

describe('DischargeRouter.route', () => {
  beforeEach(() => lockedEvent.mockResolvedValue(discharged()));
  afterEach(expectNoUnexpectedUse);

  it('writes the follow-up Task, a Communication per recipient and the delivery rows, and records the routing', async () => {
    const { router, effects, written, inserted, routing } = setup();
    const result = await router.route('42', NOW);

    expect(effects).toEqual([
      'load Encounter/e1',
      'resources written: 3',
      'deliveries inserted: 2',
      'routing recorded: care-team',
    ]);
    const task = `Task/${nameUuid('task:42')}`;
    const [taskWrite, toMt, toNurse] = written;
    expect(taskWrite).toMatchObject({
      owner: 'Organization/msp',
      resource: {
        resourceType: 'Task',
        owner: { reference: 'CareTeam/ct' },
        restriction: { period: { end: '2026-11-29T14:00:00.000Z' } },
      },
    });
    expect(toMt?.resource as Communication).toMatchObject({
      status: 'preparation',
      basedOn: [{ reference: task }],
      recipient: [{ reference: MT.ref }],
    });
    // No mailbox: the Communication says why, and no delivery row is made for it.
    expect(toNurse?.resource as Communication).toMatchObject({
      status: 'not-done',
      statusReason: { text: 'Pas de boîte MSSanté connue pour ce destinataire' },
    });
    expect(inserted.map((d) => [d.channel, d.destination, d.task])).toEqual([
      ['mssante', MT.mailbox, task],
      ['mhd', DMP_URL, task],
    ]);
    expect(routing).toEqual([
      { routeId: 'route-1', outcome: 'care-team', tasks: [task], documentUniqueId: documentUniqueId('42', {}) },
    ]);
    expect(result.status).toBe('routed');
    expect(result.deliveries.map((d) => d.channel)).toEqual(['mssante', 'mhd']);
  });

  it("names the hospital's letter as the Task's input (what the Task's owner may read), and nothing without one", async () => {
    const letter = {
      resourceType: 'DocumentReference' as const,
      id: 'letter-1',
      status: 'current' as const,
      content: [],
    };
    const withLetter = setup({ ctx: discharge({ letter: { document: letter } }) });
    await withLetter.router.route('42', NOW);
    expect((withLetter.written[0]?.resource as Task).input).toEqual([
      expect.objectContaining({ valueReference: { reference: 'DocumentReference/letter-1' } }),
    ]);
    const without = setup();
    await without.router.route('42', NOW);
    expect((without.written[0]?.resource as Task).input).toBeUndefined();
  });

  it('makes no delivery for a channel that is not configured or not on the route, and says so on the Communication', async () => {
    const { router, written, inserted } = setup({
      channels: channels(null, DMP_URL),
      route: { ...ROUTE, channels: ['mssante'] },
    });
    await expect(router.route('42', NOW)).resolves.toMatchObject({ status: 'routed', deliveries: [] });
    expect(inserted).toEqual([]);
    expect(written.slice(1).map((w) => (w.resource as Communication).statusReason?.text)).toEqual([
      'Canal MSSanté non configuré',
      'Pas de boîte MSSanté connue pour ce destinataire',
    ]);
  });

  it('hands back the still-pending deliveries of an event already routed, and writes nothing', async () => {
    const sent: Delivery = { ...MAIL_DELIVERY, id: 'd2', status: 'sent' };
    const { router, effects } = setup({ routed: { tasks: ['Task/t1'] }, pending: [MAIL_DELIVERY, sent] });
    await expect(router.route('42', NOW)).resolves.toEqual({ status: 'already-routed', deliveries: [MAIL_DELIVERY] });
    expect(effects).toEqual([]);
  });

  it('records a discharge withdrawn before routing and writes nothing else', async () => {
    lockedEvent.mockResolvedValue(discharged({ status: 'withdrawn', withdrawnAt: '2026-11-22T14:30:00.000Z' }));
    const { router, effects, routing } = setup();
    await expect(router.route('42', NOW)).resolves.toMatchObject({
      status: 'skipped',
      reason: 'discharge cancelled before routing',
      deliveries: [],
    });
    expect(effects).toEqual(['routing recorded: withdrawn-before-routing']);
    expect(routing).toEqual([
      { routeId: null, outcome: 'withdrawn-before-routing', tasks: [], documentUniqueId: null },
    ]);
  });

  it('records a discharge older than the maximum age as historic without reading it', async () => {
    lockedEvent.mockResolvedValue(discharged({ occurredAt: new Date(NOW.getTime() - 31 * DAY).toISOString() }));
    const { router, effects } = setup();
    await expect(router.route('42', NOW)).resolves.toMatchObject({
      status: 'skipped',
      reason: expect.stringContaining('older than GW_EXCHANGE_MAX_DISCHARGE_AGE'),
    });
    expect(effects).toEqual(['routing recorded: historic']);
  });

  it('routes a discharge just inside the maximum age', async () => {
    lockedEvent.mockResolvedValue(discharged({ occurredAt: new Date(NOW.getTime() - 29 * DAY).toISOString() }));
    const { router } = setup();
    await expect(router.route('42', NOW)).resolves.toMatchObject({ status: 'routed' });
  });

  it('judges a date-only discharge (no occurred_at on the event) from the Encounter, by the end of that day', async () => {
    lockedEvent.mockResolvedValue(discharged({ occurredAt: null }));
    const old = setup({
      ctx: discharge({
        encounter: {
          resourceType: 'Encounter',
          id: 'e1',
          status: 'finished',
          class: { code: 'IMP' },
          period: { end: '2026-10-22' },
        },
      }),
    });
    await expect(old.router.route('42', NOW)).resolves.toMatchObject({ status: 'skipped' });
    expect(old.effects).toEqual(['load Encounter/e1', 'routing recorded: historic']);

    // 2026-10-23 began more than 30 days before NOW, but a date counts until its end (29 days 15 hours before NOW).
    const recent = setup({
      ctx: discharge({
        encounter: {
          resourceType: 'Encounter',
          id: 'e1',
          status: 'finished',
          class: { code: 'IMP' },
          period: { end: '2026-10-23' },
        },
      }),
    });
    await expect(recent.router.route('42', NOW)).resolves.toMatchObject({ status: 'routed' });
  });

  it('records "no-active-route" and writes nothing when no route applies', async () => {
    const { router, effects } = setup({ route: undefined });
    await expect(router.route('42', NOW)).resolves.toMatchObject({ status: 'skipped', reason: 'no active route' });
    expect(effects).toEqual(['load Encounter/e1', 'routing recorded: no-active-route']);
  });

  it('records "encounter-not-found" when the Encounter or its Patient is gone', async () => {
    const { router, effects } = setup({ ctx: undefined });
    await expect(router.route('42', NOW)).resolves.toMatchObject({
      status: 'skipped',
      reason: 'encounter or patient not found',
    });
    expect(effects).toEqual(['load Encounter/e1', 'routing recorded: encounter-not-found']);
  });

  it('ignores an event that does not exist or is not a discharge, recording nothing', async () => {
    lockedEvent.mockResolvedValueOnce(undefined);
    const { router, effects } = setup();
    await expect(router.route('42', NOW)).resolves.toMatchObject({
      status: 'skipped',
      reason: 'no such discharge event',
    });
    lockedEvent.mockResolvedValueOnce(discharged({ type: 'encounter.admitted' }));
    await expect(router.route('42', NOW)).resolves.toMatchObject({
      status: 'skipped',
      reason: 'no such discharge event',
    });
    expect(effects).toEqual([]);
  });
});

describe('DischargeRouter.withdraw', () => {
  beforeEach(() => lockedEvent.mockResolvedValue(discharged({ status: 'withdrawn' })));
  afterEach(expectNoUnexpectedUse);

  it('cancels the Tasks and the pending deliveries, and stops their unsent Communications', async () => {
    const dmp: Delivery = { ...MAIL_DELIVERY, id: 'd3', channel: 'mhd', destination: DMP_URL, communication: null };
    const { router, effects, tasks } = setup({ routed: { tasks: ['Task/t1'] }, pending: [MAIL_DELIVERY, dmp] });
    await expect(router.withdraw('42')).resolves.toEqual({ cancelled: [MAIL_DELIVERY, dmp] });
    expect(effects).toEqual([
      'routing withdrawn',
      'pending deliveries cancelled',
      'Communication/c1 stopped: Sortie annulée par l’établissement',
      'Task/t1 cancelled',
    ]);
    expect(tasks.get('Task/t1')).toMatchObject({
      businessStatus: { coding: [{ code: 'discharge-cancelled' }] },
      statusReason: { text: 'Sortie annulée par l’établissement (A13)' },
    });
  });

  it('does nothing more than look when the event was never routed', async () => {
    const { router, effects } = setup();
    await expect(router.withdraw('42')).resolves.toEqual({ cancelled: [] });
    expect(effects).toEqual(['routing withdrawn', 'pending deliveries cancelled']);
  });
});
