import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { GatewayError } from '@gw/platform';
import { ROOT } from '@gw/testing/process';
import type { Extraction } from '../intake/extraction';
import { readCda } from './cda.reader';
import { CdaReadPool } from './cda-read.pool';

const SAMPLES = join(__dirname, '../../../../../shared/samples/ans-cda');
/** The compiled task (npm test builds before Jest runs). */
const WORKER = resolve(ROOT, 'dist/libs/ingest/src/cda/cda-read.worker.js');

/** The extraction as JSON with its generated urn:uuid ids numbered by first appearance (two reads draw different ones). */
function comparable(e: Extraction): unknown {
  const ids = new Map<string, string>();
  const text = JSON.stringify({ ...e, document: { ...e.document, content: e.document.content.toString('base64') } });
  return JSON.parse(
    text.replace(/urn:uuid:[0-9a-f-]{36}/g, (id) => {
      if (!ids.has(id)) ids.set(id, `urn:uuid:#${ids.size}`);
      return ids.get(id) as string;
    }),
  );
}

async function refusal(read: () => Promise<Extraction> | Extraction): Promise<GatewayError> {
  try {
    await read();
  } catch (e) {
    expect(e).toBeInstanceOf(GatewayError);
    return e as GatewayError;
  }
  throw new Error('expected a refusal');
}

describe('CDA read threads', () => {
  const pool = new CdaReadPool(2, WORKER);
  afterAll(() => pool.close());

  it('reads every ANS sample on a worker thread into the extraction the calling thread reads', async () => {
    expect(existsSync(WORKER)).toBe(true);
    expect(pool.threads).toBe(2);
    const files = readdirSync(SAMPLES).filter((f) => f.endsWith('.xml'));
    expect(files.length).toBeGreaterThan(3);
    const before = pool.completed;
    for (const file of files) {
      const body = readFileSync(join(SAMPLES, file));
      const threaded = await pool.read(body);
      expect(comparable(threaded)).toEqual(comparable(readCda(body)));
      // The extraction holds the caller's own bytes, not a copy sent back.
      expect(threaded.document.content).toBe(body);
    }
    expect(pool.completed - before).toBe(files.length);
  });

  it('refuses on the thread with the category and the issues the calling thread gives', async () => {
    for (const body of [Buffer.from('<html><body>not a CDA</body></html>'), Buffer.from('<ClinicalDocument')]) {
      const here = await refusal(() => readCda(body));
      const threaded = await refusal(() => pool.read(body));
      expect(threaded.category).toBe(here.category);
      expect(threaded.status).toBe(here.status);
      expect(threaded.issues).toEqual(here.issues);
    }
  });

  it('reads on the calling thread with 0 threads or without the compiled task', async () => {
    const body = readFileSync(join(SAMPLES, readdirSync(SAMPLES).find((f) => f.endsWith('.xml')) as string));
    for (const local of [new CdaReadPool(0, WORKER), new CdaReadPool(2, join(__dirname, 'no-such-task.js'))]) {
      expect(local.threads).toBe(0);
      expect(comparable(await local.read(body))).toEqual(comparable(readCda(body)));
      expect(local.completed).toBe(0);
      await local.close();
    }
  });
});
