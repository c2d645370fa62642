import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { IDNATPS } from '@gw/fhir';
import { CODES } from '@gw/indicators';
import { OWNER_TAG_SYSTEM } from '@gw/store';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { call } from '../support/hl7';
import { typedOrganization } from '../support/indicators';
import { personToken, vendorClient } from '../support/persons';
import { ROOT } from '../support/process';
import { tempDir } from '../support/temp-dir';

const G15 = 'https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante';
const FMT_FLU = 'fmt-test-grippe-65';
const CSV_HEADER = 'Patient;Âge;Item;Ouvert depuis;À faire avant;Dernier acte;Date du dernier acte';

type Res = Record<string, unknown> & { resourceType: string; id: string };

/**
 * A catalogue copy with one FMT item (the flu ≥ 65 measure under an fmt- id with the fmt-item
 * extension, 5 EUR), so the estimate's variable part has something to count over 2025.
 */
function profilesWithFmtItem(): string {
  const dir = tempDir('gw-profiles-fmt-');
  cpSync(resolve(ROOT, 'fhir-profiles'), dir, { recursive: true });
  const flu = JSON.parse(readFileSync(join(dir, 'measures', 'Measure-rosp-grippe-65.json'), 'utf8')) as Record<
    string,
    unknown
  > & { extension: unknown[] };
  flu.id = FMT_FLU;
  flu.url = `https://gateway.fr-primary-care.org/fhir/Measure/${FMT_FLU}`;
  flu.name = 'FmtTestGrippe65';
  flu.title = 'FMT (test) : grippe 65 ans et plus';
  flu.extension = [
    ...flu.extension,
    {
      url: 'https://gateway.fr-primary-care.org/fhir/StructureDefinition/fmt-item',
      valueMoney: { value: 5, currency: 'EUR' },
    },
  ];
  writeFileSync(join(dir, 'measures', `Measure-${FMT_FLU}.json`), JSON.stringify(flu));
  return dir;
}

/**
 * The care-gaps worklist and the FMT estimate in a real Chromium against a real gateway, over 2025.
 * MSP A; GP G1 (a person token) has P1 (75, vaccinated: both flu items met), P2 (85, ALD and C2S,
 * not vaccinated: two flu gaps open), P3 (4: no item) and P4 (55: colorectal screening open);
 * GP G2 has P5 (75, not vaccinated).
 * G1's fixed part: 15 (75–79) + 100 (ALD ≥ 80) + 15 (< 7) + 5 (7–74) + 10 (C2S) = 145 €; one FMT
 * item met (P1) = 5 €. The structure adds P5: 160 € + 5 €.
 */
describe('care-gaps worklist in a browser', () => {
  let gw: TestGateway;
  let browser: Browser;
  let admin: string;
  let mspA: string;
  let gpToken: string;
  let structure: { clientId: string; secret: string };
  const pageErrors: string[] = [];

  const put = async (resource: Res, owner?: string): Promise<void> => {
    const body = owner
      ? { ...resource, meta: { tag: [{ system: OWNER_TAG_SYSTEM, code: `Organization/${owner}` }] } }
      : resource;
    const res = await call(gw, 'PUT', `${gw.fhirUrl}/${resource.resourceType}/${resource.id}`, body, admin);
    if (res.status >= 300) {
      throw new Error(`PUT ${resource.resourceType}/${resource.id}: ${res.status} ${JSON.stringify(res.body)}`);
    }
  };

  beforeAll(async () => {
    gw = await startTestGateway({
      GW_WORKERS_INPROCESS: 'false',
      GW_MLLP_ENABLED: 'false',
      GW_PROFILES_DIR: profilesWithFmtItem(),
    });
    admin = await gw.token();
    mspA = await typedOrganization(gw, 'MSP des Lilas', 'MSP');
    const client = await gw.clientOf(mspA, ['system/*.rs']);
    structure = { clientId: client.clientId, secret: client.secret };
    for (const [who, idNatPs] of [
      ['g1', '810000300001'],
      ['g2', '810000300002'],
    ] as const) {
      await put({
        resourceType: 'Practitioner',
        id: `wl-${who}`,
        active: true,
        identifier: [{ system: IDNATPS, value: idNatPs }],
        name: [{ family: who.toUpperCase(), given: ['Jeanne'], prefix: ['Dr'] }],
      });
      await put({
        resourceType: 'PractitionerRole',
        id: `wl-role-${who}`,
        active: true,
        practitioner: { reference: `Practitioner/wl-${who}` },
        organization: { reference: `Organization/${mspA}` },
        code: [{ coding: [{ system: G15, code: '10' }] }],
      });
    }
    const patient = (id: string, given: string, birthDate: string, gp: string): Promise<void> =>
      put(
        {
          resourceType: 'Patient',
          id,
          name: [{ family: 'LISTE', given: [given] }],
          gender: 'male',
          birthDate,
          generalPractitioner: [{ reference: `Practitioner/${gp}` }],
        },
        mspA,
      );
    await patient('wl-p1', 'Paul', '1950-03-01', 'wl-g1');
    await patient('wl-p2', 'Pierre', '1940-03-01', 'wl-g1');
    await patient('wl-p3', 'Petit', '2021-06-01', 'wl-g1');
    await patient('wl-p4', 'Pascal', '1970-03-01', 'wl-g1');
    await patient('wl-p5', 'Prosper', '1950-03-01', 'wl-g2');
    await put(
      {
        resourceType: 'Immunization',
        id: 'wl-flu-p1',
        status: 'completed',
        vaccineCode: { coding: [CODES.fluVaccine] },
        patient: { reference: 'Patient/wl-p1' },
        occurrenceDateTime: '2025-10-15',
      },
      mspA,
    );
    await put(
      {
        resourceType: 'Coverage',
        id: 'wl-ald-p2',
        status: 'active',
        beneficiary: { reference: 'Patient/wl-p2' },
        payor: [{ display: 'Assurance Maladie' }],
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'PUBLICPOL' }] },
        costToBeneficiary: [
          {
            valueMoney: { value: 0, currency: 'EUR' },
            exception: [
              {
                type: { coding: [{ system: 'https://gateway.fr-primary-care.org/fhir/CodeSystem/ald', code: '8' }] },
                period: { start: '2020-01-01' },
              },
            ],
          },
        ],
      },
      mspA,
    );
    await put(
      {
        resourceType: 'Coverage',
        id: 'wl-c2s-p2',
        status: 'active',
        beneficiary: { reference: 'Patient/wl-p2' },
        payor: [{ display: 'Assurance Maladie' }],
        type: {
          coding: [{ system: 'https://gateway.fr-primary-care.org/fhir/CodeSystem/coverage-type', code: 'C2S' }],
        },
        period: { start: '2024-01-01' },
      },
      mspA,
    );
    // Another structure, where G1 does not work, declares G1 as the médecin traitant of its patient
    // (85, 55 € if counted) and lets G1's role read the record (a care circle): the GP's search finds
    // it, the estimate must not count it.
    const mspB = await typedOrganization(gw, 'MSP du Parc', 'MSP');
    await put(
      {
        resourceType: 'Patient',
        id: 'wl-b1',
        name: [{ family: 'AILLEURS', given: ['Basile'] }],
        gender: 'male',
        birthDate: '1940-06-01',
        generalPractitioner: [{ reference: 'Practitioner/wl-g1' }],
      },
      mspB,
    );
    await put(
      {
        resourceType: 'CareTeam',
        id: 'wl-b1-team',
        status: 'active',
        subject: { reference: 'Patient/wl-b1' },
        participant: [{ member: { reference: 'PractitionerRole/wl-role-g1' } }],
      },
      mspB,
    );
    // B also writes, on its own word, that G1 works at B: its declaration still does not count (G1 is
    // not B's own practitioner and no operator vouched for that role), in the list nor in the estimate.
    const clientB = await gw.clientOf(mspB, ['system/*.cruds']);
    const roleAtB = await call(
      gw,
      'POST',
      `${gw.fhirUrl}/PractitionerRole`,
      {
        resourceType: 'PractitionerRole',
        active: true,
        practitioner: { reference: 'Practitioner/wl-g1' },
        organization: { reference: `Organization/${mspB}` },
      },
      clientB.token,
    );
    expect(roleAtB.status).toBe(201);
    const vendor = await vendorClient(gw, `Organization/${mspA}`, ['system/*.cruds']);
    gpToken = await personToken(gw, vendor, '810000300001');
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await gw?.close();
  });

  async function page(login: { token: string } | { clientId: string; secret: string }): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1440, height: 1400 }, acceptDownloads: true });
    const p = await context.newPage();
    p.on('pageerror', (err) => pageErrors.push(err.message));
    p.on('console', (msg) => {
      if (msg.type() === 'error' && !/status of 40[134]/.test(msg.text())) {
        pageErrors.push(msg.text());
      }
    });
    await p.goto(`${gw.baseUrl}/dashboard/`);
    if ('token' in login) {
      await p.getByLabel('Jeton d’accès (Bearer)').fill(login.token);
    } else {
      await p.getByLabel('Identifiant du client (client_id)').fill(login.clientId);
      await p.getByLabel('Secret du client').fill(login.secret);
    }
    await p.getByRole('button', { name: 'Se connecter' }).click();
    await p.locator('#board').waitFor({ state: 'visible' });
    return p;
  }

  async function openGaps(p: Page, subjectLabel?: string): Promise<Record<string, string>[]> {
    if (subjectLabel) {
      await p.selectOption('#gaps-subject', { label: subjectLabel });
    }
    await p.locator('#gaps-year').fill('2025');
    await p.getByRole('button', { name: 'Afficher les écarts de soins' }).click();
    await p.locator('#gaps-table').waitFor();
    return gapRows(p);
  }

  async function gapRows(p: Page): Promise<Record<string, string>[]> {
    return p.locator('#gaps-table').evaluate((table) => {
      const heads = [...table.querySelectorAll('thead th')].map((th) => th.textContent ?? '');
      return [...table.querySelectorAll('tbody tr')].map((tr) =>
        Object.fromEntries([...tr.children].map((td, i) => [heads[i] ?? '', td.textContent ?? ''])),
      );
    });
  }

  it("a GP's own patientèle: open gaps per patient, item filter, sort, CSV, and the FMT estimate with its assumptions", async () => {
    const p = await page({ token: gpToken });
    const options = await p.locator('#gaps-subject option').allTextContents();
    expect(options[0]).toBe('Ma patientèle (médecin traitant)');
    const rows = await openGaps(p);
    expect(rows.map((r) => [r['Patient'], r['Item']]).sort()).toEqual([
      ['LISTE Pascal', 'Dépistage du cancer colorectal (50–74 ans)'],
      ['LISTE Pierre', 'FMT (test) : grippe 65 ans et plus'],
      ['LISTE Pierre', 'Vaccination antigrippale des 65 ans et plus'],
    ]);
    const pierre = rows.find((r) => r['Item'] === 'Vaccination antigrippale des 65 ans et plus')!;
    expect(pierre).toMatchObject({
      Âge: '85',
      'Ouvert depuis': '2025-01-01',
      'À faire avant': '2025-12-31',
      'Dernier acte': 'jamais',
    });

    // Filter by item: the FMT flu item only.
    await p.selectOption('#gaps-item', { label: 'FMT (test) : grippe 65 ans et plus' });
    expect((await gapRows(p)).map((r) => r['Patient'])).toEqual(['LISTE Pierre']);
    await p.selectOption('#gaps-item', '');
    // Sort by age, descending on the second click.
    await p.locator('#gaps-table button.sort', { hasText: 'Âge' }).click();
    expect((await gapRows(p)).map((r) => r['Âge'])).toEqual(['55', '85', '85']);
    await p.locator('#gaps-table button.sort', { hasText: 'Âge' }).click();
    expect((await gapRows(p)).map((r) => r['Âge'])).toEqual(['85', '85', '55']);

    // CSV of the list shown: the recall list's format (BOM, ';', CRLF).
    const [download] = await Promise.all([p.waitForEvent('download'), p.locator('#gaps-export').click()]);
    expect(download.suggestedFilename()).toBe('ecarts-2025.csv');
    const bytes = readFileSync((await download.path())!);
    expect([...bytes.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
    const lines = bytes.subarray(3).toString('utf8').split('\r\n');
    expect(lines[0]).toBe(CSV_HEADER);
    expect(lines.slice(1)).toEqual([
      'LISTE Pierre;85;FMT (test) : grippe 65 ans et plus;2025-01-01;2025-12-31;jamais;',
      'LISTE Pierre;85;Vaccination antigrippale des 65 ans et plus;2025-01-01;2025-12-31;jamais;',
      'LISTE Pascal;55;Dépistage du cancer colorectal (50–74 ans);2025-01-01;2025-12-31;jamais;',
      '',
    ]);

    // The estimate: 145 € fixed (ALD ≥ 80 and C2S read from the Coverage), one FMT item met.
    await expect(p.locator('#fmt-fixed').textContent()).resolves.toMatch(/^145 € \(/);
    await expect(p.locator('#fmt-fixed').textContent()).resolves.toContain('1 × en ALD, 80 ans et plus');
    await expect(p.locator('#fmt-fixed').textContent()).resolves.toContain('1 C2S');
    await expect(p.locator('#fmt-variable').textContent()).resolves.toBe('5 € (1 item(s) validé(s))');
    await expect(p.locator('#fmt-total').textContent()).resolves.toBe('150 €');
    await expect(p.locator('#fmt-estimate h4').textContent()).resolves.toContain('estimation');
    const assumptions = await p.locator('#fmt-assumptions li').allTextContents();
    expect(assumptions.join('\n')).toMatch(
      /Patients dont le médecin est le médecin traitant déclaré \(4\), au 2025-12-31, par une structure où il exerce ; 1 déclaration/,
    );
    expect(assumptions.join('\n')).toMatch(/Patient non vu depuis 2 ans/);
    expect(assumptions.join('\n')).toMatch(/Majorations du médecin/);
    await p.context().close();
  });

  it("a structure's coordinator: every GP's patients, and the estimate over them", async () => {
    const p = await page(structure);
    const rows = await openGaps(p, 'MSP des Lilas');
    expect(rows.filter((r) => r['Patient'] === 'LISTE Prosper').map((r) => r['Item'])).toHaveLength(2);
    expect(rows).toHaveLength(5);
    await expect(p.locator('#fmt-fixed').textContent()).resolves.toMatch(/^160 € \(/);
    await expect(p.locator('#fmt-total').textContent()).resolves.toBe('165 €');
    await p.context().close();
  });

  it('the page logged no script error', () => {
    expect(pageErrors).toEqual([]);
  });
});
