import { createHash } from 'node:crypto';

/** RFC 4122 URL namespace: the names hashed here are gateway-scoped strings. */
const UUID_NAMESPACE = Buffer.from('6ba7b8119dad11d180b400c04fd430c8', 'hex');

/**
 * Name-based UUID (RFC 4122 §4.3, version 5, SHA-1): the same name always gives the same id, so a
 * resend or a retried job carries the ids of the first attempt (deliveries, fullUrls, uniqueIds).
 */
export function nameUuid(name: string): string {
  const h = createHash('sha1').update(UUID_NAMESPACE).update(name, 'utf8').digest().subarray(0, 16);
  h[6] = (h[6] & 0x0f) | 0x50;
  h[8] = (h[8] & 0x3f) | 0x80;
  const x = h.toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** The `2.25.<integer>` OID of a UUID (ITU-T X.667): a document uniqueId derived from a name. */
export function uuidOid(uuid: string): string {
  return `2.25.${BigInt(`0x${uuid.replace(/-/g, '')}`).toString()}`;
}
