import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { RELIABILITY_EXTENSION } from '@gw/fhir';
import { CODES, parseBenchmarkCsv } from '@gw/indicators';
import { OWNER_TAG_SYSTEM } from '@gw/store';
import { startTestGateway } from '../support/gateway';
import type { TestGateway } from '../support/gateway';
import { call, nir } from '../support/hl7';
import { typedOrganization } from '../support/indicators';
import { countColour, decodePng } from '../support/png';

const THRESHOLD = 5;
const BENCHMARKS = join(__dirname, '../../fhir-profiles/benchmarks/ald-sans-medecin-traitant.csv');
/** The indicator series colour of apps/gateway/dashboard/dashboard.js. */
const SERIES_COLOUR = '#0b63c5';
const MEASURE = 'rosp-diabete-hba1c';
const FLU = 'rosp-grippe-65';
const INS = 'urn:oid:1.2.250.1.213.1.4.8';
const QUAL = { url: RELIABILITY_EXTENSION, extension: [{ url: 'identityStatus', valueCoding: { code: 'QUAL' } }] };
const LONG_NAME = 'Maison de santé pluriprofessionnelle universitaire des Coteaux de la vallée de la Lièpvrette';
const CSV_HEADER =
  'Nom;Âge;Date de naissance;N° patient (structure);Médecin traitant;Dernier acte;Date du dernier acte;Téléphone;E-mail;Adresse';
/** Screenshots of each view, looked at by eye when the dashboard changes. */
const SHOTS = mkdtempSync(join(tmpdir(), 'dashboard-shots-'));

type Res = Record<string, unknown> & { resourceType: string };
interface Client {
  clientId: string;
  secret: string;
  token: string;
}

/**
 * The dashboard in a real (headless) Chromium against a real gateway. MSP A has 12 treated
 * diabetics, all with a first HbA1c in February 2025; 2 get their second in September and 5 more
 * in October. So the September report is suppressed (numerator 2 < 5) and October to December
 * show 7/12; the 5 without a second assay are the recall list. MSP B (3 diabetics) is a small
 * cell in the CPTS's per-structure view.
 *
 * Flu ≥ 65 (everyone here is born in 1950): MSP A also has 11 persons F1–F11 filed by the operator
 * (qualified INS, trusted), 5 of them vaccinated in October 2025. F7 has a second record in MSP B
 * (same trusted INS: one person), F8 two records in MSP A (same trusted INS: one person). MSP B
 * recorded a visit in November 2024: its data, and so the CPTS's, start then.
 */
describe('indicator dashboard in a browser', () => {
  let gw: TestGateway;
  let browser: Browser;
  let cpts: string;
  let mspA: string;
  let mspB: string;
  let clientA: Client;
  let clientCpts: Client;
  let clientC: Client;
  let admin: Client;
  const pageErrors: string[] = [];
  const shots: string[] = [];

  const org = (name: string, type: string, partOf?: string): Promise<string> =>
    typedOrganization(gw, name, type, partOf);

  /** A transaction of treated diabetics born in 1950 (and their GP) posted by a structure's client. */
  async function diabetics(
    token: string,
    prefix: string,
    n: number,
    hba1cDates: (i: number) => string[],
  ): Promise<void> {
    const gp = `urn:uuid:00000000-0000-4000-8000-${String(prefix.charCodeAt(0)).padStart(12, '0')}`;
    const entries: { fullUrl?: string; resource: Res }[] = [
      {
        fullUrl: gp,
        resource: { resourceType: 'Practitioner', active: true, name: [{ family: 'GP', given: [prefix] }] },
      },
    ];
    for (let i = 1; i <= n; i++) {
      const p = `urn:uuid:00000000-0000-4000-9000-${String(prefix.charCodeAt(0) * 100 + i).padStart(12, '0')}`;
      const subject = { reference: p };
      entries.push(
        {
          fullUrl: p,
          resource: {
            resourceType: 'Patient',
            name: [{ family: 'TEST', given: [`${prefix}${i}`] }],
            gender: 'male',
            birthDate: '1950-01-01',
            generalPractitioner: [{ reference: gp }],
          },
        },
        {
          resource: {
            resourceType: 'MedicationRequest',
            status: 'active',
            intent: 'order',
            medicationCodeableConcept: { coding: [CODES.metformin] },
            subject,
            authoredOn: '2025-01-15',
          },
        },
        ...hba1cDates(i).map((date) => ({
          resource: {
            resourceType: 'Observation',
            status: 'final',
            code: { coding: [CODES.hba1c] },
            subject,
            effectiveDateTime: date,
          },
        })),
      );
    }
    const bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: entries.map((e) => ({ ...e, request: { method: 'POST', url: e.resource.resourceType } })),
    };
    const res = await call(gw, 'POST', gw.fhirUrl, bundle, token);
    expect(res.status).toBe(200);
  }

  /** F1–F11 (see above), filed by the operator so their qualified INS is trusted. */
  async function fluPersons(): Promise<void> {
    const gps: string[] = [];
    for (const [given, family] of [
      ['Claire', 'Martin'],
      ['Paul', 'Bernard'],
    ]) {
      const res = await call<{ id: string }>(
        gw,
        'POST',
        `${gw.fhirUrl}/Practitioner`,
        { resourceType: 'Practitioner', active: true, name: [{ family, given: [given] }] },
        clientA.token,
      );
      gps.push(`Practitioner/${res.body.id}`);
    }
    const owner = (org: string) => ({ tag: [{ system: OWNER_TAG_SYSTEM, code: `Organization/${org}` }] });
    const person = (i: number, org: string, extra: Record<string, unknown> = {}): Res => ({
      resourceType: 'Patient',
      meta: owner(org),
      extension: [QUAL],
      identifier: [
        {
          use: 'usual',
          type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'PI' }] },
          system: `https://ipp.example.org/${org}`,
          value: `IPP-${org.slice(0, 4)}-${String(i).padStart(3, '0')}`,
        },
        { use: 'official', system: INS, value: nir('2', '50', '03', '75', '056', String(300 + i)) },
      ],
      name: [{ family: 'GRIPPE', given: [`F${i}`] }],
      gender: 'female',
      birthDate: `1950-0${1 + (i % 9)}-1${i % 10}`,
      generalPractitioner: [{ reference: gps[i % 2] }],
      address: [{ use: 'home', line: [`${i} rue des Lilas; bât. ${i}`], postalCode: '68160', city: 'Sainte-Croix' }],
      telecom: [
        ...(i % 3 !== 0 ? [{ system: 'phone', value: `06 39 98 00 ${String(i).padStart(2, '0')}` }] : []),
        ...(i % 2 === 0 ? [{ system: 'email', value: `f${i}@example.org` }] : []),
      ],
      ...extra,
    });
    const entries: { fullUrl: string; resource: Res }[] = [];
    const flu = (ref: string, date: string): Res => ({
      resourceType: 'Immunization',
      meta: owner(mspA),
      status: 'completed',
      vaccineCode: { coding: [CODES.fluVaccine] },
      patient: { reference: ref },
      occurrenceDateTime: date,
    });
    for (let i = 1; i <= 11; i++) {
      const ref = `urn:uuid:00000000-0000-4000-a000-${String(i).padStart(12, '0')}`;
      entries.push({ fullUrl: ref, resource: person(i, mspA) });
      if (i <= 5) {
        entries.push({ fullUrl: `${ref}1`, resource: flu(ref, '2025-10-15') });
      }
      if (i === 6) {
        entries.push({ fullUrl: `${ref}1`, resource: flu(ref, '2023-11-05') });
      }
      if (i === 7) {
        entries.push({ fullUrl: `${ref}1`, resource: person(i, mspB) });
      }
      if (i === 8) {
        // A duplicate record of F8 in MSP A under another local number, the same trusted qualified INS.
        const dup = person(i, mspA);
        (dup.identifier as { value: string }[])[0]!.value = 'IPP-DOUBLON-008';
        entries.push({ fullUrl: `${ref}1`, resource: dup });
      }
    }
    const bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: entries.map((e) => ({ ...e, request: { method: 'POST', url: e.resource.resourceType } })),
    };
    const res = await call(gw, 'POST', gw.fhirUrl, bundle);
    expect([res.status, res.status === 200 ? '' : JSON.stringify(res.body).slice(0, 600)]).toEqual([200, '']);
  }

  beforeAll(async () => {
    gw = await startTestGateway({
      GW_WORKERS_INPROCESS: 'false',
      GW_MLLP_ENABLED: 'false',
      GW_INDICATOR_SMALL_CELL: String(THRESHOLD),
      // Exact figures are what these tests check (test/security/differencing.e2e-spec.ts covers the noise).
      GW_INDICATOR_NOISE: 'false',
    });
    cpts = await org('CPTS du Val', 'CPTS');
    mspA = await org('MSP des Lilas', 'MSP', cpts);
    mspB = await org('MSP du Parc', 'MSP', cpts);
    clientA = await gw.clientOf(mspA, ['system/*.cruds']);
    const clientB = await gw.clientOf(mspB, ['system/*.cruds']);
    clientCpts = await gw.clientOf(cpts, ['system/Measure.rs', 'system/MeasureReport.rs', 'system/Organization.rs']);
    await diabetics(clientA.token, 'P', 12, (i) => [
      '2025-02-01',
      ...(i <= 2 ? ['2025-09-10'] : i <= 7 ? ['2025-10-10'] : []),
    ]);
    await diabetics(clientB.token, 'Q', 3, () => []);
    await fluPersons();
    const visit = await call(
      gw,
      'POST',
      `${gw.fhirUrl}/Encounter`,
      {
        resourceType: 'Encounter',
        status: 'finished',
        class: CODES.ambulatory,
        subject: { reference: 'Patient/' + (await firstPatient(clientB.token)) },
        period: { start: '2024-11-20T10:00:00Z', end: '2024-11-20T10:20:00Z' },
      },
      clientB.token,
    );
    expect(visit.status).toBe(201);
    // The published benchmarks, before the runs: a stored report carries the figures of its day.
    await gw.core.indicators.benchmarks.load(parseBenchmarkCsv(readFileSync(BENCHMARKS, 'utf8')));
    for (const end of ['2025-09-30', '2025-10-31', '2025-11-30', '2025-12-31']) {
      await gw.core.indicators.storeMonthlyReports(end);
    }
    // A structure registered after the last run: no stored reports.
    clientC = await gw.clientOf(await org('Cabinet des Tilleuls', 'MSP'), ['system/*.rs']);
    await org(LONG_NAME, 'MSP');
    admin = { clientId: gw.admin.clientId, secret: gw.admin.clientSecret, token: await gw.token() };
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
  }, 90_000);

  /** The id of one of a client's patients. */
  async function firstPatient(token: string): Promise<string> {
    const res = await call<{ entry: { resource: { id: string } }[] }>(
      gw,
      'GET',
      `${gw.fhirUrl}/Patient?_count=1`,
      undefined,
      token,
    );
    return res.body.entry[0]!.resource.id;
  }

  afterAll(async () => {
    // The paths, to look at the views (the report lists them).
    process.stdout.write(`dashboard screenshots:\n${shots.map((f) => `  ${f}\n`).join('')}`);
    await browser?.close();
    await gw?.close();
  });

  /** A fresh browser context (its own sessionStorage) logged in with a client's credentials. */
  async function loggedIn(client: Client): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1440, height: 1400 } });
    const page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (msg) => {
      if (msg.type() === 'error' && !/status of 40[13]/.test(msg.text())) {
        pageErrors.push(msg.text());
      }
    });
    await page.goto(`${gw.baseUrl}/dashboard`);
    await page.getByLabel('Identifiant du client (client_id)').fill(client.clientId);
    await page.getByLabel('Secret du client').fill(client.secret);
    await page.getByRole('button', { name: 'Se connecter' }).click();
    await page.locator('#board').waitFor({ state: 'visible' });
    return page;
  }

  /** Pixels of the series colour in the chart's lower 70 % (below its title and legend). */
  async function seriesPixels(page: Page): Promise<number> {
    const shot = decodePng(await page.locator('#chart').screenshot());
    const top = Math.floor(shot.height * 0.3);
    return countColour(
      { ...shot, height: shot.height - top, rgba: shot.rgba.subarray(top * shot.width * 4) },
      SERIES_COLOUR,
    );
  }

  async function shot(page: Page, name: string): Promise<void> {
    const path = join(SHOTS, `${name}.png`);
    await page.screenshot({ path, fullPage: true });
    shots.push(path);
  }

  /** The recall list's rows: column label → text. */
  async function recallRows(page: Page): Promise<Record<string, string>[]> {
    return page.locator('#recall-table').evaluate((table) => {
      const heads = [...table.querySelectorAll('thead th')].map((th) => th.textContent?.replace(/ [▲▼]$/, '') ?? '');
      return [...table.querySelectorAll('tbody tr')].map((tr) =>
        Object.fromEntries([...tr.children].map((td, i) => [heads[i] ?? '', td.textContent ?? ''])),
      );
    });
  }

  /** Opens the recall list and returns the counts its summary states (the same evaluation's). */
  async function openRecall(page: Page): Promise<{ den: number; ex: number; num: number; persons: number }> {
    await page.getByRole('button', { name: 'Afficher la liste de rappel' }).click();
    const summary = page.locator('#recall-summary');
    await summary.waitFor();
    const text = (await summary.textContent()) ?? '';
    const m = /^(\d+) personne\(s\) à rappeler = dénominateur (\d+)(?: − exclusions (\d+))? − numérateur (\d+)/.exec(
      text,
    );
    expect(m).not.toBeNull();
    return { persons: Number(m![1]), den: Number(m![2]), ex: Number(m![3] ?? 0), num: Number(m![4]) };
  }

  async function rows(page: Page): Promise<string[][]> {
    return page
      .locator('#values tbody tr')
      .evaluateAll((trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent ?? '')));
  }

  it('serves the page, its modules and chart.js publicly; nothing else', async () => {
    const page = await fetch(`${gw.baseUrl}/dashboard`, { redirect: 'manual' });
    expect(page.status).toBe(302);
    expect(page.headers.get('location')).toBe('dashboard/');
    for (const [path, type] of [
      ['/dashboard/', 'text/html'],
      ['/dashboard/dashboard.js', 'text/javascript'],
      ['/dashboard/vendor/chart.umd.min.js', 'text/javascript'],
    ] as const) {
      const res = await fetch(`${gw.baseUrl}${path}`);
      expect([path, res.status, res.headers.get('content-type')?.split(';')[0]]).toEqual([path, 200, type]);
    }
    const other = await fetch(`${gw.baseUrl}/dashboard/tsconfig.json`);
    expect(other.status).toBe(404);
    expect(((await other.json()) as { resourceType: string }).resourceType).toBe('OperationOutcome');
  });

  it('a structure: measures, trend chart drawn with data, suppressed month in the table, recall list', async () => {
    const page = await loggedIn(clientA);
    await expect(page.locator('#who').textContent()).resolves.toContain('MSP des Lilas');
    const measures = await page.locator('#measure option').evaluateAll((os) => os.map((o) => o.getAttribute('value')));
    expect(measures).toHaveLength(20);
    expect(measures).toContain(MEASURE);
    await page.selectOption('#measure', MEASURE);
    await page.locator('#values tbody tr').nth(3).waitFor();

    const table = await rows(page);
    expect(table.map((r) => r[0])).toEqual(['2025-09', '2025-10', '2025-11', '2025-12']);
    // September: the numerator (2) is a small cell: every count and the score are masked, not zero.
    expect(table[0]!.slice(1, 6)).toEqual(Array(5).fill(`masqué (< ${THRESHOLD})`));
    expect(table[0]![6]).toBe('masqué');
    // December: 7 of 12, under the intermediate objective (74 %).
    expect(table[3]!.slice(1, 8)).toEqual(['12', '12', '0', '7', '58,3 %', 'non atteint', 'rapport mensuel']);
    await expect(page.locator('#objectives').textContent()).resolves.toMatch(
      /Objectif intermédiaire : 74 %.*Cible : 92 %/,
    );

    // The chart: the series colour below the title and legend (where only the data line can be).
    expect(await seriesPixels(page)).toBeGreaterThan(300);

    await expect(page.locator('h1').textContent()).resolves.toBe('Indicateurs de la structure — MSP des Lilas');
    await shot(page, '1-structure-hba1c');

    const counts = await openRecall(page);
    expect(counts).toEqual({ persons: 5, den: 12, ex: 0, num: 7 });
    const names = (await recallRows(page)).map((r) => r['Nom']);
    expect(names.sort()).toEqual(['TEST P10', 'TEST P11', 'TEST P12', 'TEST P8', 'TEST P9']);
    await page.context().close();
  });

  it('the recall list: one row per person, as many as denominator − numerator; the columns a GP needs; sort, filter, CSV', async () => {
    const page = await loggedIn(clientA);
    await page.selectOption('#measure', FLU);
    await page.locator('#values tbody tr').nth(3).waitFor();
    const last = (await rows(page))[3]!;
    const counts = await openRecall(page);
    // The list's own evaluation and the table's December report agree here (no facts elsewhere, no noise).
    expect([last[2], last[4]]).toEqual([String(counts.den), String(counts.num)]);
    const list = await recallRows(page);
    // 12 diabetics and F1–F11 (F8's two records: one person), 5 vaccinated: 18 to recall.
    expect(counts).toEqual({ persons: 18, den: 23, ex: 0, num: 5 });
    expect(list).toHaveLength(counts.den - counts.ex - counts.num);
    expect(new Set(list.map((r) => `${r['Nom']}|${r['Date de naissance']}`)).size).toBe(list.length);
    const ids = await page
      .locator('#recall-table tbody tr')
      .evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-patient')));
    expect(new Set(ids).size).toBe(list.length);
    expect(list.filter((r) => r['Nom'] === 'GRIPPE F8')).toHaveLength(1);

    const f6 = list.find((r) => r['Nom'] === 'GRIPPE F6')!;
    expect(f6).toMatchObject({
      'N° patient (structure)': `IPP-${mspA.slice(0, 4)}-006`,
      'Médecin traitant': 'Dr Claire Martin',
      'Dernier acte': 'Vaccins contre la grippe (ATC J07BB)',
      'Date du dernier acte': '2023-11-05',
      Téléphone: '—',
      'E-mail': 'f6@example.org',
      Adresse: '6 rue des Lilas; bât. 6, 68160 Sainte-Croix',
    });
    expect(Number(f6['Âge'])).toBeGreaterThanOrEqual(75);
    expect(list.find((r) => r['Nom'] === 'GRIPPE F7')).toMatchObject({
      'Dernier acte': 'jamais',
      Téléphone: '06 39 98 00 07',
    });
    await shot(page, '2-structure-recall');

    // Sorting: by date of the last act, never done first; then descending.
    await page.locator('#recall-table button.sort', { hasText: 'Date du dernier acte' }).click();
    expect((await recallRows(page)).map((r) => r['Date du dernier acte']).slice(-1)).toEqual(['2023-11-05']);
    await page.locator('#recall-table button.sort', { hasText: 'Date du dernier acte' }).click();
    expect((await recallRows(page))[0]!['Nom']).toBe('GRIPPE F6');
    await page.locator('#recall-table button.sort', { hasText: 'Nom' }).click();
    const sorted = (await recallRows(page)).map((r) => r['Nom']);
    expect(sorted).toEqual([...sorted].sort((a, b) => a!.localeCompare(b!, 'fr', { numeric: true })));

    // Filtering on one column: the médecin traitant (accents and case ignored).
    await page.selectOption('#recall-filter-column', { label: 'Médecin traitant' });
    await page.getByLabel('Contient').fill('bernard');
    const filtered = await recallRows(page);
    expect(filtered.length).toBeGreaterThan(0);
    expect(filtered.length).toBeLessThan(list.length);
    expect(filtered.every((r) => r['Médecin traitant'] === 'Dr Paul Bernard')).toBe(true);
    await expect(page.locator('#recall-table caption').textContent()).resolves.toContain(
      `${filtered.length} sur ${list.length} personne(s)`,
    );

    // The export: the list shown (filtered), UTF-8 with a BOM, ';', CRLF, named columns, quoted fields.
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#recall-export').click()]);
    expect(download.suggestedFilename()).toMatch(new RegExp(`^rappel-${FLU}-\\d{4}-\\d{2}-\\d{2}\\.csv$`));
    const bytes = readFileSync((await download.path())!);
    expect([...bytes.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
    const lines = bytes.subarray(3).toString('utf8').split('\r\n');
    expect(lines[0]).toBe(CSV_HEADER);
    expect(lines.at(-1)).toBe('');
    expect(lines.slice(1, -1)).toHaveLength(filtered.length);
    const firstLine = lines[1]!;
    expect(firstLine.startsWith(`${filtered[0]!['Nom']};`)).toBe(true);
    if (filtered.some((r) => r['Nom']!.startsWith('GRIPPE'))) {
      expect(lines.join('\n')).toMatch(/;"\d+ rue des Lilas; bât\. \d+, 68160 Sainte-Croix"$/m);
    }
    await page.context().close();
  });

  it('a CPTS: its structures as suppressed cells, and the recall list refused with the reason', async () => {
    const page = await loggedIn(clientCpts);
    await page.selectOption('#measure', MEASURE);
    const structures = await page.locator('#structure option').allTextContents();
    expect(structures).toEqual(['Tout le périmètre', 'MSP des Lilas', 'MSP du Parc']);
    expect((await rows(page))[3]!.slice(1, 6)).toEqual(['15', '15', '0', '7', '46,7 %']);
    // MSP B's 3 patients are a small cell; MSP A is hidden as its complement.
    await page.selectOption('#structure', { label: 'MSP du Parc' });
    expect((await rows(page))[3]![2]).toBe(`masqué (< ${THRESHOLD})`);
    await page.selectOption('#structure', { label: 'MSP des Lilas' });
    expect((await rows(page))[3]![2]).toBe('masqué (complément)');

    await page.getByRole('button', { name: 'Afficher la liste de rappel' }).click();
    const refusal = page.locator('#recall-result .refusal');
    await refusal.waitFor();
    await expect(refusal.textContent()).resolves.toContain('A CPTS receives population reports only');
    await expect(page.locator('#board').isVisible()).resolves.toBe(true);
    await expect(page.locator('h1').textContent()).resolves.toBe('Indicateurs du territoire — CPTS du Val');
    await page.selectOption('#structure', '');
    // MSP B's data start in November 2024: the window to September 2025 (from October 2024) is incomplete.
    const table = await rows(page);
    expect(table.map((r) => [r[0], r[7]])).toEqual([
      ['2025-09 *', 'rapport mensuel — historique incomplet'],
      ['2025-10', 'rapport mensuel'],
      ['2025-11', 'rapport mensuel'],
      ['2025-12', 'rapport mensuel'],
    ]);
    await expect(page.locator('#coverage-note').textContent()).resolves.toContain('commencent en 2024-11');
    await expect(page.locator('#benchmark').isVisible()).resolves.toBe(false);
    // Without an MT: the published national share of ALD patients beside the territory's ALD stratum
    // (none of this territory's patients is in ALD: no figure of its own).
    await page.selectOption('#measure', 'cpts-sans-medecin-traitant');
    await page.locator('#values-caption', { hasText: 'Patients sans médecin traitant actif' }).waitFor();
    await expect(page.locator('#benchmark').textContent()).resolves.toBe(
      'Référence publiée (open data) — patients en ALD du territoire : non disponible (masqué ou vide) · France 3,8 % (2024-12)',
    );
    await page.selectOption('#structure', { label: 'MSP des Lilas' });
    await expect(page.locator('#benchmark').isVisible()).resolves.toBe(false);
    await shot(page, '3-cpts');
    await page.context().close();
  });

  it('an administrator: its own heading, long names not cut, the recall list of a CPTS one row per person', async () => {
    const page = await loggedIn(admin);
    await expect(page.locator('h1').textContent()).resolves.toBe(
      'Indicateurs de toutes les structures (administration)',
    );
    // The page's own font and the select's width (a string: the tests' TypeScript has no DOM types).
    const fits = (await page.evaluate(`(() => {
      const select = document.getElementById('subject');
      const option = [...select.options].find((o) => o.text.startsWith(${JSON.stringify(LONG_NAME)}));
      const probe = document.createElement('span');
      probe.style.font = getComputedStyle(select).font;
      probe.style.whiteSpace = 'nowrap';
      probe.textContent = option ? option.text : '';
      document.body.append(probe);
      const text = probe.getBoundingClientRect().width;
      probe.remove();
      return { found: option !== undefined, text, select: select.getBoundingClientRect().width };
    })()`)) as { found: boolean; text: number; select: number };
    expect(fits.found).toBe(true);
    // The closed select shows its whole text (plus room for its arrow).
    expect(fits.select).toBeGreaterThan(fits.text + 16);
    await page.selectOption('#subject', { label: 'CPTS du Val (CPTS)' });
    await page.selectOption('#measure', FLU);
    // The table of the flu measure for the CPTS, not the previous measure's still on the page: the
    // recall list is asked for the last period the table shows.
    await page
      .locator('#values-caption', { hasText: 'Vaccination antigrippale des 65 ans et plus — CPTS du Val' })
      .waitFor();
    await page.locator('#values tbody tr').nth(3).waitFor();
    const counts = await openRecall(page);
    const list = await recallRows(page);
    // F7's records in MSP A and MSP B (one trusted qualified INS) are one person, one row.
    expect(counts).toEqual({ persons: 21, den: 26, ex: 0, num: 5 });
    expect(list).toHaveLength(counts.den - counts.ex - counts.num);
    expect(new Set(list.map((r) => `${r['Nom']}|${r['Date de naissance']}`)).size).toBe(list.length);
    expect(list.filter((r) => r['Nom'] === 'GRIPPE F7')).toHaveLength(1);
    await expect(
      page.locator('#recall-table tbody tr', { hasText: 'GRIPPE F7' }).locator('td').first().getAttribute('title'),
    ).resolves.toBe('2 dossiers réunis');
    await shot(page, '4-admin-cpts-recall');
    // The structure alone: its own record of F7 only.
    await page.selectOption('#subject', { label: 'MSP des Lilas (MSP)' });
    await page.locator('#values-caption', { hasText: 'MSP des Lilas' }).waitFor();
    const msp = await openRecall(page);
    expect(msp).toEqual({ persons: 18, den: 23, ex: 0, num: 5 });
    expect(await recallRows(page)).toHaveLength(18);
    await page.context().close();
  });

  it('no stored reports yet: says how to run them and shows the live evaluation', async () => {
    const page = await loggedIn(clientC);
    const notice = page.locator('#no-reports');
    await notice.waitFor({ state: 'visible' });
    await expect(notice.textContent()).resolves.toContain('npm run gateway -- indicators:run --months 12');
    await page.locator('#values tbody tr').first().waitFor();
    const [row] = await rows(page);
    expect(row![0]).toMatch(/^\d{4}-\d{2} \(en direct\)$/);
    expect(row![7]).toBe('en direct');
    // No patient in that period: no score, so no data drawn (the pixel check above is not the legend).
    expect(row![5]).toBe('sans objet');
    expect(await seriesPixels(page)).toBeLessThan(20);
    await page.context().close();
  });

  it('an invalid or expired token sends back to the login form with the reason', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${gw.baseUrl}/dashboard/`);
    await page.getByLabel('Jeton d’accès (Bearer)').fill('eyJhbGciOiJFUzI1NiJ9.eyJleHAiOjF9.c2ln');
    await page.getByRole('button', { name: 'Se connecter' }).click();
    await expect(page.locator('#message').textContent()).resolves.toContain('reconnectez-vous');
    await expect(page.locator('#login').isVisible()).resolves.toBe(true);
    // The page keeps its token in sessionStorage only: nothing kept after a refused one.
    expect(await page.evaluate('sessionStorage.length')).toBe(0);
    // A wrong secret: the OAuth error is shown, the form stays.
    await page.getByLabel('Identifiant du client (client_id)').fill(clientA.clientId);
    await page.getByLabel('Secret du client').fill('wrong');
    await page.getByRole('button', { name: 'Se connecter' }).click();
    await page.getByRole('alert').filter({ hasText: 'Connexion refusée' }).waitFor();
    await context.close();
  });

  it('the page logged no script error', () => {
    expect(pageErrors).toEqual([]);
  });
});
