import type { DischargeContext, Recipient } from '../records/discharge-context.loader';
import { planDischarge } from './discharge.plan';
import type { Route } from '../records/route.store';

const route: Route = {
  id: 'r',
  name: 'default',
  hospital: null,
  territory: null,
  followUpDays: 7,
  recipients: ['mt', 'care-team'],
  channels: ['mssante', 'mhd'],
  active: true,
  updatedAt: '',
};
const mt: Recipient = {
  ref: 'Practitioner/mt',
  kind: 'mt',
  display: 'Dr MT',
  mailbox: 'mt@x.mssante.fr',
  organization: 'Organization/msp',
};
const nurse: Recipient = { ref: 'Practitioner/ide', kind: 'care-team', display: 'IDE', mailbox: 'ide@x.mssante.fr' };
const coord: Recipient = {
  ref: 'Practitioner/coord',
  kind: 'coordinator',
  display: 'Coord',
  mailbox: 'coord@x.mssante.fr',
};
const cpts = { ref: 'Organization/cpts', name: 'CPTS', mailbox: 'cpts@x.mssante.fr' };

function ctx(over: Partial<DischargeContext> = {}): DischargeContext {
  return {
    encounter: {
      resourceType: 'Encounter',
      id: 'e',
      status: 'finished',
      class: { code: 'IMP' },
      period: { end: '2026-11-22T14:00:00Z' },
    },
    patient: { resourceType: 'Patient', id: 'p' },
    patientOwner: 'Organization/chu',
    mt,
    careTeams: [{ resourceType: 'CareTeam', id: 'ct', managingOrganization: [{ reference: 'Organization/msp' }] }],
    careTeamRecipients: [nurse, coord, { ...mt, kind: 'care-team' }],
    deceased: false,
    insQualified: true,
    dmpOpposed: false,
    ...over,
  };
}

describe('planDischarge', () => {
  const now = new Date('2026-11-22T15:00:00Z');

  it('gives the follow-up to the care team with the due date N days after discharge, one recipient per mailbox', () => {
    const plan = planDischarge(ctx(), route, {}, now);
    expect(plan.outcome).toBe('care-team');
    expect(plan.task).toMatchObject({
      kind: 'discharge-follow-up',
      owner: 'CareTeam/ct',
      fileUnder: 'Organization/msp',
      due: '2026-11-29T14:00:00.000Z',
      status: 'notifications-pending',
    });
    expect(plan.recipients.map((r) => r.ref)).toEqual(['Practitioner/mt', 'Practitioner/ide', 'Practitioner/coord']);
  });

  it('follows the route: coordinator only, 3 days', () => {
    const plan = planDischarge(ctx(), { ...route, recipients: ['coordinator'], followUpDays: 3 }, {}, now);
    expect(plan.recipients.map((r) => r.ref)).toEqual(['Practitioner/coord']);
    expect(plan.task?.due).toBe('2026-11-25T14:00:00.000Z');
  });

  it.each(['none', 'inactive', 'fictitious', 'departed'] as const)(
    'sends a find-a-MT task to the CPTS when the MT is %s',
    (problem) => {
      const plan = planDischarge(
        ctx({ mtProblem: problem, careTeams: [], careTeamRecipients: [] }),
        route,
        { cpts },
        now,
      );
      expect(plan.outcome).toBe('cpts');
      expect(plan.task).toMatchObject({ kind: 'find-mt', owner: 'Organization/cpts' });
      expect(plan.recipients.map((r) => r.ref)).toEqual(['Organization/cpts']);
    },
  );

  it('keeps the task unrouted when no CPTS covers the commune', () => {
    const plan = planDischarge(
      ctx({ mt: undefined, mtProblem: 'none', careTeams: [], careTeamRecipients: [] }),
      route,
      {},
      now,
    );
    expect(plan.outcome).toBe('unrouted');
    expect(plan.task).toMatchObject({ kind: 'find-mt', owner: undefined, status: 'unrouted' });
  });

  it('routes to none of the CPTS that all claim the commune, and says why on the task', () => {
    const other = { ref: 'Organization/cpts-2', name: 'CPTS 2', mailbox: 'cpts2@x.mssante.fr' };
    const plan = planDischarge(
      ctx({ mt: undefined, mtProblem: 'none', careTeams: [], careTeamRecipients: [] }),
      { ...route, recipients: ['mt', 'care-team', 'cpts'] },
      { conflict: [cpts, other] },
      now,
    );
    expect(plan.outcome).toBe('cpts-conflict');
    expect(plan.recipients).toEqual([]);
    expect(plan.task).toMatchObject({ kind: 'find-mt', owner: undefined, fileUnder: undefined, status: 'unrouted' });
    expect(plan.task?.reason).toContain('plusieurs CPTS (Organization/cpts, Organization/cpts-2)');
  });

  it('on death notifies the MT only and creates no task', () => {
    const plan = planDischarge(ctx({ deceased: true }), route, { cpts }, now);
    expect(plan.outcome).toBe('deceased');
    expect(plan.task).toBeUndefined();
    expect(plan.recipients.map((r) => r.ref)).toEqual(['Practitioner/mt']);
  });

  it('marks the task no-recipient when nobody has a MSSanté mailbox', () => {
    const plan = planDischarge(
      ctx({ mt: { ...mt, mailbox: undefined }, careTeams: [], careTeamRecipients: [] }),
      route,
      {},
      now,
    );
    expect(plan.task?.status).toBe('no-recipient');
  });
  it('gives the Task a reason when the only mailboxes found were not vouched for (none is used)', () => {
    const unverified = (r: Recipient): Recipient => ({ ...r, mailbox: undefined, mailboxUnverified: true });
    const plan = planDischarge(ctx({ mt: unverified(mt), careTeams: [], careTeamRecipients: [] }), route, {}, now);
    expect(plan.task?.status).toBe('no-recipient');
    expect(plan.task?.reason).toContain('non vérifiée');
    const other = planDischarge(ctx({ mt: unverified(mt) }), route, {}, now);
    expect(other.task?.status).toBe('notifications-pending');
    expect(other.task?.reason).toBeUndefined();
  });
});
