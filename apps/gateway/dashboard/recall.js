// The recall list ("Patients à rappeler") as a GP uses it: one row per person, the columns a
// practice needs to call the patient back, sorting, filtering and a CSV export for the practice
// software's mailing. Every value comes from the FHIR API with the user's own token: the
// subject-list MeasureReport (the persons, their latest evidence), then Patient and Practitioner
// searches the access policy filters and the audit log records like any other read.
import { fhirGet, reportCell, resourcesOf } from './fhir.js';
import { compareCells, csvOf, labelled, normalise } from './table.js';

/** @typedef {import('./fhir.js').MeasureReport} MeasureReport */
/** @typedef {import('@medplum/fhirtypes').Patient} Patient */
/** @typedef {import('@medplum/fhirtypes').Practitioner} Practitioner */
/** @typedef {import('@medplum/fhirtypes').ListEntry} ListEntry */
/** @typedef {import('@medplum/fhirtypes').List} List */

const EXT = 'https://gateway.fr-primary-care.org/fhir/StructureDefinition';
const EVIDENCE_URL = `${EXT}/measure-recall-evidence`;
const OTHER_RECORD_URL = `${EXT}/measure-recall-other-record`;
const EVENTS_URL = `${EXT}/measure-recall-events`;
const INS_SYSTEMS = ['urn:oid:1.2.250.1.213.1.4.8', 'urn:oid:1.2.250.1.213.1.4.10', 'urn:oid:1.2.250.1.213.1.4.11'];
/** Ids per search request: 100 UUIDs keep the URL far under the usual 8 KB limits. */
const CHUNK = 100;

/**
 * One person to recall, as shown and exported.
 * @typedef {object} RecallRow
 * @property {string} patient `Patient/<id>` of the record shown
 * @property {string} name
 * @property {number | null} age in whole years today
 * @property {string} birthDate
 * @property {string} localId the structure's own patient number (its identifier)
 * @property {string} gp the médecin traitant's name
 * @property {string} evidence what was last done (of what the numerator counts)
 * @property {string} evidenceDate YYYY-MM-DD, '' when never
 * @property {string} phone
 * @property {string} email
 * @property {string} address
 * @property {number} records the person's records merged into the row
 */

/**
 * The columns, in order: header (also the CSV's), value, and how to sort.
 * @type {{ key: keyof RecallRow; label: string; numeric?: boolean }[]}
 */
export const COLUMNS = [
  { key: 'name', label: 'Nom' },
  { key: 'age', label: 'Âge', numeric: true },
  { key: 'birthDate', label: 'Date de naissance' },
  { key: 'localId', label: 'N° patient (structure)' },
  { key: 'gp', label: 'Médecin traitant' },
  { key: 'evidence', label: 'Dernier acte' },
  { key: 'evidenceDate', label: 'Date du dernier acte' },
  { key: 'phone', label: 'Téléphone' },
  { key: 'email', label: 'E-mail' },
  { key: 'address', label: 'Adresse' },
];

/**
 * The recall list of a measure for a subject and period, with the counts of the same evaluation.
 * @param {string} measure Measure id
 * @param {string} subject `Organization/<id>`
 * @param {{ start?: string; end?: string } | undefined} period
 * @returns {Promise<{ report: MeasureReport; rows: RecallRow[] }>}
 */
export async function loadRecall(measure, subject, period) {
  const query = new URLSearchParams({
    reportType: 'subject-list',
    subject,
    ...(period?.start && period.end ? { periodStart: period.start, periodEnd: period.end } : {}),
  });
  /** @type {MeasureReport} */
  const report = await fhirGet(`Measure/${encodeURIComponent(measure)}/$evaluate-measure?${query}`);
  const list = /** @type {List | undefined} */ (report.contained?.find((r) => r.resourceType === 'List'));
  const entries = (list?.entry ?? []).filter((e) => e.item.reference?.startsWith('Patient/'));
  /** @type {Map<string, Patient>} */
  const patients = await byId(
    'Patient',
    entries.map((e) => (e.item.reference ?? '').slice(8)),
  );
  const gpIds = [...patients.values()]
    .map((p) => /^Practitioner\/(.+)$/.exec(p.generalPractitioner?.[0]?.reference ?? '')?.[1])
    .filter((id) => id !== undefined);
  /** @type {Map<string, Practitioner>} */
  const gps = await byId('Practitioner', [...new Set(gpIds)]);
  const rows = entries.map((e) => rowOf(e, patients, gps));
  return { report, rows };
}

/**
 * Resources by id through searches with `_id` (what the token may read; the others are absent).
 * @template {{ id?: string }} T
 * @param {string} type
 * @param {string[]} ids
 * @returns {Promise<Map<string, T>>}
 */
async function byId(type, ids) {
  /** @type {Map<string, T>} */
  const found = new Map();
  for (let i = 0; i < ids.length; i += CHUNK) {
    const part = ids.slice(i, i + CHUNK);
    /** @type {T[]} */
    const page = resourcesOf(
      await fhirGet(`${type}?_id=${part.map(encodeURIComponent).join(',')}&_count=${part.length}`),
    );
    page.forEach((r) => found.set(r.id ?? '', r));
  }
  return found;
}

/**
 * @param {ListEntry} entry
 * @param {Map<string, Patient>} patients
 * @param {Map<string, Practitioner>} gps
 * @returns {RecallRow}
 */
function rowOf(entry, patients, gps) {
  const ref = entry.item.reference ?? '';
  const p = patients.get(ref.slice(8));
  const name = p?.name?.find((n) => n.use === 'usual') ?? p?.name?.[0];
  const gpRef = p?.generalPractitioner?.[0];
  const gp = gps.get(/^Practitioner\/(.+)$/.exec(gpRef?.reference ?? '')?.[1] ?? '');
  const gpName = gp?.name?.[0];
  const ev = entry.extension?.find((x) => x.url === EVIDENCE_URL)?.extension;
  const fact = ev?.find((x) => x.url === 'fact')?.valueReference;
  const code = ev?.find((x) => x.url === 'code')?.valueCoding;
  const events = entry.extension?.find((x) => x.url === EVENTS_URL)?.valueInteger;
  const telecom = (/** @type {'phone' | 'email'} */ system) =>
    (p?.telecom ?? [])
      .filter((t) => t.system === system && t.value)
      .map((t) => t.value)
      .join(', ');
  const home = p?.address?.find((a) => a.use === 'home') ?? p?.address?.[0];
  const evidence = ev ? (code?.display ?? fact?.display ?? code?.code ?? '') : 'jamais';
  return {
    patient: ref,
    name: name
      ? `${(name.family ?? '').toUpperCase()} ${(name.given ?? []).join(' ')}`.trim()
      : '(dossier non lisible)',
    age: ageOf(p?.birthDate),
    birthDate: p?.birthDate ?? '',
    localId: localIdOf(p),
    gp: gpName
      ? `Dr ${(gpName.given ?? []).join(' ')} ${gpName.family ?? ''}`.replace(/\s+/g, ' ').trim()
      : (gpRef?.display ?? (gpRef ? '(non lisible)' : 'aucun')),
    evidence: events !== undefined && events > 1 ? `${evidence} (${events} séjours sans suivi)` : evidence,
    evidenceDate: ev?.find((x) => x.url === 'date')?.valueDateTime?.slice(0, 10) ?? '',
    phone: telecom('phone'),
    email: telecom('email'),
    address: home ? [...(home.line ?? []), [home.postalCode, home.city].filter(Boolean).join(' ')].join(', ') : '',
    records: 1 + (entry.extension ?? []).filter((x) => x.url === OTHER_RECORD_URL).length,
  };
}

/**
 * The structure's own patient number: its usual / PI identifier, never the INS.
 * @param {Patient | undefined} p
 */
function localIdOf(p) {
  const ids = (p?.identifier ?? []).filter((i) => !INS_SYSTEMS.includes(i.system ?? '') && i.value);
  const local =
    ids.find((i) => i.type?.coding?.some((c) => c.code === 'PI')) ?? ids.find((i) => i.use === 'usual') ?? ids[0];
  return local?.value ?? '';
}

/**
 * @param {string | undefined} birthDate
 * @returns {number | null}
 */
function ageOf(birthDate) {
  if (!birthDate || !/^\d{4}-\d{2}-\d{2}$/.test(birthDate)) {
    return null;
  }
  const today = new Date();
  const [y, m, d] = birthDate.split('-').map(Number);
  const before = today.getMonth() + 1 < (m ?? 0) || (today.getMonth() + 1 === m && today.getDate() < (d ?? 0));
  return today.getFullYear() - (y ?? 0) - (before ? 1 : 0);
}

/**
 * The rows kept by the filter (a column, or all of them when `column` is ''), sorted.
 * @param {RecallRow[]} rows
 * @param {{ column: string; text: string; sortKey: string; descending: boolean }} view
 */
export function viewOf(rows, view) {
  const needle = normalise(view.text);
  const keys = view.column ? [view.column] : COLUMNS.map((c) => c.key);
  const kept = needle
    ? rows.filter((r) =>
        keys.some((k) => normalise(String(r[/** @type {keyof RecallRow} */ (k)] ?? '')).includes(needle)),
      )
    : [...rows];
  const col = COLUMNS.find((c) => c.key === view.sortKey);
  if (col) {
    const sign = view.descending ? -1 : 1;
    kept.sort((a, b) => sign * compareCells(a[col.key], b[col.key]) || a.name.localeCompare(b.name, 'fr'));
  }
  return kept;
}

/**
 * The CSV French Excel opens as is: UTF-8 with a BOM, ';' between fields, CRLF, named columns.
 * @param {RecallRow[]} rows
 */
export function toCsv(rows) {
  return csvOf(COLUMNS, rows);
}

/**
 * The counts of the list's own evaluation (the caller's records only, no noise): the number of
 * rows is denominator − exclusions − numerator for a person-basis measure.
 * @param {MeasureReport} report
 */
export function listCounts(report) {
  return reportCell(report, undefined)?.counts;
}

/**
 * Shows the list in `container`: caption with the counts, filter, sortable headers, CSV export.
 * @param {HTMLElement} container
 * @param {{ report: MeasureReport; rows: RecallRow[] }} data
 * @param {{ measure: string; structureName: string; shownCounts?: Record<string, number | null> }} context
 *   shownCounts: the counts of the table's row for the same period, to explain a difference
 */
export function renderRecall(container, data, context) {
  const { report, rows } = data;
  const period = `${report.period?.start ?? ''} au ${report.period?.end ?? ''}`;
  const counts = listCounts(report);
  const view = { column: '', text: '', sortKey: 'name', descending: false };

  const summary = document.createElement('p');
  summary.id = 'recall-summary';
  const den = counts?.denominator;
  const ex = counts?.['denominator-exclusion'];
  const num = counts?.numerator;
  summary.textContent =
    den != null && num != null
      ? `${rows.length} personne(s) à rappeler = dénominateur ${den}${ex ? ` − exclusions ${ex}` : ''} − numérateur ${num}, ` +
        `du ${period}, sur les dossiers de ${context.structureName}. Une ligne par personne : les dossiers d’une même personne (INS qualifié, ou liés) sont réunis.`
      : `${rows.length} personne(s) à rappeler du ${period}.`;
  const shown = context.shownCounts;
  const note = document.createElement('p');
  note.id = 'recall-difference';
  if (shown && den != null && num != null && (shown.denominator !== den || shown.numerator !== num)) {
    note.textContent = `Le tableau ci-dessus (${shown.denominator ?? 'masqué'} / ${shown.numerator ?? 'masqué'}) compte aussi les actes enregistrés par d’autres structures et porte un léger bruit statistique ; la liste ne lit que les dossiers de votre structure, sans bruit.`;
  }

  const tools = document.createElement('div');
  tools.className = 'recall-tools';
  const columnSelect = document.createElement('select');
  columnSelect.id = 'recall-filter-column';
  columnSelect.append(new Option('Toutes les colonnes', ''), ...COLUMNS.map((c) => new Option(c.label, c.key)));
  const filter = document.createElement('input');
  filter.id = 'recall-filter';
  filter.type = 'search';
  const exportButton = document.createElement('button');
  exportButton.type = 'button';
  exportButton.id = 'recall-export';
  exportButton.textContent = 'Exporter en CSV (liste affichée)';
  tools.append(
    labelled('recall-filter-column', 'Filtrer sur', columnSelect),
    labelled('recall-filter', 'Contient', filter),
    exportButton,
  );

  const table = document.createElement('table');
  table.id = 'recall-table';
  const caption = table.createCaption();
  const headRow = table.createTHead().insertRow();
  const body = table.createTBody();
  /** @type {HTMLButtonElement[]} */
  const sorters = COLUMNS.map((c) => {
    const th = document.createElement('th');
    th.scope = 'col';
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'sort';
    b.dataset.key = c.key;
    b.textContent = c.label;
    b.addEventListener('click', () => {
      view.descending = view.sortKey === c.key ? !view.descending : false;
      view.sortKey = c.key;
      draw();
    });
    th.append(b);
    headRow.append(th);
    return b;
  });

  function draw() {
    const shownRows = viewOf(rows, view);
    caption.textContent = `${shownRows.length} sur ${rows.length} personne(s) à rappeler — ${period}`;
    for (const b of sorters) {
      const th = /** @type {HTMLElement} */ (b.parentElement);
      th.setAttribute(
        'aria-sort',
        b.dataset.key === view.sortKey ? (view.descending ? 'descending' : 'ascending') : 'none',
      );
    }
    body.replaceChildren(
      ...shownRows.map((r) => {
        const tr = document.createElement('tr');
        tr.dataset.patient = r.patient;
        for (const c of COLUMNS) {
          const cell = document.createElement('td');
          const v = r[c.key];
          cell.textContent = v === null || v === '' ? '—' : String(v);
          if (c.key === 'name' && r.records > 1) {
            cell.title = `${r.records} dossiers réunis`;
          }
          tr.append(cell);
        }
        return tr;
      }),
    );
    return shownRows;
  }

  columnSelect.addEventListener('change', () => {
    view.column = columnSelect.value;
    draw();
  });
  filter.addEventListener('input', () => {
    view.text = filter.value;
    draw();
  });
  exportButton.addEventListener('click', () => {
    const blob = new Blob([toCsv(viewOf(rows, view))], { type: 'text/csv;charset=utf-8' });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = `rappel-${context.measure}-${report.period?.end ?? ''}.csv`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  });
  draw();
  container.replaceChildren(summary, ...(note.textContent ? [note] : []), tools, table);
}
