import { randomUUID } from 'node:crypto';
import type { PoolClient, QueryResult } from 'pg';
import type { Consent, Encounter, Patient, Practitioner, Resource } from '@medplum/fhirtypes';
import { parseSearchRequest } from '@gw/fhir';
import { IDENTITY_QUALIFICATION_GRANT, groupMatches, inlineSql, lockAllQuery } from '@gw/store';
import type { FhirRepository, NewVersion, Principal, StoredResource, WriteContext } from '@gw/store';
import type { SearchRequest } from '@gw/fhir';
import { Hl7ContentError } from './hl7-text';
import {
  CONSENT_IDS,
  GW,
  IDNATPS,
  buildConsent,
  buildEncounter,
  buildPatient,
  buildPractitioner,
  cxSystem,
  foldStay,
} from './adt.mapper';
import type { Stay, StoredMovement } from './adt.mapper';
import { PatientIdentityService } from '../identity/patient-identity.service';
import type { IdentityChange } from '../identity/patient-identity.service';
import { tokenValue } from '../identity/patient-identity.rules';
import type { Lookup } from '../identity/patient-identity.rules';

function toMovement(r: {
  movement_id: string;
  trigger: string;
  cancelled: boolean;
  data: StoredMovement['data'];
  seq: string;
}): StoredMovement {
  return { movementId: r.movement_id, trigger: r.trigger, cancelled: r.cancelled, data: r.data, seq: Number(r.seq) };
}
import type { AdtMessage, Cx } from './pam-fr.reader';
import type { Hl7Source } from './hl7-source.registry';

const LIMITS = { defaultCount: 50, maxCount: 1000 };
const POLICIES = ['dmp-feeding', 'dmp-consultation'] as const;
type Policy = (typeof POLICIES)[number];

/**
 * The identity a source writes under: its Organization owns everything it sends; a source the
 * operator marked as qualifying identities may qualify them (its QUAL INS are trusted across organizations).
 */
export function sourcePrincipal(source: Hl7Source): Principal {
  return {
    clientId: `hl7-source:${source.id}`,
    organization: source.organization,
    admin: false,
    scopes: ['system/*.cruds'],
    grants: source.qualifiesIdentity ? [IDENTITY_QUALIFICATION_GRANT] : [],
  };
}

/**
 * Applies one PAM-FR message inside the caller's transaction: finds or creates the Patient (by IPP,
 * then qualified INS: {@link PatientIdentityService}), the médecin traitant, the Encounter (recomputed from the movements) and
 * the Consents, then writes every changed resource in one statement. Returns the references touched.
 */
export class AdtWriter {
  private readonly versions: NewVersion[] = [];
  private readonly touched = new Set<string>();
  private readonly ctx: WriteContext;
  private readonly principal: Principal;
  private readonly identity: PatientIdentityService;

  constructor(
    private readonly repo: FhirRepository,
    private readonly tx: PoolClient,
    private readonly source: Hl7Source,
    messageKey: string,
  ) {
    this.principal = sourcePrincipal(source);
    this.ctx = { principal: this.principal, requestId: messageKey };
    this.identity = new PatientIdentityService(repo, tx, this.principal, source);
  }

  /**
   * Opens the transaction on `tx` and computes every change; the caller persists `versions` (with its
   * ledger row, in one statement) and commits.
   */
  async apply(adt: AdtMessage): Promise<{ versions: NewVersion[]; touched: string[] }> {
    const ippSystem = cxSystem(adt.patient.ipp as Cx, this.source.ippSystem, this.source.sendingFacility, 'ipp');
    if (adt.event === 'A47') {
      await this.tx.query('BEGIN');
      this.queue(await this.identity.changeIdentifier(adt, ippSystem));
    } else {
      await this.applyStay(adt, ippSystem);
    }
    return { versions: this.versions, touched: [...this.touched] };
  }

  /**
   * Everything but A47, in one round trip before the write: BEGIN, the advisory locks, the lookups and
   * the movement go as one multi-statement query (each statement sees the previous ones' effects,
   * and the lookups run after the locks are granted). The lock on the IPP serialises every message
   * of one patient, so its Encounter and Consents need none of their own; the Practitioner, shared
   * between patients, has one.
   */
  private async applyStay(adt: AdtMessage, ippSystem: string): Promise<void> {
    const visit = adt.visit;
    const visitSystem = visit ? cxSystem(visit, this.source.visitSystem, this.source.sendingFacility, 'visit') : '';
    const patientLookups = this.identity.lookups(adt.patient, ippSystem);
    const locked: Lookup[] = [patientLookups.ipp];
    if (adt.doctor) {
      // The shared directory entry, whoever registered it: the IdNatPS or the bare RPPS (repository
      // matching adds the other forms of the same identity; the lock is on the identity).
      locked.push(['Practitioner', [['identifier', `${IDNATPS}|${adt.doctor.idNatPs}`]], 'ROL-4']);
    }
    if (patientLookups.ins) {
      locked.push(patientLookups.ins);
    }
    const lookups: Lookup[] = [...locked];
    if (visit) {
      lookups.push(['Encounter', [['identifier', `${visitSystem}|${tokenValue(visit.value)}`]], 'PV1-19']);
    }
    const search = (l: Lookup): SearchRequest => parseSearchRequest(l[0], l[1], LIMITS);
    const lock = lockAllQuery(locked.map(search));
    const match = this.repo.matchAllQuery(this.principal, lookups.map(search));
    const movement = visit ? this.movementQuery(adt, visitSystem) : undefined;
    const statements = ['BEGIN', inlineSql(lock.sql, lock.values), inlineSql(match.sql, match.values)];
    if (movement) {
      statements.push(inlineSql(movement.sql, movement.values));
    }
    const results = (await this.tx.query(statements.join(';\n'))) as unknown as QueryResult[];
    const found = groupMatches(results[2].rows, lookups.length);
    const one = (l: Lookup): StoredResource | undefined => {
      const i = lookups.indexOf(l);
      if (found[i].length > 1 && l[0] !== 'Consent') {
        throw new Hl7ContentError(
          undefined,
          '207',
          `${l[2]} matches several ${l[0]} resources of this hospital; merge them first`,
        );
      }
      return found[i][0];
    };
    const patient = this.identity.pick(adt.patient, patientLookups, (l) => found[lookups.indexOf(l)]);
    const doctorRef = adt.doctor ? this.practitioner(adt, one(locked[1])) : undefined;
    const stay = movement ? foldStay(results[3].rows.map(toMovement)) : undefined;
    const patientId = patient?.id ?? randomUUID();
    const patientRef = `Patient/${patientId}`;
    let resource = buildPatient(
      parse<Patient>(patient),
      adt.patient,
      ippSystem,
      doctorRef ? { ref: doctorRef, remove: adt.doctor?.remove ?? false } : undefined,
    );
    if (stay?.discharged && stay.modeSortie === '9' && !resource.deceasedDateTime && stay.end) {
      // PAM-FR ZFM-2 = 9: death at discharge.
      resource.deceasedDateTime = stay.end;
      delete resource.deceasedBoolean;
    }
    if (adt.event === 'A40') {
      const merged = await this.identity.merge(adt, resource, patientRef);
      merged.changes.forEach((c) => this.queue(c));
      resource = merged.survivor;
    }
    this.save(patient, resource, patientId);
    if (stay && visit) {
      this.encounter(visit, visitSystem, stay, patientRef, one(lookups[locked.length]));
    }
    await this.consents(adt, patientRef, patient !== undefined);
  }

  /** Records the movement; returns every movement of the visit. INSERT keeps an earlier Z99's data (newer information); CANCEL only flags. */
  private movementQuery(adt: AdtMessage, visitSystem: string): { sql: string; values: unknown[] } {
    const visit = adt.visit as Cx;
    const m = adt.movement as NonNullable<AdtMessage['movement']>;
    return {
      sql: `WITH up AS (
         INSERT INTO hl7_movement AS m (source_id, visit, movement_id, trigger, start_at, cancelled, updated, data)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (source_id, visit, movement_id) DO UPDATE SET
           trigger = CASE WHEN $6 THEN m.trigger ELSE EXCLUDED.trigger END,
           cancelled = m.cancelled OR EXCLUDED.cancelled,
           updated = m.updated OR EXCLUDED.updated,
           data = CASE WHEN $6 OR (m.updated AND NOT EXCLUDED.updated) THEN m.data ELSE EXCLUDED.data END,
           start_at = CASE WHEN $6 OR (m.updated AND NOT EXCLUDED.updated) THEN m.start_at ELSE EXCLUDED.start_at END
         RETURNING movement_id, trigger, cancelled, data, seq)
       SELECT movement_id, trigger, cancelled, data, seq FROM up
       UNION ALL
       SELECT movement_id, trigger, cancelled, data, seq FROM hl7_movement WHERE source_id = $1 AND visit = $2 AND movement_id <> $3`,
      values: [
        this.source.id,
        `${visitSystem}|${visit.value}`,
        m.id,
        m.originalTrigger,
        m.data.start ?? null,
        m.action === 'CANCEL',
        m.action === 'UPDATE',
        JSON.stringify(m.action === 'CANCEL' ? { trigger: m.originalTrigger } : m.data),
      ],
    };
  }

  /**
   * The médecin traitant: a known RPPS is referenced as it is. The hospital fills in (names) only an
   * entry it created itself from HL7 and the directory has not taken over; another structure's or
   * the directory import's entry (names, mailbox) is never changed by a feed.
   */
  private practitioner(adt: AdtMessage, existing: StoredResource | undefined): string {
    const d = adt.doctor as NonNullable<AdtMessage['doctor']>;
    if (
      existing &&
      !existing.deleted &&
      this.repo.writeRefusal(this.principal, existing, buildPractitioner(parse<Practitioner>(existing), d))
    ) {
      this.touched.add(`Practitioner/${existing.id}`);
      return `Practitioner/${existing.id}`;
    }
    const id = existing?.id ?? randomUUID();
    this.save(existing, buildPractitioner(parse<Practitioner>(existing), d), id);
    return `Practitioner/${id}`;
  }

  private encounter(
    visit: Cx,
    visitSystem: string,
    stay: Stay,
    patientRef: string,
    existing: StoredResource | undefined,
  ): void {
    if (stay.destination && !/^([0-9]{2}|2[AB])[0-9]{7}$/.test(stay.destination)) {
      throw new Hl7ContentError(
        { segment: 'PV1', field: 37 },
        '102',
        `PV1-37 must be the FINESS of the destination (9 characters), got "${stay.destination}"`,
      );
    }
    const resource: Encounter = buildEncounter(parse<Encounter>(existing), stay, {
      visitSystem,
      visit: visit.value,
      patientRef,
      organizationRef: this.source.organization,
      unitSystem: `${GW}/hl7/${encodeURIComponent(this.source.sendingFacility)}/uf`,
    });
    this.save(existing, resource, existing?.id ?? randomUUID());
  }

  /**
   * ZFA: one Consent per patient and policy, updated in place, found by its identifier (derived from
   * the patient id, hence a second lookup, and only for a patient already known).
   */
  private async consents(adt: AdtMessage, patientRef: string, knownPatient: boolean): Promise<void> {
    const codes: Record<Policy, string | undefined> = {
      'dmp-feeding': adt.consent.dmpFeeding,
      'dmp-consultation': adt.consent.consult,
    };
    const wanted = POLICIES.filter((policy) => codes[policy]);
    if (wanted.length === 0) {
      return;
    }
    const existing = knownPatient
      ? await this.repo.matchAll(
          this.tx,
          this.principal,
          wanted.map((policy) =>
            parseSearchRequest(
              'Consent',
              [['identifier', `${CONSENT_IDS}|${tokenValue(`${patientRef}/${policy}`)}`]],
              LIMITS,
            ),
          ),
        )
      : wanted.map(() => []);
    wanted.forEach((policy, i) => {
      const code = codes[policy];
      if (code) {
        const current = existing[i][0];
        const permit = code === 'INO' || code === 'IC';
        this.save(
          current,
          buildConsent(parse<Consent>(current), patientRef, this.source.organization, policy, code, permit),
          current?.id ?? randomUUID(),
        );
      }
    });
  }

  /** Queues a change decided by the identity service. */
  private queue(c: IdentityChange): void {
    this.save(c.existing, c.resource, c.id);
  }

  /** Queues a version unless nothing but meta would change (replays and unchanged PID cost no write). */
  private save(existing: StoredResource | undefined, resource: Resource, id: string): void {
    this.touched.add(`${resource.resourceType}/${id}`);
    if (existing && !existing.deleted && existing.json && sameContent(existing.json, resource)) {
      return;
    }
    const pending = this.versions.findIndex((v) => v.resourceType === resource.resourceType && v.id === id);
    if (pending >= 0) {
      this.versions.splice(pending, 1);
    }
    this.versions.push(
      existing && !existing.deleted
        ? this.repo.prepareUpdate(existing, { ...resource, id }, this.ctx)
        : this.repo.prepareCreate({ ...resource, id }, this.ctx, id),
    );
  }
}

function parse<T extends Resource>(s: StoredResource | undefined): T | undefined {
  return s?.json && !s.deleted ? (JSON.parse(s.json) as T) : undefined;
}

function sameContent(json: string, next: Resource): boolean {
  const stored = JSON.parse(json) as Resource;
  const content = (r: Resource): string => JSON.stringify({ ...r, id: undefined, meta: undefined });
  return (
    content(stored) === content(next) &&
    JSON.stringify(stored.meta?.profile ?? []) === JSON.stringify(next.meta?.profile ?? [])
  );
}
