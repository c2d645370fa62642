import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { buildXdmMetadata } from '@gw/exchange';
import { nirKey } from '@gw/fhir';
import { nameUuid } from '@gw/platform';
import { ROOT } from './process';
import { ZipWriter } from './zip-writer';
import { GIVEN_FEMALE, GIVEN_MALE } from '../../apps/gateway/src/demo/territory/vocabulary';

/** The ANS CI-SIS examples, read in place (never copied into the project). */
export const ANS_CDA_DIR = resolve(ROOT, '../shared/samples/ans-cda');

/** The volets a synthetic patient's XDM may hold, each modelled on its ANS example. */
export type SyntheticDocumentKind = 'VSM' | 'CR-BIO' | 'VAC' | 'PDF';

const TEMPLATES: Record<Exclude<SyntheticDocumentKind, 'PDF'>, { file: string; title: string; type: string }> = {
  VSM: { file: 'VSM_1.4_2022.01.xml', title: 'Synthèse médicale', type: 'SYNTH' },
  'CR-BIO': { file: 'BIO-CR-BIO_2024.01_Glycemie_mole.xml', title: "CR d'examens biologiques", type: '11502-2' },
  VAC: { file: 'VAC_2023.01.xml', title: 'Historique de vaccinations', type: '11369-6' },
};

export interface SyntheticPatient {
  /** Test INS-NIR (OID 1.2.250.1.213.1.4.10) with its valid key. */
  ins: string;
  ipp: string;
  family: string;
  given: string;
  sex: 'male' | 'female';
  birthDate: string;
  birthPlace: string;
  /** The CDA ClinicalDocument/id roots and PDF uniqueIds, in file order. */
  documents: { kind: SyntheticDocumentKind; uniqueId: string; file: string }[];
}

export interface ArchiveOptions {
  patients: number;
  /** Same seed and size: same patients and the same bytes. */
  seed?: number;
  /** Each patient's XDM as a zip inside the archive, or as a folder, or alternating. */
  layout?: 'zip' | 'folder' | 'mixed';
  /** Documents per patient, in this order (default VSM, CR-BIO, VAC, PDF). */
  documents?: SyntheticDocumentKind[];
  /** Patients (0-based) whose second document's bytes are damaged in the archive. */
  damaged?: number[];
  /** Patients (0-based) whose third document is XML that is not CDA. */
  notCda?: number[];
}

export interface GeneratedArchive {
  patients: SyntheticPatient[];
  /** CDA and PDF files in the archive. */
  documents: number;
}

/**
 * Birth names from two parts (24 × 30 = 720 stems: ≈ 14 patients a stem in a 10 000-patient
 * archive, as many as a real practice has of its commonest names). With a handful of stems, the
 * search of a new patient's candidates by name read a thousand records, a cost no practice has.
 */
const FAMILY_START = ['BER', 'CHA', 'DU', 'FON', 'GAR', 'LA', 'LE', 'MAR', 'PER', 'ROU', 'VAL', 'BON'];
const FAMILY_START_2 = ['DEL', 'GUI', 'HU', 'JOU', 'MOR', 'NOR', 'PI', 'RI', 'SAR', 'TES', 'VI', 'BRE'];
const FAMILY_END = ['NARD', 'TIN', 'RAND', 'TAINE', 'NIER', 'ROT', 'LIN', 'CHET', 'GEOT', 'DOUX', 'VIER', 'MONT'];
const FAMILY_END_2 = ['CAZE', 'LOUX', 'RIEU', 'ZAC', 'BAUD', 'TEL', 'REAU', 'GNON', 'SSON', 'QUIN', 'DIER', 'VAL'];
const FAMILY_END_3 = ['LARD', 'MIER', 'THIER', 'CHARD', 'NEAU', 'VEL'];
const STARTS = [...FAMILY_START, ...FAMILY_START_2];
const ENDS = [...FAMILY_END, ...FAMILY_END_2, ...FAMILY_END_3];
const COMMUNES = ['69123', '69266', '69029', '38185', '01053', '42218'];
const LOCAL_ID_OID = '1.2.250.1.999.1.1';

/**
 * Writes a synthetic portability archive (ANS PDLGC draft shape: one IHE XDM per patient under
 * PATIENTS/, a TRANSVERSE/ archive, a README) to `file`, streaming: fictitious patients with test
 * INS-NIR, and CDA documents that are the ANS examples with the header's patient and document ids
 * replaced (so every reader sees the real volets' structure), plus a small PDF described in METADATA.XML.
 */
export function writePortabilityArchive(file: string, opts: ArchiveOptions): GeneratedArchive {
  const rand = mulberry32(opts.seed ?? 1);
  const kinds = opts.documents ?? ['VSM', 'CR-BIO', 'VAC', 'PDF'];
  const templates = loadTemplates();
  const { zip, close } = ZipWriter.toFile(file);
  const patients: SyntheticPatient[] = [];
  let documents = 0;
  try {
    zip.add('README.TXT', Buffer.from('Archive de portabilité (jeu synthétique de test)\r\n'));
    for (let i = 0; i < opts.patients; i++) {
      const patient = makePatient(i, opts.seed ?? 1, rand);
      const files = kinds.map((kind, d) => {
        const name = `DOC${String(d + 1).padStart(4, '0')}.${kind === 'PDF' ? 'PDF' : 'XML'}`;
        const uniqueId = `1.2.250.1.999.2.${opts.seed ?? 1}.${i + 1}.${d + 1}`;
        patient.documents.push({ kind, uniqueId, file: name });
        let data = kind === 'PDF' ? pdf(i) : Buffer.from(cda(templates[kind], patient, uniqueId), 'utf8');
        if (d === 2 && opts.notCda?.includes(i)) {
          data = Buffer.from('<?xml version="1.0"?><inventaire><ligne>pas un document CDA</ligne></inventaire>');
        }
        return { kind, name, data, uniqueId, damage: d === 1 && (opts.damaged?.includes(i) ?? false) };
      });
      documents += files.length;
      const metadata = Buffer.from(metadataXml(patient, files), 'utf8');
      const folder = `PATIENTS/P${String(i + 1).padStart(5, '0')}`;
      const asZip = opts.layout === 'folder' ? false : opts.layout === 'mixed' ? i % 2 === 0 : true;
      const add = (w: ZipWriter, prefix: string): void => {
        w.add(`${prefix}INDEX.HTM`, Buffer.from('<html><body>IHE XDM</body></html>'));
        w.add(`${prefix}README.TXT`, Buffer.from('IHE XDM - export de portabilite\r\n'));
        w.add(`${prefix}IHE_XDM/SUBSET01/METADATA.XML`, metadata);
        for (const f of files) {
          w.add(`${prefix}IHE_XDM/SUBSET01/${f.name}`, f.data, { damage: f.damage });
        }
      };
      if (asZip) {
        zip.add(
          `${folder}/IHE_XDM.ZIP`,
          ZipWriter.toBuffer((w) => add(w, '')),
          { store: true },
        );
      } else {
        add(zip, `${folder}/`);
      }
      patients.push(patient);
    }
    zip.add('TRANSVERSE/STRUCTURE.XML', Buffer.from('<structure><nom>MSP synthétique</nom></structure>'));
    zip.add('TRANSVERSE/AGENDA.CSV', Buffer.from('date;duree\r\n2026-01-05;15\r\n'));
  } finally {
    close();
  }
  return { patients, documents };
}

type Template = { head: string; tail: string; title: string; type: string };

let templateCache: Record<Exclude<SyntheticDocumentKind, 'PDF'>, Template> | undefined;

/**
 * One synthetic CDA document (the ANS example of `kind` with a fictitious patient and its own id),
 * as POST /ingest/documents receives it: patient `patient` of `seed` is the same person in each call.
 */
export function syntheticCda(
  kind: Exclude<SyntheticDocumentKind, 'PDF'>,
  patient: number,
  document: number,
  seed = 1,
): { body: Buffer; uniqueId: string } {
  templateCache ??= loadTemplates();
  const p = makePatient(patient, seed, mulberry32(seed * 1_000_003 + patient));
  const uniqueId = `1.2.250.1.999.3.${seed}.${patient + 1}.${document + 1}`;
  return { body: Buffer.from(cda(templateCache[kind], p, uniqueId), 'utf8'), uniqueId };
}

function loadTemplates(): Record<Exclude<SyntheticDocumentKind, 'PDF'>, Template> {
  const out = {} as Record<Exclude<SyntheticDocumentKind, 'PDF'>, Template>;
  for (const [kind, t] of Object.entries(TEMPLATES) as [
    Exclude<SyntheticDocumentKind, 'PDF'>,
    (typeof TEMPLATES)['VSM'],
  ][]) {
    // Comments and editor processing instructions out: a practice software's export has none.
    const xml = readFileSync(resolve(ANS_CDA_DIR, t.file), 'utf8')
      .replace(/<!--[\s\S]*?-->/g, '')
      .replace(/<\?(?:xml-stylesheet|oxygen)[^>]*\?>\s*/g, '');
    const start = xml.indexOf('<recordTarget>');
    const end = xml.indexOf('</recordTarget>') + '</recordTarget>'.length;
    out[kind] = { head: xml.slice(0, start), tail: xml.slice(end), title: t.title, type: t.type };
  }
  return out;
}

function cda(t: Template, p: SyntheticPatient, uniqueId: string): string {
  const head = t.head
    .replace(/<id\s[^>]*\/>/, `<id root="${uniqueId}"/>`)
    .replace(/<setId\s[^>]*\/>/, `<setId root="${uniqueId}.0"/>`);
  const gender = p.sex === 'female' ? 'F' : 'M';
  const target = `<recordTarget><patientRole>
<id extension="${p.ins}" root="1.2.250.1.213.1.4.10"/>
<id extension="${p.ipp}" root="${LOCAL_ID_OID}"/>
<patient classCode="PSN"><name><family qualifier="BR">${p.family}</family><given>${p.given}</given><given qualifier="BR">${p.given}</given><family qualifier="CL">${p.family}</family><given qualifier="CL">${p.given}</given></name>
<administrativeGenderCode code="${gender}" codeSystem="2.16.840.1.113883.5.1"/>
<birthTime value="${p.birthDate.replace(/-/g, '')}"/>
<birthplace><place><addr><county>${p.birthPlace}</county></addr></place></birthplace>
</patient></patientRole></recordTarget>`;
  return `${head}${target}${t.tail}`;
}

function metadataXml(
  p: SyntheticPatient,
  files: { kind: SyntheticDocumentKind; name: string; data: Buffer; uniqueId: string }[],
): string {
  const loinc = (code: string): { system: string; code: string } => ({ system: 'http://loinc.org', code });
  return buildXdmMetadata({
    uniqueId: `${files[0]?.uniqueId ?? '1.2.250.1.999.3'}.99`,
    entryUuid: `urn:uuid:${nameUuid(`ss-${p.ipp}`)}`,
    sourceId: '1.2.250.1.999.4',
    submissionTime: '2026-01-01T00:00:00Z',
    title: 'Export de portabilité',
    intendedRecipients: [],
    patient: {
      ins: { value: p.ins, oid: '1.2.250.1.213.1.4.10' },
      local: { value: p.ipp, system: `urn:oid:${LOCAL_ID_OID}` },
      family: p.family,
      given: p.given,
      birthDate: p.birthDate,
      gender: p.sex,
    },
    author: { organization: { name: 'MSP synthétique' } },
    documents: files.map((f) => ({
      uniqueId: f.uniqueId,
      entryUuid: `urn:uuid:${nameUuid(f.uniqueId)}`,
      title: f.kind === 'PDF' ? 'Courrier numérisé' : TEMPLATES[f.kind].title,
      typeCode:
        f.kind === 'PDF'
          ? loinc('11488-4')
          : f.kind === 'VSM'
            ? { system: 'urn:oid:1.2.250.1.213.1.1.4.12', code: 'SYNTH' }
            : loinc(TEMPLATES[f.kind].type),
      classCode: { system: 'urn:oid:1.2.250.1.213.1.1.4.1', code: '11' },
      formatCode: { system: 'urn:oid:1.3.6.1.4.1.19376.1.2.3', code: 'urn:ihe:iti:xds:2017:mimeTypeSufficient' },
      contentType: f.kind === 'PDF' ? 'application/pdf' : 'text/xml',
      data: f.data,
      fileName: f.name,
      creationTime: '2025-06-01T10:00:00Z',
      confidentiality: 'N',
    })),
  });
}

function makePatient(i: number, seed: number, rand: () => number): SyntheticPatient {
  const female = rand() < 0.5;
  const year = 1930 + Math.floor(rand() * 90);
  const month = 1 + Math.floor(rand() * 12);
  const day = 1 + Math.floor(rand() * 28);
  const place = COMMUNES[Math.floor(rand() * COMMUNES.length)];
  // NIR: sex, year, month, département + commune of birth, order number, then the key.
  const first13 = `${female ? 2 : 1}${String(year % 100).padStart(2, '0')}${String(month).padStart(2, '0')}${place}${String((i % 999) + 1).padStart(3, '0')}`;
  const pick = <T>(list: T[]): T => list[Math.floor(rand() * list.length)];
  return {
    ins: `${first13}${nirKey(first13)}`,
    ipp: `S${seed}-${i + 1}`,
    family: `${familyStem(Math.floor(rand() * STARTS.length * ENDS.length))}-${i + 1}`,
    given: pick(female ? GIVEN_FEMALE : GIVEN_MALE),
    sex: female ? 'female' : 'male',
    birthDate: `${year}-${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')}`,
    birthPlace: place,
    documents: [],
  };
}

function familyStem(n: number): string {
  return `${STARTS[n % STARTS.length]}${ENDS[Math.floor(n / STARTS.length)]}`;
}

/** A one-page PDF (text only): what a practice software exports for scanned letters. */
function pdf(i: number): Buffer {
  const text = `Courrier de test ${i + 1}`;
  const stream = `BT /F1 12 Tf 72 720 Td (${text}) Tj ET`;
  const objects = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>',
    `<< /Length ${stream.length} >>\nstream\n${stream}\nendstream`,
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
  ];
  let body = '%PDF-1.4\n';
  const offsets: number[] = [];
  objects.forEach((o, n) => {
    offsets.push(body.length);
    body += `${n + 1} 0 obj\n${o}\nendobj\n`;
  });
  const xref = body.length;
  body += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n${offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('')}`;
  body += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(body, 'latin1');
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
