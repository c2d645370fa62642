import { resolve } from 'node:path';
import type { CareTeam, Patient, Resource, Task } from '@medplum/fhirtypes';
import { ProfileRegistry, SearchParamRegistry, loadFhirDefinitions, validateForWrite } from '@gw/fhir';
import { TerritoryGenerator } from './generator';
import type { PersonFacts } from './person';
import { luhnKey, nirKey } from '@gw/fhir';

const OPTIONS = { seed: 7, patients: 3000, asOf: '2026-10-31' };

function draw(options = OPTIONS): { facts: PersonFacts[]; resources: Resource[] } {
  const facts: PersonFacts[] = [];
  const resources: Resource[] = [];
  for (const p of new TerritoryGenerator(options).people()) {
    facts.push(p.facts);
    resources.push(...p.resources);
  }
  return { facts, resources };
}

describe('TerritoryGenerator', () => {
  const { facts, resources } = draw();
  const share = (f: (p: PersonFacts) => boolean, of: (p: PersonFacts) => boolean = () => true): number =>
    facts.filter((p) => of(p) && f(p)).length / facts.filter(of).length;

  it('gives the same ids and content for the same seed, size and date, other ids for another seed', () => {
    const again = new TerritoryGenerator(OPTIONS);
    const first = [...again.people()].slice(0, 50).flatMap((p) => p.resources);
    expect(first).toEqual(resources.slice(0, first.length));
    expect(again.cpts.id).toBe(new TerritoryGenerator(OPTIONS).cpts.id);
    const other = new TerritoryGenerator({ ...OPTIONS, seed: 8 });
    expect(other.cpts.id).not.toBe(again.cpts.id);
    expect(new Set(resources.map((r) => `${r.resourceType}/${r.id}`)).size).toBe(resources.length);
  });

  it('draws a French-like population: age pyramid, sex ratio, treated diabetes ~5 %, ~9 % of adults without an MT', () => {
    expect(share((p) => p.age < 16)).toBeGreaterThan(0.15);
    expect(share((p) => p.age < 16)).toBeLessThan(0.22);
    expect(share((p) => p.age >= 65)).toBeGreaterThan(0.17);
    expect(share((p) => p.age >= 65)).toBeLessThan(0.25);
    expect(share((p) => p.sex === 'female')).toBeGreaterThan(0.49);
    expect(share((p) => p.sex === 'female')).toBeLessThan(0.54);
    expect(share((p) => p.diabetes)).toBeGreaterThan(0.035);
    expect(share((p) => p.diabetes)).toBeLessThan(0.065);
    const adult = (p: PersonFacts): boolean => p.age >= 16;
    expect(share((p) => p.mt === 'none' || p.mt === 'seeking', adult)).toBeGreaterThan(0.07);
    expect(share((p) => p.mt === 'none' || p.mt === 'seeking', adult)).toBeLessThan(0.11);
    expect(share((p) => p.mt === 'departed' || p.mt === 'fictitious', adult)).toBeGreaterThan(0.01);
    expect(share((p) => p.duplicate)).toBeGreaterThan(0.015);
    expect(share((p) => p.duplicate)).toBeLessThan(0.04);
  });

  it('gives duplicated persons two records in two structures under different local ids and the same qualified INS', () => {
    const patients = resources.filter((r): r is Patient => r.resourceType === 'Patient');
    expect(patients.length).toBe(facts.length + facts.filter((p) => p.duplicate).length);
    const byIns = new Map<string, Patient[]>();
    for (const p of patients) {
      const ins = p.identifier?.find((i) => i.system === 'urn:oid:1.2.250.1.213.1.4.10')?.value;
      if (ins) {
        byIns.set(ins, [...(byIns.get(ins) ?? []), p]);
      }
    }
    const pairs = [...byIns.values()].filter((l) => l.length === 2);
    expect(pairs.length).toBe(facts.filter((p) => p.duplicate).length);
    expect([...byIns.values()].every((l) => l.length <= 2)).toBe(true);
    for (const [a, b] of pairs) {
      expect(a!.meta?.tag?.[0]?.code).not.toBe(b!.meta?.tag?.[0]?.code);
      expect(a!.identifier?.[0]?.value).not.toBe(b!.identifier?.[0]?.value);
      expect(JSON.stringify(a!.extension)).toContain('"QUAL"');
    }
    for (const ins of byIns.keys()) {
      expect(nirKey(ins.slice(0, 13))).toBe(ins.slice(13));
    }
  });

  it('writes valid identifiers: RPPS with a Luhn key, FINESS and SIRET keys; every resource passes the write validation', () => {
    loadFhirDefinitions();
    const profiles = ProfileRegistry.fromDirectory(resolve(__dirname, '../../../../../fhir-profiles'));
    const structural = new TerritoryGenerator(OPTIONS).structures();
    const ids = structural.flatMap(
      (r) => (r as { identifier?: { system?: string; value?: string }[] }).identifier ?? [],
    );
    for (const i of ids.filter(
      (x) =>
        x.system === 'https://rpps.esante.gouv.fr' ||
        x.system === 'https://sirene.fr' ||
        x.system === 'https://finess.esante.gouv.fr',
    )) {
      const v = i.value as string;
      expect(luhnKey(v.slice(0, -1))).toBe(v.slice(-1));
    }
    for (const r of [...structural, new TerritoryGenerator(OPTIONS).cpts, ...resources.slice(0, 3000)]) {
      expect(() => validateForWrite(r, profiles)).not.toThrow();
    }
  });

  it('makes the acts of the FMT prevention items: children vaccinated by age, cervical tests, at-risk adults', () => {
    const codeOf = (r: Resource): string[] =>
      (r.resourceType === 'Immunization'
        ? r.vaccineCode
        : r.resourceType === 'Observation'
          ? r.code
          : undefined
      )?.coding?.map((c) => c.code as string) ?? [];
    const people = [...new TerritoryGenerator(OPTIONS).people()].map((p) => ({
      facts: p.facts,
      codes: p.resources.flatMap(codeOf),
      dates: p.resources.flatMap((r) => (r.resourceType === 'Immunization' ? [r.occurrenceDateTime as string] : [])),
    }));
    const shareOf = (code: string, of: (f: PersonFacts) => boolean, times = 1): number => {
      const group = people.filter((p) => of(p.facts));
      return group.filter((p) => p.codes.filter((c) => c === code).length >= times).length / group.length;
    };
    // Nothing dated after the data's last day.
    expect(people.every((p) => p.dates.every((d) => d.slice(0, 10) <= OPTIONS.asOf))).toBe(true);
    const children = (f: PersonFacts) => f.age >= 3 && f.age < 16;
    expect(shareOf('J07BD52', children, 2)).toBeGreaterThan(0.75);
    expect(shareOf('J07BD52', children, 2)).toBeLessThan(0.92);
    expect(shareOf('J07AH07', children)).toBeGreaterThan(0.82);
    expect(shareOf('J07BM03', (f) => f.age >= 15 && f.age < 18)).toBeGreaterThan(0.3);
    expect(shareOf('J07BM03', (f) => f.age >= 15 && f.age < 18)).toBeLessThan(0.55);
    expect(shareOf('J07BM03', (f) => f.age < 11)).toBe(0);
    expect(shareOf('10524-7', (f) => f.sex === 'female' && f.age >= 25 && f.age < 30)).toBeGreaterThan(0.4);
    expect(shareOf('77379-6', (f) => f.sex === 'female' && f.age >= 30 && f.age <= 65)).toBeGreaterThan(0.45);
    expect(shareOf('77379-6', (f) => f.sex === 'male')).toBe(0);
    expect(shareOf('J07BN01', (f) => f.age >= 65)).toBeGreaterThan(0.2);
    expect(shareOf('J07BN01', (f) => f.age >= 65)).toBeLessThan(0.4);
    expect(shareOf('J07AL02', (f) => f.age >= 18 && f.diabetes)).toBeGreaterThan(0.1);
  });

  it('dates every declared médecin traitant: a CareTeam PCP from a day between birth and a month before the data ends', () => {
    let children = 0;
    for (const p of [...new TerritoryGenerator(OPTIONS).people(0, 1500)]) {
      const patient = p.resources[0] as Patient;
      const teams = p.resources.filter((r): r is CareTeam => r.resourceType === 'CareTeam');
      if (p.facts.mt !== 'declared') {
        expect(teams).toHaveLength(0);
        continue;
      }
      children += p.facts.age < 16 ? 1 : 0;
      expect(teams).toHaveLength(1);
      const pcp = (teams[0]?.participant ?? []).filter((pa) =>
        pa.role?.some((r) => r.coding?.some((c) => c.code === 'PCP')),
      );
      const current = pcp.find((pa) => !pa.period?.end);
      expect(current?.member?.reference).toBe(patient.generalPractitioner?.[0]?.reference);
      for (const pa of pcp) {
        expect((pa.period?.start as string) >= (patient.birthDate as string)).toBe(true);
        expect((pa.period?.start as string) <= OPTIONS.asOf).toBe(true);
      }
    }
    // Children too: the FMT patientèle of 31 December holds the ROR and meningococcal C items' population.
    expect(children).toBeGreaterThan(150);
  });

  it("gives the CPTS's find-a-médecin-traitant service its requests: MTs found in the year, persons still seeking", () => {
    const generator = new TerritoryGenerator(OPTIONS);
    const cpts = `Organization/${generator.cpts.id}`;
    const periodStart = '2025-11-01';
    let found = 0;
    let open = 0;
    let closedWithout = 0;
    for (const p of generator.people(0, 3000)) {
      const tasks = p.resources.filter(
        (r): r is Task => r.resourceType === 'Task' && r.code?.coding?.[0]?.code === 'find-mt',
      );
      for (const t of tasks) {
        expect(t.owner?.reference).toBe(cpts);
        expect(t.for?.reference).toBe(`Patient/${p.resources[0]?.id}`);
        expect((t.executionPeriod?.end ?? t.authoredOn ?? '').slice(0, 10) <= OPTIONS.asOf).toBe(true);
        if (t.status === 'in-progress') {
          expect(p.facts.mt).toBe('seeking');
          open++;
        } else if (p.facts.mt === 'declared') {
          // Closed on the day the MT's declaration starts, within the year.
          const team = p.resources.find((r): r is CareTeam => r.resourceType === 'CareTeam');
          expect(team?.participant?.[0]?.period?.start).toBe(t.executionPeriod?.end?.slice(0, 10));
          expect((t.executionPeriod?.end as string) > periodStart).toBe(true);
          found++;
        } else {
          expect(p.facts.mt).toBe('seeking');
          closedWithout++;
        }
      }
    }
    // Enough for the CPTS measure (completed in the year, an MT at its end) to have a score.
    expect(found).toBeGreaterThan(20);
    expect(closedWithout).toBeGreaterThan(5);
    expect(open).toBeGreaterThan(closedWithout);
  });

  it('streams: people are built one at a time from an index, so a resumed run gives the same persons', () => {
    const g = new TerritoryGenerator(OPTIONS);
    const fromTen = g.people(10).next().value;
    expect(fromTen?.facts.index).toBe(10);
    expect(fromTen?.resources).toEqual([...new TerritoryGenerator(OPTIONS).people()][10]?.resources);
  });

  it('indexes the same search rows whether or not parameters without their elements are skipped', () => {
    loadFhirDefinitions();
    const registry = new SearchParamRegistry();
    const generator = new TerritoryGenerator(OPTIONS);
    const sample = [...generator.structures(), generator.cpts, ...resources.slice(0, 8000)];
    expect(new Set(sample.map((r) => r.resourceType)).size).toBeGreaterThanOrEqual(14);
    for (const r of sample) {
      expect({ id: `${r.resourceType}/${r.id}`, rows: registry.extract(r) }).toEqual({
        id: `${r.resourceType}/${r.id}`,
        rows: registry.extract(r, true),
      });
    }
  });
});
