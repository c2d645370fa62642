import type { Bundle, OperationOutcome } from '@medplum/fhirtypes';
import type { Client } from 'fhir-kit-client';
import { PermanentDeliveryError } from '../channel';
import type { Channel, TaskEffect } from '../channel';
import type { DischargeContext } from '../../records/discharge-context.loader';
import type { Delivery, DeliveryStatus } from '../../records/delivery.store';
import type { Submission } from '../../documents/document.model';
import { buildProvideBundle } from './mhd.builder';

export interface MhdSettings {
  /** The Document Recipient's FHIR base URL. */
  url: string;
  tokenUrl?: string;
  clientId?: string;
  clientSecret?: string;
}

type FhirKit = { Client: typeof Client };
type KitClient = Client;

/**
 * fhir-kit-client 2 is ESM-only with an import-only exports map, which a CommonJS build cannot
 * `require`: load it with a real dynamic import (Jest, which has no ESM loader, maps it instead).
 */
async function loadFhirKit(): Promise<FhirKit> {
  const dynamicImport = new Function('specifier', 'return import(specifier)') as (s: string) => Promise<FhirKit>;
  try {
    return await dynamicImport('fhir-kit-client');
  } catch (err) {
    if (String((err as { code?: string }).code).startsWith('ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING')) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      return require('fhir-kit-client') as FhirKit;
    }
    throw err;
  }
}

/**
 * DMP-style publication (DOMAIN §5): ITI-65 Provide Document Bundle sent with fhir-kit-client to
 * the configured MHD Document Recipient, with an OAuth2 client-credentials token when configured.
 * Without settings (GW_MHD_RECIPIENT_URL unset) the channel exists but is not configured.
 */
export class MhdChannel implements Channel {
  readonly name = 'mhd';
  readonly label = 'MHD';
  readonly unconfigured = 'MHD recipient not configured (GW_MHD_RECIPIENT_URL)';
  readonly addressing = 'destination';
  readonly job = { name: 'exchange.mhd-publish', idPrefix: 'mhd' } as const;
  // The shared record is not the care team: its outcomes are notes on the Task, not its status.
  readonly reportsToTask = false;
  readonly acknowledged = false;
  // The SubmissionSet names the people the discharge was sent to by MSSanté.
  readonly intendedRecipients = 'discharge';
  private client?: Promise<KitClient>;
  private token?: { value: string; expires: number };

  constructor(private readonly settings: MhdSettings | undefined) {}

  get destination(): string | undefined {
    return this.settings?.url;
  }

  /** DMP feeding needs the patient's consent and a qualified INS (no retry changes either). */
  refusal(ctx: DischargeContext): string | undefined {
    if (ctx.dmpOpposed) {
      return 'Publication au DMP refusée : le patient s’est opposé à l’alimentation de son DMP';
    }
    if (!ctx.insQualified) {
      return 'Publication au DMP refusée : l’INS du patient n’est pas qualifiée';
    }
    return undefined;
  }

  async send(_d: Delivery, submission: Submission): Promise<string> {
    return this.publish(submission);
  }

  /** The document's uniqueId: the recipient answers a resend of it from what it stored. */
  remoteId(_d: Delivery, submission: Submission | undefined): string | undefined {
    return submission?.documents[0]?.uniqueId;
  }

  taskEffect(status: DeliveryStatus, answer: string): TaskEffect | undefined {
    if (status === 'sent') {
      return undefined;
    }
    return { kind: 'note', text: status === 'refused' ? answer : `Publication au DMP en échec : ${answer}` };
  }

  host(d: Delivery): string {
    try {
      return new URL(d.destination).host;
    } catch {
      return '';
    }
  }

  close(): void {
    // fhir-kit-client keeps no connection of its own.
  }

  /** Publishes; resolves with a summary of the recipient's answer. 4xx → PermanentDeliveryError. */
  async publish(submission: Submission): Promise<string> {
    const bundle = buildProvideBundle(submission, {});
    const client = await this.kit();
    const headers: Record<string, string> = { 'content-type': 'application/fhir+json' };
    const token = await this.bearer();
    if (token) {
      headers.authorization = `Bearer ${token}`;
    }
    try {
      const res = (await client.transaction({ body: bundle as never, options: { headers } })) as unknown as Bundle;
      const statuses = (res.entry ?? []).map((e) => e.response?.status ?? '?');
      return `transaction-response: ${statuses.join(', ')}`;
    } catch (err) {
      const e = err as { response?: { status?: number; data?: unknown }; message: string; cause?: { code?: string } };
      const status = e.response?.status;
      if (status === undefined) {
        throw new Error(`recipient unreachable: ${e.cause?.code ?? e.message}`);
      }
      const answer = `HTTP ${status}${outcomeText(e.response?.data)}`;
      if (status === 401) {
        this.token = undefined;
      }
      // A 4xx says the submission itself is wrong: retrying sends the same thing (408/429 excepted).
      if (status >= 400 && status < 500 && status !== 408 && status !== 429 && status !== 401) {
        throw new PermanentDeliveryError(answer);
      }
      throw new Error(answer);
    }
  }

  private async kit(): Promise<KitClient> {
    const url = this.settings?.url;
    if (!url) {
      throw new PermanentDeliveryError(this.unconfigured);
    }
    this.client ??= loadFhirKit().then((m) => new m.Client({ baseUrl: url }));
    return this.client;
  }

  private async bearer(): Promise<string | undefined> {
    const { tokenUrl, clientId, clientSecret } = this.settings ?? {};
    if (!tokenUrl || !clientId || !clientSecret) {
      return undefined;
    }
    if (this.token && this.token.expires > Date.now() + 10_000) {
      return this.token.value;
    }
    const res = await fetch(tokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret }),
    });
    if (!res.ok) {
      throw new Error(`token endpoint answered HTTP ${res.status}`);
    }
    const body = (await res.json()) as { access_token: string; expires_in?: number };
    this.token = { value: body.access_token, expires: Date.now() + (body.expires_in ?? 300) * 1000 };
    return this.token.value;
  }
}

function outcomeText(data: unknown): string {
  const o = data as OperationOutcome | undefined;
  if (o?.resourceType !== 'OperationOutcome') {
    return '';
  }
  const issues = (o.issue ?? []).map((i) =>
    [i.diagnostics ?? i.details?.text, i.expression?.join(',')].filter(Boolean).join(' at '),
  );
  return issues.length ? ` ${issues.join('; ').slice(0, 500)}` : '';
}
