/**
 * Worker-thread task of {@link CdaReadPool}: one CDA document's bytes in, its extraction out (without
 * the bytes, which the caller keeps). A refusal crosses the thread as data: an Error's own fields do
 * not survive the structured clone, and the caller answers with its category and issues.
 */
import { GatewayError } from '@gw/platform';
import { withoutBytes } from '../intake/extraction';
import { readCda } from './cda.reader';
import type { CdaReadOutcome } from './cda-read.pool';

export default function readOnThread(bytes: Uint8Array): CdaReadOutcome {
  try {
    return { extraction: withoutBytes(readCda(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))) };
  } catch (err) {
    if (err instanceof GatewayError) {
      return { refused: { category: err.category, issues: err.issues } };
    }
    throw err;
  }
}
