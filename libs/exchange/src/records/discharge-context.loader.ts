import type {
  Binary,
  CareTeam,
  ContactPoint,
  DocumentReference,
  Encounter,
  Organization,
  Patient,
  Practitioner,
  PractitionerRole,
  Reference,
  Resource,
} from '@medplum/fhirtypes';
import { IDNATPS, parseSearchRequest } from '@gw/fhir';
import type { SearchRequest } from '@gw/fhir';
import { DIRECTORY_ORG, hasVerifiedMailbox, personalMailbox } from '@gw/store';
import type { FhirRepository, Principal, Queryable } from '@gw/store';
import {
  COORDINATOR_ROLES,
  CONSENT_CODES,
  INSEE_CODE_EXTENSION,
  INS_OIDS,
  MT_STATUS_EXTENSION,
  PRACTITIONER_FLAG_SYSTEM,
  RELIABILITY_EXTENSION,
  RPPS,
  extensionCode,
  mssanteMailbox,
} from '../exchange.codes';
import type { CptsDirectory } from './cpts.directory';

/** The exchange layer reads across organizations: it acts for the gateway itself. */
export const EXCHANGE_PRINCIPAL: Principal = {
  clientId: 'gateway-exchange',
  organization: 'Organization/gateway',
  admin: true,
  scopes: [],
};

const LIMITS = { defaultCount: 100, maxCount: 1000 };

export type RecipientKind = 'mt' | 'care-team' | 'coordinator' | 'cpts';

/**
 * Someone to notify: a professional or a structure, with the MSSanté mailbox when the gateway can
 * vouch for one (see {@link vouchedMailbox}).
 */
export interface Recipient {
  ref: string;
  kind: RecipientKind;
  display: string;
  mailbox?: string;
  /** An MSSanté mailbox was found but nobody the gateway trusts put it there: none is used. */
  mailboxUnverified?: boolean;
  /** The organization the recipient works for (files the Communication under it). */
  organization?: string;
  rpps?: string;
}

/** Why the médecin traitant cannot take the follow-up. */
export type MtProblem = 'none' | 'inactive' | 'fictitious' | 'departed' | 'unresolved';

/** Everything routing needs about one discharge, read once. */
export interface DischargeContext {
  encounter: Encounter & { id: string };
  patient: Patient & { id: string };
  patientOwner: string | null;
  hospital?: Organization & { id: string };
  hospitalRef?: string;
  mt?: Recipient;
  mtProblem?: MtProblem;
  careTeams: (CareTeam & { id: string })[];
  careTeamRecipients: Recipient[];
  deceased: boolean;
  commune?: string;
  insQualified: boolean;
  ins?: { value: string; oid: string };
  dmpOpposed: boolean;
  /** The letter the hospital sent for this stay, if any. */
  letter?: { document: DocumentReference & { id: string }; binary?: Binary };
}

/** Loads the discharge facts through the store (admin principal, inside the caller's transaction). */
export class DischargeContextLoader {
  constructor(
    private readonly repo: FhirRepository,
    private readonly cpts: CptsDirectory,
  ) {}

  get directory(): CptsDirectory {
    return this.cpts;
  }

  async load(db: Queryable, encounterRef: string): Promise<DischargeContext | undefined> {
    const encounter = await this.get<Encounter>(db, encounterRef);
    const patientRef = encounter?.subject?.reference;
    const patient = patientRef ? await this.get<Patient>(db, patientRef) : undefined;
    if (!encounter || !patient) {
      return undefined;
    }
    const stored = await this.repo.read(EXCHANGE_PRINCIPAL, 'Patient', patient.id, db);
    const patientOwner = stored.ownerOrg;
    const hospitalRef = encounter.serviceProvider?.reference;
    // One connection: the reads run one after the other.
    const hospital = hospitalRef ? await this.get<Organization>(db, hospitalRef) : undefined;
    const mt = await this.medecinTraitant(db, patient, patientOwner);
    const careTeams = await this.search<CareTeam>(db, 'CareTeam', [
      ['subject', `Patient/${patient.id}`],
      ['status', 'active'],
    ]);
    const consents = await this.search<Resource>(db, 'Consent', [['patient', `Patient/${patient.id}`]]);
    const letter = await this.letter(db, encounter.id);
    const ins = qualifiedIns(patient);
    return {
      encounter,
      patient,
      patientOwner,
      hospital,
      hospitalRef: hospital ? `Organization/${hospital.id}` : undefined,
      mt: mt.recipient,
      mtProblem: mt.problem,
      careTeams,
      careTeamRecipients: await this.members(db, careTeams, patientOwner),
      deceased: isDeath(encounter, patient),
      commune: commune(patient),
      insQualified: ins !== undefined,
      ins,
      dmpOpposed: consents.some((c) => isDmpOpposition(c)),
      letter,
    };
  }

  private async get<T extends Resource>(db: Queryable, ref: string): Promise<(T & { id: string }) | undefined> {
    return (await this.owned<T>(db, ref))?.resource;
  }

  /** A resource with the organization that owns it (who may change it). */
  private async owned<T extends Resource>(db: Queryable, ref: string): Promise<Owned<T> | undefined> {
    const [type, id] = ref.split('/');
    if (!type || !id) {
      return undefined;
    }
    try {
      const stored = await this.repo.read(EXCHANGE_PRINCIPAL, type, id, db);
      return stored.json && !stored.deleted
        ? { resource: JSON.parse(stored.json) as T & { id: string }, owner: stored.ownerOrg }
        : undefined;
    } catch {
      return undefined;
    }
  }

  private async search<T extends Resource>(
    db: Queryable,
    type: string,
    pairs: [string, string][],
  ): Promise<(T & { id: string })[]> {
    const req: SearchRequest = parseSearchRequest(type, pairs, LIMITS);
    const res = await this.repo.search(EXCHANGE_PRINCIPAL, req, true, db);
    return res.matches.map((m) => JSON.parse(m.json ?? '{}') as T & { id: string });
  }

  /** The declared MT, and why it cannot be used (inactive, fictitious, departed) when that is the case. */
  private async medecinTraitant(
    db: Queryable,
    patient: Patient,
    patientOwner: string | null,
  ): Promise<{ recipient?: Recipient; problem?: MtProblem }> {
    const status = extensionCode(patient.extension, MT_STATUS_EXTENSION);
    const ref = patient.generalPractitioner?.find((r) => /^(Practitioner|PractitionerRole)\//.test(r.reference ?? ''));
    if (!ref) {
      return { problem: 'none' };
    }
    const recipient = await this.professional(db, ref, 'mt', patientOwner);
    if (!recipient) {
      return { problem: 'unresolved' };
    }
    if (status === 'fictitious' || recipient.fictitious) {
      return { recipient: recipient.r, problem: 'fictitious' };
    }
    if (status === 'departed' || status === 'none') {
      return { recipient: recipient.r, problem: 'departed' };
    }
    return recipient.active ? { recipient: recipient.r } : { recipient: recipient.r, problem: 'inactive' };
  }

  /**
   * A Practitioner, PractitionerRole or Organization as a recipient (mailbox from the role, then the
   * person, then the directory's MSSanté extraction), each telecom only when vouched for.
   */
  private async professional(
    db: Queryable,
    ref: Reference,
    kind: RecipientKind,
    patientOwner: string | null,
  ): Promise<{ r: Recipient; active: boolean; fictitious: boolean } | undefined> {
    const target = ref.reference ?? '';
    if (target.startsWith('Organization/')) {
      const found = await this.owned<Organization>(db, target);
      const org = found?.resource;
      return found && org
        ? {
            r: {
              ref: target,
              kind,
              display: org.name ?? target,
              ...mailboxOf([vouchedMailbox(found, patientOwner)]),
              organization: target,
            },
            active: org.active !== false,
            fictitious: false,
          }
        : undefined;
    }
    const roleFound = target.startsWith('PractitionerRole/')
      ? await this.owned<PractitionerRole>(db, target)
      : undefined;
    const role = roleFound?.resource;
    const personRef = role ? role.practitioner?.reference : target;
    const personFound = personRef ? await this.owned<Practitioner>(db, personRef) : undefined;
    const person = personFound?.resource;
    if (!person && !role) {
      return undefined;
    }
    const name = person?.name?.[0];
    const display =
      [name?.prefix?.join(' '), name?.given?.join(' '), name?.family].filter(Boolean).join(' ') ||
      (ref.display ?? target);
    return {
      r: {
        ref: target,
        kind,
        display,
        ...mailboxOf([
          vouchedMailbox(roleFound, patientOwner),
          vouchedMailbox(personFound, patientOwner),
          { mailbox: await directoryMailbox(db, person) },
        ]),
        organization: role?.organization?.reference,
        rpps: person?.identifier?.find((i) => i.system === RPPS)?.value,
      },
      active: person?.active !== false && role?.active !== false,
      fictitious: !!person?.meta?.tag?.some((t) => t.system === PRACTITIONER_FLAG_SYSTEM && t.code === 'fictitious'),
    };
  }

  private async members(db: Queryable, teams: CareTeam[], patientOwner: string | null): Promise<Recipient[]> {
    const out: Recipient[] = [];
    for (const team of teams) {
      for (const p of team.participant ?? []) {
        if (!p.member?.reference || (p.period?.end && new Date(p.period.end) < new Date())) {
          continue;
        }
        const coordinator = p.role?.some((r) => r.coding?.some((c) => c.code && COORDINATOR_ROLES.has(c.code)));
        const found = await this.professional(db, p.member, coordinator ? 'coordinator' : 'care-team', patientOwner);
        if (found?.active) {
          found.r.organization ??= p.onBehalfOf?.reference ?? team.managingOrganization?.[0]?.reference;
          out.push(found.r);
        }
      }
    }
    return out;
  }

  /** The hospital's letter for this stay: the newest current DocumentReference whose context is the Encounter. */
  private async letter(db: Queryable, encounterId: string): Promise<DischargeContext['letter']> {
    const docs = await this.search<DocumentReference>(db, 'DocumentReference', [
      ['encounter', `Encounter/${encounterId}`],
      ['status', 'current'],
      ['_sort', '-_lastUpdated'],
    ]);
    const document = docs[0];
    if (!document) {
      return undefined;
    }
    const url = document.content?.[0]?.attachment?.url;
    const binary = url?.startsWith('Binary/') ? await this.get<Binary>(db, url) : undefined;
    return { document, binary };
  }
}

interface Owned<T extends Resource> {
  resource: T & { id: string };
  owner: string | null;
}

/** A mailbox candidate: `mailbox` when usable, `unverified` when one was there but not vouched for. */
interface MailboxCandidate {
  mailbox?: string;
  unverified?: boolean;
}

/**
 * The MSSanté mailbox of a Practitioner, PractitionerRole or Organization, used only when the
 * gateway can vouch for it: the entry belongs to the directory import, or its MSSanté telecoms were
 * written by an operator (mailbox-trust tag), or it belongs to the organization of the patient the
 * discharge is about (which chose it for its own patient). Anyone else's mailbox is not used: a
 * structure registering a professional first must not receive another organization's discharges.
 */
export function vouchedMailbox<T extends Resource & { telecom?: ContactPoint[] }>(
  found: Owned<T> | undefined,
  patientOwner: string | null,
): MailboxCandidate {
  const mailbox = mssanteMailbox(found?.resource.telecom);
  if (!found || !mailbox) {
    return {};
  }
  const vouched =
    found.owner === DIRECTORY_ORG ||
    (patientOwner !== null && found.owner === patientOwner) ||
    hasVerifiedMailbox(found.resource);
  return vouched ? { mailbox } : { unverified: true };
}

/** The first usable mailbox of the candidates, in order; else whether one was set aside as unverified. */
function mailboxOf(candidates: MailboxCandidate[]): Pick<Recipient, 'mailbox' | 'mailboxUnverified'> {
  const mailbox = candidates.find((c) => c.mailbox)?.mailbox;
  if (mailbox) {
    return { mailbox };
  }
  return candidates.some((c) => c.unverified) ? { mailboxUnverified: true } : {};
}

/**
 * The personal (PER) MSSanté mailbox the directory import recorded for the professional, listed or
 * not: an unlisted (liste rouge) mailbox is kept out of every FHIR resource (never published to
 * clients) but the discharge of the professional's own patient may still be sent to it.
 */
async function directoryMailbox(db: Queryable, person: Practitioner | undefined): Promise<string | undefined> {
  const idNat =
    person?.identifier?.find((i) => i.system === IDNATPS && i.value)?.value ??
    person?.identifier?.filter((i) => i.system === RPPS && i.value).map((i) => `8${i.value}`)[0];
  if (!idNat) {
    return undefined;
  }
  return personalMailbox(db, idNat);
}

/** Death at discharge: disposition `exp` (PAM-FR ZFM-2 = 9) or the Patient marked deceased. */
function isDeath(encounter: Encounter, patient: Patient): boolean {
  const disposition = encounter.hospitalization?.dischargeDisposition?.coding?.some((c) => c.code === 'exp');
  return !!disposition || patient.deceasedBoolean === true || !!patient.deceasedDateTime;
}

/** The INSEE commune of residence (home address first). */
function commune(patient: Patient): string | undefined {
  const addresses = [...(patient.address ?? [])].sort((a, b) => Number(b.use === 'home') - Number(a.use === 'home'));
  for (const a of addresses) {
    const code = extensionCode(a.extension, INSEE_CODE_EXTENSION);
    if (code) {
      return code;
    }
  }
  return undefined;
}

/** The INS when the identity is qualified (FR Core identity reliability QUAL); never otherwise. */
export function qualifiedIns(patient: Patient): { value: string; oid: string } | undefined {
  const reliability = patient.extension?.find((e) => e.url === RELIABILITY_EXTENSION);
  const status = reliability?.extension?.find((e) => e.url === 'identityStatus')?.valueCoding?.code;
  if (status !== 'QUAL') {
    return undefined;
  }
  const id = patient.identifier?.find(
    (i) => i.use !== 'old' && INS_OIDS.some((o) => i.system === `urn:oid:${o}`) && i.value,
  );
  return id ? { value: id.value as string, oid: (id.system as string).slice('urn:oid:'.length) } : undefined;
}

function isDmpOpposition(c: Resource): boolean {
  if (c.resourceType !== 'Consent' || c.status !== 'active') {
    return false;
  }
  const feeding = c.category?.some((cat) =>
    cat.coding?.some((x) => x.system === CONSENT_CODES && x.code === 'dmp-feeding'),
  );
  return !!feeding && c.provision?.type === 'deny';
}
