import type { PoolClient } from 'pg';
import type { Encounter, Patient, Resource } from '@medplum/fhirtypes';
import { parseSearchRequest } from '@gw/fhir';
import type { FhirRepository, Principal, StoredResource } from '@gw/store';
import { Hl7ContentError } from '../hl7v2/hl7-text';
import { addOldIdentifiers, buildPatient, cxSystem, markReplaced } from '../hl7v2/adt.mapper';
import type { AdtMessage, PatientData } from '../hl7v2/pam-fr.reader';
import type { Hl7Source } from '../hl7v2/hl7-source.registry';
import { patientLookups, pickPatient, tokenValue } from './patient-identity.rules';
import type { Lookup } from './patient-identity.rules';

const LIMITS = { defaultCount: 50, maxCount: 1000 };

/** A resource to write: the stored version it replaces (if any), the new content and its id. */
export interface IdentityChange {
  existing: StoredResource | undefined;
  resource: Resource;
  id: string;
}

/**
 * Who a message's patient is, for one source inside the caller's transaction: find-or-create by
 * IPP then qualified INS (the lookups travel with the caller's BEGIN, under advisory locks that
 * serialise every message of one IPP), and the merge (A40) and identifier change (A47) links,
 * which lock and read on their own. Writes nothing itself: it hands back the changes to queue.
 */
export class PatientIdentityService {
  constructor(
    private readonly repo: FhirRepository,
    private readonly tx: PoolClient,
    private readonly principal: Principal,
    private readonly source: Hl7Source,
  ) {}

  /** The patient lookups to lock and run with BEGIN (no round trip of their own): IPP, then qualified INS. */
  lookups(p: PatientData, ippSystem: string): { ipp: Lookup; ins?: Lookup } {
    return patientLookups(p, ippSystem);
  }

  /** The stored patient those lookups found, by the matching rule (refused when it calls for a review). */
  pick(
    p: PatientData,
    lookups: { ipp: Lookup; ins?: Lookup },
    all: (l: Lookup) => StoredResource[],
  ): StoredResource | undefined {
    return pickPatient(p, lookups, all);
  }

  /**
   * A40: the prior patient (MRG-1) is replaced by the survivor and its encounters follow; the
   * survivor keeps the prior identifiers as `old` and links to it. Merging into itself (or an
   * unknown prior) only records the prior IPP as `old`.
   */
  async merge(
    adt: AdtMessage,
    survivor: Patient,
    survivorRef: string,
  ): Promise<{ survivor: Patient; changes: IdentityChange[] }> {
    const priorCx = adt.prior.find((c) => c.type === 'PI') ?? adt.prior[0];
    const priorSystem = cxSystem(priorCx, this.source.ippSystem, this.source.sendingFacility, 'ipp');
    const prior = await this.match('Patient', [['identifier', `${priorSystem}|${tokenValue(priorCx.value)}`]], 'MRG-1');
    if (!prior || `Patient/${prior.id}` === survivorRef) {
      return {
        survivor: addOldIdentifiers(survivor, [
          { system: priorSystem, value: priorCx.value, type: { coding: [{ code: 'PI' }] } },
        ]),
        changes: [],
      };
    }
    const priorResource = parse<Patient>(prior) as Patient;
    const changes: IdentityChange[] = [
      { existing: prior, resource: markReplaced(priorResource, survivorRef), id: prior.id },
    ];
    const encounters = await this.repo.search(
      this.principal,
      parseSearchRequest(
        'Encounter',
        [
          ['subject', `Patient/${prior.id}`],
          ['_count', '1000'],
        ],
        LIMITS,
      ),
      true,
      this.tx,
    );
    for (const e of encounters.matches) {
      const enc = parse<Encounter>(e) as Encounter;
      changes.push({ existing: e, resource: { ...enc, subject: { reference: survivorRef } }, id: e.id });
    }
    return { survivor: addOldIdentifiers(survivor, priorResource.identifier ?? [], `Patient/${prior.id}`), changes };
  }

  /** A47: the patient known by the prior identifier now has the new one (refused if another patient has it). */
  async changeIdentifier(adt: AdtMessage, ippSystem: string): Promise<IdentityChange> {
    const priorCx = adt.prior.find((c) => c.type === 'PI') ?? adt.prior[0];
    const priorSystem = cxSystem(priorCx, this.source.ippSystem, this.source.sendingFacility, 'ipp');
    const prior = await this.match('Patient', [['identifier', `${priorSystem}|${tokenValue(priorCx.value)}`]], 'MRG-1');
    if (!prior) {
      throw new Hl7ContentError(
        { segment: 'MRG', field: 1 },
        '204',
        'A47: no patient of this hospital has the prior identifier in MRG-1',
      );
    }
    const clash = await this.match(
      'Patient',
      [['identifier', `${ippSystem}|${tokenValue(adt.patient.ipp?.value ?? '')}`]],
      'PID-3 IPP',
    );
    if (clash && clash.id !== prior.id) {
      throw new Hl7ContentError(
        { segment: 'PID', field: 3 },
        '205',
        'A47: the new identifier already belongs to another patient (use A40 to merge)',
      );
    }
    const current = parse<Patient>(prior) as Patient;
    const updated = addOldIdentifiers(
      buildPatient(current, adt.patient, ippSystem),
      (current.identifier ?? []).filter((i) => i.system === priorSystem && i.value === priorCx.value),
    );
    return { existing: prior, resource: updated, id: prior.id };
  }

  /** Serialised per condition (advisory lock): one Patient per IPP whatever the concurrency. */
  private async match(type: string, pairs: [string, string][], what: string): Promise<StoredResource | undefined> {
    const found = await this.repo.lockAndMatch(this.tx, this.principal, parseSearchRequest(type, pairs, LIMITS));
    if (found.length > 1) {
      throw new Hl7ContentError(
        undefined,
        '207',
        `${what} matches ${found.length} ${type} resources of this hospital; merge them first`,
      );
    }
    return found[0];
  }
}

function parse<T extends Resource>(s: StoredResource | undefined): T | undefined {
  return s?.json && !s.deleted ? (JSON.parse(s.json) as T) : undefined;
}
