import type { Coding, Encounter, Task } from '@medplum/fhirtypes';
import type { DischargeContext } from '../records/discharge-context.loader';
import { buildDischargeNotice } from './discharge-notice';
import type { DischargeNoticeFacts } from './discharge-notice';
import type { ExchangeDocument, Submission } from './document.model';
import { FINESS } from '../exchange.codes';
import { nameUuid, uuidOid } from '@gw/platform';

const LOINC = 'http://loinc.org';
const MIME_SUFFICIENT: Coding = {
  system: 'http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode',
  code: 'urn:ihe:iti:xds:2017:mimeTypeSufficient',
};
const CLASS_SUMMARY: Coding = { system: 'urn:oid:1.2.250.1.213.1.1.4.1', code: '10', display: 'Compte-rendu' };
const NOTICE_TYPE: Coding = { system: LOINC, code: '18842-5', display: 'Discharge summary' };
const LETTER_TYPE: Coding = { system: LOINC, code: '11490-0', display: 'Lettre de liaison à la sortie' };

export interface AssemblyInput {
  ctx: DischargeContext;
  /** The document uniqueId fixed at routing (same on every channel and every resend). */
  documentUniqueId: string;
  /** Delivery id: the SubmissionSet ids derive from it. */
  deliveryId: string;
  sourceOid: string;
  intendedRecipients: Submission['intendedRecipients'];
  task?: Task;
  now: Date;
}

/**
 * The document a discharge sends, with its XDS metadata: the hospital's own letter when it sent
 * one for this stay, else a generated notice (plain text, readable, with a structured summary).
 */
export function assembleSubmission(input: AssemblyInput): Submission {
  const { ctx } = input;
  const document = ctx.letter ? letterDocument(input) : noticeDocument(input);
  const name = ctx.patient.name?.find((n) => n.use === 'official') ?? ctx.patient.name?.[0];
  const local = ctx.patient.identifier?.find(
    (i) => i.type?.coding?.some((c) => c.code === 'PI') && i.value && i.system,
  );
  return {
    uniqueId: uuidOid(nameUuid(`submission:${input.deliveryId}`)),
    entryUuid: `urn:uuid:${nameUuid(`submission-entry:${input.deliveryId}`)}`,
    sourceId: input.sourceOid,
    submissionTime: input.now.toISOString(),
    title: document.title,
    intendedRecipients: input.intendedRecipients,
    patient: {
      ins: ctx.ins,
      local: local ? { value: local.value as string, system: local.system as string } : undefined,
      family: name?.family,
      given: name?.given?.[0],
      birthDate: ctx.patient.birthDate,
      gender: ctx.patient.gender,
    },
    author: { organization: { name: ctx.hospital?.name ?? 'Établissement de santé', finess: finessOf(ctx) } },
    documents: [document],
  };
}

function finessOf(ctx: DischargeContext): string | undefined {
  return ctx.hospital?.identifier?.find((i) => i.system === FINESS)?.value;
}

function baseDocument(
  input: AssemblyInput,
): Pick<
  ExchangeDocument,
  'uniqueId' | 'entryUuid' | 'creationTime' | 'serviceStart' | 'serviceEnd' | 'confidentiality'
> {
  const period = input.ctx.encounter.period;
  return {
    uniqueId: input.documentUniqueId,
    entryUuid: `urn:uuid:${nameUuid(`document-entry:${input.documentUniqueId}`)}`,
    creationTime: input.now.toISOString(),
    serviceStart: period?.start,
    serviceEnd: period?.end,
    confidentiality: 'N',
  };
}

function noticeDocument(input: AssemblyInput): ExchangeDocument {
  const notice = buildDischargeNotice(noticeFacts(input.ctx, input.task));
  return {
    ...baseDocument(input),
    title: notice.title,
    typeCode: NOTICE_TYPE,
    classCode: CLASS_SUMMARY,
    formatCode: MIME_SUFFICIENT,
    contentType: 'text/plain',
    data: notice.text,
    fileName: 'DOC0001.TXT',
  };
}

function letterDocument(input: AssemblyInput): ExchangeDocument {
  const letter = input.ctx.letter as NonNullable<DischargeContext['letter']>;
  const attachment = letter.document.content?.[0]?.attachment;
  const raw = letter.binary?.data ?? attachment?.data ?? '';
  const type = (letter.binary?.contentType ?? attachment?.contentType ?? '').toLowerCase();
  const contentType: ExchangeDocument['contentType'] = type.includes('pdf')
    ? 'application/pdf'
    : type.includes('xml')
      ? 'text/xml'
      : 'text/plain';
  const extension = contentType === 'application/pdf' ? 'PDF' : contentType === 'text/xml' ? 'XML' : 'TXT';
  return {
    ...baseDocument(input),
    title: attachment?.title ?? letter.document.description ?? 'Lettre de liaison à la sortie',
    typeCode: letter.document.type?.coding?.[0] ?? LETTER_TYPE,
    classCode: letter.document.category?.[0]?.coding?.[0] ?? CLASS_SUMMARY,
    formatCode: letter.document.content?.[0]?.format ?? MIME_SUFFICIENT,
    contentType,
    data: Buffer.from(raw, 'base64'),
    fileName: `DOC0001.${extension}`,
  };
}

function noticeFacts(ctx: DischargeContext, task: Task | undefined): DischargeNoticeFacts {
  const enc: Encounter = ctx.encounter;
  const name = ctx.patient.name?.find((n) => n.use === 'official') ?? ctx.patient.name?.[0];
  const disposition = enc.hospitalization?.dischargeDisposition?.coding?.map((c) => c.code) ?? [];
  const transfer = enc.hospitalization?.destination?.identifier;
  const mode: DischargeNoticeFacts['dischargeMode'] = ctx.deceased
    ? 'death'
    : transfer || disposition.some((c) => c === 'other-hcf' || c === 'hosp' || c === 'long' || c === 'rehab')
      ? 'transfer'
      : disposition.includes('home') || disposition.length === 0
        ? 'home'
        : 'other';
  const unit = enc.location?.[enc.location.length - 1]?.location;
  return {
    patient: {
      family: name?.family ?? '',
      given: name?.given?.join(' '),
      birthDate: ctx.patient.birthDate,
      ins: ctx.ins ? { value: ctx.ins.value, qualified: true } : undefined,
    },
    facility: { name: ctx.hospital?.name ?? 'Établissement de santé', finess: finessOf(ctx) },
    unit: unit?.display ?? unit?.identifier?.value,
    admittedAt: enc.period?.start,
    dischargedAt: enc.period?.end ?? new Date().toISOString(),
    dischargeMode: mode,
    transferFiness: transfer?.system === FINESS ? transfer.value : undefined,
    gp: ctx.mt && !ctx.mtProblem ? { name: ctx.mt.display, rpps: ctx.mt.rpps } : undefined,
    followUpDueAt: ctx.deceased ? undefined : task?.restriction?.period?.end,
  };
}
