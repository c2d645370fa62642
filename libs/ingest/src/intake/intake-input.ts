import JSZip from 'jszip';
import { GatewayError } from '@gw/platform';
import type { Principal } from '@gw/store';
import { readCda } from '../cda/cda.reader';
import type { CdaReader } from '../cda/cda-read.pool';
import { MAX_CDA_BYTES } from '../cda/cda-xml';
import type { Extraction } from './extraction';

/** A body posted to POST /ingest/documents, received by MHD or by the mailbox. */
export interface IntakeInput {
  contentType: string;
  body: Buffer;
  /** Where it came from (`api`, `mhd`, `mailbox:<uid>`…), kept with the staged document. */
  source?: string;
}

/**
 * Reads a non-CDA body into extractions (HPRIM: registered by its reader, not known here). The
 * caller is given because what a text body holds may depend on its organization (HPRIM: the
 * organization's lab code maps) — undefined when the body is only read, not filed.
 */
export type IntakeReader = (
  body: Buffer,
  context: { principal?: Principal; source: string },
) => Extraction[] | Promise<Extraction[]>;

const MAX_ZIP_ENTRIES = 200;

/** Reads on the calling thread (callers without a {@link CdaReadPool}). */
const readCdaHere: CdaReader = async (body) => readCda(body);

/**
 * Sniffs the body (the content type may be generic: `application/octet-stream` from a mailbox):
 * a zip (PK\x03\x04) is an IHE XDM; XML is a CDA; anything else goes to the text reader when one is
 * registered (HPRIM).
 */
export async function readIntakeInput(
  input: IntakeInput,
  textReader?: IntakeReader,
  principal?: Principal,
  readDocument: CdaReader = readCdaHere,
): Promise<Extraction[]> {
  const { body } = input;
  if (body.length === 0) throw new GatewayError('invalid', { text: 'The body is empty', expression: 'body' });
  if (body.subarray(0, 4).equals(Buffer.from('PK\x03\x04', 'latin1'))) return readXdm(body, readDocument);
  const head = body
    .subarray(0, 512)
    .toString('latin1')
    .replace(/^\uFEFF|^\xEF\xBB\xBF/, '')
    .trimStart();
  if (head.startsWith('<')) return [await readDocument(body)];
  if (textReader) return textReader(body, { ...(principal ? { principal } : {}), source: input.source ?? 'api' });
  throw new GatewayError('unsupported-media-type', {
    text: `Unsupported document (${input.contentType}): expected a CDA, an IHE XDM zip or an HPRIM file`,
    expression: 'Content-Type',
  });
}

/**
 * IHE XDM (ITI-32): IHE_XDM/<subset>/METADATA.XML lists the documents of the submission set; each
 * CDA of it is read. Entries are bounded in number and size (a zip bomb is refused, not inflated).
 */
export async function readXdm(body: Buffer, readDocument: CdaReader = readCdaHere): Promise<Extraction[]> {
  let zip: JSZip;
  try {
    zip = await JSZip.loadAsync(body, { checkCRC32: true });
  } catch (e) {
    throw new GatewayError('invalid', {
      text: `Unreadable zip (truncated or corrupt): ${e instanceof Error ? e.message : 'error'}`,
      expression: 'IHE_XDM.ZIP',
    });
  }
  const files = Object.values(zip.files).filter((f) => !f.dir);
  if (files.length > MAX_ZIP_ENTRIES) {
    throw new GatewayError('too-large', {
      text: `The zip holds more than ${MAX_ZIP_ENTRIES} files`,
      expression: 'IHE_XDM.ZIP',
    });
  }
  const metadata = files.find((f) => /(^|\/)METADATA\.XML$/i.test(f.name));
  if (!metadata) {
    throw new GatewayError('invalid', {
      text: 'Not an IHE XDM: no METADATA.XML',
      expression: 'IHE_XDM.ZIP/METADATA.XML',
    });
  }
  const documents = files.filter((f) => /\.xml$/i.test(f.name) && f !== metadata && !/INDEX\.HTM|README/i.test(f.name));
  const out: Extraction[] = [];
  for (const file of documents) {
    const bytes = await inflateBounded(file);
    const head = bytes.subarray(0, 2048).toString('latin1');
    if (!/ClinicalDocument/.test(head) && !/ClinicalDocument/.test(bytes.toString('latin1'))) continue;
    out.push(await readDocument(bytes));
  }
  if (out.length === 0) {
    throw new GatewayError('business-rule', { text: 'The XDM holds no CDA document', expression: 'IHE_XDM.ZIP' });
  }
  return out;
}

async function inflateBounded(file: JSZip.JSZipObject): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  await new Promise<void>((resolve, reject) => {
    file
      .nodeStream('nodebuffer')
      .on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_CDA_BYTES) {
          reject(
            new GatewayError('too-large', {
              text: `${file.name} exceeds ${MAX_CDA_BYTES} bytes`,
              expression: file.name,
            }),
          );
          return;
        }
        chunks.push(chunk);
      })
      .on('error', (e: Error) =>
        reject(new GatewayError('invalid', { text: `Unreadable zip entry: ${e.message}`, expression: file.name })),
      )
      .on('end', () => resolve());
  });
  return Buffer.concat(chunks);
}
