import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROLE_TRUST_SYSTEM } from '@gw/fhir';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';

/**
 * The official R4 examples (npm package hl7.fhir.r4.examples 4.0.1, CC0), every one of them:
 * clinical, administrative, financial, workflow and definitional (StructureDefinition,
 * SearchParameter, ValueSet, CodeSystem, CapabilityStatement…) alike, since the gateway serves
 * every R4 resource type but Parameters, of which the package has no example. Bundles of any type
 * (transaction and batch included) are stored as Bundle resources, not processed.
 *
 * Each example is written with its own id (PUT = update-as-create, so references between examples
 * keep pointing at each other) by an admin client, then read back and compared with the file:
 * every element equal, numbers by their text (R4: a decimal's precision is significant); in meta
 * only what the server stamps may differ (versionId, lastUpdated, source, the owner-organization
 * tag it adds, and the role-trust tag it puts on a PractitionerRole an operator writes).
 *
 * 8 requests in flight; the gateway runs in this process, so the run is CPU-bound (validation of
 * 191 MB of JSON): 70–100 s on the 2-core build machine under load. The two largest Bundles (35 MB
 * and 20 MB, the spec's definitions gathered) are over the default body limit of 16 MiB, hence
 * GW_MAX_BODY_BYTES at 64 MiB here.
 */

const DIR = join(__dirname, '../../node_modules/hl7.fhir.r4.examples');
const OWNER_TAG_SYSTEM = 'https://gateway.fr-primary-care.org/fhir/CodeSystem/owner-organization';
/** Tags the server itself stamps: the owner, and the vouch of a role an admin client (this test's) writes. */
const STAMPED_TAG_SYSTEMS = [OWNER_TAG_SYSTEM, ROLE_TRUST_SYSTEM];
const CONCURRENCY = 8;

/** Files of the package that are not examples: its manifest, and a second copy of ImplementationGuide-fhir.json. */
const NOT_EXAMPLES = new Set(['package.json', 'ig-r4.json']);

/**
 * Examples that are not valid R4, which the gateway refuses (400), one line each: the file, what the
 * refusal must name, and why. The test fails when another example fails, when one of these starts
 * passing, or when one is refused for something else: the list stays true.
 */
const EXCLUDED: Record<string, { refusedAt: string; why: string }> = {
  'Bundle-dataelements.json': { refusedAt: 'bdl-7', why: 'the same fullUrl on 3 entries each, 7 times (bdl-7)' },
  'ImplementationGuide-fhir.json': { refusedAt: 'ImplementationGuide.name', why: 'no name nor status (1..1)' },
  'Questionnaire-qs1.json': { refusedAt: 'linkId', why: 'items without linkId (1..1)' },
  ...Object.fromEntries(
    ['CodeSystem', 'ValueSet'].flatMap((type) =>
      ['author', 'effective', 'end', 'keyword', 'workflow'].map((code) => [
        `SearchParameter-${type.toLowerCase()}-extensions-${type}-${code}.json`,
        { refusedAt: 'SearchParameter.base', why: 'no base (1..*)' },
      ]),
    ),
  ),
  'SearchParameter-questionnaireresponse-extensions-QuestionnaireResponse-item-subject.json': {
    refusedAt: 'SearchParameter.id',
    why: 'an id of 66 characters (64 at most)',
  },
  ...Object.fromEntries(
    ['Definition', 'Event', 'FiveWs', 'Request'].map((name) => [
      `StructureDefinition-${name}.json`,
      { refusedAt: 'sdf-4', why: 'a logical model neither abstract nor with a baseDefinition (sdf-4)' },
    ]),
  ),
};

/** Examples tried, and how many of them must be created and read back equal. */
const TRIED = 5305;
const EQUAL = TRIED - Object.keys(EXCLUDED).length;

type Outcome = { file: string; ok: true } | { file: string; ok: false; why: string };

/** A JSON value whose numbers are kept as their text: `{ num: '1.00' }`. */
type Json = null | boolean | string | { num: string } | Json[] | { [k: string]: Json };

/**
 * JSON.parse keeping the literal text of every number (Node 20 has no source-text access in
 * revivers): numbers outside strings are rewritten to marker strings first.
 */
function parseKeepingNumbers(text: string): Json {
  const marker = '\u0000num:';
  let out = '';
  let last = 0;
  const number = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  for (let i = 0; i < text.length;) {
    const c = text[i];
    if (c === '"') {
      i += 1;
      while (i < text.length && text[i] !== '"') {
        i += text[i] === '\\' ? 2 : 1;
      }
      i += 1;
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      number.lastIndex = i;
      const m = number.exec(text) as RegExpExecArray;
      // The marker's NUL is written escaped: JSON strings cannot hold raw control characters.
      out += `${text.slice(last, i)}"\\u0000num:${m[0]}"`;
      i += m[0].length;
      last = i;
    } else {
      i += 1;
    }
  }
  out += text.slice(last);
  return JSON.parse(out, (_k, v: unknown) =>
    typeof v === 'string' && v.startsWith(marker) ? { num: v.slice(marker.length) } : v,
  ) as Json;
}

/** The first path where two values differ, or undefined when they are equal. */
function firstDifference(a: Json | undefined, b: Json | undefined, path: string): string | undefined {
  if (a === b) {
    return undefined;
  }
  const describe = (v: Json | undefined): string => JSON.stringify(v)?.slice(0, 80) ?? 'absent';
  if (
    typeof a !== 'object' ||
    typeof b !== 'object' ||
    a === null ||
    b === null ||
    Array.isArray(a) !== Array.isArray(b)
  ) {
    return `${path}: ${describe(a)} ≠ ${describe(b)}`;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) {
      return `${path}: ${a.length} items ≠ ${b.length}`;
    }
    for (let i = 0; i < a.length; i += 1) {
      const d = firstDifference(a[i], b[i], `${path}[${i}]`);
      if (d) {
        return d;
      }
    }
    return undefined;
  }
  const ao = a as Record<string, Json>;
  const bo = b as Record<string, Json>;
  for (const k of new Set([...Object.keys(ao), ...Object.keys(bo)])) {
    const d = firstDifference(ao[k], bo[k], `${path}.${k}`);
    if (d) {
      return d;
    }
  }
  return undefined;
}

/** meta without what the server stamps: versionId, lastUpdated, source and its tags (STAMPED_TAG_SYSTEMS). */
function metaAsSent(meta: Json | undefined, server: boolean): Json | undefined {
  if (!meta || typeof meta !== 'object' || Array.isArray(meta) || 'num' in meta) {
    return meta;
  }
  const out: Record<string, Json> = { ...meta };
  for (const stamped of ['versionId', 'lastUpdated', 'source', 'tag']) {
    delete out[stamped];
  }
  const tags = Array.isArray(meta.tag)
    ? meta.tag.filter((t) => !(server && STAMPED_TAG_SYSTEMS.includes((t as Record<string, Json>).system as string)))
    : [];
  if (tags.length > 0) {
    out.tag = tags;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** Runs `fn` over `items`, `limit` at a time. */
async function eachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) {
        await fn(items[next++]);
      }
    }),
  );
}

describe('conformance: the official FHIR R4 examples (hl7.fhir.r4.examples 4.0.1)', () => {
  let gw: TestGateway;
  let token: string;

  beforeAll(async () => {
    // ImplementationGuide-fhir.json has an array of 28 517 pages (over GW_JSON_MAX_ARRAY_ITEMS' default).
    gw = await startTestGateway({
      GW_LOG_LEVEL: 'warn',
      GW_MAX_BODY_BYTES: String(64 * 1024 * 1024),
      GW_JSON_MAX_ARRAY_ITEMS: '30000',
    });
    token = await gw.token();
  });
  afterAll(async () => gw.close());

  async function call(method: string, path: string, body?: string): Promise<{ status: number; text: string }> {
    const res = await fetch(`${gw.fhirUrl}/${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined ? { 'content-type': 'application/fhir+json' } : {}),
      },
      body,
    });
    return { status: res.status, text: await res.text() };
  }

  async function tryExample(file: string): Promise<Outcome> {
    const text = readFileSync(join(DIR, file), 'utf8');
    const { resourceType, id } = JSON.parse(text) as { resourceType: string; id: string };
    const path = `${resourceType}/${encodeURIComponent(id)}`;
    const put = await call('PUT', path, text);
    if (put.status !== 201) {
      const issues = (JSON.parse(put.text) as { issue?: { details?: { text?: string }; expression?: string[] }[] })
        .issue;
      const why = (issues ?? []).map((i) => `${i.expression?.join(',') ?? ''} ${i.details?.text ?? ''}`).join('; ');
      return { file, ok: false, why: `PUT ${put.status}: ${why.slice(0, 300)}` };
    }
    const read = await call('GET', path);
    const sent = parseKeepingNumbers(text) as Record<string, Json>;
    const got = parseKeepingNumbers(read.text) as Record<string, Json>;
    const meta = firstDifference(metaAsSent(sent.meta, false), metaAsSent(got.meta, true), 'meta');
    const owner = ((got.meta as Record<string, Json>).tag as Record<string, Json>[]).some(
      (t) => t.system === OWNER_TAG_SYSTEM,
    );
    const rest = firstDifference({ ...sent, meta: null }, { ...got, meta: null }, resourceType);
    const why = meta ?? rest ?? (owner ? undefined : 'no owner tag');
    return why ? { file, ok: false, why: `read back differs at ${why}` } : { file, ok: true };
  }

  it('compares numbers by their text, every element, and in meta ignores only what the server stamps', () => {
    const diff = (a: string, b: string): string | undefined =>
      firstDifference(parseKeepingNumbers(a), parseKeepingNumbers(b), 'X');
    expect(diff('{"v":1.0,"s":"1.0 -2e3"}', '{ "s": "1.0 -2e3", "v": 1.0 }')).toBeUndefined();
    expect(diff('{"v":1.0}', '{"v":1.00}')).toBe('X.v.num: "1.0" ≠ "1.00"');
    expect(diff('{"a":[1,2]}', '{"a":[2,1]}')).toBe('X.a[0].num: "1" ≠ "2"');
    expect(diff('{"a":{"b":"\\"x"}}', '{"a":{}}')).toBe('X.a.b: "\\"x" ≠ absent');
    const sent = parseKeepingNumbers('{"lastUpdated":"2019-01-01","profile":["p"],"tag":[{"code":"t"}]}');
    const stamped = parseKeepingNumbers(
      `{"versionId":"1","lastUpdated":"2030-01-01","source":"s","profile":["p"],"tag":[{"code":"t"},{"system":"${OWNER_TAG_SYSTEM}","code":"o"}]}`,
    );
    expect(firstDifference(metaAsSent(sent, false), metaAsSent(stamped, true), 'meta')).toBeUndefined();
    expect(firstDifference(metaAsSent(undefined, false), metaAsSent(stamped, true), 'meta')).toMatch(/^meta: absent/);
  });

  it('creates every example with its own id and reads each back equal apart from meta', async () => {
    const files = readdirSync(DIR)
      .filter((f) => f.endsWith('.json') && !NOT_EXAMPLES.has(f))
      .sort();
    const started = Date.now();
    const outcomes: Outcome[] = [];
    await eachLimited(files, CONCURRENCY, async (file) => {
      outcomes.push(await tryExample(file).catch((err: Error) => ({ file, ok: false as const, why: String(err) })));
    });
    const failed = outcomes.filter((o): o is Extract<Outcome, { ok: false }> => !o.ok);
    process.stdout.write(
      `R4 examples: ${files.length} tried, ${outcomes.length - failed.length} created and read back equal, ` +
        `${failed.length} refused (${Object.keys(EXCLUDED).length} excluded as invalid R4) in ${Math.round((Date.now() - started) / 1000)} s\n` +
        failed
          .filter((f) => !EXCLUDED[f.file])
          .map((f) => `  ${f.file}: ${f.why}\n`)
          .join(''),
    );
    expect(files).toHaveLength(TRIED);
    // Each failure is an exclusion refused for its stated reason; each exclusion fails.
    expect(
      failed
        .map((f) => {
          const excluded = EXCLUDED[f.file] as { refusedAt: string } | undefined;
          return {
            file: f.file,
            why: f.why,
            expected: f.why.startsWith('PUT 400') && !!excluded && f.why.includes(excluded.refusedAt),
          };
        })
        .filter((f) => !f.expected),
    ).toEqual([]);
    expect(failed.map((f) => f.file).sort()).toEqual(Object.keys(EXCLUDED).sort());
    expect(outcomes.length - failed.length).toBe(EQUAL);
  }, 600_000);
});
