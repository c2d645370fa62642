import { randomUUID } from 'node:crypto';
import net from 'node:net';
import type { Pool, PoolClient } from 'pg';
import { GatewayError } from '@gw/platform';
import { CHARSETS } from './hl7-text';
import type { Charset } from './hl7-text';

/** A sending system (MSH-3 + MSH-4) bound to the Organization that owns what it sends. */
export interface Hl7Source {
  id: string;
  sendingApplication: string;
  sendingFacility: string;
  organization: string;
  name: string;
  charset: Charset | null;
  ippSystem: string | null;
  visitSystem: string | null;
  unknownEvents: 'reject' | 'ignore';
  /** MLLP: the addresses or CIDR blocks it may send from; empty = any (within GW_MLLP_ALLOWED_IPS). */
  allowedAddresses: string[];
  /**
   * MLLP over TLS: the client certificates it must present, each a SHA-256 fingerprint
   * (`AB:CD:…`) or a subject common name (`CN=…`); empty = any certificate the CA accepts.
   */
  allowedCertificates: string[];
  /**
   * Set by the operator: the source qualifies identities (its PID-32 QUAL comes from INSi), so the
   * Patients it writes with a qualified INS merge with other organizations' records of that INS.
   * False by default, and always for an auto-registered source.
   */
  qualifiesIdentity: boolean;
  autoRegistered: boolean;
  active: boolean;
  createdAt: string;
  updatedAt: string;
}

export type SourceInput = Partial<Omit<Hl7Source, 'id' | 'createdAt' | 'updatedAt' | 'autoRegistered'>>;

const ORGANIZATION_REF = /^Organization\/[A-Za-z0-9\-.]{1,64}$/;
const CACHE_MS = 5000;

/** The key of a source in the ledger: MSH-3 and MSH-4 namespace ids. */
export function sourceKey(app: string, facility: string): string {
  return `${app}|${facility}`;
}

/**
 * Registered sources, read through a short cache (a message per millisecond must not cost a
 * query each); this process sees its own changes at once, other replicas within 5 s.
 */
export class SourceRegistry {
  private readonly cache = new Map<string, { at: number; source: Hl7Source | undefined }>();

  constructor(private readonly pool: Pool) {}

  async find(app: string, facility: string): Promise<Hl7Source | undefined> {
    const key = sourceKey(app, facility);
    const hit = this.cache.get(key);
    if (hit && Date.now() - hit.at < CACHE_MS) {
      return hit.source;
    }
    const res = await this.pool.query(
      'SELECT * FROM hl7_source WHERE sending_application = $1 AND sending_facility = $2',
      [app, facility],
    );
    const source = res.rows[0] ? fromRow(res.rows[0]) : undefined;
    this.cache.set(key, { at: Date.now(), source });
    return source;
  }

  async get(id: string): Promise<Hl7Source> {
    const res = /^[0-9a-f-]{36}$/.test(id)
      ? await this.pool.query('SELECT * FROM hl7_source WHERE id = $1', [id])
      : { rows: [] };
    if (!res.rows[0]) {
      throw new GatewayError('not-found', { text: `HL7 source ${id} not found` });
    }
    return fromRow(res.rows[0]);
  }

  async list(): Promise<Hl7Source[]> {
    const res = await this.pool.query('SELECT * FROM hl7_source ORDER BY created_at');
    return res.rows.map(fromRow);
  }

  /** Registers a source; `db` lets the caller do it inside its own transaction. */
  async create(input: SourceInput, autoRegistered = false, db: Pool | PoolClient = this.pool): Promise<Hl7Source> {
    const v = validate(input, true);
    const res = await db.query(
      `INSERT INTO hl7_source (id, sending_application, sending_facility, organization, name, charset, ipp_system, visit_system, unknown_events, auto_registered, active,
       allowed_addresses, allowed_certificates, qualifies_identity)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (sending_application, sending_facility) DO NOTHING RETURNING *`,
      [
        randomUUID(),
        v.sendingApplication,
        v.sendingFacility,
        v.organization,
        v.name ?? `${v.sendingApplication} ${v.sendingFacility}`,
        v.charset ?? null,
        v.ippSystem ?? null,
        v.visitSystem ?? null,
        v.unknownEvents ?? 'reject',
        autoRegistered,
        v.active ?? true,
        v.allowedAddresses ?? [],
        v.allowedCertificates ?? [],
        !autoRegistered && v.qualifiesIdentity === true,
      ],
    );
    if (!res.rows[0]) {
      throw new GatewayError('conflict', {
        text: `A source ${v.sendingApplication}/${v.sendingFacility} is already registered`,
      });
    }
    const source = fromRow(res.rows[0]);
    this.cache.delete(sourceKey(source.sendingApplication, source.sendingFacility));
    return source;
  }

  async update(id: string, input: SourceInput): Promise<Hl7Source> {
    const current = await this.get(id);
    const v = validate({ ...current, ...input }, false);
    const res = await this.pool.query(
      `UPDATE hl7_source SET organization = $2, name = $3, charset = $4, ipp_system = $5, visit_system = $6, unknown_events = $7, active = $8,
       allowed_addresses = $9, allowed_certificates = $10, qualifies_identity = $11, updated_at = now() WHERE id = $1 RETURNING *`,
      [
        id,
        v.organization,
        v.name,
        v.charset ?? null,
        v.ippSystem ?? null,
        v.visitSystem ?? null,
        v.unknownEvents,
        v.active,
        v.allowedAddresses ?? [],
        v.allowedCertificates ?? [],
        v.qualifiesIdentity === true,
      ],
    );
    const source = fromRow(res.rows[0]);
    this.cache.delete(sourceKey(source.sendingApplication, source.sendingFacility));
    return source;
  }
}

function validate(input: SourceInput, creating: boolean): SourceInput {
  const problems: string[] = [];
  const text = (k: keyof SourceInput, required: boolean): void => {
    const val = input[k];
    if (val === undefined || val === null) {
      if (required) {
        problems.push(`${k} is required`);
      }
    } else if (typeof val !== 'string' || val.trim() === '' || val.length > 200) {
      problems.push(`${k} must be a non-empty string of at most 200 characters`);
    }
  };
  text('sendingApplication', creating);
  text('sendingFacility', creating);
  text('organization', true);
  text('name', false);
  text('ippSystem', false);
  text('visitSystem', false);
  if (typeof input.organization === 'string' && !ORGANIZATION_REF.test(input.organization)) {
    problems.push('organization must be a reference Organization/<id>');
  }
  if (input.charset != null && !CHARSETS.includes(input.charset)) {
    problems.push(`charset must be one of ${CHARSETS.join(', ')}`);
  }
  if (input.unknownEvents !== undefined && input.unknownEvents !== 'reject' && input.unknownEvents !== 'ignore') {
    problems.push('unknownEvents must be "reject" or "ignore"');
  }
  if (input.active !== undefined && typeof input.active !== 'boolean') {
    problems.push('active must be true or false');
  }
  problems.push(...validateList(input, 'allowedAddresses', isAddressOrBlock));
  problems.push(...validateList(input, 'allowedCertificates', (v) => normalizeCertificate(v) !== undefined));
  if (input.qualifiesIdentity !== undefined && typeof input.qualifiesIdentity !== 'boolean') {
    problems.push('qualifiesIdentity must be true or false');
  }
  if (problems.length > 0) {
    throw new GatewayError(
      'invalid',
      problems.map((text) => ({ text })),
    );
  }
  return {
    ...input,
    allowedCertificates: input.allowedCertificates?.map((c) => normalizeCertificate(c) as string),
  };
}

function validateList(input: SourceInput, key: 'allowedAddresses' | 'allowedCertificates', ok: (v: string) => boolean) {
  const list = input[key];
  if (list === undefined || list === null) {
    return [];
  }
  if (!Array.isArray(list) || list.length > 100) {
    return [`${key} must be an array of at most 100 strings`];
  }
  const bad = list.filter((v) => typeof v !== 'string' || !ok(v));
  return bad.length === 0
    ? []
    : [
        key === 'allowedAddresses'
          ? 'allowedAddresses: each entry must be an IP address or a CIDR block (10.1.2.0/24)'
          : 'allowedCertificates: each entry must be a SHA-256 fingerprint (64 hex digits, colons allowed) or CN=<subject common name>',
      ];
}

function isAddressOrBlock(v: string): boolean {
  const [address = '', prefix, extra] = v.split('/');
  const family = net.isIP(address);
  if (family === 0 || extra !== undefined) {
    return false;
  }
  return prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128));
}

/** `AB:CD:…` (upper case, colons) for a fingerprint, `CN=name` as given; undefined when neither. */
function normalizeCertificate(v: string): string | undefined {
  if (typeof v !== 'string') {
    return undefined;
  }
  if (/^CN=.{1,200}$/.test(v)) {
    return v;
  }
  const hex = v.replace(/:/g, '').toUpperCase();
  return /^[0-9A-F]{64}$/.test(hex) ? (hex.match(/../g) as string[]).join(':') : undefined;
}

/** What the MLLP listener knows of the sender of a message. */
export interface MllpPeer {
  address: string;
  /** The TLS client certificate, when one was presented and verified against GW_MLLP_TLS_CA. */
  certificate?: { fingerprint256: string; subjectCN?: string };
}

/**
 * Why `source` may not send from `peer` (its allowed addresses and certificates), or undefined
 * when it may. The text does not repeat the lists.
 */
export function refusalOf(source: Hl7Source, peer: MllpPeer): string | undefined {
  const name = `${source.sendingApplication}/${source.sendingFacility}`;
  if (source.allowedAddresses.length > 0 && !addressAllowed(source.allowedAddresses, peer.address)) {
    return `Sending system ${name} is not allowed to send from this address`;
  }
  if (source.allowedCertificates.length > 0) {
    const cert = peer.certificate;
    const ok =
      cert &&
      source.allowedCertificates.some((c) =>
        c.startsWith('CN=') ? c.slice(3) === cert.subjectCN : c === cert.fingerprint256.toUpperCase(),
      );
    if (!ok) {
      return `Sending system ${name} must send over TLS with its registered client certificate`;
    }
  }
  return undefined;
}

function addressAllowed(entries: string[], address: string): boolean {
  const list = new net.BlockList();
  for (const entry of entries) {
    const [a = '', prefix] = entry.split('/');
    const family = net.isIPv6(a) ? 'ipv6' : 'ipv4';
    if (prefix) {
      list.addSubnet(a, Number(prefix), family);
    } else {
      list.addAddress(a, family);
    }
  }
  const family = net.isIPv6(address) ? 'ipv6' : 'ipv4';
  return net.isIP(address) !== 0 && list.check(address, family);
}

function fromRow(r: Record<string, unknown>): Hl7Source {
  return {
    id: String(r.id),
    sendingApplication: String(r.sending_application),
    sendingFacility: String(r.sending_facility),
    organization: String(r.organization),
    name: String(r.name),
    charset: (r.charset as Charset | null) ?? null,
    ippSystem: (r.ipp_system as string | null) ?? null,
    visitSystem: (r.visit_system as string | null) ?? null,
    unknownEvents: r.unknown_events as 'reject' | 'ignore',
    allowedAddresses: (r.allowed_addresses as string[] | null) ?? [],
    allowedCertificates: (r.allowed_certificates as string[] | null) ?? [],
    qualifiesIdentity: Boolean(r.qualifies_identity),
    autoRegistered: Boolean(r.auto_registered),
    active: Boolean(r.active),
    createdAt: (r.created_at as Date).toISOString(),
    updatedAt: (r.updated_at as Date).toISOString(),
  };
}
