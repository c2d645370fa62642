import { createHash, randomUUID } from 'node:crypto';
import type { PoolClient, QueryResult } from 'pg';
import type {
  Binary,
  Bundle,
  BundleEntry,
  CareTeam,
  CareTeamParticipant,
  DocumentReference,
  OperationOutcome,
  OperationOutcomeIssue,
  Patient,
  Practitioner,
  Provenance,
  Organization,
  Reference,
  Resource,
} from '@medplum/fhirtypes';
import { GW, IDNATPS, RELIABILITY_CODES, RELIABILITY_EXTENSION, parseSearchRequest } from '@gw/fhir';
import type { SearchRequest } from '@gw/fhir';
import { GatewayError, scopeAllows } from '@gw/platform';
import { groupMatches, inlineSql } from '@gw/store';
import type { ExtraStatement, FhirRepository, NewVersion, Principal, StoredResource, WriteContext } from '@gw/store';
import { PATIENT_PLACEHOLDER, withoutBytes } from './extraction';
import type { DescribedExtraction, ExtractedPractitioner, Extraction, PatientTraits } from './extraction';
import { readIntakeInput } from './intake-input';
import type { CdaReader } from '../cda/cda-read.pool';
import type { IntakeInput, IntakeReader } from './intake-input';
import type { PatientMatcher } from '../identity/matcher';
import { normaliseTrait, usableIns } from '../identity/matching.rules';
import type { IdentityReviewQueue, ReviewDecision } from '../identity/review-queue';
import { TRE_R259 } from '../terminology/code-systems';

/**
 * What an intake channel gets back. `created`: the documents and facts are written (bundle);
 * `review`: the patient could not be matched safely, the document waits in the identity review
 * queue (reviews: the queue ids); `rejected`: nothing written (outcome says why).
 */
export interface IntakeResult {
  status: 'created' | 'review' | 'rejected';
  bundle?: Bundle;
  outcome: OperationOutcome;
  reviews?: string[];
}

/**
 * The one intake pipeline behind POST /ingest/documents, the MHD recipient, the mailbox, HPRIM and
 * portability imports. Contract (design): see docs/intake.md.
 */
export interface IntakePipelineApi {
  /** Reads the body (CDA, IHE XDM zip, HPRIM) and writes what it holds for the principal's organization. */
  ingest(p: Principal, input: IntakeInput): Promise<IntakeResult>;
  /** Writes extractions a reader already made (HPRIM once mapped, portability entries). */
  ingestExtractions(p: Principal, extractions: Extraction[], source: string): Promise<IntakeResult>;
}

/** Source prefix of the identity reviews the pipeline opens (`intake:<intake_document id>`). */
export const INTAKE_REVIEW_PREFIX = 'intake:';
/** DocumentReference.masterIdentifier / identifier systems: the CDA id and setId as the document gives them. */
export const CDA_DOCUMENT_ID = `${GW}/fhir/NamingSystem/cda-document-id`;
export const CDA_SET_ID = `${GW}/fhir/NamingSystem/cda-set-id`;
const BIRTH_PLACE = 'http://hl7.org/fhir/StructureDefinition/patient-birthPlace';
const INSEE_CODE = 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code';
/**
 * How a Patient created by the intake got its traits. FR Core's methodCollection codes (SM, CV, INSI,
 * CB, RFID) all describe a collection at the desk; none says "read from a received document".
 */
export const IDENTITY_METHOD_COLLECTION = `${GW}/fhir/CodeSystem/identity-method-collection`;
const LIMITS = { defaultCount: 50, maxCount: 1000 };
/** Rows read by a one-condition lookup whose other conditions are checked in code: a patient's CareTeams, a document's versions. */
const FEW = 100;
/** Types every document writes besides its facts. */
/**
 * Largest original kept inline as Binary.data: the FHIR validator refuses strings over 1 MB, and
 * base64 adds a third. A larger original stays in intake_document, served by GET /ingest/documents/{id}/content.
 */
export const MAX_INLINE_BINARY = 750_000;
const DOCUMENT_TYPES = ['Patient', 'DocumentReference', 'Binary', 'Provenance', 'Practitioner', 'CareTeam'];

/** One extraction's outcome, before the results of a multi-document body are put together. */
interface FiledOne {
  status: 'created' | 'review';
  entries: BundleEntry[];
  review?: string;
  issues: OperationOutcomeIssue[];
}

/** What a document's filing wrote: the answer's entries, the facts (replaced by a later version), the DocumentReference. */
interface Written {
  entries: BundleEntry[];
  facts: string[];
  documentRef: string;
  /** The Binary holding the original bytes (a document small enough to be inline). */
  binary?: string;
}

interface StageRow {
  id: string;
  owner: string;
  p: Principal;
  source: string;
  ex: Extraction;
  status: 'filed' | 'review';
  written?: Written;
}

interface StagedRow {
  id: string;
  owner: string;
  principal: Principal;
  source: string;
  content_type: string;
  raw: Buffer | null;
  extraction: DescribedExtraction;
  status: 'filed' | 'review' | 'rejected';
  result: BundleEntry[] | null;
  review_id: string | null;
}

/**
 * The intake pipeline: each Extraction is filed in ONE transaction, through the store's repository
 * as the caller (the access rules apply): the patient matched among the owner organization's
 * Patients (or created from the traits, or held in the identity review queue), the original as
 * DocumentReference + Binary, the facts with a Provenance each, the médecin traitant on the
 * patient's care circle. The document is staged in `intake_document`: the same document again
 * answers the same Bundle, a held document is filed when its review is decided.
 */
export class IntakePipeline implements IntakePipelineApi {
  private textReader?: IntakeReader;

  constructor(
    private readonly repo: FhirRepository,
    private readonly matcher: PatientMatcher,
    private readonly reviews: IdentityReviewQueue,
    /** The gateway's base URL: an original too large for a Binary is served from the staging table there. */
    private readonly baseUrl: string,
    /** Reads a CDA's bytes (a {@link CdaReadPool}'s threads in the gateway; this thread by default). */
    private readonly readDocument?: CdaReader,
  ) {
    this.reviews.registerResolver(INTAKE_REVIEW_PREFIX, (source, decision) => this.resume(source, decision));
  }

  /** The reader of text bodies (HPRIM), registered by its owner. */
  registerTextReader(reader: IntakeReader): void {
    this.textReader = reader;
  }

  /**
   * The original as received, for its owner organization (an operator: any); undefined when there
   * is none (unknown id, another organization's, or discarded after a rejected review).
   */
  async original(p: Principal, id: string): Promise<{ contentType: string; content: Buffer } | undefined> {
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id)) return undefined;
    // A document filed with an inline Binary keeps its bytes there only (a third copy in this row
    // was one more compression and transfer of the whole document per filing): the original is
    // that Binary's first version, which no later write changes.
    const res = await this.repo.pool.query<{ content_type: string; raw: Buffer | null; binary: string | null }>(
      `SELECT content_type, raw, (SELECT e->>'fullUrl' FROM jsonb_array_elements(result) e
                                   WHERE raw IS NULL AND e->>'fullUrl' LIKE 'Binary/%' LIMIT 1) AS binary
         FROM intake_document WHERE id = $1 AND ($2::boolean OR owner = $3)`,
      [id, p.admin, p.organization ?? null],
    );
    const row = res.rows[0];
    const json = row?.binary
      ? await this.repo.firstVersionJson('Binary', row.binary.slice('Binary/'.length))
      : undefined;
    const content = row?.raw ?? (json ? Buffer.from((JSON.parse(json) as Binary).data ?? '', 'base64') : undefined);
    return row && content ? { contentType: row.content_type, content } : undefined;
  }

  /**
   * Reads a body into extractions; throws a GatewayError naming the element when it cannot. `p`:
   * the caller the extractions will be filed for (the text reader needs its organization).
   */
  read(input: IntakeInput, p?: Principal): Promise<Extraction[]> {
    return readIntakeInput(input, this.textReader, p, this.readDocument);
  }

  /** Never throws a GatewayError: an unreadable body or a refused write is answered `rejected` (nothing written). */
  async ingest(p: Principal, input: IntakeInput): Promise<IntakeResult> {
    try {
      const extractions = await this.read(input, p);
      return await this.ingestExtractions(p, extractions, input.source ?? 'api');
    } catch (err) {
      if (err instanceof GatewayError) {
        return { status: 'rejected', outcome: err.toOutcome() };
      }
      throw err;
    }
  }

  async ingestExtractions(p: Principal, extractions: Extraction[], source: string): Promise<IntakeResult> {
    checkScopes(p, extractions);
    const owner = ownerOf(p);
    const done: FiledOne[] = [];
    const failed: GatewayError[] = [];
    for (const ex of extractions) {
      try {
        done.push(await this.fileOne(p, owner, ex, source));
      } catch (err) {
        // One document's refusal rolls back that document only (its own transaction); the others of a zip go on.
        if (!(err instanceof GatewayError)) throw err;
        failed.push(err);
      }
    }
    if (done.length === 0 && failed.length > 0) {
      throw failed[0];
    }
    const entries = done.flatMap((d) => d.entries);
    const reviews = done.flatMap((d) => (d.review ? [d.review] : []));
    const issues = [...failed.flatMap((f) => f.issues), ...done.flatMap((d) => d.issues)];
    const filed = done.filter((d) => d.status === 'created').length;
    issues.unshift({
      severity: 'information',
      code: 'informational',
      diagnostics: `${filed} document(s) filed, ${reviews.length} held for identity review, ${failed.length} refused`,
    });
    return {
      status: reviews.length > 0 ? 'review' : 'created',
      bundle: entries.length > 0 ? { resourceType: 'Bundle', type: 'transaction-response', entry: entries } : undefined,
      outcome: { resourceType: 'OperationOutcome', issue: issues },
      ...(reviews.length > 0 ? { reviews } : {}),
    };
  }

  /** One document, one transaction: already filed → its first answer; otherwise matched, held or filed. */
  private async fileOne(p: Principal, owner: string, ex: Extraction, source: string): Promise<FiledOne> {
    const issues = ex.warnings.map((w): OperationOutcomeIssue => ({
      severity: 'warning',
      code: 'informational',
      diagnostics: w.text,
      expression: [w.location],
    }));
    return this.repo.withTransaction(
      async (tx) => {
        // One round trip (simple protocol): BEGIN, the locks, the document's staged row. Two posts of
        // one document are serialised (the second sees what the first filed), and so are two documents
        // of one new patient (the second matches what the first created); always in this order.
        const first = (await tx.query(
          [
            'BEGIN',
            inlineSql('SELECT pg_advisory_xact_lock(hashtext($1))', [`intake|${owner}|${ex.document.uniqueId}`]),
            inlineSql('SELECT pg_advisory_xact_lock(hashtext($1))', [
              `intake-patient|${owner}|${identityKey(ex.patient)}`,
            ]),
            inlineSql(
              `SELECT * FROM intake_document WHERE owner = $1 AND unique_id = $2 AND status IN ('filed', 'review')`,
              [owner, ex.document.uniqueId],
            ),
          ].join(';\n'),
        )) as unknown as QueryResult<StagedRow>[];
        const prior = first[3].rows[0];
        if (prior?.status === 'filed') {
          const already: OperationOutcomeIssue = {
            severity: 'information',
            code: 'duplicate',
            diagnostics: `Document ${ex.document.uniqueId} was already filed: nothing new written`,
          };
          return { status: 'created', entries: prior.result ?? [], issues: [already] };
        }
        const match = prior ? undefined : await this.matcher.match(tx, owner, ex.patient);
        if (prior || match?.kind === 'review' || (match?.kind === 'none' && ex.neverCreatePatient)) {
          const review = await this.hold(tx, p, owner, ex, source, prior, match);
          issues.push({
            severity: 'information',
            code: 'incomplete',
            diagnostics: `The patient could not be matched safely: the document waits in the identity review queue (${review})`,
          });
          return { status: 'review', entries: [], review, issues };
        }
        const patientId = match?.kind === 'matched' ? match.patientId : undefined;
        const id = randomUUID();
        // The staging row goes in the same statement as the resources.
        const written = await this.write(tx, p, ex, patientId, id, (w) =>
          stageStatement({ id, owner, p, source, ex, status: 'filed', written: w }),
        );
        return { status: 'created', entries: written.entries, issues };
      },
      { begin: false },
    );
  }

  /** Stages the document as held and opens (or refreshes) its identity review. */
  private async hold(
    tx: PoolClient,
    p: Principal,
    owner: string,
    ex: Extraction,
    source: string,
    prior: StagedRow | undefined,
    match: Awaited<ReturnType<PatientMatcher['match']>> | undefined,
  ): Promise<string> {
    if (prior?.review_id) {
      return prior.review_id;
    }
    const reason = match?.kind === 'review' ? match.reason : 'no-match-never-create';
    const candidates = match?.kind === 'review' ? match.candidates : [];
    // Another version of the document already waits for its patient (an HPRIM part filed again
    // once a code is mapped, a CDA's next version): the newest version takes its place in the open
    // review rather than opening a second one; an older version changes nothing.
    const waiting = ex.document.setId ? await heldVersion(tx, owner, ex.document.setId) : undefined;
    if (waiting?.review_id) {
      if (ex.document.version > waiting.version) {
        await tx.query(
          `UPDATE intake_document SET unique_id = $2, content_type = $3, raw = $4, extraction = $5, principal = $6,
             client_id = $7, source = $8, updated_at = now() WHERE id = $1`,
          [
            waiting.id,
            ex.document.uniqueId,
            ex.document.contentType,
            ex.document.content,
            JSON.stringify(withoutBytes(ex)),
            JSON.stringify(p),
            p.clientId,
            source,
          ],
        );
        await this.reviews.open(tx, {
          owner,
          source: `${INTAKE_REVIEW_PREFIX}${waiting.id}`,
          traits: ex.patient,
          reason,
          candidates,
        });
      }
      return waiting.review_id;
    }
    const id = randomUUID();
    await stage(tx, { id, owner, p, source, ex, status: 'review' });
    const review = await this.reviews.open(tx, {
      owner,
      source: `${INTAKE_REVIEW_PREFIX}${id}`,
      traits: ex.patient,
      reason,
      candidates,
    });
    await tx.query('UPDATE intake_document SET review_id = $2 WHERE id = $1', [id, review]);
    return review;
  }

  /**
   * The identity review's resolver: accept files the held document on the chosen Patient, create
   * files it on a new one, reject discards it (the bytes are dropped, the row stays as a trace).
   * Runs as the document's sender: the records are its organization's.
   */
  private async resume(source: string, decision: ReviewDecision): Promise<void> {
    const id = source.slice(INTAKE_REVIEW_PREFIX.length);
    await this.repo.withTransaction(async (tx) => {
      const found = await tx.query<StagedRow>(`SELECT * FROM intake_document WHERE id = $1 FOR UPDATE`, [id]);
      const row = found.rows[0];
      // Already acted on (the review row's own update failed after this resolver committed): done.
      if (row && row.status !== 'review') {
        return;
      }
      if (!row) {
        throw new GatewayError('not-found', { text: `Held intake document ${id} not found` });
      }
      if (decision.kind === 'reject') {
        await tx.query(
          `UPDATE intake_document SET status = 'rejected', raw = NULL, extraction = NULL, updated_at = now() WHERE id = $1`,
          [id],
        );
        return;
      }
      const ex: Extraction = {
        ...row.extraction,
        document: { ...row.extraction.document, content: row.raw ?? Buffer.alloc(0) },
      };
      await this.write(
        tx,
        row.principal,
        ex,
        decision.kind === 'accept' ? decision.patientId : undefined,
        id,
        (w) => (bind) => ({
          ctes: [
            `staged AS (UPDATE intake_document SET status = 'filed', result = ${bind(JSON.stringify(w.entries))}::jsonb,
            raw = CASE WHEN ${bind(w.binary ?? null)}::text IS NULL THEN raw END,
            written = ${bind(w.facts)}::text[], document_ref = ${bind(w.documentRef)}, updated_at = now() WHERE id = ${bind(id)})`,
          ],
          select: 'SELECT 1',
        }),
      );
    });
  }

  /**
   * Writes one document for a known Patient (or creates it from the traits): every version is
   * prepared (validated, access-checked as `p`) first, then persisted in one statement.
   */
  private async write(
    tx: PoolClient,
    p: Principal,
    ex: Extraction,
    patientId: string | undefined,
    intakeId: string,
    /** What to write in the same statement as the resources (the staging row), from what is written. */
    with_: (w: Written) => ExtraStatement,
  ): Promise<Written> {
    const ctx: WriteContext = { principal: p };
    const versions: NewVersion[] = [];
    const entries: BundleEntry[] = [];
    const add = (v: NewVersion, created: boolean): void => {
      versions.push(v);
      entries.push({
        fullUrl: `${v.resourceType}/${v.id}`,
        response: {
          status: created ? '201 Created' : '200 OK',
          location: `${v.resourceType}/${v.id}/_history/${v.versionId}`,
          lastModified: v.lastUpdated,
        },
      });
    };
    const doc = ex.document;
    const pcpRef = ex.pcp?.idNatPs ? await this.practitioner(tx, ctx, ex.pcp, add) : undefined;

    // The patient: the matched one (its médecin traitant updated), or a new one from the traits.
    let patientRef: string;
    if (patientId) {
      patientRef = `Patient/${patientId}`;
      const stored = await this.locked(tx, 'Patient', patientId);
      if (!stored?.json || stored.deleted) {
        throw new GatewayError('not-found', { text: `${patientRef} not found`, expression: 'patient' });
      }
      if (pcpRef) {
        const patient = JSON.parse(stored.json) as Patient;
        if (patient.generalPractitioner?.[0]?.reference !== pcpRef) {
          patient.generalPractitioner = [{ reference: pcpRef }];
          add(this.repo.prepareUpdate(stored, patient, ctx), false);
        }
      }
    } else {
      const v = this.repo.prepareCreate(patientFromTraits(ex.patient, pcpRef), ctx);
      patientRef = `Patient/${v.id}`;
      add(v, true);
    }
    if (pcpRef) {
      // A Patient created by this document has no care circle yet: nothing to look up.
      await this.careTeam(tx, ctx, patientRef, pcpRef, doc.date, add, patientId === undefined);
    }

    // The original: Binary + DocumentReference; a previous version of the setId is superseded.
    const binaryId = randomUUID();
    const docId = randomUUID();
    const docRef = `DocumentReference/${docId}`;
    const relatesTo: DocumentReference['relatesTo'] = [];
    const replacedFacts: string[] = [];
    if (doc.setId) {
      for (const old of await this.previousVersions(tx, p, doc.setId, doc.version)) {
        const oldDoc = JSON.parse(old.json as string) as DocumentReference;
        add(this.repo.prepareUpdate(old, { ...oldDoc, status: 'superseded' }, ctx), false);
        relatesTo.push({ code: 'replaces', target: { reference: `DocumentReference/${old.id}` } });
        const facts = await tx.query<{ written: string[] }>(
          'SELECT written FROM intake_document WHERE document_ref = $1',
          [`DocumentReference/${old.id}`],
        );
        replacedFacts.push(...facts.rows.flatMap((r) => r.written));
      }
    }
    const inline = doc.content.length <= MAX_INLINE_BINARY;
    if (inline) {
      const binary = {
        resourceType: 'Binary' as const,
        contentType: doc.contentType,
        data: doc.content.toString('base64'),
      };
      add(
        this.repo.prepareCreate({ ...binary, securityContext: { reference: docRef } }, ctx, binaryId, {
          encodedData: true,
        }),
        true,
      );
    }
    const documentReference: DocumentReference = {
      resourceType: 'DocumentReference',
      status: 'current',
      masterIdentifier: { system: CDA_DOCUMENT_ID, value: doc.uniqueId },
      ...(doc.setId ? { identifier: [{ system: CDA_SET_ID, value: doc.setId }] } : {}),
      type: { coding: [doc.type], ...(doc.type.display ? { text: doc.type.display } : {}) },
      ...(doc.category?.length ? { category: doc.category.map((c) => ({ coding: [c] })) } : {}),
      subject: { reference: patientRef },
      ...(doc.date ? { date: instant(doc.date) } : {}),
      ...(doc.author ? { author: [practitionerReference(doc.author, pcpRef, ex.pcp)] } : {}),
      ...(doc.custodian ? { custodian: organizationReference(doc.custodian) } : {}),
      ...(doc.title ? { description: doc.title } : {}),
      ...(relatesTo.length > 0 ? { relatesTo } : {}),
      content: [
        {
          attachment: {
            contentType: doc.contentType,
            url: inline ? `Binary/${binaryId}` : `${this.baseUrl}/ingest/documents/${intakeId}/content`,
            size: doc.content.length,
            hash: createHash('sha1').update(doc.content).digest('base64'),
            ...(doc.title ? { title: doc.title } : {}),
          },
        },
      ],
      ...(doc.period || doc.encounterIdentifier
        ? {
            context: {
              ...(doc.period ? { period: doc.period } : {}),
              ...(doc.encounterIdentifier ? { related: [{ identifier: doc.encounterIdentifier }] } : {}),
            },
          }
        : {}),
    };
    add(this.repo.prepareCreate(documentReference, ctx, docId), true);

    // The facts: ids given up front so that the document's own urn:uuid references resolve.
    const ids = new Map<string, string>([[PATIENT_PLACEHOLDER, patientRef]]);
    const planned = ex.resources.map((r) => ({ ...r, id: randomUUID() }));
    for (const r of planned) {
      if (r.fullUrl) ids.set(r.fullUrl, `${r.resource.resourceType}/${r.id}`);
    }
    const facts: string[] = [];
    for (const r of planned) {
      const ref = `${r.resource.resourceType}/${r.id}`;
      facts.push(ref);
      add(this.repo.prepareCreate(rewriteReferences(r.resource, ids), ctx, r.id), true);
    }
    if (facts.length > 0) {
      // One Provenance per document, its targets every fact filed from it (Provenance.target is 1..*:
      // one activity, many results): each fact has its Provenance, for a fraction of the writes.
      const provenance: Provenance = {
        resourceType: 'Provenance',
        target: facts.map((reference) => ({ reference })),
        recorded: new Date().toISOString(),
        agent: [
          {
            type: {
              coding: [{ system: 'http://terminology.hl7.org/CodeSystem/provenance-participant-type', code: 'author' }],
            },
            who: { reference: p.organization },
            onBehalfOf: { reference: p.organization },
          },
        ],
        entity: [{ role: 'source', what: { reference: docRef } }],
      };
      add(this.repo.prepareCreate(provenance, ctx), true);
    }
    // A new version's facts replace the previous version's: those are deleted (their history stays).
    for (const old of replacedFacts) {
      const [type, id] = old.split('/');
      await this.repo.delete(type, id, ctx, tx);
      entries.push({ fullUrl: old, response: { status: '204 No Content' } });
    }
    const written: Written = {
      entries,
      facts,
      documentRef: docRef,
      ...(inline ? { binary: `Binary/${binaryId}` } : {}),
    };
    await this.repo.persist(tx, versions, with_(written));
    return written;
  }

  /** The médecin traitant by IdNatPS in the directory (the shared entry, whoever registered it); registered when unknown. */
  private async practitioner(
    tx: PoolClient,
    ctx: WriteContext,
    pcp: ExtractedPractitioner,
    add: (v: NewVersion, created: boolean) => void,
  ): Promise<string> {
    const idNatPs = pcp.idNatPs as string;
    const lookup = async (): Promise<StoredResource | undefined> => {
      const [found] = await this.repo.matchAll(tx, ctx.principal, [
        search('Practitioner', [['identifier', `${IDNATPS}|${idNatPs}`]]),
      ]);
      return found.find((s) => !s.deleted);
    };
    // Known (the usual case: one médecin traitant for a whole practice's documents): no lock, so
    // that documents naming the same one are not serialised until they commit.
    let current = await lookup();
    if (!current) {
      // Registering: serialised, and looked up again once the lock is held (another document may have registered it).
      await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`intake-practitioner|${idNatPs}`]);
      current = await lookup();
    }
    if (current) {
      return `Practitioner/${current.id}`;
    }
    const practitioner: Practitioner = {
      resourceType: 'Practitioner',
      identifier: [{ use: 'official', system: IDNATPS, value: idNatPs }],
      ...(pcp.family || pcp.given
        ? { name: [{ ...(pcp.family ? { family: pcp.family } : {}), ...(pcp.given ? { given: [pcp.given] } : {}) }] }
        : {}),
    };
    const v = this.repo.prepareCreate(practitioner, ctx);
    add(v, true);
    return `Practitioner/${v.id}`;
  }

  /**
   * The patient's care circle (ANS Cercle de soins): the owner's active CareTeam of the patient,
   * with the médecin traitant as participant role TRE_R259 PCP; a previous PCP's participation ends.
   */
  private async careTeam(
    tx: PoolClient,
    ctx: WriteContext,
    patientRef: string,
    pcpRef: string,
    date: string | undefined,
    add: (v: NewVersion, created: boolean) => void,
    newPatient: boolean,
  ): Promise<void> {
    let stored: StoredResource | undefined;
    if (!newPatient) {
      // The lock and the search in one round trip. One condition, the selective one (status is
      // checked below): with two, a planner working from statistics older than the import's latest
      // rows could start from every active CareTeam.
      const q = this.repo.matchAllQuery(ctx.principal, [search('CareTeam', [['subject', patientRef]])], FEW);
      const res = (await tx.query(
        [
          inlineSql('SELECT pg_advisory_xact_lock(hashtext($1))', [`intake-careteam|${patientRef}`]),
          inlineSql(q.sql, q.values),
        ].join(';\n'),
      )) as unknown as QueryResult[];
      const [teams] = groupMatches(res[1].rows, 1);
      stored = teams.find(
        (t) =>
          !t.deleted &&
          t.ownerOrg === ctx.principal.organization &&
          (JSON.parse(t.json as string) as CareTeam).status === 'active',
      );
    }
    const isPcp = (pt: CareTeamParticipant): boolean =>
      (pt.role ?? []).some((r) => (r.coding ?? []).some((c) => c.system === TRE_R259 && c.code === 'PCP'));
    const pcp: CareTeamParticipant = {
      role: [{ coding: [{ system: TRE_R259, code: 'PCP', display: 'Médecin traitant' }] }],
      member: { reference: pcpRef },
      period: { start: (date ?? new Date().toISOString()).slice(0, 10) },
    };
    if (!stored) {
      const team: CareTeam = {
        resourceType: 'CareTeam',
        status: 'active',
        name: 'Cercle de soins',
        subject: { reference: patientRef },
        participant: [pcp],
      };
      add(this.repo.prepareCreate(team, ctx), true);
      return;
    }
    const locked = (await this.locked(tx, 'CareTeam', stored.id)) as StoredResource;
    const team = JSON.parse(locked.json as string) as CareTeam;
    const participants = team.participant ?? [];
    if (participants.some((pt) => isPcp(pt) && pt.member?.reference === pcpRef && !pt.period?.end)) {
      return;
    }
    const today = new Date().toISOString().slice(0, 10);
    team.participant = [
      ...participants.map((pt) =>
        isPcp(pt) && !pt.period?.end ? { ...pt, period: { ...pt.period, end: today } } : pt,
      ),
      pcp,
    ];
    add(this.repo.prepareUpdate(locked, team, ctx), false);
  }

  /** Current DocumentReferences of the same setId with a lower version, as the caller sees them. */
  private async previousVersions(
    tx: PoolClient,
    p: Principal,
    setId: string,
    version: number,
  ): Promise<StoredResource[]> {
    // By the set id alone (see careTeam): a document's versions are few.
    const [found] = await this.repo.matchAll(
      tx,
      p,
      [search('DocumentReference', [['identifier', `${CDA_SET_ID}|${setId}`]])],
      FEW,
    );
    const out: StoredResource[] = [];
    for (const f of found.filter((d) => (JSON.parse(d.json as string) as DocumentReference).status === 'current')) {
      const locked = await this.locked(tx, 'DocumentReference', f.id);
      const oldVersion = await tx.query<{ extraction: StagedRow['extraction'] | null }>(
        'SELECT extraction FROM intake_document WHERE document_ref = $1',
        [`DocumentReference/${f.id}`],
      );
      const v = oldVersion.rows[0]?.extraction?.document.version ?? 0;
      if (locked?.json && !locked.deleted && v < version && locked.ownerOrg === p.organization) out.push(locked);
    }
    return out;
  }

  private async locked(tx: PoolClient, type: string, id: string): Promise<StoredResource | undefined> {
    return this.repo.readForUpdate(tx, type, id);
  }
}

/** Documents become the records of the caller's organization (an operator writes for its own organization too). */
function ownerOf(p: Principal): string {
  if (!p.organization) {
    throw new GatewayError('forbidden', { text: 'Documents are filed for an organization: the client has none' });
  }
  return p.organization;
}

/** The caller needs write (create and update) scopes on every type a document writes. */
export function checkScopes(p: Principal, extractions: Extraction[]): void {
  const types = new Set([
    ...DOCUMENT_TYPES,
    ...extractions.flatMap((e) => e.resources.map((r) => r.resource.resourceType)),
  ]);
  const missing = [...types].filter((t) => !scopeAllows(p.scopes, t, 'c') || !scopeAllows(p.scopes, t, 'u'));
  if (missing.length > 0) {
    throw new GatewayError('forbidden', {
      text: `Filing documents needs create and update scopes on ${missing.join(', ')} (e.g. system/*.cu)`,
    });
  }
}

/** What serialises the filing of one person's documents: the INS when usable, else the normalised birth name and date. */
function identityKey(t: PatientTraits): string {
  const ins = usableIns(t.ins);
  return ins ? `ins|${ins.value}` : `traits|${normaliseTrait(t.birthFamily) ?? ''}|${t.birthDate ?? ''}`;
}

function search(type: string, pairs: [string, string][]): SearchRequest {
  return parseSearchRequest(type, pairs, LIMITS);
}

/**
 * A new Patient from the document's traits: a usable INS as identifier (a wrong key is not an INS),
 * identity status PROV with how the traits were obtained (FR Core identity reliability).
 */
export function patientFromTraits(t: PatientTraits, pcpRef: string | undefined): Patient {
  const ins = usableIns(t.ins);
  const names: Patient['name'] = [];
  if (t.birthFamily || t.given?.length) {
    names.push({
      use: 'official',
      ...(t.birthFamily ? { family: t.birthFamily } : {}),
      ...(t.given?.length ? { given: t.given } : {}),
    });
  }
  if (t.usedFamily && t.usedFamily !== t.birthFamily) {
    names.push({ use: 'usual', family: t.usedFamily, ...(t.given?.length ? { given: [t.given[0]] } : {}) });
  }
  return {
    resourceType: 'Patient',
    identifier: [
      ...(ins ? [{ use: 'official' as const, system: ins.system, value: ins.value }] : []),
      ...t.identifiers,
    ],
    ...(names.length > 0 ? { name: names } : {}),
    ...(t.sex ? { gender: t.sex } : {}),
    ...(t.birthDate ? { birthDate: t.birthDate } : {}),
    extension: [
      // Provisional (INS guide): a document's INS is never qualified by itself; the structure
      // qualifies the identity (INSi and an identity document) before it is VALI or QUAL.
      {
        url: RELIABILITY_EXTENSION,
        extension: [
          {
            url: 'identityStatus',
            valueCoding: { system: RELIABILITY_CODES, code: 'PROV', display: 'Identité provisoire' },
          },
          {
            url: 'methodCollection',
            valueCoding: {
              system: IDENTITY_METHOD_COLLECTION,
              code: 'document',
              display: 'Traits reçus dans un document',
            },
          },
        ],
      },
      ...(t.birthPlace
        ? [
            {
              url: BIRTH_PLACE,
              valueAddress: { extension: [{ url: INSEE_CODE, valueCoding: { code: t.birthPlace } }] },
            },
          ]
        : []),
    ],
    ...(pcpRef ? { generalPractitioner: [{ reference: pcpRef }] } : {}),
  };
}

function practitionerReference(
  a: ExtractedPractitioner,
  pcpRef: string | undefined,
  pcp: ExtractedPractitioner | undefined,
): Reference<Practitioner | Organization> {
  if (pcpRef && a.idNatPs && a.idNatPs === pcp?.idNatPs) return { reference: pcpRef };
  const display = [a.given, a.family].filter(Boolean).join(' ');
  // A document authored by an organization only (an HPRIM lab): an empty Reference is invalid FHIR.
  if (!a.idNatPs && !display && a.organization) return organizationReference(a.organization);
  return {
    ...(a.idNatPs ? { identifier: { system: IDNATPS, value: a.idNatPs } } : {}),
    ...(display ? { display } : {}),
  };
}

function organizationReference(o: NonNullable<ExtractedPractitioner['organization']>): Reference<Organization> {
  return { ...(o.identifier ? { identifier: o.identifier } : {}), ...(o.name ? { display: o.name } : {}) };
}

/** DocumentReference.date is an instant: a date-only or minute-precision time gets what it lacks. */
function instant(d: string): string {
  if (/^\d{4}-\d{2}-\d{2}$/.test(d)) return `${d}T00:00:00Z`;
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(d)) return d;
  return d.length === 4 ? `${d}-01-01T00:00:00Z` : d.length === 7 ? `${d}-01T00:00:00Z` : d;
}

/** Replaces the patient placeholder and the document's urn:uuid fullUrls by the ids given. */
function rewriteReferences<T extends Resource>(resource: T, ids: Map<string, string>): T {
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) {
        out[k] = k === 'reference' && typeof x === 'string' && ids.has(x) ? ids.get(x) : walk(x);
      }
      return out;
    }
    return v;
  };
  return walk(resource) as T;
}

/** The held (identity review) version of a document of this set id, if one waits; locked. */
async function heldVersion(
  tx: PoolClient,
  owner: string,
  setId: string,
): Promise<{ id: string; review_id: string | null; version: number } | undefined> {
  const res = await tx.query<{ id: string; review_id: string | null; version: number }>(
    `SELECT id, review_id, coalesce((extraction->'document'->>'version')::int, 1) AS version FROM intake_document
      WHERE owner = $1 AND status = 'review' AND extraction->'document'->>'setId' = $2
      ORDER BY created_at DESC LIMIT 1 FOR UPDATE`,
    [owner, setId],
  );
  return res.rows[0];
}

/** Stages a document: filed (with what was written) or held for identity review (bytes kept). */
async function stage(tx: PoolClient, d: StageRow): Promise<void> {
  await persistExtra(tx, stageStatement(d));
}

/** A statement of its own for an ExtraStatement (nothing else to write with it). */
async function persistExtra(tx: PoolClient, e: ExtraStatement): Promise<void> {
  const values: unknown[] = [];
  const built = e((v) => {
    values.push(v);
    return `$${values.length}`;
  });
  await tx.query(`WITH ${built.ctes.join(',\n')} ${built.select}`, values);
}

/** The staging row's INSERT, as a data-modifying CTE of the statement that writes the document's resources. */
function stageStatement(d: StageRow): ExtraStatement {
  return (bind) => ({
    ctes: [
      `staged AS (INSERT INTO intake_document (id, owner, client_id, principal, source, unique_id, content_type, raw, extraction, status, result, written, document_ref)
       VALUES (${[
         bind(d.id),
         bind(d.owner),
         bind(d.p.clientId),
         `${bind(JSON.stringify(d.p))}::jsonb`,
         bind(d.source),
         bind(d.ex.document.uniqueId),
         bind(d.ex.document.contentType),
         // Filed with an inline Binary: the original is that Binary's first version (see original()).
         `${bind(d.written?.binary ? null : d.ex.document.content)}::bytea`,
         `${bind(JSON.stringify(withoutBytes(d.ex)))}::jsonb`,
         bind(d.status),
         `${bind(d.written ? JSON.stringify(d.written.entries) : null)}::jsonb`,
         `${bind(d.written?.facts ?? [])}::text[]`,
         bind(d.written?.documentRef ?? null),
       ].join(', ')}))`,
    ],
    select: 'SELECT 1',
  });
}
