import type { Binary, Bundle, DocumentReference } from '@medplum/fhirtypes';
import { GatewayError } from '@gw/platform';
import { parseSearchRequest } from '@gw/fhir';
import type { FhirRepository, FhirResponse, Principal } from '@gw/store';
import { isProvideBundle, validateProvideBundle } from './mhd.builder';

/**
 * The gateway as an MHD Document Recipient: an ITI-65 Provide Document Bundle posted to the FHIR
 * base is checked (metadata, SHA-1 and size against the Binary) before the ordinary transaction
 * stores DocumentReference + Binary + List. A resend of documents already received (same
 * masterIdentifier) is answered from what is stored and writes nothing.
 */
export class MhdRecipient {
  private sink?: CdaSink;

  constructor(private readonly repo: FhirRepository) {}

  /** Where the CDA documents of a stored submission go next (the practice intake pipeline). */
  setCdaSink(sink: CdaSink): void {
    this.sink = sink;
  }

  /**
   * After an ITI-65 submission was stored (2xx): each CDA it carries goes to the sink, as the
   * sender. The submission stays stored whatever the sink answers (its own record keeps the outcome).
   */
  async afterStored(p: Principal, body: unknown, response: FhirResponse): Promise<void> {
    if (!this.sink || response.status >= 300 || !isProvideBundle(body)) {
      return;
    }
    for (const e of (body as Bundle).entry ?? []) {
      const binary = e.resource as Binary | undefined;
      if (binary?.resourceType !== 'Binary' || !binary.data || !isCdaType(binary.contentType)) {
        continue;
      }
      const content = Buffer.from(binary.data, 'base64');
      if (/ClinicalDocument/.test(content.subarray(0, 4096).toString('latin1'))) {
        await this.sink(p, { contentType: binary.contentType as string, body: content });
      }
    }
  }

  /** undefined: not an ITI-65 bundle, or a new one (the transaction goes on, conditional on the uniqueId). */
  async intercept(p: Principal, body: unknown): Promise<FhirResponse | undefined> {
    if (!isProvideBundle(body)) {
      return undefined;
    }
    const checked = validateProvideBundle(body);
    if (!checked.ok) {
      throw new GatewayError(
        'business-rule',
        checked.issues.map((i) => ({ text: `ITI-65: ${i.diagnostics}`, expression: i.expression })),
      );
    }
    const bundle = body as Bundle;
    const found = await Promise.all(
      checked.submission.documents.map(async (d) => {
        const doc = bundle.entry?.[d.index]?.resource as DocumentReference;
        const query = identifierQuery(doc);
        const res = await this.repo.search(
          p,
          parseSearchRequest(
            'DocumentReference',
            [
              ['identifier', query],
              ['_count', '1'],
            ],
            { defaultCount: 1, maxCount: 1 },
          ),
          true,
        );
        // A concurrent identical submission still creates the DocumentReference once.
        bundle.entry![d.index]!.request = {
          method: 'POST',
          url: 'DocumentReference',
          ifNoneExist: `identifier=${encodeURIComponent(query)}`,
        };
        return res.matches[0];
      }),
    );
    if (found.every((m) => m !== undefined)) {
      const entry = (bundle.entry ?? []).map((e, i) => {
        const doc = checked.submission.documents.findIndex((d) => d.index === i);
        const match = doc >= 0 ? found[doc] : undefined;
        return {
          response: {
            status: '200 OK',
            ...(match ? { location: `DocumentReference/${match.id}/_history/${match.versionId}` } : {}),
            outcome: undefined,
          },
          fullUrl: e.fullUrl,
        };
      });
      return { status: 200, body: JSON.stringify({ resourceType: 'Bundle', type: 'transaction-response', entry }) };
    }
    if (found.some((m) => m !== undefined)) {
      throw new GatewayError('conflict', {
        text: 'ITI-65: some documents of this submission were already received, others not; send them separately',
      });
    }
    return undefined;
  }
}

/** Receives one CDA of a stored MHD submission. */
export type CdaSink = (p: Principal, doc: { contentType: string; body: Buffer }) => Promise<void>;

function isCdaType(type: string | undefined): boolean {
  return /^(application\/hl7-cda\+xml|application\/xml|text\/xml)\b/.test(type ?? '');
}

function identifierQuery(doc: DocumentReference): string {
  const id = doc.masterIdentifier;
  const value = (id?.value ?? '').replace(/([,|$\\])/g, '\\$1');
  return id?.system ? `${id.system}|${value}` : value;
}
