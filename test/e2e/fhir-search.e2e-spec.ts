import { Client } from 'fhir-kit-client';
import type { FhirResource, PaginationParams } from 'fhir-kit-client';
import type {
  Bundle,
  Encounter,
  OperationOutcome,
  OperationOutcomeIssue,
  Patient,
  Practitioner,
  Resource,
} from '@medplum/fhirtypes';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';

// French identifier systems (DOMAIN.md §3): test INS-NIR, temporary INS-NIA, bare RPPS, IdNatPS.
const INS_TEST = 'urn:oid:1.2.250.1.213.1.4.10';
const INS_NIA = 'urn:oid:1.2.250.1.213.1.4.9';
const RPPS = 'https://rpps.esante.gouv.fr';
const IDNATPS = 'urn:oid:1.2.250.1.71.4.2.1';
const IPP_MSP = 'https://msp-saint-etienne.example.fr/ipp';
// Every resource of the shared data set carries this tag, so counts ignore what other tests add.
const COHORT_TAG = { system: 'https://gateway.test/CodeSystem/jeu-de-donnees', code: 'recherche' };
const COHORT = `${COHORT_TAG.system}|${COHORT_TAG.code}`;

const NIR = { helene: '280027511204588', francois: '175117511251260', zoe: '280077511253368' };

type Pairs = [string, string][];

/** A search answer: a Bundle, or an OperationOutcome on errors. */
interface Found {
  status: number;
  body: Omit<Bundle, 'resourceType'> & { resourceType: string; issue?: OperationOutcomeIssue[] };
}

/** fhir-kit-client types resources as loose records; the gateway returns FHIR R4 ones. */
const asFhir = (r: Resource): FhirResource => r as unknown as FhirResource;
const asBundle = (r: FhirResource | undefined): Bundle | undefined => r as unknown as Bundle | undefined;

function inCohort<T extends Resource>(r: T): T {
  return { ...r, meta: { tag: [COHORT_TAG] } };
}

function ids(bundle: Pick<Bundle, 'entry'>, mode = 'match'): string[] {
  return (bundle.entry ?? [])
    .filter((e) => e.search?.mode === mode)
    .map((e) => e.resource?.id as string)
    .sort();
}

describe('FHIR search over French primary-care data', () => {
  let gw: TestGateway;
  let fhir: Client;
  let token: string;
  const id = { helene: '', francois: '', zoe: '', camille: '', dupont: '', moreau: '', e1: '', e2: '', e3: '', e4: '' };

  /** GET [base]/Type?query with the pairs URL-encoded; returns status and parsed body. */
  async function get(type: string, pairs: Pairs, headers: Record<string, string> = {}): Promise<Found> {
    const res = await fetch(`${gw.fhirUrl}/${type}?${new URLSearchParams(pairs).toString()}`, {
      headers: { authorization: `Bearer ${token}`, accept: 'application/fhir+json', ...headers },
    });
    return { status: res.status, body: (await res.json()) as Found['body'] };
  }

  /** Ids matched by a search that must succeed. */
  async function match(type: string, pairs: Pairs): Promise<string[]> {
    const found = await get(type, pairs);
    expect(found.status).toBe(200);
    return ids(found.body);
  }

  const cohortPatients = (pairs: Pairs): Promise<string[]> => match('Patient', [['_tag', COHORT], ...pairs]);
  const cohortEncounters = (pairs: Pairs): Promise<string[]> => match('Encounter', [['_tag', COHORT], ...pairs]);
  const sorted = (...xs: string[]): string[] => [...xs].sort();

  /** Pages of a Patient search, following `next` links with the FHIR client (20 pages at most). */
  async function allPages(searchParams: Record<string, string>): Promise<Bundle[]> {
    const pages: Bundle[] = [];
    let page = asBundle(await fhir.search({ resourceType: 'Patient', searchParams }));
    while (page && pages.length < 20) {
      pages.push(page);
      page = asBundle(await fhir.nextPage({ bundle: page as unknown as PaginationParams['bundle'] }));
    }
    return pages;
  }

  async function create<T extends Resource>(r: T): Promise<string> {
    return (await fhir.create({ resourceType: r.resourceType, body: asFhir(r) })).id as string;
  }

  function practitioner(rpps: string, family: string, given: string): Practitioner {
    return inCohort<Practitioner>({
      resourceType: 'Practitioner',
      identifier: [
        { system: RPPS, value: rpps },
        { system: IDNATPS, value: `8${rpps}` },
      ],
      name: [{ family, given: [given], prefix: ['Dr'] }],
    });
  }

  function encounter(
    subject: string,
    period: { start?: string; end?: string },
    status: Encounter['status'],
    practitioner?: string,
  ): Encounter {
    return inCohort<Encounter>({
      resourceType: 'Encounter',
      status,
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
      subject: { reference: `Patient/${subject}` },
      period,
      ...(practitioner ? { participant: [{ individual: { reference: `Practitioner/${practitioner}` } }] } : {}),
    });
  }

  beforeAll(async () => {
    gw = await startTestGateway();
    token = await gw.token();
    fhir = new Client({ baseUrl: gw.fhirUrl, bearerToken: token });
    id.dupont = await create(practitioner('10001234567', 'Dupont', 'Jean'));
    id.moreau = await create(practitioner('10009876543', 'Moreau', 'Anne'));
    id.helene = await create(
      inCohort<Patient>({
        resourceType: 'Patient',
        identifier: [
          { use: 'official', system: INS_TEST, value: NIR.helene },
          { use: 'usual', system: IPP_MSP, value: 'IPP-0001' },
          { value: 'DOSSIER-42' }, // a paper-file number sent without any system
        ],
        name: [{ use: 'official', family: 'Lefèvre', given: ['Hélène', 'Marie'] }],
        gender: 'female',
        birthDate: '1980-02-27',
        address: [{ line: ['12 rue de la Résistance'], city: 'Saint-Étienne', postalCode: '42000' }],
        generalPractitioner: [{ reference: `Practitioner/${id.dupont}` }],
      }),
    );
    id.francois = await create(
      inCohort<Patient>({
        resourceType: 'Patient',
        identifier: [
          { use: 'official', system: INS_TEST, value: NIR.francois },
          { use: 'usual', system: IPP_MSP, value: 'IPP-0002' },
        ],
        name: [{ use: 'official', family: 'Lefebvre', given: ['François'] }],
        gender: 'male',
        birthDate: '1975-11-03',
        generalPractitioner: [{ reference: `Practitioner/${id.moreau}` }],
      }),
    );
    id.zoe = await create(
      inCohort<Patient>({
        resourceType: 'Patient',
        identifier: [{ use: 'official', system: INS_TEST, value: NIR.zoe }],
        name: [{ use: 'official', family: 'Martin-Lefèvre', given: ['Zoé'] }],
        gender: 'female',
        birthDate: '1980-07-14',
        generalPractitioner: [{ reference: `Practitioner/${id.dupont}` }],
      }),
    );
    id.camille = await create(
      inCohort<Patient>({
        resourceType: 'Patient',
        identifier: [{ use: 'temp', system: INS_NIA, value: '190067511259931' }],
        name: [{ family: 'Dubois', given: ['Camille'] }],
        birthDate: '1990-06-15',
      }),
    );
    // e1: a 30-minute consultation (Paris time); e2: a 3-day stay; e3: still in progress (no end);
    // e4: crosses midnight on New Year's Eve.
    id.e1 = await create(
      encounter(
        id.helene,
        { start: '2024-03-05T09:00:00+01:00', end: '2024-03-05T09:30:00+01:00' },
        'finished',
        id.dupont,
      ),
    );
    id.e2 = await create(
      encounter(id.helene, { start: '2024-04-10T14:00:00Z', end: '2024-04-12T10:00:00Z' }, 'finished'),
    );
    id.e3 = await create(encounter(id.francois, { start: '2024-04-11T08:00:00Z' }, 'in-progress', id.moreau));
    id.e4 = await create(encounter(id.zoe, { start: '2023-12-31T22:00:00Z', end: '2024-01-01T01:00:00Z' }, 'finished'));
  });
  afterAll(async () => gw.close());

  describe('token parameters', () => {
    it('identifier=system|value finds the patient by her INS test NIR', async () => {
      expect(await match('Patient', [['identifier', `${INS_TEST}|${NIR.helene}`]])).toEqual([id.helene]);
    });

    it('identifier=value matches whatever the system', async () => {
      expect(await match('Patient', [['identifier', NIR.helene]])).toEqual([id.helene]);
      expect(await match('Patient', [['identifier', 'IPP-0002']])).toEqual([id.francois]);
    });

    it('identifier=|value matches only identifiers sent without a system', async () => {
      expect(await match('Patient', [['identifier', '|DOSSIER-42']])).toEqual([id.helene]);
      expect(await match('Patient', [['identifier', `|${NIR.helene}`]])).toEqual([]);
    });

    it('identifier=system| matches every patient with an identifier in that system', async () => {
      expect(await match('Patient', [['identifier', `${IPP_MSP}|`]])).toEqual(sorted(id.helene, id.francois));
      expect(
        await match('Practitioner', [
          ['identifier', `${RPPS}|`],
          ['_tag', COHORT],
        ]),
      ).toEqual(sorted(id.dupont, id.moreau));
    });

    it('a wrong system does not match even when the value does', async () => {
      expect(await match('Patient', [['identifier', `${INS_NIA}|${NIR.helene}`]])).toEqual([]);
    });

    it('gender=female finds the women only', async () => {
      expect(await cohortPatients([['gender', 'female']])).toEqual(sorted(id.helene, id.zoe));
    });

    it(':not excludes the value and keeps resources without any value', async () => {
      expect(await cohortPatients([['gender:not', 'male']])).toEqual(sorted(id.helene, id.zoe, id.camille));
    });

    it('comma-separated values are ORed, repeated parameters ANDed', async () => {
      expect(await cohortPatients([['gender', 'male,female']])).toEqual(sorted(id.helene, id.francois, id.zoe));
      expect(await match('Patient', [['identifier', `${INS_TEST}|${NIR.helene},${INS_TEST}|${NIR.zoe}`]])).toEqual(
        sorted(id.helene, id.zoe),
      );
      expect(
        await cohortPatients([
          ['gender', 'female'],
          ['identifier', `${INS_TEST}|${NIR.zoe}`],
        ]),
      ).toEqual([id.zoe]);
    });

    it(':missing=true finds resources without the element, :missing=false those with it', async () => {
      expect(await cohortPatients([['gender:missing', 'true']])).toEqual([id.camille]);
      expect(await cohortPatients([['gender:missing', 'false']])).toEqual(sorted(id.helene, id.francois, id.zoe));
      expect(await cohortPatients([['general-practitioner:missing', 'true']])).toEqual([id.camille]);
    });
  });

  describe('string parameters', () => {
    it('matches a prefix, ignoring case and accents (family=lefevre finds Lefèvre)', async () => {
      expect(await cohortPatients([['family', 'lefevre']])).toEqual([id.helene]);
      expect(await cohortPatients([['family', 'LEFÈV']])).toEqual([id.helene]);
      expect(await cohortPatients([['family', 'lef']])).toEqual(sorted(id.helene, id.francois));
      expect(await cohortPatients([['given', 'helene']])).toEqual([id.helene]);
      expect(await cohortPatients([['name', 'francois']])).toEqual([id.francois]);
    });

    it('does not match in the middle of a value without :contains', async () => {
      expect(await cohortPatients([['family', 'fevre']])).toEqual([]);
    });

    it('searches the parts of an address (address-city=saint-etienne finds Saint-Étienne)', async () => {
      expect(await cohortPatients([['address-city', 'saint-etienne']])).toEqual([id.helene]);
      expect(await cohortPatients([['address', '42000']])).toEqual([id.helene]);
    });

    it(':exact is case- and accent-sensitive and matches the whole value', async () => {
      expect(await cohortPatients([['family:exact', 'Lefèvre']])).toEqual([id.helene]);
      expect(await cohortPatients([['family:exact', 'lefèvre']])).toEqual([]);
      expect(await cohortPatients([['family:exact', 'Lefevre']])).toEqual([]);
      expect(await cohortPatients([['family:exact', 'Lefè']])).toEqual([]);
    });

    it(':contains matches anywhere in the value', async () => {
      expect(await cohortPatients([['family:contains', 'lefevre']])).toEqual(sorted(id.helene, id.zoe));
      expect(await cohortPatients([['family:contains', 'EVR']])).toEqual(sorted(id.helene, id.zoe));
    });

    it('treats LIKE wildcards in the value as plain characters', async () => {
      expect(await cohortPatients([['family', '%']])).toEqual([]);
      expect(await cohortPatients([['family:contains', '_']])).toEqual([]);
    });

    it('folds the French ligature œ so that coeur finds Cœur', async () => {
      const coeur = await create<Patient>({
        resourceType: 'Patient',
        name: [{ family: 'Cœurderoy', given: ['Lætitia'] }],
      });
      expect(await match('Patient', [['family', 'coeur']])).toEqual([coeur]);
      expect(await match('Patient', [['given', 'laeti']])).toEqual([coeur]);
      expect(await match('Patient', [['family:exact', 'Cœurderoy']])).toEqual([coeur]);
    });
  });

  describe('date parameters', () => {
    it('birthdate at day precision with eq/lt/le/gt/ge', async () => {
      expect(await cohortPatients([['birthdate', '1980-02-27']])).toEqual([id.helene]);
      expect(await cohortPatients([['birthdate', 'eq1980-02-27']])).toEqual([id.helene]);
      expect(await cohortPatients([['birthdate', 'lt1980-02-27']])).toEqual([id.francois]);
      expect(await cohortPatients([['birthdate', 'le1980-02-27']])).toEqual(sorted(id.francois, id.helene));
      expect(await cohortPatients([['birthdate', 'gt1980-02-27']])).toEqual(sorted(id.zoe, id.camille));
      expect(await cohortPatients([['birthdate', 'ge1980-02-27']])).toEqual(sorted(id.helene, id.zoe, id.camille));
    });

    it('birthdate at year and month precision covers the whole year or month', async () => {
      expect(await cohortPatients([['birthdate', '1980']])).toEqual(sorted(id.helene, id.zoe));
      expect(await cohortPatients([['birthdate', '1980-07']])).toEqual([id.zoe]);
      expect(await cohortPatients([['birthdate', 'lt1980']])).toEqual([id.francois]);
      expect(await cohortPatients([['birthdate', 'gt1980']])).toEqual([id.camille]);
      expect(
        await cohortPatients([
          ['birthdate', 'ge1980'],
          ['birthdate', 'lt1981'],
        ]),
      ).toEqual(sorted(id.helene, id.zoe));
    });

    it('Encounter date=day matches periods inside that day, across time zones', async () => {
      // 09:00+01:00 is 08:00Z: still 5 March.
      expect(await cohortEncounters([['date', '2024-03-05']])).toEqual([id.e1]);
      // e2 spans 10–12 April and e3 has no end: neither lies within 11 April.
      expect(await cohortEncounters([['date', '2024-04-11']])).toEqual([]);
      expect(await cohortEncounters([['date', '2024-04']])).toEqual([id.e2]);
    });

    it('Encounter date prefixes compare the period bounds, an open end meaning "still going"', async () => {
      expect(await cohortEncounters([['date', 'lt2024-04-01']])).toEqual(sorted(id.e1, id.e4));
      expect(await cohortEncounters([['date', 'le2024-04-10']])).toEqual(sorted(id.e1, id.e2, id.e4));
      expect(await cohortEncounters([['date', 'gt2024-04-11']])).toEqual(sorted(id.e2, id.e3));
      expect(await cohortEncounters([['date', 'ge2024-04-12']])).toEqual(sorted(id.e2, id.e3));
      expect(await cohortEncounters([['date', 'ge2024-04-13']])).toEqual([id.e3]);
      expect(await cohortEncounters([['date', 'sa2024-04-01']])).toEqual(sorted(id.e2, id.e3));
      expect(await cohortEncounters([['date', 'eb2024-01-01']])).toEqual([]);
    });

    it('a period crossing midnight belongs to neither day alone but overlaps both', async () => {
      expect(await cohortEncounters([['date', '2023-12-31']])).toEqual([]);
      expect(
        await cohortEncounters([
          ['date', 'ge2024-01-01'],
          ['date', 'le2023-12-31'],
        ]),
      ).toEqual([id.e4]);
    });

    it('accepts a dateTime with an offset, even when its + arrived decoded as a space', async () => {
      expect(await cohortEncounters([['date', 'ge2024-04-12T11:00:00+02:00']])).toEqual(sorted(id.e2, id.e3));
      const res = await fetch(
        `${gw.fhirUrl}/Encounter?_tag=${encodeURIComponent(COHORT)}&date=ge2024-04-12T11:00:00+02:00`,
        {
          headers: { authorization: `Bearer ${token}` },
        },
      );
      expect(res.status).toBe(200);
      expect(ids((await res.json()) as Bundle)).toEqual(sorted(id.e2, id.e3));
    });

    it('rejects an invalid date value with 400 and an OperationOutcome naming the parameter', async () => {
      for (const bad of ['27/02/1980', '1980-02-30', '1980-13', 'hier']) {
        const found = await get('Patient', [['birthdate', bad]]);
        expect(found.status).toBe(400);
        expect(found.body.resourceType).toBe('OperationOutcome');
        expect(found.body.issue?.[0].expression).toEqual(['birthdate']);
      }
      const lastUpdated = await get('Patient', [['_lastUpdated', 'ge2024-02-30']]);
      expect(lastUpdated.status).toBe(400);
    });
  });

  describe('reference parameters', () => {
    it('subject=Patient/id, a bare id and subject:Patient=id all find her encounters', async () => {
      const hers = sorted(id.e1, id.e2);
      expect(await match('Encounter', [['subject', `Patient/${id.helene}`]])).toEqual(hers);
      expect(await match('Encounter', [['subject', id.helene]])).toEqual(hers);
      expect(await match('Encounter', [['subject:Patient', id.helene]])).toEqual(hers);
      expect(await match('Encounter', [['subject', `${gw.fhirUrl}/Patient/${id.helene}`]])).toEqual(hers);
      expect(await match('Encounter', [['subject:Group', id.helene]])).toEqual([]);
    });

    it('chains through the subject to the patient INS (typed and untyped chain)', async () => {
      expect(await match('Encounter', [['subject:Patient.identifier', `${INS_TEST}|${NIR.helene}`]])).toEqual(
        sorted(id.e1, id.e2),
      );
      expect(await match('Encounter', [['subject.identifier', `${INS_TEST}|${NIR.francois}`]])).toEqual([id.e3]);
      expect(await match('Encounter', [['subject:Patient.family', 'lefevre']])).toEqual(sorted(id.e1, id.e2));
    });

    it('a chained :not means "the referenced resource does not have that value"', async () => {
      expect(await cohortEncounters([['subject:Patient.gender:not', 'female']])).toEqual([id.e3]);
    });

    it('a chain to a type the parameter cannot reference is reported, not silently empty', async () => {
      const found = await get('Encounter', [['subject:Practitioner.identifier', `${RPPS}|10001234567`]], {
        prefer: 'handling=strict',
      });
      expect(found.status).toBe(400);
      expect(found.body.issue?.[0].expression).toEqual(['subject:Practitioner.identifier']);
    });

    it('general-practitioner finds the patients who declared this médecin traitant', async () => {
      expect(await match('Patient', [['general-practitioner', `Practitioner/${id.dupont}`]])).toEqual(
        sorted(id.helene, id.zoe),
      );
      expect(await match('Patient', [['general-practitioner:Practitioner.identifier', `${RPPS}|10009876543`]])).toEqual(
        [id.francois],
      );
    });
  });

  describe('common parameters and result control', () => {
    it('_id matches one or several ids', async () => {
      expect(await match('Patient', [['_id', id.zoe]])).toEqual([id.zoe]);
      expect(await match('Patient', [['_id', `${id.zoe},${id.camille}`]])).toEqual(sorted(id.zoe, id.camille));
    });

    it('_lastUpdated=ge the exact instant of a write includes it; lt excludes it', async () => {
      const p = (await fhir.create({
        resourceType: 'Patient',
        body: { resourceType: 'Patient', name: [{ family: 'Horodaté' }] },
      })) as unknown as Patient;
      const at = p.meta?.lastUpdated as string;
      expect(
        await match('Patient', [
          ['_lastUpdated', `ge${at}`],
          ['family', 'horodate'],
        ]),
      ).toEqual([p.id]);
      expect(
        await match('Patient', [
          ['_lastUpdated', `le${at}`],
          ['family', 'horodate'],
        ]),
      ).toEqual([p.id]);
      expect(
        await match('Patient', [
          ['_lastUpdated', `eq${at}`],
          ['family', 'horodate'],
        ]),
      ).toEqual([p.id]);
      expect(
        await match('Patient', [
          ['_lastUpdated', `lt${at}`],
          ['family', 'horodate'],
        ]),
      ).toEqual([]);
      expect(
        await match('Patient', [
          ['_lastUpdated', `gt${at}`],
          ['family', 'horodate'],
        ]),
      ).toEqual([]);
      // The cohort was written before: none of it is "ge" this instant.
      expect(await cohortPatients([['_lastUpdated', `ge${at}`]])).toEqual([]);
    });

    it('_count with next links pages through every result once, with previous links and an accurate total', async () => {
      const system = 'https://msp-saint-etienne.example.fr/ipp-pagination';
      const created = new Set<string>();
      for (let i = 0; i < 7; i++) {
        created.add(
          await create<Patient>({
            resourceType: 'Patient',
            identifier: [{ system, value: `P${i}` }],
            birthDate: `19${50 + i}-01-01`,
          }),
        );
      }
      const pages = await allPages({ identifier: `${system}|`, _count: '3', _total: 'accurate' });
      expect(pages[0].total).toBe(7);
      expect(pages.map((p) => ids(p).length)).toEqual([3, 3, 1]);
      expect(pages.map((p) => p.link?.some((l) => l.relation === 'previous'))).toEqual([false, true, true]);
      const seen = pages.flatMap((p) => ids(p));
      expect(seen).toHaveLength(7);
      expect(new Set(seen)).toEqual(created);
    });

    it('_sort=birthdate stays ordered across pages', async () => {
      const system = 'https://msp-saint-etienne.example.fr/ipp-tri';
      for (const d of ['1962-05-01', '1948-09-30', '2003-01-15', '1971-12-24', '1955-03-08']) {
        await create<Patient>({ resourceType: 'Patient', identifier: [{ system, value: d }], birthDate: d });
      }
      const pages = await allPages({ identifier: `${system}|`, _sort: '-birthdate', _count: '2' });
      const dates = pages.flatMap((p) => (p.entry ?? []).map((e) => (e.resource as Patient).birthDate));
      expect(dates).toEqual(['2003-01-15', '1971-12-24', '1962-05-01', '1955-03-08', '1948-09-30']);
    });

    it('_sort=birthdate, -birthdate and family order the results', async () => {
      const order = async (sort: string): Promise<string[]> => {
        const found = await get('Patient', [
          ['_tag', COHORT],
          ['_sort', sort],
        ]);
        return (found.body.entry ?? []).map((e) => e.resource?.id as string);
      };
      expect(await order('birthdate')).toEqual([id.francois, id.helene, id.zoe, id.camille]);
      expect(await order('-birthdate')).toEqual([id.camille, id.zoe, id.helene, id.francois]);
      // Dubois, Lefebvre, Lefèvre, Martin-Lefèvre (accent-insensitive order).
      expect(await order('family')).toEqual([id.camille, id.francois, id.helene, id.zoe]);
    });

    it('a page past the end is empty and does not make up a total from the offset', async () => {
      const found = await get('Patient', [
        ['_tag', COHORT],
        ['_count', '2'],
        ['_offset', '1000'],
      ]);
      expect(found.status).toBe(200);
      expect(found.body.entry ?? []).toHaveLength(0);
      expect(found.body.total).toBeUndefined();
      const last = await get('Patient', [
        ['_tag', COHORT],
        ['_count', '3'],
        ['_offset', '3'],
      ]);
      expect(ids(last.body)).toHaveLength(1);
      expect(last.body.total).toBe(4);
    });

    it('_total=accurate counts all matches even when a page holds fewer', async () => {
      const found = await get('Patient', [
        ['_tag', COHORT],
        ['_count', '1'],
        ['_total', 'accurate'],
      ]);
      expect(found.body.total).toBe(4);
      expect(ids(found.body)).toHaveLength(1);
    });

    it('_summary=count returns the total and no resources', async () => {
      const found = await get('Patient', [
        ['_tag', COHORT],
        ['gender', 'female'],
        ['_summary', 'count'],
      ]);
      expect(found.status).toBe(200);
      expect(found.body.total).toBe(2);
      expect(found.body.entry ?? []).toHaveLength(0);
    });

    it('_count=0 returns only the total, with no next link to loop on', async () => {
      const found = await get('Patient', [
        ['_tag', COHORT],
        ['_count', '0'],
      ]);
      expect(found.status).toBe(200);
      expect(found.body.total).toBe(4);
      expect(found.body.entry ?? []).toHaveLength(0);
      expect(found.body.link?.some((l) => l.relation === 'next')).toBe(false);
    });

    it('an empty parameter value is ignored, and so is an empty alternative', async () => {
      const all = sorted(id.helene, id.francois, id.zoe, id.camille);
      expect(await cohortPatients([['gender', '']])).toEqual(all);
      expect(
        await cohortPatients([
          ['identifier', ''],
          ['_count', ''],
        ]),
      ).toEqual(all);
      expect(await cohortPatients([['gender', 'female,']])).toEqual(sorted(id.helene, id.zoe));
    });
  });

  describe('_summary and _elements on search and read', () => {
    const SUBSETTED = {
      system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue',
      code: 'SUBSETTED',
      display: 'subsetted',
    };
    let withText = '';
    const read = async (
      path: string,
      headers: Record<string, string> = {},
    ): Promise<{ status: number; body: Record<string, unknown> & { meta?: Patient['meta'] } }> => {
      const res = await fetch(`${gw.fhirUrl}/${path}`, { headers: { authorization: `Bearer ${token}`, ...headers } });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    const only = (found: Found): Record<string, unknown>[] =>
      (found.body.entry ?? [])
        .filter((e) => e.search?.mode === 'match')
        .map((e) => e.resource as unknown as Record<string, unknown>);

    beforeAll(async () => {
      // Outside the cohort: the other tests count it.
      withText = await create<Patient>({
        resourceType: 'Patient',
        text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">Léa Texte</div>' },
        name: [{ family: 'Texte', given: ['Léa'] }],
        gender: 'female',
        maritalStatus: { text: 'Célibataire' },
        deceasedBoolean: false,
      });
    });

    it('_summary=true keeps the summary elements only, tagged SUBSETTED, on search and read', async () => {
      const found = await get('Patient', [
        ['_id', withText],
        ['_summary', 'true'],
      ]);
      expect(found.status).toBe(200);
      const [p] = only(found);
      expect(Object.keys(p).sort()).toEqual(['deceasedBoolean', 'gender', 'id', 'meta', 'name', 'resourceType']);
      expect((p.meta as Patient['meta'])?.tag).toContainEqual(SUBSETTED);
      const r = await read(`Patient/${withText}?_summary=true`);
      expect(r.status).toBe(200);
      expect(Object.keys(r.body).sort()).toEqual(['deceasedBoolean', 'gender', 'id', 'meta', 'name', 'resourceType']);
      expect(r.body.meta?.tag).toContainEqual(SUBSETTED);
      expect(r.body.meta?.versionId).toBe('1');
    });

    it('_summary=text keeps text, id and meta; _summary=data drops text; _summary=false is the whole resource', async () => {
      const text = await read(`Patient/${withText}?_summary=text`);
      expect(Object.keys(text.body).sort()).toEqual(['id', 'meta', 'resourceType', 'text']);
      const data = only(
        await get('Patient', [
          ['_id', withText],
          ['_summary', 'data'],
        ]),
      )[0];
      expect(data.text).toBeUndefined();
      expect(data.maritalStatus).toEqual({ text: 'Célibataire' });
      expect((data.meta as Patient['meta'])?.tag).toContainEqual(SUBSETTED);
      const full = await read(`Patient/${withText}?_summary=false`);
      expect(full.body.text).toBeDefined();
      expect(full.body.meta?.tag).not.toContainEqual(SUBSETTED);
    });

    it('_elements returns the listed elements plus the mandatory ones, on search and read', async () => {
      const enc = only(
        await get('Encounter', [
          ['_id', id.e1],
          ['_elements', 'subject'],
        ]),
      )[0];
      // Encounter.status and Encounter.class are mandatory (1..1): kept.
      expect(Object.keys(enc).sort()).toEqual(['class', 'id', 'meta', 'resourceType', 'status', 'subject']);
      expect((enc.meta as Patient['meta'])?.tag).toContainEqual(SUBSETTED);
      const p = await read(`Patient/${withText}?_elements=name,deceased`);
      expect(Object.keys(p.body).sort()).toEqual(['deceasedBoolean', 'id', 'meta', 'name', 'resourceType']);
      const v = await read(`Patient/${withText}/_history/1?_elements=gender`);
      expect(Object.keys(v.body).sort()).toEqual(['gender', 'id', 'meta', 'resourceType']);
    });

    it('reports an unknown _elements name, refuses it under handling=strict; refuses bad _summary values and count on a read', async () => {
      const lenient = await get('Patient', [
        ['_id', withText],
        ['_elements', 'name,colour'],
      ]);
      expect(lenient.status).toBe(200);
      const outcome = (lenient.body.entry ?? []).find((e) => e.search?.mode === 'outcome')?.resource as
        OperationOutcome | undefined;
      expect(outcome?.issue[0].details?.text).toContain('colour');
      expect(
        (
          await get(
            'Patient',
            [
              ['_id', withText],
              ['_elements', 'name,colour'],
            ],
            { prefer: 'handling=strict' },
          )
        ).status,
      ).toBe(400);
      expect((await read(`Patient/${withText}?_elements=colour`, { prefer: 'handling=strict' })).status).toBe(400);
      const bad = await get('Patient', [['_summary', 'maybe']]);
      expect(bad.status).toBe(400);
      expect(bad.body.resourceType).toBe('OperationOutcome');
      expect(
        (
          await get('Patient', [
            ['_summary', 'true'],
            ['_elements', 'name'],
          ])
        ).status,
      ).toBe(400);
      expect((await read(`Patient/${withText}?_summary=count`)).status).toBe(400);
    });
  });

  describe('_include and _revinclude', () => {
    it('_include=Encounter:subject adds the patient once, in mode include', async () => {
      const found = await get('Encounter', [
        ['subject', `Patient/${id.helene}`],
        ['_include', 'Encounter:subject'],
      ]);
      expect(ids(found.body)).toEqual(sorted(id.e1, id.e2));
      expect(ids(found.body, 'include')).toEqual([id.helene]);
      expect(found.body.entry?.find((e) => e.search?.mode === 'include')?.resource?.resourceType).toBe('Patient');
    });

    it('_include=Encounter:participant brings the practitioner', async () => {
      const found = await get('Encounter', [
        ['_id', id.e1],
        ['_include', 'Encounter:participant'],
      ]);
      expect(ids(found.body, 'include')).toEqual([id.dupont]);
    });

    it('_revinclude=Encounter:subject adds the encounters pointing at the patient', async () => {
      const found = await get('Patient', [
        ['_id', id.helene],
        ['_revinclude', 'Encounter:subject'],
      ]);
      expect(ids(found.body)).toEqual([id.helene]);
      expect(ids(found.body, 'include')).toEqual(sorted(id.e1, id.e2));
    });

    it('an _include for another source type adds nothing, even when an id is shared across types', async () => {
      // Client-assigned ids (an ADT feed's visit number, say) are unique per type only.
      const shared = 'sejour-2024-000123';
      await fhir.update({
        resourceType: 'Patient',
        id: shared,
        body: asFhir({ resourceType: 'Patient', id: shared, name: [{ family: 'Homonyme' }] } as Patient),
      });
      await fhir.update({
        resourceType: 'Encounter',
        id: shared,
        body: asFhir({ ...encounter(id.zoe, { start: '2024-05-02' }, 'finished'), id: shared, meta: undefined }),
      });
      const wrong = await get('Patient', [
        ['_id', shared],
        ['_include', 'Encounter:subject'],
      ]);
      expect(ids(wrong.body)).toEqual([shared]);
      expect(ids(wrong.body, 'include')).toEqual([]);
      const right = await get('Encounter', [
        ['_id', shared],
        ['_include', 'Encounter:subject'],
      ]);
      expect(ids(right.body, 'include')).toEqual([id.zoe]);
    });
  });

  describe('POST _search', () => {
    it('a form-encoded body gives the same result as GET', async () => {
      const pairs: Pairs = [
        ['_tag', COHORT],
        ['family', 'lefèvre'],
        ['birthdate', 'ge1980'],
        ['_sort', 'birthdate'],
      ];
      const viaGet = await get('Patient', pairs);
      const res = await fetch(`${gw.fhirUrl}/Patient/_search`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(pairs).toString(),
      });
      expect(res.status).toBe(200);
      const viaPost = (await res.json()) as Bundle;
      expect(ids(viaPost)).toEqual([id.helene]);
      expect((viaPost.entry ?? []).map((e) => e.resource?.id)).toEqual(
        (viaGet.body.entry ?? []).map((e) => e.resource?.id),
      );
      expect(viaPost.total).toBe(viaGet.body.total);
    });
  });

  describe('unsupported parameters', () => {
    it('lenient by default: 200 with an OperationOutcome entry naming the parameter', async () => {
      const found = await get('Patient', [
        ['_tag', COHORT],
        ['family', 'lefevre'],
        ['pointure', '42'],
      ]);
      expect(found.status).toBe(200);
      expect(ids(found.body)).toEqual([id.helene]);
      const outcome = found.body.entry?.find((e) => e.search?.mode === 'outcome')?.resource as OperationOutcome;
      expect(outcome.resourceType).toBe('OperationOutcome');
      expect(outcome.issue[0].expression).toEqual(['pointure']);
      expect(outcome.issue[0].severity).toBe('warning');
    });

    it('an unsupported modifier is reported the same way', async () => {
      const found = await get('Patient', [
        ['_tag', COHORT],
        ['family:phonetic', 'lefevre'],
      ]);
      expect(found.status).toBe(200);
      const outcome = found.body.entry?.find((e) => e.search?.mode === 'outcome')?.resource as OperationOutcome;
      expect(outcome.issue[0].expression).toEqual(['family:phonetic']);
    });

    it('Prefer: handling=strict refuses it with 400 and the parameter in the issue expression', async () => {
      const found = await get(
        'Patient',
        [
          ['family', 'lefevre'],
          ['pointure', '42'],
        ],
        { prefer: 'handling=strict' },
      );
      expect(found.status).toBe(400);
      expect(found.body.resourceType).toBe('OperationOutcome');
      expect(found.body.issue?.[0].expression).toEqual(['pointure']);
    });

    it('_id:not excludes the id, and an unsupported modifier on _id is not silently dropped', async () => {
      expect(await cohortPatients([['_id:not', id.helene]])).toEqual(sorted(id.francois, id.zoe, id.camille));
      const found = await get('Patient', [['_id:contains', id.helene]], { prefer: 'handling=strict' });
      expect(found.status).toBe(400);
      expect(found.body.issue?.[0].expression).toEqual(['_id:contains']);
    });

    it(':missing with a value other than true or false is a 400', async () => {
      const found = await get('Patient', [['gender:missing', 'peut-etre']]);
      expect(found.status).toBe(400);
      expect(found.body.issue?.[0].expression).toEqual(['gender:missing']);
    });
  });

  describe('index maintenance', () => {
    it('a deleted resource no longer matches', async () => {
      const nir = '290017511257720';
      const pid = await create<Patient>({
        resourceType: 'Patient',
        identifier: [{ system: INS_TEST, value: nir }],
        name: [{ family: 'Éphémère' }],
      });
      const eid = await create<Encounter>({
        resourceType: 'Encounter',
        status: 'finished',
        class: { code: 'AMB' },
        subject: { reference: `Patient/${pid}` },
      });
      expect(await match('Patient', [['identifier', `${INS_TEST}|${nir}`]])).toEqual([pid]);
      await fhir.delete({ resourceType: 'Encounter', id: eid });
      await fhir.delete({ resourceType: 'Patient', id: pid });
      expect(await match('Patient', [['identifier', `${INS_TEST}|${nir}`]])).toEqual([]);
      expect(await match('Patient', [['family', 'ephemere']])).toEqual([]);
      expect(await match('Patient', [['_id', pid]])).toEqual([]);
      expect(await match('Encounter', [['subject', pid]])).toEqual([]);
    });

    it('an updated resource matches its new values only', async () => {
      const pid = await create<Patient>({
        resourceType: 'Patient',
        identifier: [{ system: IPP_MSP, value: 'IPP-ANCIEN' }],
        name: [{ family: 'Nom-De-Naissance' }],
        birthDate: '1966-06-06',
      });
      await fhir.update({
        resourceType: 'Patient',
        id: pid,
        body: {
          resourceType: 'Patient',
          id: pid,
          identifier: [{ system: IPP_MSP, value: 'IPP-NOUVEAU' }],
          name: [{ family: 'Nom-D-Usage' }],
          birthDate: '1967-07-07',
        },
      });
      expect(await match('Patient', [['family', 'nom-de-naissance']])).toEqual([]);
      expect(await match('Patient', [['family', 'nom-d-usage']])).toEqual([pid]);
      expect(await match('Patient', [['identifier', `${IPP_MSP}|IPP-ANCIEN`]])).toEqual([]);
      expect(await match('Patient', [['identifier', `${IPP_MSP}|IPP-NOUVEAU`]])).toEqual([pid]);
      expect(await match('Patient', [['birthdate', '1966-06-06']])).toEqual([]);
      expect(await match('Patient', [['birthdate', '1967-07-07']])).toEqual([pid]);
    });
  });
});
