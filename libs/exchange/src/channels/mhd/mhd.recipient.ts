import type { Binary, Bundle, BundleEntry, DocumentReference, OperationOutcome } from '@medplum/fhirtypes';
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
  private check?: CdaCheck;

  constructor(private readonly repo: FhirRepository) {}

  /**
   * Where the CDA documents of a stored submission go next (the practice intake pipeline), and
   * what each must pass before the submission is stored (the intake can read it).
   */
  setCdaSink(sink: CdaSink, check?: CdaCheck): void {
    this.sink = sink;
    this.check = check;
  }

  /**
   * After an ITI-65 submission was stored (2xx): each CDA it carries goes to the sink, as the
   * sender. A document the sink refuses (it wrote nothing of it) is named in the answer: an error
   * issue in `response.outcome` of its DocumentReference's entry; the submission stays stored.
   */
  async afterStored(p: Principal, body: unknown, response: FhirResponse): Promise<FhirResponse | undefined> {
    if (!this.sink || response.status >= 300 || !isProvideBundle(body)) {
      return undefined;
    }
    const refused = new Map<number, OperationOutcome>();
    for (const doc of cdaDocuments(body as Bundle)) {
      const outcome = await this.sink(p, { contentType: doc.contentType, body: doc.content });
      if (outcome) {
        refused.set(doc.index, outcome);
      }
    }
    if (refused.size === 0 || typeof response.body !== 'string') {
      return undefined;
    }
    const answer = JSON.parse(response.body) as Bundle;
    refused.forEach((outcome, index) => {
      const entry: BundleEntry | undefined = answer.entry?.[index];
      if (entry?.response) {
        entry.response.outcome = namedOutcome(outcome, index, 'filed by the intake: nothing of it was filed');
      }
    });
    return { ...response, body: JSON.stringify(answer) };
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
    if (this.check) {
      // A CDA the intake would refuse refuses the submission before anything is stored.
      for (const doc of cdaDocuments(bundle)) {
        try {
          await this.check(p, { contentType: doc.contentType, body: doc.content });
        } catch (err) {
          if (!(err instanceof GatewayError)) throw err;
          const outcome = namedOutcome(err.toOutcome(), doc.index, 'accepted');
          throw new GatewayError(err.category, outcome.issue);
        }
      }
    }
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

/** Receives one CDA of a stored MHD submission; answers the refusal's OperationOutcome when nothing of it was filed. */
export type CdaSink = (
  p: Principal,
  doc: { contentType: string; body: Buffer },
) => Promise<OperationOutcome | undefined>;
/** Throws the GatewayError the sink would refuse an unreadable CDA with, before the submission is stored. */
export type CdaCheck = (p: Principal, doc: { contentType: string; body: Buffer }) => Promise<void>;

/** The CDA carried in Binary entries, with the index of the DocumentReference entry that describes each. */
function cdaDocuments(body: Bundle): { index: number; contentType: string; content: Buffer }[] {
  const entries = body.entry ?? [];
  const out: { index: number; contentType: string; content: Buffer }[] = [];
  entries.forEach((e, i) => {
    const binary = e.resource as Binary | undefined;
    if (binary?.resourceType !== 'Binary' || !binary.data || !isCdaType(binary.contentType)) {
      return;
    }
    const content = Buffer.from(binary.data, 'base64');
    if (!/ClinicalDocument/.test(content.subarray(0, 4096).toString('latin1'))) {
      return;
    }
    const described = entries.findIndex(
      (d) =>
        d.resource?.resourceType === 'DocumentReference' &&
        (d.resource.content ?? []).some((c) => c.attachment?.url === e.fullUrl),
    );
    out.push({ index: described >= 0 ? described : i, contentType: binary.contentType as string, content });
  });
  return out;
}

/**
 * The refusal's issues, each naming the document entry (`Bundle.entry[i]`, its DocumentReference):
 * the element the intake named, if any, stays in the text.
 */
function namedOutcome(outcome: OperationOutcome, index: number, not: string): OperationOutcome {
  const issues = outcome.issue?.length ? outcome.issue : [{ severity: 'error' as const, code: 'exception' as const }];
  return {
    resourceType: 'OperationOutcome',
    issue: issues.map((i) => {
      const text = i.details?.text ?? i.diagnostics ?? 'refused by the intake';
      const where = i.expression?.length ? ` (${i.expression.join(', ')})` : '';
      return {
        ...i,
        severity: i.severity === 'information' || i.severity === 'warning' ? i.severity : 'error',
        details: {
          ...i.details,
          text: `ITI-65: the document of Bundle.entry[${index}] was not ${not}: ${text}${where}`,
        },
        expression: [`Bundle.entry[${index}]`],
      };
    }),
  };
}

function isCdaType(type: string | undefined): boolean {
  return /^(application\/hl7-cda\+xml|application\/xml|text\/xml)\b/.test(type ?? '');
}

function identifierQuery(doc: DocumentReference): string {
  const id = doc.masterIdentifier;
  const value = (id?.value ?? '').replace(/([,|$\\])/g, '\\$1');
  return id?.system ? `${id.system}|${value}` : value;
}
