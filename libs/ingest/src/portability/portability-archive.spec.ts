import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writePortabilityArchive } from '@gw/testing/intake-archive';
import { ZipWriter } from '@gw/testing/zip-writer';
import { SKIP_REASONS, planArchive } from './archive.plan';
import { ArchiveEntryError, ZipArchive } from './zip-archive';
import { documentOnlyExtraction, readXdmMetadata } from './xdm-metadata';

describe('portability archive reading', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'gw-portability-spec-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('plans patient units from XDM zips and XDM folders, and sets the transverse archive aside', () => {
    const { entries, units } = planArchive([
      'README.TXT',
      'PATIENTS/P1/IHE_XDM.ZIP',
      'PATIENTS/P2/',
      'PATIENTS/P2/INDEX.HTM',
      'PATIENTS/P2/IHE_XDM/SUBSET01/DOC0002.PDF',
      'PATIENTS/P2/IHE_XDM/SUBSET01/DOC0001.XML',
      'PATIENTS/P2/IHE_XDM/SUBSET01/METADATA.XML',
      'TRANSVERSE/STRUCTURE.XML',
      'TRANSVERSE.ZIP',
    ]);
    expect(units).toBe(2);
    const by = Object.fromEntries(entries.map((e) => [e.path, e]));
    expect(by['PATIENTS/P1/IHE_XDM.ZIP']).toMatchObject({ unit: 1, kind: 'xdm-zip', status: 'pending' });
    expect(by['PATIENTS/P2/IHE_XDM/SUBSET01/DOC0001.XML']).toMatchObject({ unit: 2, kind: 'cda', status: 'pending' });
    expect(by['PATIENTS/P2/IHE_XDM/SUBSET01/DOC0002.PDF']).toMatchObject({ unit: 2, kind: 'pdf' });
    expect(by['TRANSVERSE.ZIP']).toMatchObject({
      kind: 'transverse',
      status: 'skipped',
      reason: SKIP_REASONS.transverse,
    });
    expect(by['TRANSVERSE/STRUCTURE.XML'].kind).toBe('transverse');
    expect(by['README.TXT']).toMatchObject({ kind: 'other', status: 'skipped' });
    expect(by['PATIENTS/P2/INDEX.HTM']).toMatchObject({ kind: 'other', unit: 0 });
    expect(entries.some((e) => e.path === 'PATIENTS/P2/')).toBe(false);
    // Within a unit the metadata comes first, then the documents in file order.
    expect(entries.filter((e) => e.unit === 2).map((e) => e.kind)).toEqual(['metadata', 'cda', 'pdf']);
  });

  it('reads a generated archive entry by entry and names a damaged entry instead of returning its bytes', async () => {
    const file = join(dir, 'two.zip');
    const generated = writePortabilityArchive(file, { patients: 2, layout: 'folder', damaged: [1] });
    expect(generated.documents).toBe(8);
    const zip = await ZipArchive.open(file);
    try {
      const names = zip.names();
      expect(names).toContain('PATIENTS/P00001/IHE_XDM/SUBSET01/DOC0001.XML');
      const vsm = (await zip.read('PATIENTS/P00001/IHE_XDM/SUBSET01/DOC0001.XML', 1 << 20)).toString('utf8');
      const p = generated.patients[0];
      expect(vsm).toContain(`<id extension="${p.ins}" root="1.2.250.1.213.1.4.10"/>`);
      expect(vsm).toContain(`<id root="${p.documents[0].uniqueId}"/>`);
      expect(vsm).toContain('functionCode code="PCP"');
      expect(vsm).not.toContain('PAT-TROIS');
      await expect(zip.read('PATIENTS/P00002/IHE_XDM/SUBSET01/DOC0002.XML', 1 << 20)).rejects.toBeInstanceOf(
        ArchiveEntryError,
      );
      await expect(zip.read('PATIENTS/P00001/IHE_XDM/SUBSET01/DOC0001.XML', 100)).rejects.toThrow(/over the limit/);
    } finally {
      zip.close();
    }
  });

  it('reads the patient and the PDF description from an XDM METADATA.XML', async () => {
    const file = join(dir, 'one.zip');
    const { patients } = writePortabilityArchive(file, { patients: 1, layout: 'zip' });
    const outer = await ZipArchive.open(file);
    const inner = await ZipArchive.fromBuffer(await outer.read('PATIENTS/P00001/IHE_XDM.ZIP', 1 << 24));
    try {
      const entries = readXdmMetadata(await inner.read('IHE_XDM/SUBSET01/METADATA.XML', 1 << 20));
      const p = patients[0];
      const pdfEntry = entries.get('DOC0004.PDF');
      expect(pdfEntry).toMatchObject({
        mimeType: 'application/pdf',
        uniqueId: p.documents[3].uniqueId,
        typeCode: { system: 'http://loinc.org', code: '11488-4' },
        creationTime: '2025-06-01T10:00:00Z',
        patient: {
          ins: { value: p.ins, oid: '1.2.250.1.213.1.4.10' },
          identifiers: [{ system: 'urn:oid:1.2.250.1.999.1.1', value: p.ipp }],
          birthFamily: p.family,
          given: [p.given],
          birthDate: p.birthDate,
          sex: p.sex,
        },
      });
      const pdf = await inner.read('IHE_XDM/SUBSET01/DOC0004.PDF', 1 << 20);
      const extraction = documentOnlyExtraction(pdfEntry!, pdf, 'application/pdf');
      expect(extraction.resources).toEqual([]);
      expect(extraction.document).toMatchObject({ uniqueId: p.documents[3].uniqueId, contentType: 'application/pdf' });
      expect(extraction.document.content.subarray(0, 5).toString()).toBe('%PDF-');
    } finally {
      inner.close();
      outer.close();
    }
  });

  it('refuses a METADATA.XML that is not ebRIM and never expands entities', () => {
    expect(() => readXdmMetadata(Buffer.from('<html/>'))).toThrow(/SubmitObjectsRequest/);
    const bomb = Buffer.from(
      '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>' +
        '<SubmitObjectsRequest><RegistryObjectList><ExtrinsicObject id="x"><Slot name="URI"><ValueList><Value>&b;</Value></ValueList></Slot></ExtrinsicObject></RegistryObjectList></SubmitObjectsRequest>',
    );
    expect([...readXdmMetadata(bomb).keys()]).toEqual(['&B;']);
  });

  it('opens a zip built in memory', async () => {
    const buf = ZipWriter.toBuffer((w) => w.add('A.TXT', Buffer.from('bonjour')));
    const zip = await ZipArchive.fromBuffer(buf);
    expect((await zip.read('A.TXT', 100)).toString()).toBe('bonjour');
    zip.close();
  });
});
