import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { bdpmEntries, parseCisAtc, parseCisCip, parseMapFile } from './drug-atc.loader';

const SHIPPED = resolve(__dirname, '../../../fhir-profiles/drug-atc/drug-atc.tsv');

describe('CIS/CIP → ATC map files', () => {
  it('reads BDPM CIS_CIP_bdpm.txt (CIS, CIP7, …, CIP13 in column 7) and a CIS → ATC file into one entry per code and ATC', () => {
    // Two presentations of one CIS, the layout of the BDPM file (labels and prices ignored).
    const cisCip = parseCisCip(
      [
        '68747507\t3285724\t1 seringue(s) préremplie(s)\tPrésentation active\tDéclaration de commercialisation\t01/01/2000\t3400932857241\toui\t65%\t4,50\t4,50\t\t',
        '68747507\t3285725\tautre présentation\tPrésentation active\tArrêt\t01/01/2001\t3400932857258\tnon\t\t\t\t\t',
        'pas un CIS\t\t\t\t\t\t\t',
      ].join('\r\n'),
    );
    expect(cisCip.get('68747507')).toEqual(['3285724', '3400932857241', '3285725', '3400932857258']);
    const cisAtc = parseCisAtc('68747507\tJ07AM01\tVACCIN TETANIQUE\thttps://…\n68747507\tnot-atc\tx\n');
    expect(cisAtc.get('68747507')).toEqual(['J07AM01']);
    const entries = bdpmEntries(cisCip, cisAtc, 'BDPM');
    expect(entries.map((e) => `${e.code}>${e.atc}`)).toEqual([
      '68747507>J07AM01',
      '3285724>J07AM01',
      '3400932857241>J07AM01',
      '3285725>J07AM01',
      '3400932857258>J07AM01',
    ]);
  });

  it('reads the shipped map (pairs stated by the ANS CDA samples) and refuses a malformed line, naming it', () => {
    const shipped = parseMapFile(readFileSync(SHIPPED, 'utf8'), 'drug-atc.tsv');
    expect(shipped).toContainEqual(
      expect.objectContaining({ code: '3400932857241', atc: 'J07AM01' }) as unknown as { code: string },
    );
    expect(shipped.length).toBeGreaterThanOrEqual(10);
    expect(() => parseMapFile('# comment\n1234\tJ07AM\n', 'm.tsv')).toThrow(
      'm.tsv:2: expected "<CIS or CIP> <TAB> <ATC> [<TAB> source]"',
    );
  });
});
