import type { DiagnosticReport, Procedure } from '@medplum/fhirtypes';
import { LOINC, resolveSystem, CCAM, NGAP, NABM } from '../terminology/code-systems';
import { PATIENT_PLACEHOLDER, type Extraction, type ExtractionWarning } from '../intake/extraction';
import { readSection, type EntryContext } from './cda-entries';
import { readDocument, readPatient, readPcp } from './cda-header';
import { cdaConcept, cdaPeriod } from './cda-values';
import { all, at, first, parseCda, type XmlNode } from './cda-xml';

/** CR-BIO and other result reports: the facts are grouped under one DiagnosticReport. */
const REPORT_TYPES = ['11502-2'];
/** The act a report documents (header serviceEvent), when coded in an acts nomenclature: OPH-CR-RTN's NGAP AMY. */
const ACT_SYSTEMS = [CCAM, NGAP, NABM];

/**
 * Reads a CI-SIS CDA R2 document (levels 1 and 3) into one {@link Extraction}: the patient traits,
 * the document, the médecin traitant and the facts of its structured body. A level-1 document
 * (PDF body) yields the document alone: no fact is invented from it.
 */
export function readCda(body: Buffer): Extraction {
  const doc = parseCda(body);
  const warnings: ExtractionWarning[] = [];
  const document = readDocument(doc, body, warnings);
  const patient = readPatient(doc);
  const pcp = readPcp(doc);
  const ctx: EntryContext = {
    reimbursement: document.type.code === 'REMB',
    warnings,
    resources: [],
    labResults: [],
  };
  const structured = at(doc, 'component', 'structuredBody');
  all(structured, 'component').forEach((c, i) => {
    for (const section of all(c, 'section')) readSection(section, `ClinicalDocument/component[${i + 1}]`, ctx);
  });
  if (!structured && !at(doc, 'component', 'nonXMLBody')) {
    warnings.push({ location: 'ClinicalDocument/component', text: 'The document has no body' });
  }
  for (const event of all(doc, 'documentationOf').map((d) => first(d, 'serviceEvent'))) {
    readServiceEvent(event, ctx);
  }
  if (document.type.system === LOINC && REPORT_TYPES.includes(document.type.code ?? '') && ctx.labResults.length > 0) {
    const report: DiagnosticReport = {
      resourceType: 'DiagnosticReport',
      status: 'final',
      category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'LAB' }] }],
      code: { coding: [document.type] },
      subject: { reference: PATIENT_PLACEHOLDER },
      ...(document.period?.start || document.date
        ? { effectiveDateTime: document.period?.start ?? document.date }
        : {}),
      ...(document.date ? { issued: document.date } : {}),
      result: ctx.labResults.map((reference) => ({ reference })),
    };
    ctx.resources.push({ resource: report });
  }
  return { patient, document, ...(pcp ? { pcp } : {}), resources: ctx.resources, warnings };
}

function readServiceEvent(event: XmlNode | undefined, ctx: EntryContext): void {
  const code = cdaConcept(first(event, 'code'), 'ClinicalDocument/documentationOf/serviceEvent/code');
  const system = code?.coding?.[0]?.system;
  if (!code || !system || !ACT_SYSTEMS.includes(resolveSystem(system).system)) return;
  const period = cdaPeriod(first(event, 'effectiveTime'));
  const procedure: Procedure = {
    resourceType: 'Procedure',
    status: 'completed',
    subject: { reference: PATIENT_PLACEHOLDER },
    code,
    ...(period.start || period.end ? { performedPeriod: { start: period.start, end: period.end } } : {}),
    ...(!period.start && !period.end && period.at ? { performedDateTime: period.at } : {}),
  };
  ctx.resources.push({ resource: procedure });
}
