import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ATC,
  BDPM,
  CCAM,
  CIM_10,
  CISP_2,
  LOINC,
  NABM,
  NGAP,
  canonicalSystem,
  normalizeCoding,
  resolveSystem,
  sameSystem,
  systemOid,
} from './code-systems';

const SAMPLES = join(__dirname, '../../../../../shared/samples/ans-cda');

/** codeSystem OIDs of the samples that name a clinical vocabulary (not a directory, not a document-type list). */
const CLINICAL_OIDS = [
  '2.16.840.1.113883.6.1',
  '2.16.840.1.113883.6.3',
  '2.16.840.1.113883.6.139',
  '2.16.840.1.113883.6.73',
  '2.16.840.1.113883.6.96',
  '1.2.250.1.215.300.1',
  '1.2.250.1.213.2.3.1',
  '1.2.250.1.213.2.3.2',
  '1.2.250.1.213.2.3.3',
  '1.2.250.1.213.2.7',
  '1.2.250.1.213.2.10',
  '0.4.0.127.0.16.1.1.2.1',
  '2.16.840.1.113883.6.347',
  '2.16.840.1.113883.5.83',
  '1.2.250.1.215.200.1.1.1',
  '1.2.250.1.215.200.1.1.2',
  '1.2.250.1.215.200.1.2.1',
  '1.2.250.1.215.200.1.2.2',
  '1.2.250.1.215.200.2.1',
  '1.2.250.1.215.200.3.3',
  '1.2.250.1.215.200.3.4',
  '1.2.250.1.215.200.4.1',
];

describe('code systems', () => {
  it('gives CCAM one canonical for both of its OIDs, its urn:oid forms and the CNAM-HR value set', () => {
    for (const name of [
      '1.2.250.1.215.300.1',
      '1.2.250.1.213.2.5',
      'urn:oid:1.2.250.1.213.2.5',
      '1.2.250.1.215.200.3.4',
    ]) {
      expect(canonicalSystem(name)).toBe(CCAM);
    }
    expect(CCAM).toBe('https://smt.esante.gouv.fr/terminologie-ccam');
    expect(sameSystem('1.2.250.1.215.300.1', 'urn:oid:1.2.250.1.213.2.5')).toBe(true);
  });

  it('maps the OIDs SOURCES.md lists to the ANS canonicals', () => {
    expect(canonicalSystem('2.16.840.1.113883.6.1')).toBe(LOINC);
    expect(canonicalSystem('2.16.840.1.113883.6.3')).toBe(CIM_10);
    expect(canonicalSystem('2.16.840.1.113883.6.139')).toBe(CISP_2);
    expect(canonicalSystem('2.16.840.1.113883.6.73')).toBe(ATC);
    expect(canonicalSystem('1.2.250.1.213.2.3.1')).toBe(BDPM);
    expect(canonicalSystem('1.2.250.1.213.2.3.2')).toBe(BDPM);
    expect(canonicalSystem('1.2.250.1.213.2.3.3')).toBe(BDPM);
    expect(canonicalSystem('1.2.250.1.213.2.7')).toBe(NABM);
    expect(canonicalSystem('1.2.250.1.213.2.10')).toBe(NGAP);
  });

  it('accepts the FHIR URLs older resources use as aliases', () => {
    expect(canonicalSystem('http://www.whocc.no/atc')).toBe(ATC);
    expect(canonicalSystem('http://hl7.org/fhir/sid/icd-10')).toBe(CIM_10);
    expect(canonicalSystem('https://smt.esante.gouv.fr/terminologie-ccam/')).toBe(CCAM);
    expect(normalizeCoding({ system: 'urn:oid:2.16.840.1.113883.6.1', code: '4548-4' })).toEqual({
      system: LOINC,
      code: '4548-4',
    });
  });

  it('keeps an unknown OID as urn:oid (a lab-local code stays what it is) and says it is unknown', () => {
    expect(resolveSystem('1.2.250.1.2.3.4')).toEqual({ system: 'urn:oid:1.2.250.1.2.3.4', known: false });
    expect(resolveSystem('https://lab.example/codes')).toEqual({ system: 'https://lab.example/codes', known: false });
  });

  it('writes back the OID of a canonical for CDA and XDS metadata', () => {
    expect(systemOid(LOINC)).toBe('2.16.840.1.113883.6.1');
    expect(systemOid(CCAM)).toBe('1.2.250.1.213.2.5');
    expect(systemOid('urn:oid:1.2.3')).toBe('1.2.3');
  });

  it('resolves every clinical code system the ANS samples use', () => {
    const seen = new Set<string>();
    for (const file of readdirSync(SAMPLES).filter((f) => f.endsWith('.xml'))) {
      for (const m of readFileSync(join(SAMPLES, file), 'utf8').matchAll(/codeSystem="([0-9.]+)"/g)) {
        seen.add(m[1]);
      }
    }
    for (const oid of CLINICAL_OIDS) {
      expect(seen).toContain(oid);
      const resolved = resolveSystem(oid);
      expect({ oid, known: resolved.known }).toEqual({ oid, known: true });
      expect(resolved.system).not.toMatch(/^[0-9]/);
    }
  });
});
