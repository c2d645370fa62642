import { GatewayError, scopeAllows } from '@gw/platform';
import type { Logger } from '@gw/platform';
import { actorOf } from '@gw/store';
import type { AuditLog, FhirRepository, Principal } from '@gw/store';
import type { CompiledMeasure, MeasureCatalogue } from './catalogue';
import { CareGapsEvaluator, GAP_STATUSES, measuresInForce } from './care-gaps';
import type { PatientGaps, RequestedGapStatus } from './care-gaps';
import { careGapsJson } from './care-gaps.report';
import type { MeasureEvaluator, Period } from './evaluator';
import { resolveScope } from './subject-scope.policy';
import type { ScopeLookup } from './subject-scope.policy';
import { parsePeriod } from './indicators.service';

/** `$care-gaps` parameters as received (repeatable ones as lists). */
export interface CareGapsParams {
  periodStart?: string;
  periodEnd?: string;
  subject?: string;
  measureId?: string[];
  status?: string[];
}

export interface CareGapsAnswer {
  period: Period;
  patients: PatientGaps[];
  /** The Parameters resource as JSON text, patient by patient. */
  json: () => Generator<string>;
}

/**
 * `Measure/$care-gaps` with the gateway's rules: the same subjects and callers as recall lists
 * (a structure's own patients, a GP's patientèle among them; never for a CPTS), a person only if
 * their profession reads clinical content and only the patients the care-access policy lets them
 * read; every patient listed is audited.
 */
export class CareGapsService {
  private readonly gaps: CareGapsEvaluator;

  constructor(
    private readonly repo: FhirRepository,
    private readonly catalogue: MeasureCatalogue,
    evaluator: MeasureEvaluator,
    private readonly audit: AuditLog,
    private readonly logger: Logger,
    private readonly scopeLookup: ScopeLookup,
  ) {
    this.gaps = new CareGapsEvaluator(evaluator);
  }

  async careGaps(p: Principal, params: CareGapsParams, requestId?: string): Promise<CareGapsAnswer> {
    const started = Date.now();
    if (!scopeAllows(p.scopes, 'Measure', 'r') && !p.admin) {
      throw new GatewayError('forbidden', { text: 'The token\'s scopes do not allow "r" on Measure' });
    }
    const period = parsePeriod(params.periodStart, params.periodEnd);
    const statuses = parseStatuses(params.status);
    const measures = this.measures(params.measureId, period);
    const subject = params.subject ?? (p.person ? p.person.practitioner : p.admin ? undefined : p.organization);
    if (!subject) {
      throw new GatewayError('invalid', { text: 'subject is required', expression: 'subject' });
    }
    if (!/^(Organization|Practitioner|Patient)\//.test(subject)) {
      throw new GatewayError('invalid', {
        text: 'subject must be Practitioner/[id], Organization/[id] or Patient/[id]',
        expression: 'subject',
      });
    }
    const onePatient = subject.startsWith('Patient/');
    if (p.person) {
      await this.checkPerson(p, onePatient ? subject.slice('Patient/'.length) : undefined);
    }
    const scope = await resolveScope(this.scopeLookup, p, subject, onePatient ? 'subject' : 'subject-list');
    let patients = await this.gaps.evaluate(measures, {
      period,
      scope,
      listFor: p.admin ? '*' : p.organization,
      // What the caller may read: its own organization's records and facts (like a recall list).
      factOwners: p.admin ? undefined : [p.organization],
      statuses,
      notApplicable: onePatient,
    });
    if (p.person && patients.length > 0) {
      // A person sees only the patients they may read now (an opposition, an ended participation).
      const readable = await this.repo.readableIds(
        p,
        'Patient',
        patients.map((x) => x.patientId),
      );
      patients = patients.filter((x) => readable.has(x.patientId));
    }
    const ids = [...new Set(patients.flatMap((x) => [x.patientId, ...x.otherRecords]))];
    this.audit.record({
      ...actorOf(p),
      interaction: 'operation:care-gaps',
      resourceType: 'Measure',
      entity: [...measures.map((m) => `Measure/${m.id}`), subject, ...ids.map((id) => `Patient/${id}`)],
      patients: onePatient ? [...new Set([subject.slice('Patient/'.length), ...ids])] : ids,
      outcome: 200,
      requestId,
    });
    this.logger.info(
      { measures: measures.length, patients: patients.length, ms: Date.now() - started },
      'care gaps evaluated',
    );
    return {
      period,
      patients,
      json: () => careGapsJson(patients, { period, catalogue: this.catalogue }),
    };
  }

  /** The Measures asked for (each must exist), or every Measure in force on the period's end. */
  private measures(ids: string[] | undefined, period: Period): CompiledMeasure[] {
    if (ids && ids.length > 0) {
      return [...new Set(ids)].map((id) => {
        const m = this.catalogue.get(id);
        if (!m) {
          throw new GatewayError('not-found', { text: `Measure/${id} is not in the indicator catalogue` });
        }
        return m;
      });
    }
    return measuresInForce([...this.catalogue.measures.values()], period.end);
  }

  /**
   * Care gaps tell clinical facts of named patients: a person gets them only if their profession
   * reads clinical content (the sharing matrix), and for one patient only a patient they may read.
   */
  private async checkPerson(p: Principal, patientId: string | undefined): Promise<void> {
    if (!this.repo.readsType(p, 'Observation')) {
      throw new GatewayError('forbidden', {
        text: 'Care gaps show clinical facts of named patients: only professionals whose profession reads clinical content get them (the sharing matrix)',
      });
    }
    if (patientId && !(await this.repo.readableIds(p, 'Patient', [patientId])).has(patientId)) {
      throw new GatewayError('not-found', { text: `Patient/${patientId} not found` });
    }
  }
}

function parseStatuses(given: string[] | undefined): RequestedGapStatus[] {
  if (!given || given.length === 0) {
    return [...GAP_STATUSES];
  }
  for (const s of given) {
    if (!(GAP_STATUSES as readonly string[]).includes(s)) {
      throw new GatewayError('invalid', {
        text: `status must be ${GAP_STATUSES.join(' or ')} (got ${s})`,
        expression: 'status',
      });
    }
  }
  return [...new Set(given)] as RequestedGapStatus[];
}
