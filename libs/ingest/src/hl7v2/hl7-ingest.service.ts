import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Pool } from 'pg';
import type { Organization } from '@medplum/fhirtypes';
import { GatewayError } from '@gw/platform';
import type { Logger } from '@gw/platform';
import { persistVersions } from '@gw/store';
import type { ExtraStatement, FhirRepository, Principal } from '@gw/store';
import { buildAck } from './ack.builder';
import type { AckCode, AckError, AckTarget } from './ack.builder';
import { AdtWriter } from './adt.writer';
import { GW } from './adt.mapper';
import {
  Hl7ContentError,
  contentDigest,
  decodeMessage,
  describeLocation,
  encodeText,
  parseEr7,
  peekHeader,
} from './hl7-text';
import type { Charset } from './hl7-text';
import { ITI30_EVENTS, ITI31_EVENTS, readAdt, readHeader } from './pam-fr.reader';
import { Hl7Ledger } from './hl7.ledger';
import { SourceRegistry, refusalOf, sourceKey } from './hl7-source.registry';
import type { Hl7Source, MllpPeer } from './hl7-source.registry';

export type MessageStatus = 'processed' | 'error' | 'rejected' | 'ignored' | 'duplicate';

export interface ReceiveContext {
  transport: 'mllp' | 'http';
  /** The authenticated client (HTTP only). */
  principal?: Principal;
  /** The sender's address and TLS client certificate (MLLP only): checked against the source's allow-lists. */
  peer?: MllpPeer;
}

export interface ReceiveResult {
  /** The ACK, encoded in the message's charset. */
  ack: Buffer;
  charset: Charset;
  ackCode: AckCode;
  status: MessageStatus;
  messageId?: number;
}

export interface IngestOptions {
  acceptUnknownSources: boolean;
  logger: Logger;
}

const SUPPORTED = new Set<string>([...ITI31_EVENTS, ...ITI30_EVENTS]);
const LEDGER_STATUSES = "('processed', 'error', 'ignored')";

/** The outcome of running a message, before it is recorded. */
interface Outcome {
  status: MessageStatus;
  ackCode: AckCode;
  ack: string;
  charset: Charset;
  event?: string;
  error?: string;
  /** Warnings of an accepted message (the ERR segments of severity W of its AA), for operators. */
  warning?: string;
  resources: string[];
  /** Set when the ledger row was written in the resources' transaction. */
  ledgerId?: number;
}

/** The ledger statement written with a processed message's resources (must return its row id). */
type LedgerWrite = (outcome: Outcome) => ExtraStatement;

class DuplicateMessage extends Error {}

/**
 * HL7 v2 intake: identifies the source, keeps every message in the ledger, applies PAM-FR ADT to the
 * store in one transaction and answers with an ACK built only after the commit.
 */
export class Hl7IngestService {
  readonly sources: SourceRegistry;
  /** The message ledger's read side (operator API). */
  readonly ledger: Hl7Ledger;

  constructor(
    private readonly pool: Pool,
    private readonly repo: FhirRepository,
    private readonly opts: IngestOptions,
  ) {
    this.sources = new SourceRegistry(pool);
    this.ledger = new Hl7Ledger(pool);
  }

  /**
   * Entry point of both transports: never throws. When the message cannot be processed or recorded,
   * nothing was written (its transaction rolled back; the ledger is best effort). The database
   * unreachable or going away answers AR: HL7 v2.5 §2.9.2.2 rejects "for reasons unrelated to
   * content (system down…)" with AR, and the sender keeps the message and sends it again. Any
   * other failure answers AE.
   */
  async handle(raw: Buffer, ctx: ReceiveContext): Promise<ReceiveResult> {
    try {
      return await this.receive(raw, ctx);
    } catch (err) {
      const unavailable = isUnavailable(err);
      this.opts.logger.error(
        { err: (err as Error).message, code: (err as { code?: unknown }).code, transport: ctx.transport },
        unavailable ? 'hl7 message not processed: database unavailable' : 'hl7 message could not be processed',
      );
      const code: AckCode = unavailable ? 'AR' : 'AE';
      const target = peekTarget(raw)?.target ?? emptyTarget();
      const ack = buildAck(target, code, ackId(), [
        {
          code: '207',
          text: unavailable
            ? 'Temporarily unavailable (database): nothing was recorded, send the message again'
            : 'Temporary failure: nothing was recorded, send the message again',
        },
      ]);
      return { ack: Buffer.from(ack, 'utf8'), charset: 'UTF-8', ackCode: code, status: 'error' };
    }
  }

  /** An MLLP frame too large to process: AR naming the limit (its head is kept in the ledger). */
  async rejectOversized(head: Buffer, limit: number, ctx: ReceiveContext): Promise<ReceiveResult> {
    try {
      return await this.reject(head, ctx, peekTarget(head)?.target, undefined, {
        code: '207',
        text: `Message larger than ${limit} bytes (GW_MLLP_MAX_MESSAGE_BYTES): not processed`,
      });
    } catch {
      return {
        ack: Buffer.from(buildAck(peekTarget(head)?.target ?? emptyTarget(), 'AR', ackId()), 'utf8'),
        charset: 'UTF-8',
        ackCode: 'AR',
        status: 'rejected',
      };
    }
  }

  private async receive(raw: Buffer, ctx: ReceiveContext): Promise<ReceiveResult> {
    const peek = peekTarget(raw);
    if (!peek) {
      return this.reject(raw, ctx, undefined, undefined, {
        code: '100',
        text: 'Not an HL7 v2 message: it must start with an MSH segment',
      });
    }
    const { target, app, facility } = peek;
    if (!target.controlId) {
      return this.reject(raw, ctx, target, undefined, {
        location: { segment: 'MSH', field: 10 },
        code: '101',
        text: 'MSH-10 (message control id) is required',
      });
    }
    let source: Hl7Source | undefined;
    try {
      source = await this.resolveSource(app, facility, ctx);
    } catch (err) {
      return this.reject(raw, ctx, target, undefined, {
        location: { segment: 'MSH', field: 3 },
        code: '207',
        text: (err as Error).message,
      });
    }
    // No duplicate check up front (a query per message): a replay conflicts on the ledger's unique
    // (source, MSH-10, content digest) when it is recorded, its transaction rolls back, and it gets
    // the original ACK. The same MSH-10 with other content is a new message (senders reuse ids).
    const digest = contentDigest(raw);
    try {
      // A processed message is recorded in the transaction of its resources (one commit, and the
      // ledger never disagrees with the store); other outcomes wrote nothing and are recorded after.
      const outcome = await this.run(raw, source, target, (o) =>
        ledgerInsert(raw, digest, ctx.transport, source, app, facility, target.controlId, o),
      );
      const id =
        outcome.ledgerId ?? (await this.record(raw, ctx, source, app, facility, target.controlId, outcome, digest));
      return {
        ack: encodeText(outcome.ack, outcome.charset),
        charset: outcome.charset,
        ackCode: outcome.ackCode,
        status: outcome.status,
        messageId: id,
      };
    } catch (err) {
      if (err instanceof DuplicateMessage) {
        // A concurrent copy of this message won the race: answer what it was answered.
        const first = await this.findProcessed(sourceKey(app, facility), target.controlId, digest, raw);
        if (first) {
          return this.duplicate(raw, ctx, app, facility, source, target, first);
        }
      }
      throw err;
    }
  }

  /** Runs a ledger message again with the current mapping and source settings. */
  async reprocess(id: number): Promise<{
    id: number;
    status: MessageStatus;
    ackCode: AckCode;
    error?: string;
    warning?: string;
    resources: string[];
  }> {
    const res = await this.pool.query('SELECT id, raw, transport, source_key, status FROM hl7_message WHERE id = $1', [
      id,
    ]);
    const row = res.rows[0] as { id: string; raw: Buffer; source_key: string; status: MessageStatus } | undefined;
    if (!row) {
      throw new GatewayError('not-found', { text: `HL7 message ${id} not found` });
    }
    if (row.status === 'duplicate') {
      throw new GatewayError('business-rule', { text: `HL7 message ${id} is a duplicate; reprocess the original` });
    }
    const peek = peekTarget(row.raw);
    const source = peek ? await this.sources.find(peek.app, peek.facility) : undefined;
    const outcome: Outcome =
      peek && source
        ? await this.run(row.raw, source, peek.target, (o) => ledgerUpdate(id, o, source.id))
        : rejected(peek?.target, {
            code: '207',
            text: `Unknown sending system ${peek ? `${peek.app}/${peek.facility}` : ''}: register it first`,
          });
    if (outcome.status === 'rejected' || outcome.status === 'error' || outcome.status === 'ignored') {
      await this.pool
        .query(
          `UPDATE hl7_message SET status = $2, ack = $3, ack_code = $4, error = $5, warning = NULL, resources = '{}', attempts = attempts + 1, processed_at = now(), source_id = $6 WHERE id = $1`,
          [id, outcome.status, outcome.ack, outcome.ackCode, outcome.error ?? null, source?.id ?? null],
        )
        .catch((err: { code?: string }) => {
          throw err.code === '23505'
            ? new GatewayError('conflict', { text: 'Another copy of this message is already in the ledger' })
            : err;
        });
    }
    return {
      id,
      status: outcome.status,
      ackCode: outcome.ackCode,
      error: outcome.error,
      warning: outcome.warning,
      resources: outcome.resources,
    };
  }

  /** Parses and applies the message; `ledger` records a success in the same transaction. */
  private async run(raw: Buffer, source: Hl7Source, target: AckTarget, ledger: LedgerWrite): Promise<Outcome> {
    let charset: Charset = source.charset ?? 'UTF-8';
    // Known once MSH-9 is read, so that an AE is listed in the ledger with its event too.
    let kind: string | undefined = peekKind(raw);
    try {
      const decoded = decodeMessage(raw, source.charset ?? undefined);
      charset = decoded.charset;
      const msg = parseEr7(decoded.text);
      const header = readHeader(msg);
      kind = `${header.messageCode}^${header.event}`;
      if (header.messageCode !== 'ADT' || !SUPPORTED.has(header.event)) {
        const text =
          header.messageCode !== 'ADT'
            ? `Unsupported message type ${header.messageCode || '(none)'}: this interface takes ADT (IHE PAM-FR)`
            : `Unsupported ADT event ${header.event || '(none)'}: supported are ${[...SUPPORTED].join(', ')}`;
        const err: AckError = {
          location: { segment: 'MSH', field: 9, component: header.messageCode !== 'ADT' ? 1 : 2 },
          code: header.messageCode !== 'ADT' ? '200' : '201',
          text,
        };
        if (source.unknownEvents === 'ignore') {
          return {
            status: 'ignored',
            ackCode: 'AA',
            ack: buildAck(target, 'AA', ackId()),
            charset,
            event: kind,
            error: text,
            resources: [],
          };
        }
        return { ...rejected(target, err, charset), event: kind };
      }
      const adt = readAdt(msg, header);
      const key = `hl7:${sourceKey(source.sendingApplication, source.sendingFacility)}:${header.controlId}`;
      // Problems that do not stop the message (an INS that fails its checks): AA with ERR severity W.
      const warnings: AckError[] = adt.warnings.map((w) => ({
        ...w,
        severity: 'W',
        text: `${describeLocation(w.location)}: ${w.text}`,
      }));
      const ack = buildAck(target, 'AA', ackId(), warnings);
      const warning = warnings.length > 0 ? warnings.map((w) => w.text).join('; ') : undefined;
      // AdtWriter sends BEGIN with its lookups (see applyStay).
      return await this.repo.withTransaction(
        async (tx) => {
          const { versions, touched } = await new AdtWriter(this.repo, tx, source, key).apply(adt);
          const outcome: Outcome = {
            status: 'processed',
            ackCode: 'AA',
            ack,
            charset,
            event: kind,
            warning,
            resources: touched,
          };
          // The resources and their ledger row in one statement; no row back = this (source, MSH-10) is already recorded.
          const rows = (await persistVersions(tx, versions, ledger(outcome))) as { id: string }[];
          if (rows.length === 0) {
            throw new DuplicateMessage();
          }
          outcome.ledgerId = Number(rows[0].id);
          return outcome;
        },
        { begin: false },
      );
    } catch (err) {
      if (err instanceof DuplicateMessage) {
        throw err;
      }
      return { ...this.failure(err, target, charset), event: kind };
    }
  }

  private failure(err: unknown, target: AckTarget, charset: Charset): Outcome {
    if (err instanceof Hl7ContentError) {
      const e: AckError = {
        location: err.location,
        code: err.code,
        text: `${describeLocation(err.location)}: ${err.message}`,
      };
      return err.reject ? rejected(target, e, charset) : errored(target, e, charset);
    }
    if (
      err instanceof GatewayError &&
      (err.category === 'invalid' || err.category === 'precondition-failed' || err.category === 'forbidden')
    ) {
      // The mapped resource broke a FHIR rule (base R4 or a gateway profile): a content error.
      const text = err.issues
        .map((i) => `${i.expression?.[0] ?? ''} ${i.details?.text ?? i.diagnostics ?? ''}`.trim())
        .join('; ');
      return errored(target, { code: '207', text: `FHIR validation of the mapped resources failed: ${text}` }, charset);
    }
    // Database down, deadlock…: nothing was written and nothing is recorded; handle() answers AE.
    throw err;
  }

  private async resolveSource(app: string, facility: string, ctx: ReceiveContext): Promise<Hl7Source> {
    const found = await this.sources.find(app, facility);
    const client = ctx.principal;
    if (found) {
      if (!found.active) {
        throw new Error(`Sending system ${app}/${facility} is deactivated`);
      }
      if (client && !client.admin && client.organization !== found.organization) {
        throw new Error(`Sending system ${app}/${facility} belongs to another organization than this client's`);
      }
      const refusal = ctx.peer ? refusalOf(found, ctx.peer) : undefined;
      if (refusal) {
        this.opts.logger.warn(
          { source: sourceKey(app, facility), peer: ctx.peer?.address },
          'hl7 message refused: sender not allowed',
        );
        throw new Error(refusal);
      }
      return found;
    }
    if (!app || !facility) {
      throw new Error(
        'MSH-3 (sending application) and MSH-4 (sending facility) identify the source: both are required',
      );
    }
    if (client && !client.admin) {
      return this.register(app, facility, client.organization);
    }
    if (!this.opts.acceptUnknownSources) {
      throw new Error(
        `Unknown sending system ${app}/${facility}: an administrator must register it (POST /admin/hl7/sources)`,
      );
    }
    return this.register(app, facility, undefined);
  }

  /** Registers an unknown sender on the fly (see GW_HL7_ACCEPT_UNKNOWN_SOURCES), with its Organization. */
  private async register(app: string, facility: string, organization: string | undefined): Promise<Hl7Source> {
    return this.repo.withTransaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`hl7-source:${sourceKey(app, facility)}`]);
      const again = await tx.query(
        'SELECT id FROM hl7_source WHERE sending_application = $1 AND sending_facility = $2',
        [app, facility],
      );
      if (again.rows[0]) {
        return this.sources.get(String(again.rows[0].id));
      }
      let orgRef = organization;
      if (!orgRef) {
        const id = randomUUID();
        const org: Organization = {
          resourceType: 'Organization',
          name: facility,
          identifier: [{ system: `${GW}/hl7/sending-facility`, value: sourceKey(app, facility) }],
          type: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/organization-type', code: 'prov' }] }],
        };
        orgRef = `Organization/${id}`;
        // The Organization owns itself, so that the hospital's future clients can read it.
        const ctx = { principal: { clientId: 'hl7-autoregister', organization: orgRef, admin: false, scopes: [] } };
        await this.repo.persist(tx, [this.repo.prepareCreate(org, ctx, id)]);
      }
      this.opts.logger.warn(
        { source: sourceKey(app, facility), organization: orgRef },
        'unknown hl7 source registered automatically',
      );
      return this.sources.create(
        { sendingApplication: app, sendingFacility: facility, organization: orgRef, name: facility },
        true,
        tx,
      );
    });
  }

  /** The message this one replays: same source, MSH-10 and content (a row recorded before digests: same bytes). */
  private async findProcessed(
    key: string,
    controlId: string,
    digest: string,
    raw: Buffer,
  ): Promise<{ id: number; ack: string; ackCode: AckCode; charset: Charset } | undefined> {
    const res = await this.pool.query(
      `SELECT id, ack, ack_code, charset FROM hl7_message WHERE source_key = $1 AND control_id = $2 AND status IN ${LEDGER_STATUSES}
          AND (content_digest = $3 OR (content_digest IS NULL AND sha256(raw) = $4))`,
      [key, controlId, digest, createHash('sha256').update(raw).digest()],
    );
    const r = res.rows[0];
    return r
      ? { id: Number(r.id), ack: String(r.ack), ackCode: r.ack_code as AckCode, charset: r.charset as Charset }
      : undefined;
  }

  private async duplicate(
    raw: Buffer,
    ctx: ReceiveContext,
    app: string,
    facility: string,
    source: Hl7Source,
    target: AckTarget,
    first: { id: number; ack: string; ackCode: AckCode; charset: Charset },
  ): Promise<ReceiveResult> {
    const res = await this.pool.query(
      `INSERT INTO hl7_message (transport, source_key, source_id, control_id, event, status, raw, charset, ack, ack_code, duplicate_of, content_digest, processed_at)
       SELECT $1, $2, $3, $4, event, 'duplicate', $5, charset, ack, ack_code, id, content_digest, now() FROM hl7_message WHERE id = $6 RETURNING id`,
      [ctx.transport, sourceKey(app, facility), source.id, target.controlId, raw, first.id],
    );
    return {
      ack: encodeText(first.ack, first.charset ?? 'UTF-8'),
      charset: first.charset ?? 'UTF-8',
      ackCode: first.ackCode,
      status: 'duplicate',
      messageId: Number(res.rows[0]?.id),
    };
  }

  private async reject(
    raw: Buffer,
    ctx: ReceiveContext,
    target: AckTarget | undefined,
    source: Hl7Source | undefined,
    err: AckError,
  ): Promise<ReceiveResult> {
    const outcome = rejected(target, err);
    const peek = peekTarget(raw);
    const id = await this.record(
      raw,
      ctx,
      source,
      peek?.app ?? '',
      peek?.facility ?? '',
      target?.controlId || `unidentified:${randomUUID()}`,
      outcome,
    );
    return {
      ack: encodeText(outcome.ack, outcome.charset),
      charset: outcome.charset,
      ackCode: 'AR',
      status: 'rejected',
      messageId: id,
    };
  }

  /**
   * Records an outcome that wrote nothing; a processed/error/ignored row is unique per (source,
   * MSH-10, content). `digest`: the message's content digest when the caller has it already.
   */
  private async record(
    raw: Buffer,
    ctx: ReceiveContext,
    source: Hl7Source | undefined,
    app: string,
    facility: string,
    controlId: string,
    o: Outcome,
    digest = contentDigest(raw),
  ): Promise<number> {
    const rows = (await persistVersions(
      this.pool,
      [],
      ledgerInsert(raw, digest, ctx.transport, source, app, facility, controlId, o),
    )) as { id: string }[];
    if (rows.length === 0) {
      throw new DuplicateMessage();
    }
    return Number(rows[0].id);
  }
}

/**
 * Records a message in the ledger, unless it replays one already recorded (same source, MSH-10 and
 * content; a row from before content digests: the same bytes): then no row comes back. An earlier
 * message with the same MSH-10 and other content is named in reuse_of.
 */
function ledgerInsert(
  raw: Buffer,
  digest: string,
  transport: string,
  source: Hl7Source | undefined,
  app: string,
  facility: string,
  controlId: string,
  o: Outcome,
): ExtraStatement {
  return (bind) => {
    const key = bind(sourceKey(app, facility));
    const control = bind(controlId);
    const bytes = `${bind(raw)}::bytea`;
    const rawSha = `${bind(createHash('sha256').update(raw).digest())}::bytea`;
    const same = `source_key = ${key} AND control_id = ${control} AND status IN ${LEDGER_STATUSES}`;
    return {
      ctes: [
        `ledger AS (INSERT INTO hl7_message (transport, source_key, source_id, control_id, event, status, raw, charset, ack, ack_code, error, warning, resources,
          content_digest, reuse_of, processed_at)
        SELECT ${bind(transport)}, ${key}, ${bind(source?.id ?? null)}::uuid, ${control}, ${bind(o.event ?? null)}, ${bind(o.status)},
          ${bytes}, ${bind(o.charset)}, ${bind(o.ack)}, ${bind(o.ackCode)}, ${bind(o.error ?? null)}, ${bind(o.warning ?? null)}, ${bind(o.resources)}::text[],
          ${bind(digest)}, (SELECT max(id) FROM hl7_message WHERE ${same}), now()
        WHERE NOT EXISTS (SELECT 1 FROM hl7_message WHERE ${same} AND content_digest IS NULL AND sha256(raw) = ${rawSha})
        ON CONFLICT (source_key, control_id, content_digest) WHERE status IN ${LEDGER_STATUSES} DO NOTHING RETURNING id)`,
      ],
      select: 'SELECT id FROM ledger',
    };
  };
}

function ledgerUpdate(id: number, o: Outcome, sourceId: string): ExtraStatement {
  return (bind) => ({
    ctes: [
      `ledger AS (UPDATE hl7_message SET status = 'processed', ack = ${bind(o.ack)}, ack_code = 'AA', error = NULL, warning = ${bind(o.warning ?? null)},
      resources = ${bind(o.resources)}::text[],
      attempts = attempts + 1, processed_at = now(), source_id = ${bind(sourceId)}::uuid WHERE id = ${bind(id)}::bigint RETURNING id)`,
    ],
    select: 'SELECT id FROM ledger',
  });
}

function rejected(target: AckTarget | undefined, err: AckError, charset: Charset = 'UTF-8'): Outcome {
  return {
    status: 'rejected',
    ackCode: 'AR',
    ack: buildAck(target ?? emptyTarget(), 'AR', ackId(), [err]),
    charset,
    error: err.text,
    resources: [],
  };
}

function errored(target: AckTarget, err: AckError, charset: Charset): Outcome {
  return {
    status: 'error',
    ackCode: 'AE',
    ack: buildAck(target, 'AE', ackId(), [err]),
    charset,
    error: err.text,
    resources: [],
  };
}

function emptyTarget(): AckTarget {
  return {
    sendingApplication: '',
    sendingFacility: '',
    receivingApplication: '',
    receivingFacility: '',
    controlId: '',
    processingId: 'P',
    event: '',
    charsetField: '',
  };
}

/** Network errors of a database connection (refused, reset, gone). */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);
/**
 * PostgreSQL error codes of an unavailable server: class 08 (connection exception), 53
 * (insufficient resources), 57P01-57P03 (admin/crash shutdown, cannot connect now); and the
 * transaction rolled back by a deadlock or a serialization failure (40P01, 40001), which a resend
 * gets through.
 */
const UNAVAILABLE_SQLSTATE = /^(08|53)|^57P0[123]$|^40(001|P01)$/;

/** Whether an error means "the database is not there now" (the message can be sent again as is). */
export function isUnavailable(err: unknown): boolean {
  // Not `instanceof Error`: socket errors may come from another realm (a test VM context).
  if (typeof err !== 'object' || err === null) {
    return false;
  }
  const { code, message } = err as { code?: unknown; message?: unknown };
  if (typeof code === 'string' && (NETWORK_CODES.has(code) || UNAVAILABLE_SQLSTATE.test(code))) {
    return true;
  }
  // node-postgres: a pool checkout that timed out, a connection that ended under a query.
  return (
    typeof message === 'string' &&
    /^(timeout exceeded when trying to connect|Connection terminated|Client has encountered a connection error)/.test(
      message,
    )
  );
}

/** ACK control ids: unique, at most 20 characters (MSH-10 is ST 20). */
function ackId(): string {
  return `GW${Date.now().toString(36)}${randomBytes(5).toString('hex')}`.slice(0, 20);
}

/** MSH-9 as `ADT^A01`, read before decoding (undefined when there is no MSH). */
function peekKind(raw: Buffer): string | undefined {
  const head = peekHeader(raw);
  const compSep = head?.fields[2]?.[0] ?? '^';
  const parts = head?.fields[9]?.split(compSep) ?? [];
  return parts[0] ? `${parts[0]}^${parts[1] ?? ''}` : undefined;
}

/** The header fields an ACK needs, read before the charset is known (they are ASCII). */
export function peekTarget(raw: Buffer): { target: AckTarget; app: string; facility: string } | undefined {
  const head = peekHeader(raw);
  if (!head) {
    return undefined;
  }
  const compSep = head.fields[2]?.[0] ?? '^';
  const c = (i: number, n = 0): string => (head.fields[i] ?? '').split(compSep)[n]?.trim() ?? '';
  const target: AckTarget = {
    sendingApplication: c(3),
    sendingFacility: c(4),
    receivingApplication: c(5),
    receivingFacility: c(6),
    controlId: c(10).slice(0, 64),
    processingId: c(11) || 'P',
    event: c(9, 1),
    charsetField: c(18),
  };
  return { target, app: target.sendingApplication, facility: target.sendingFacility };
}
