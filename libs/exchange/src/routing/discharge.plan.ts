import type { CommuneCoverage } from '../records/cpts.directory';
import type { DischargeContext, Recipient } from '../records/discharge-context.loader';
import type { BusinessStatus, TaskKind } from '../exchange.codes';
import type { Route } from '../records/route.store';

/** What routing decided for one discharge, before anything is written. */
export interface DischargePlan {
  /** `cpts-conflict`: unrouted because several CPTS claim the patient's commune. */
  outcome: 'care-team' | 'mt' | 'cpts' | 'unrouted' | 'cpts-conflict' | 'deceased';
  task?: {
    kind: TaskKind;
    /** Task.owner: the CareTeam, the MT or the CPTS; none when nobody could be found. */
    owner?: string;
    /** The organization the Task is filed under (who may read it). */
    fileUnder?: string;
    due: string;
    status: BusinessStatus;
    /** Why nobody was found (Task.statusReason), when it is not simply that no CPTS covers the commune. */
    reason?: string;
  };
  recipients: Recipient[];
}

const DAY = 24 * 3600 * 1000;

/**
 * The routing decision (pure): MT and care team when the MT can take the follow-up; the CPTS
 * coordination queue when there is no usable MT; on death, a notice to the MT and no task. A
 * commune claimed by several CPTS goes to none of them (the find-MT Task says why).
 */
export function planDischarge(
  ctx: DischargeContext,
  route: Route,
  coverage: CommuneCoverage,
  now: Date,
): DischargePlan {
  const cpts = coverage.cpts;
  const dischargedAt = ctx.encounter.period?.end ? new Date(ctx.encounter.period.end) : now;
  const due = new Date(dischargedAt.getTime() + route.followUpDays * DAY).toISOString();
  const wants = new Set(route.recipients);
  const team = ctx.careTeamRecipients.filter(
    (r) => wants.has('care-team') || (wants.has('coordinator') && r.kind === 'coordinator'),
  );
  if (ctx.deceased) {
    // Death at discharge: the MT is told; nobody is asked to contact the patient.
    return { outcome: 'deceased', recipients: ctx.mt && !ctx.mtProblem ? [ctx.mt] : [] };
  }
  const teamOwner = ctx.careTeams[0];
  const coordination: Recipient[] = cpts
    ? [{ ref: cpts.ref, kind: 'cpts', display: cpts.name, mailbox: cpts.mailbox, organization: cpts.ref }]
    : [];
  if (ctx.mt && !ctx.mtProblem) {
    // The CPTS hears of a followed patient's discharge only when the route asks for it.
    const recipients = dedupe([
      ...(wants.has('mt') ? [ctx.mt] : []),
      ...team,
      ...(wants.has('cpts') ? coordination : []),
    ]);
    return {
      outcome: teamOwner ? 'care-team' : 'mt',
      recipients,
      task: {
        kind: 'discharge-follow-up',
        owner: teamOwner ? `CareTeam/${teamOwner.id}` : ctx.mt.ref,
        fileUnder: teamOwner?.managingOrganization?.[0]?.reference ?? ctx.mt.organization,
        due,
        status: initialStatus(recipients),
        ...unverifiedReason(recipients),
      },
    };
  }
  const recipients = dedupe([...coordination, ...team]);
  return {
    outcome: cpts ? 'cpts' : coverage.conflict ? 'cpts-conflict' : 'unrouted',
    recipients,
    task: {
      kind: 'find-mt',
      owner: cpts?.ref,
      fileUnder: cpts?.ref,
      due,
      status: cpts ? initialStatus(recipients) : 'unrouted',
      ...(coverage.conflict
        ? { reason: conflictReason(coverage.conflict.map((c) => c.ref)) }
        : unverifiedReason(recipients)),
    },
  };
}

/** Task.statusReason of a discharge left unrouted by a territory conflict (names the CPTS, not the patient). */
export function conflictReason(cpts: string[]): string {
  return `Commune du patient revendiquée par plusieurs CPTS (${cpts.join(', ')}) : aucune n’est destinataire tant qu’un opérateur n’a pas tranché (GET /admin/cpts)`;
}

/** Why a mailbox found on a recipient was not used (Communication and Task statusReason). */
export const MAILBOX_NOT_VERIFIED =
  'non vérifiée (enregistrée par une autre organisation, ni par l’import de l’annuaire ni par un opérateur) : aucun message envoyé';

/** Task.statusReason when nobody is reachable because the only mailboxes found were not vouched for. */
function unverifiedReason(recipients: Recipient[]): { reason?: string } {
  return !recipients.some((r) => r.mailbox) && recipients.some((r) => r.mailboxUnverified)
    ? { reason: `Aucun destinataire joignable : boîte MSSanté ${MAILBOX_NOT_VERIFIED}` }
    : {};
}

function initialStatus(recipients: Recipient[]): BusinessStatus {
  return recipients.some((r) => r.mailbox) ? 'notifications-pending' : 'no-recipient';
}

/** One recipient per mailbox (or per reference when there is no mailbox), first role wins. */
function dedupe(list: Recipient[]): Recipient[] {
  const seen = new Set<string>();
  return list.filter((r) => {
    const key = r.mailbox ?? r.ref;
    if (seen.has(key)) {
      return false;
    }
    seen.add(key);
    return true;
  });
}
