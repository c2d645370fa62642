import { randomUUID } from 'node:crypto';
import type { PoolClient } from 'pg';
import type { Consent, Encounter, Patient, Practitioner, Resource } from '@medplum/fhirtypes';
import { parseSearchRequest } from '@gw/fhir';
import type { FhirRepository, NewVersion, Principal, StoredResource, WriteContext } from '@gw/store';
import { Hl7ContentError } from './hl7-text';
import {
  GW,
  IDNATPS,
  addOldIdentifiers,
  buildConsent,
  buildEncounter,
  buildPatient,
  buildPractitioner,
  cxSystem,
  foldStay,
  markReplaced,
} from './fhir-mapping';
import type { Stay, StoredMovement } from './fhir-mapping';
import type { AdtMessage, Cx } from './pam-fr';
import type { Hl7Source } from './sources';

const LIMITS = { defaultCount: 50, maxCount: 1000 };

/** The identity a source writes under: its Organization owns everything it sends. */
export function sourcePrincipal(source: Hl7Source): Principal {
  return { clientId: `hl7-source:${source.id}`, organization: source.organization, admin: false, scopes: ['system/*.cruds'] };
}

/** Escapes a token search value (`,` separates alternatives, `$` composites, `\` escapes). */
function tokenValue(v: string): string {
  return v.replace(/([\\,$|])/g, '\\$1');
}

/**
 * Applies one PAM-FR message inside the caller's transaction: finds or creates the Patient (by IPP,
 * then qualified INS), the médecin traitant, the Encounter (recomputed from the movements) and
 * the Consents, then writes every changed resource in one statement. Returns the references touched.
 */
export class AdtWriter {
  private readonly versions: NewVersion[] = [];
  private readonly touched = new Set<string>();
  private readonly ctx: WriteContext;
  private readonly principal: Principal;

  constructor(
    private readonly repo: FhirRepository,
    private readonly tx: PoolClient,
    private readonly source: Hl7Source,
    messageKey: string,
  ) {
    this.principal = sourcePrincipal(source);
    this.ctx = { principal: this.principal, requestId: messageKey };
  }

  async apply(adt: AdtMessage): Promise<string[]> {
    const facility = this.source.sendingFacility;
    const ippSystem = cxSystem(adt.patient.ipp as Cx, this.source.ippSystem, facility, 'ipp');
    if (adt.event === 'A47') {
      await this.changeIdentifier(adt, ippSystem);
    } else {
      const patient = await this.findPatient(adt, ippSystem);
      const doctorRef = adt.doctor ? await this.practitioner(adt) : undefined;
      const stay = adt.visit ? await this.movements(adt) : undefined;
      const patientId = patient?.id ?? randomUUID();
      const patientRef = `Patient/${patientId}`;
      let resource = buildPatient(parse<Patient>(patient), adt.patient, ippSystem, doctorRef ? { ref: doctorRef, remove: adt.doctor?.remove ?? false } : undefined);
      if (stay?.discharged && stay.modeSortie === '9' && !resource.deceasedDateTime && stay.end) {
        // PAM-FR ZFM-2 = 9: death at discharge.
        resource.deceasedDateTime = stay.end;
        delete resource.deceasedBoolean;
      }
      if (adt.event === 'A40') {
        resource = await this.merge(adt, resource, patientRef);
      }
      this.save(patient, resource, patientId);
      if (stay && adt.visit) {
        await this.encounter(adt, stay, patientRef);
      }
      await this.consents(adt, patientRef);
    }
    await this.repo.persist(this.tx, this.versions);
    return [...this.touched];
  }

  private async findPatient(adt: AdtMessage, ippSystem: string): Promise<StoredResource | undefined> {
    const ipp = adt.patient.ipp as Cx;
    const byIpp = await this.match('Patient', [['identifier', `${ippSystem}|${tokenValue(ipp.value)}`]], 'PID-3 IPP');
    if (byIpp || adt.patient.identityStatus !== 'QUAL' || !adt.patient.ins) {
      return byIpp;
    }
    return this.match('Patient', [['identifier', `urn:oid:${adt.patient.ins.oid}|${adt.patient.ins.value}`]], 'PID-3 INS');
  }

  /** Serialised per condition (advisory lock): one Patient per IPP whatever the concurrency. */
  private async match(type: string, pairs: [string, string][], what: string): Promise<StoredResource | undefined> {
    const found = await this.repo.lockAndMatch(this.tx, this.principal, parseSearchRequest(type, pairs, LIMITS));
    if (found.length > 1) {
      throw new Hl7ContentError(undefined, '207', `${what} matches ${found.length} ${type} resources of this hospital; merge them first`);
    }
    return found[0];
  }

  private async practitioner(adt: AdtMessage): Promise<string> {
    const d = adt.doctor;
    if (!d) {
      throw new Error('unreachable');
    }
    const existing = await this.match('Practitioner', [['identifier', `${IDNATPS}|${d.idNatPs}`]], 'ROL-4');
    const id = existing?.id ?? randomUUID();
    this.save(existing, buildPractitioner(parse<Practitioner>(existing), d), id);
    return `Practitioner/${id}`;
  }

  /** Records the movement, then folds every movement of the visit into the stay. */
  private async movements(adt: AdtMessage): Promise<Stay> {
    const visit = adt.visit as Cx;
    const m = adt.movement;
    if (!m) {
      throw new Error('unreachable');
    }
    const visitKey = `${cxSystem(visit, this.source.visitSystem, this.source.sendingFacility, 'visit')}|${visit.value}`;
    // INSERT keeps an earlier Z99's data (the update is newer information); CANCEL only flags.
    const res = await this.tx.query<{ movement_id: string; trigger: string; cancelled: boolean; data: StoredMovement['data']; seq: string }>(
      `WITH up AS (
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
      [this.source.id, visitKey, m.id, m.originalTrigger, m.data.start ?? null, m.action === 'CANCEL', m.action === 'UPDATE',
        JSON.stringify(m.action === 'CANCEL' ? { trigger: m.originalTrigger } : m.data)],
    );
    return foldStay(res.rows.map((r) => ({ movementId: r.movement_id, trigger: r.trigger, cancelled: r.cancelled, data: r.data, seq: Number(r.seq) })));
  }

  private async encounter(adt: AdtMessage, stay: Stay, patientRef: string): Promise<void> {
    const visit = adt.visit as Cx;
    const visitSystem = cxSystem(visit, this.source.visitSystem, this.source.sendingFacility, 'visit');
    const existing = await this.match('Encounter', [['identifier', `${visitSystem}|${tokenValue(visit.value)}`]], 'PV1-19');
    const resource: Encounter = buildEncounter(parse<Encounter>(existing), stay, {
      visitSystem,
      visit: visit.value,
      patientRef,
      organizationRef: this.source.organization,
      unitSystem: `${GW}/hl7/${encodeURIComponent(this.source.sendingFacility)}/uf`,
    });
    if (stay.destination && !/^([0-9]{2}|2[AB])[0-9]{7}$/.test(stay.destination)) {
      throw new Hl7ContentError({ segment: 'PV1', field: 37 }, '102', `PV1-37 must be the FINESS of the destination (9 characters), got "${stay.destination}"`);
    }
    this.save(existing, resource, existing?.id ?? randomUUID());
  }

  private async consents(adt: AdtMessage, patientRef: string): Promise<void> {
    const wanted: [ 'dmp-feeding' | 'dmp-consultation', string, boolean][] = [];
    if (adt.consent.dmpFeeding) {
      wanted.push(['dmp-feeding', adt.consent.dmpFeeding, adt.consent.dmpFeeding === 'INO']);
    }
    if (adt.consent.consult) {
      wanted.push(['dmp-consultation', adt.consent.consult, adt.consent.consult === 'IC']);
    }
    for (const [policy, code, permit] of wanted) {
      const existing = await this.match('Consent', [['identifier', `${GW}/fhir/NamingSystem/consent|${tokenValue(`${patientRef}/${policy}`)}`]], 'ZFA');
      this.save(existing, buildConsent(parse<Consent>(existing), patientRef, this.source.organization, policy, code, permit), existing?.id ?? randomUUID());
    }
  }

  /** A40: the prior patient (MRG-1) is replaced by the survivor; its encounters follow. */
  private async merge(adt: AdtMessage, survivor: Patient, survivorRef: string): Promise<Patient> {
    const priorCx = adt.prior.find((c) => c.type === 'PI') ?? adt.prior[0];
    const priorSystem = cxSystem(priorCx, this.source.ippSystem, this.source.sendingFacility, 'ipp');
    const prior = await this.match('Patient', [['identifier', `${priorSystem}|${tokenValue(priorCx.value)}`]], 'MRG-1');
    if (!prior || `Patient/${prior.id}` === survivorRef) {
      return addOldIdentifiers(survivor, [{ system: priorSystem, value: priorCx.value, type: { coding: [{ code: 'PI' }] } }]);
    }
    const priorResource = parse<Patient>(prior) as Patient;
    this.save(prior, markReplaced(priorResource, survivorRef), prior.id);
    const encounters = await this.repo.search(this.principal, parseSearchRequest('Encounter', [['subject', `Patient/${prior.id}`], ['_count', '1000']], LIMITS), true, this.tx);
    for (const e of encounters.matches) {
      const enc = parse<Encounter>(e) as Encounter;
      this.save(e, { ...enc, subject: { reference: survivorRef } }, e.id);
    }
    return addOldIdentifiers(survivor, priorResource.identifier ?? [], `Patient/${prior.id}`);
  }

  /** A47: the patient known by the prior identifier now has the new one. */
  private async changeIdentifier(adt: AdtMessage, ippSystem: string): Promise<void> {
    const priorCx = adt.prior.find((c) => c.type === 'PI') ?? adt.prior[0];
    const priorSystem = cxSystem(priorCx, this.source.ippSystem, this.source.sendingFacility, 'ipp');
    const prior = await this.match('Patient', [['identifier', `${priorSystem}|${tokenValue(priorCx.value)}`]], 'MRG-1');
    if (!prior) {
      throw new Hl7ContentError({ segment: 'MRG', field: 1 }, '204', 'A47: no patient of this hospital has the prior identifier in MRG-1');
    }
    const clash = await this.match('Patient', [['identifier', `${ippSystem}|${tokenValue(adt.patient.ipp?.value ?? '')}`]], 'PID-3 IPP');
    if (clash && clash.id !== prior.id) {
      throw new Hl7ContentError({ segment: 'PID', field: 3 }, '205', 'A47: the new identifier already belongs to another patient (use A40 to merge)');
    }
    const current = parse<Patient>(prior) as Patient;
    const updated = addOldIdentifiers(buildPatient(current, adt.patient, ippSystem), (current.identifier ?? []).filter((i) => i.system === priorSystem && i.value === priorCx.value));
    this.save(prior, updated, prior.id);
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
    this.versions.push(existing && !existing.deleted ? this.repo.prepareUpdate(existing, { ...resource, id }, this.ctx) : this.repo.prepareCreate({ ...resource, id }, this.ctx, id));
  }
}

function parse<T extends Resource>(s: StoredResource | undefined): T | undefined {
  return s?.json && !s.deleted ? (JSON.parse(s.json) as T) : undefined;
}

function sameContent(json: string, next: Resource): boolean {
  const { meta: _m1, id: _i1, ...a } = JSON.parse(json) as Resource & Record<string, unknown>;
  const { meta: _m2, id: _i2, ...b } = next as Resource & Record<string, unknown>;
  const profiles = (r: Resource): string => JSON.stringify(r.meta?.profile ?? []);
  return JSON.stringify(a) === JSON.stringify(b) && profiles(JSON.parse(json) as Resource) === profiles(next);
}
