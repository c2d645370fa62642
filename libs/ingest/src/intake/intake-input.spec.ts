import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import JSZip from 'jszip';
import { GatewayError } from '@gw/platform';
import { readIntakeInput } from './intake-input';

const SAMPLES = join(__dirname, '../../../../../shared/samples/ans-cda');

async function xdm(files: Record<string, Buffer | string>): Promise<Buffer> {
  const zip = new JSZip();
  for (const [name, content] of Object.entries(files)) zip.file(name, content);
  return zip.generateAsync({ type: 'nodebuffer', compression: 'DEFLATE' });
}

async function status(p: Promise<unknown>): Promise<[number, string[] | undefined]> {
  try {
    await p;
  } catch (e) {
    if (e instanceof GatewayError) return [e.status, e.issues[0].expression];
    throw e;
  }
  throw new Error('expected an error');
}

describe('intake input', () => {
  const cda = readFileSync(join(SAMPLES, 'VAC_2023.01.xml'));

  it('reads the CDA of an IHE XDM zip (METADATA.XML + the document)', async () => {
    const body = await xdm({ 'IHE_XDM/SUBSET01/METADATA.XML': '<x/>', 'IHE_XDM/SUBSET01/DOC0001.XML': cda });
    const [e] = await readIntakeInput({ contentType: 'application/zip', body });
    expect(e.document.type.code).toBe('11369-6');
  });

  it('reads a CDA posted as generic bytes by sniffing it', async () => {
    const [e] = await readIntakeInput({ contentType: 'application/octet-stream', body: cda });
    expect(e.document.setId).toBe('1.2.250.1.213.1.1.1.37.2023.1');
  });

  it('refuses a truncated zip, naming it', async () => {
    const body = await xdm({ 'IHE_XDM/SUBSET01/METADATA.XML': '<x/>', 'IHE_XDM/SUBSET01/DOC0001.XML': cda });
    expect(
      await status(readIntakeInput({ contentType: 'application/zip', body: body.subarray(0, body.length / 2) })),
    ).toEqual([400, ['IHE_XDM.ZIP']]);
  });

  it('refuses a zip without METADATA.XML', async () => {
    const body = await xdm({ 'DOC0001.XML': cda });
    expect(await status(readIntakeInput({ contentType: 'application/zip', body }))).toEqual([
      400,
      ['IHE_XDM.ZIP/METADATA.XML'],
    ]);
  });

  it('refuses text when no text reader is registered', async () => {
    expect(await status(readIntakeInput({ contentType: 'text/plain', body: Buffer.from('H|x') }))).toEqual([
      415,
      ['Content-Type'],
    ]);
  });
});
