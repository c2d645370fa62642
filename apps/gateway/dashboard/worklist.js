// The care-gaps worklist ("Écarts de soins") for a GP's patientèle or a structure, and the estimate
// of the forfait médecin traitant (FMT) for that patientèle. Every value comes from the FHIR API
// with the user's own token: Measure/$care-gaps (open and closed gaps, evidence), Patient and
// Coverage searches (ages, ALD, C2S) the access policy filters; the amounts from the catalogue's
// fmt-amounts.json, each with its source.
import { fhirGet, resourcesOf } from './fhir.js';
import { compareCells, csvOf, labelled, normalise } from './table.js';

/** @typedef {import('@medplum/fhirtypes').Bundle} Bundle */
/** @typedef {import('@medplum/fhirtypes').Parameters} Parameters */
/** @typedef {import('@medplum/fhirtypes').Composition} Composition */
/** @typedef {import('@medplum/fhirtypes').DetectedIssue} DetectedIssue */
/** @typedef {import('@medplum/fhirtypes').MeasureReport} MeasureReport */
/** @typedef {import('@medplum/fhirtypes').Measure} Measure */
/** @typedef {import('@medplum/fhirtypes').Patient} Patient */
/** @typedef {import('@medplum/fhirtypes').Coverage} Coverage */
/** @typedef {import('@medplum/fhirtypes').PractitionerRole} PractitionerRole */
/** @typedef {import('@medplum/fhirtypes').Practitioner} Practitioner */

/** The tag system of the organization a stored resource is filed under. */
const OWNER_TAG = 'https://gateway.fr-primary-care.org/fhir/CodeSystem/owner-organization';
/** The tag the gateway puts on a PractitionerRole an operator wrote or vouched for. */
const ROLE_TRUST = 'https://gateway.fr-primary-care.org/fhir/CodeSystem/role-trust';

const EXT = 'https://gateway.fr-primary-care.org/fhir/StructureDefinition';
const EVIDENCE_URL = `${EXT}/measure-recall-evidence`;
const SINCE_URL = `${EXT}/care-gap-since`;
const CLOSES_BY_URL = `${EXT}/care-gap-closes-by`;
const VALID_UNTIL_URL = `${EXT}/care-gap-valid-until`;
const FMT_ITEM_URL = `${EXT}/fmt-item`;
const ALD_SYSTEM = 'https://gateway.fr-primary-care.org/fhir/CodeSystem/ald';
const COVERAGE_TYPE_SYSTEM = 'https://gateway.fr-primary-care.org/fhir/CodeSystem/coverage-type';
/** Ids per search request (URL length). */
const CHUNK = 100;

/**
 * One item of one patient, as shown and exported.
 * @typedef {object} GapRow
 * @property {string} patient `Patient/<id>`
 * @property {string} name
 * @property {number | null} age at the period's end
 * @property {string} measure Measure id
 * @property {string} item the Measure's title
 * @property {'open-gap' | 'closed-gap'} status
 * @property {string} since open gaps: first day open in the period
 * @property {string} closesBy open gaps: last day to close it (the period end)
 * @property {string} evidence what was last done (of what the item counts), or 'jamais'
 * @property {string} evidenceDate YYYY-MM-DD
 * @property {string} validUntil closed gaps: last period end the evidence counts for
 */

/** @type {{ key: keyof GapRow; label: string; numeric?: boolean }[]} */
export const GAP_COLUMNS = [
  { key: 'name', label: 'Patient' },
  { key: 'age', label: 'Âge', numeric: true },
  { key: 'item', label: 'Item' },
  { key: 'since', label: 'Ouvert depuis' },
  { key: 'closesBy', label: 'À faire avant' },
  { key: 'evidence', label: 'Dernier acte' },
  { key: 'evidenceDate', label: 'Date du dernier acte' },
];

/**
 * The FMT amounts file (fhir-profiles/fmt/fmt-amounts.json).
 * @typedef {object} FmtAmounts
 * @property {string} referenceDate
 * @property {{ id: string; label: string; ageMin: number; ageMax?: number; ald: boolean; amount: number; source: string }[]} fixed
 * @property {{ amount: number; source: string }} c2sSupplement
 * @property {{ amount: number; source: string }} perItem
 * @property {string[]} notModelled
 */

/**
 * One person of the patientèle, for the fixed part.
 * @typedef {{ patient: string; age: number | null; ald: boolean; c2s: boolean }} Member
 */

/**
 * The estimate: fixed part by band, C2S supplements, items met, and what it assumed.
 * @typedef {object} Estimate
 * @property {{ label: string; count: number; amount: number }[]} bands
 * @property {number} unknownAge patients without a birth date (not counted)
 * @property {number} c2s
 * @property {number} fixed
 * @property {number} items FMT items met (closed gaps of Measures carrying the fmt-item extension)
 * @property {number} variable
 * @property {number} total
 * @property {string[]} assumptions
 */

/**
 * Everything the worklist shows for a subject and a year.
 * @param {string} subject `Practitioner/<id>` or `Organization/<id>`
 * @param {string} year YYYY
 * @param {Map<string, Measure>} measures the catalogue (titles, fmt-item amounts)
 * @param {boolean} [admin] an administrator's token reads every structure's patients: the patientèle
 *   of a structure is then taken from the patients the care gaps list
 * @returns {Promise<{ rows: GapRow[]; estimate: Estimate; period: { start: string; end: string } }>}
 */
export async function loadWorklist(subject, year, measures, admin = false) {
  const period = { start: `${year}-01-01`, end: `${year}-12-31` };
  const query = new URLSearchParams({ subject, periodStart: period.start, periodEnd: period.end });
  /** @type {Parameters} */
  const answer = await fhirGet(`Measure/$care-gaps?${query}`);
  const gaps = gapsOf(answer);
  const patientele = await patienteleOf(
    subject,
    period.end,
    admin ? [...new Set(gaps.map((g) => g.patient))] : undefined,
  );
  const known = new Map(patientele.patients.map((p) => [`Patient/${p.id}`, p]));
  // Patients listed by $care-gaps but outside the patientèle search (e.g. not readable by _id there).
  const missing = [...new Set(gaps.map((g) => g.patient))].filter((ref) => !known.has(ref));
  for (const p of await byId(
    'Patient',
    missing.map((ref) => ref.slice(8)),
  )) {
    known.set(`Patient/${p.id}`, p);
  }
  const rows = gaps.map((g) => {
    const p = known.get(g.patient);
    const m = measures.get(g.measure);
    return { ...g, name: nameOf(p), age: ageAt(p?.birthDate, period.end), item: m?.title ?? m?.name ?? g.measure };
  });
  const coverage = await coverageOf(
    patientele.patients.map((p) => p.id ?? ''),
    period.end,
  );
  const members = patientele.patients.map((p) => ({
    patient: `Patient/${p.id}`,
    age: ageAt(p.birthDate, period.end),
    ald: coverage.ald.has(`Patient/${p.id}`),
    c2s: coverage.c2s.has(`Patient/${p.id}`),
  }));
  /** @type {FmtAmounts} */
  const amounts = await (await fetch('fmt-amounts.json')).json();
  const estimate = estimateFmt(members, rows, measures, amounts);
  estimate.assumptions.unshift(patientele.scope);
  return { rows, estimate, period };
}

/**
 * The gaps of a `$care-gaps` answer, one per patient and measure (not-applicable ones dropped).
 * @param {Parameters} answer
 * @returns {Omit<GapRow, 'name' | 'age' | 'item'>[]}
 */
export function gapsOf(answer) {
  /** @type {Omit<GapRow, 'name' | 'age' | 'item'>[]} */
  const out = [];
  for (const p of answer.parameter ?? []) {
    const bundle = /** @type {Bundle} */ (p.resource);
    const byUrl = new Map((bundle.entry ?? []).map((e) => [e.fullUrl ?? '', e.resource]));
    const composition = /** @type {Composition | undefined} */ (bundle.entry?.[0]?.resource);
    const patient = composition?.subject?.reference ?? '';
    for (const section of composition?.section ?? []) {
      const status = section.code?.coding?.[0]?.code;
      if (status !== 'open-gap' && status !== 'closed-gap') {
        continue;
      }
      const report = /** @type {MeasureReport | undefined} */ (byUrl.get(section.focus?.reference ?? ''));
      const issue = /** @type {DetectedIssue | undefined} */ (byUrl.get(section.entry?.[0]?.reference ?? ''));
      /** @param {string} url */
      const ext = (url) => issue?.extension?.find((e) => e.url === url);
      const ev = ext(EVIDENCE_URL)?.extension;
      const code = ev?.find((x) => x.url === 'code')?.valueCoding;
      const fact = ev?.find((x) => x.url === 'fact')?.valueReference;
      out.push({
        patient,
        measure: /\/Measure\/([^|/]+)/.exec(report?.measure ?? '')?.[1] ?? '',
        status,
        since: ext(SINCE_URL)?.valueDate ?? '',
        closesBy: ext(CLOSES_BY_URL)?.valueDate ?? '',
        evidence: ev ? (code?.display ?? fact?.display ?? code?.code ?? '') : 'jamais',
        evidenceDate: ev?.find((x) => x.url === 'date')?.valueDateTime?.slice(0, 10) ?? '',
        validUntil: ext(VALID_UNTIL_URL)?.valueDate ?? '',
      });
    }
  }
  return out;
}

/**
 * The fixed part (amount by age band and ALD, + C2S) over the patientèle, plus the amount per FMT
 * item met; with the assumptions the figure rests on, to be shown beside it.
 * @param {Member[]} members
 * @param {GapRow[]} rows
 * @param {Map<string, Measure>} measures
 * @param {FmtAmounts} amounts
 * @returns {Estimate}
 */
export function estimateFmt(members, rows, measures, amounts) {
  const bands = amounts.fixed.map((b) => ({ label: b.label, count: 0, amount: 0 }));
  let unknownAge = 0;
  let c2s = 0;
  for (const m of members) {
    if (m.c2s) {
      c2s += 1;
    }
    if (m.age === null) {
      unknownAge += 1;
      continue;
    }
    const age = m.age;
    const i = amounts.fixed.findIndex(
      (b) => b.ald === m.ald && age >= b.ageMin && (b.ageMax === undefined || age <= b.ageMax),
    );
    const band = bands[i];
    if (band) {
      band.count += 1;
      band.amount += amounts.fixed[i]?.amount ?? 0;
    }
  }
  const fixed = bands.reduce((n, b) => n + b.amount, 0) + c2s * amounts.c2sSupplement.amount;
  /** @param {string} id */
  const itemAmount = (id) => {
    const ext = measures.get(id)?.extension?.find((e) => e.url === FMT_ITEM_URL);
    return ext ? (ext.valueMoney?.value ?? amounts.perItem.amount) : undefined;
  };
  const met = rows.filter((r) => r.status === 'closed-gap' && itemAmount(r.measure) !== undefined);
  const variable = met.reduce((n, r) => n + (itemAmount(r.measure) ?? 0), 0);
  const fmtMeasures = [...new Set(rows.map((r) => r.measure))].filter((id) => itemAmount(id) !== undefined);
  const assumptions = [
    `Patientèle de référence : ${amounts.referenceDate} ; ici, les patients lus aujourd’hui (la date de référence n’est pas rejouée).`,
    `ALD et C2S lues des Coverage (exonération ALD, type C2S) en vigueur au dernier jour de la période ; sans Coverage, le patient est compté hors ALD et hors C2S.`,
    `Part variable : ${amounts.perItem.amount} € par indicateur de prévention validé (écart fermé d’un indicateur FMT) et par patient${fmtMeasures.length === 0 ? ' ; aucun indicateur FMT sur cette période : part variable nulle' : ''}.`,
    ...(unknownAge > 0 ? [`${unknownAge} patient(s) sans date de naissance non compté(s) dans la part fixe.`] : []),
    ...amounts.notModelled,
  ];
  return {
    bands: bands.filter((b) => b.count > 0),
    unknownAge,
    c2s,
    fixed,
    items: met.length,
    variable,
    total: fixed + variable,
    assumptions,
  };
}

/**
 * The patientèle the fixed part counts: a GP's patients (generalPractitioner), or a structure's
 * patients who have a médecin traitant, as the token may read them.
 * @param {string} subject
 * @param {string} end
 * @param {string[]} [listed] an administrator's structure view: the patients the care gaps list
 * @returns {Promise<{ patients: Patient[]; scope: string }>}
 */
async function patienteleOf(subject, end, listed) {
  if (subject.startsWith('Practitioner/')) {
    const [patients, roles, practitioner] = await Promise.all([
      allPages(`Patient?general-practitioner=${encodeURIComponent(subject)}&_count=1000`),
      /** @type {Promise<PractitionerRole[]>} */ (
        allPages(`PractitionerRole?practitioner=${encodeURIComponent(subject)}&_count=1000`)
      ),
      // A GP no longer readable (deleted): only vouched roles count.
      /** @type {Promise<Practitioner | undefined>} */ (fhirGet(subject).catch(() => undefined)),
    ]);
    // As the gateway counts a GP's patientèle: only the declarations filed by a structure where the GP
    // holds an active role on that day, a role the gateway stands behind (the GP is the structure's own
    // practitioner, or an operator vouched for it); another structure's word does not make its patients theirs.
    const owner = ownerOf(practitioner);
    const where = new Set(
      roles
        .filter((r) => roleHolds(r, end) && (vouched(r) || r.organization?.reference === owner))
        .map((r) => r.organization?.reference),
    );
    const verified = patients.filter((p) => where.has(ownerOf(p)));
    const others = patients.length - verified.length;
    return {
      patients: verified.filter((p) => p.active !== false && !p.deceasedBoolean && !p.deceasedDateTime),
      scope: `Patients dont le médecin est le médecin traitant déclaré (${verified.length}), au ${end}, par une structure où il exerce${
        others > 0 ? ` ; ${others} déclaration(s) d’une structure où il n’exerce pas ne compte(nt) pas` : ''
      }.`,
    };
  }
  const patients = listed
    ? await byId(
        'Patient',
        listed.map((ref) => ref.slice(8)),
      )
    : await allPages('Patient?_count=1000');
  const withGp = patients.filter(
    (p) => (p.generalPractitioner?.length ?? 0) > 0 && p.active !== false && !p.deceasedBoolean && !p.deceasedDateTime,
  );
  return {
    patients: withGp,
    scope: listed
      ? `Vue administrateur : patients listés par les écarts de soins ayant un médecin traitant déclaré (${withGp.length}), au ${end} ; les patients sans aucun item n’y sont pas.`
      : `Patients de la structure ayant un médecin traitant déclaré (${withGp.length}), au ${end}.`,
  };
}

/**
 * Whether a PractitionerRole is active on `day` (YYYY-MM-DD; no period: always).
 * @param {PractitionerRole} r
 * @param {string} day
 */
function roleHolds(r, day) {
  const start = r.period?.start?.slice(0, 10);
  const end = r.period?.end?.slice(0, 10);
  return r.active !== false && (!start || start <= day) && (!end || end >= day);
}

/**
 * Whether an operator wrote or vouched for a PractitionerRole (the gateway's role-trust tag).
 * @param {PractitionerRole} r
 */
function vouched(r) {
  return !!r.meta?.tag?.some((t) => t.system === ROLE_TRUST && t.code === 'operator-vouched');
}

/**
 * The organization a resource is filed under (the gateway's owner tag on every stored resource).
 * @param {Patient | Practitioner | undefined} p
 */
function ownerOf(p) {
  return p?.meta?.tag?.find((t) => t.system === OWNER_TAG)?.code;
}

/**
 * Patients in ALD and in C2S on `day`, from their Coverage (the contract's representation).
 * @param {string[]} ids
 * @param {string} day
 */
async function coverageOf(ids, day) {
  /** @type {Set<string>} */
  const ald = new Set();
  /** @type {Set<string>} */
  const c2s = new Set();
  /** @param {{ start?: string; end?: string } | undefined} p */
  const inForce = (p) => (!p?.start || p.start.slice(0, 10) <= day) && (!p?.end || p.end.slice(0, 10) >= day);
  for (let i = 0; i < ids.length; i += CHUNK) {
    const part = ids.slice(i, i + CHUNK).map((id) => `Patient/${id}`);
    /** @type {Coverage[]} */
    const found = await allPages(`Coverage?beneficiary=${part.map(encodeURIComponent).join(',')}&_count=1000`);
    for (const c of found) {
      const who = c.beneficiary?.reference ?? '';
      if (c.status !== 'active' || !inForce(c.period)) {
        continue;
      }
      if (c.type?.coding?.some((x) => x.system === COVERAGE_TYPE_SYSTEM && x.code === 'C2S')) {
        c2s.add(who);
      }
      const exceptions = (c.costToBeneficiary ?? []).flatMap((k) => k.exception ?? []);
      if (exceptions.some((e) => e.type.coding?.some((x) => x.system === ALD_SYSTEM) && inForce(e.period))) {
        ald.add(who);
      }
    }
  }
  return { ald, c2s };
}

/**
 * Every page of a search (its `next` links, relative to the FHIR base).
 * @template T
 * @param {string} path
 * @returns {Promise<T[]>}
 */
async function allPages(path) {
  /** @type {T[]} */
  const out = [];
  /** @type {string | undefined} */
  let next = path;
  while (next) {
    /** @type {Bundle} */
    const page = await fhirGet(next);
    out.push(...resourcesOf(page).map((r) => /** @type {T} */ (r)));
    const link = page.link?.find((l) => l.relation === 'next')?.url;
    next = link ? link.slice(link.indexOf('/fhir/') + 6) : undefined;
  }
  return out;
}

/**
 * @param {string} type
 * @param {string[]} ids
 * @returns {Promise<Patient[]>}
 */
async function byId(type, ids) {
  /** @type {Patient[]} */
  const out = [];
  for (let i = 0; i < ids.length; i += CHUNK) {
    const part = ids.slice(i, i + CHUNK);
    out.push(...(await allPages(`${type}?_id=${part.map(encodeURIComponent).join(',')}&_count=${part.length}`)));
  }
  return /** @type {Patient[]} */ (out);
}

/** @param {Patient | undefined} p */
function nameOf(p) {
  const name = p?.name?.find((n) => n.use === 'usual') ?? p?.name?.[0];
  return name ? `${(name.family ?? '').toUpperCase()} ${(name.given ?? []).join(' ')}`.trim() : '(dossier non lisible)';
}

/**
 * Age in whole years on `day`.
 * @param {string | undefined} birthDate
 * @param {string} day
 * @returns {number | null}
 */
export function ageAt(birthDate, day) {
  if (!birthDate || !/^\d{4}-\d{2}-\d{2}/.test(birthDate)) {
    return null;
  }
  const [y, m, d] = birthDate.slice(0, 10).split('-').map(Number);
  const [ty, tm, td] = day.split('-').map(Number);
  const before = (tm ?? 0) < (m ?? 0) || (tm === m && (td ?? 0) < (d ?? 0));
  return (ty ?? 0) - (y ?? 0) - (before ? 1 : 0);
}

/**
 * The open gaps kept by the item filter and the text, sorted.
 * @param {GapRow[]} rows
 * @param {{ measure: string; text: string; sortKey: keyof GapRow; descending: boolean }} view
 */
export function openRowsOf(rows, view) {
  const needle = normalise(view.text);
  const kept = rows.filter(
    (r) =>
      r.status === 'open-gap' &&
      (!view.measure || r.measure === view.measure) &&
      (!needle || GAP_COLUMNS.some((c) => normalise(String(r[c.key] ?? '')).includes(needle))),
  );
  const sign = view.descending ? -1 : 1;
  const numeric = GAP_COLUMNS.find((c) => c.key === view.sortKey)?.numeric;
  return kept.sort((a, b) => {
    const c = compareCells(a[view.sortKey], b[view.sortKey], numeric);
    return sign * c || a.name.localeCompare(b.name, 'fr') || a.item.localeCompare(b.item, 'fr');
  });
}

/**
 * The recall list's CSV format: UTF-8 with a BOM, ';' between fields, CRLF, named columns.
 * @param {GapRow[]} rows
 */
export function gapsCsv(rows) {
  return csvOf(GAP_COLUMNS, rows);
}

/** @param {number} n */
export function euros(n) {
  return `${n.toLocaleString('fr-FR', { maximumFractionDigits: 2 })} €`;
}

/**
 * Shows the worklist and the estimate in `container`.
 * @param {HTMLElement} container
 * @param {{ rows: GapRow[]; estimate: Estimate; period: { start: string; end: string } }} data
 * @param {string} subjectLabel
 */
export function renderWorklist(container, data, subjectLabel) {
  const { rows, estimate, period } = data;
  const view = { measure: '', text: '', sortKey: /** @type {keyof GapRow} */ ('closesBy'), descending: false };
  const open = rows.filter((r) => r.status === 'open-gap');
  const summary = document.createElement('p');
  summary.id = 'gaps-summary';
  summary.textContent = `${open.length} écart(s) ouvert(s) chez ${new Set(open.map((r) => r.patient)).size} patient(s), ${rows.length - open.length} item(s) à jour, du ${period.start} au ${period.end} — ${subjectLabel}.`;

  const tools = document.createElement('div');
  tools.className = 'recall-tools';
  const itemSelect = document.createElement('select');
  itemSelect.id = 'gaps-item';
  const items = [...new Map(rows.map((r) => [r.measure, r.item])).entries()].sort((a, b) => a[1].localeCompare(b[1]));
  itemSelect.append(new Option('Tous les items', ''), ...items.map(([id, label]) => new Option(label, id)));
  const filter = document.createElement('input');
  filter.id = 'gaps-filter';
  filter.type = 'search';
  const exportButton = document.createElement('button');
  exportButton.type = 'button';
  exportButton.id = 'gaps-export';
  exportButton.textContent = 'Exporter en CSV (liste affichée)';
  tools.append(labelled('gaps-item', 'Item', itemSelect), labelled('gaps-filter', 'Contient', filter), exportButton);

  const table = document.createElement('table');
  table.id = 'gaps-table';
  const caption = table.createCaption();
  const headRow = table.createTHead().insertRow();
  const body = table.createTBody();
  const sorters = GAP_COLUMNS.map((c) => {
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
    const shown = openRowsOf(rows, view);
    caption.textContent = `${shown.length} sur ${open.length} écart(s) ouvert(s)`;
    for (const b of sorters) {
      /** @type {HTMLElement} */ (b.parentElement).setAttribute(
        'aria-sort',
        b.dataset.key === view.sortKey ? (view.descending ? 'descending' : 'ascending') : 'none',
      );
    }
    body.replaceChildren(
      ...shown.map((r) => {
        const tr = document.createElement('tr');
        tr.dataset.patient = r.patient;
        tr.dataset.measure = r.measure;
        for (const c of GAP_COLUMNS) {
          const cell = document.createElement('td');
          const v = r[c.key];
          cell.textContent = v === null || v === '' ? '—' : String(v);
          tr.append(cell);
        }
        return tr;
      }),
    );
  }
  itemSelect.addEventListener('change', () => {
    view.measure = itemSelect.value;
    draw();
  });
  filter.addEventListener('input', () => {
    view.text = filter.value;
    draw();
  });
  exportButton.addEventListener('click', () => {
    const blob = new Blob([gapsCsv(openRowsOf(rows, view))], { type: 'text/csv;charset=utf-8' });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = `ecarts-${period.end.slice(0, 4)}.csv`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  });
  draw();
  container.replaceChildren(summary, tools, table, estimateSection(estimate));
}

/**
 * The FMT estimate: the figures, then every assumption in a list (an estimate, not a payment).
 * @param {Estimate} e
 */
function estimateSection(e) {
  const section = document.createElement('section');
  section.id = 'fmt-estimate';
  const title = document.createElement('h4');
  title.textContent = 'Estimation du forfait médecin traitant (FMT) — estimation, pas un montant versé';
  const figures = document.createElement('dl');
  /** @param {string} id @param {string} label @param {string} value */
  const line = (id, label, value) => {
    const dt = document.createElement('dt');
    dt.textContent = label;
    const dd = document.createElement('dd');
    dd.id = id;
    dd.textContent = value;
    figures.append(dt, dd);
  };
  line(
    'fmt-fixed',
    'Part fixe (par patient, selon l’âge et l’ALD, + C2S)',
    `${euros(e.fixed)} (${e.bands.map((b) => `${b.count} × ${b.label}`).join(', ') || 'aucun patient'}${e.c2s ? ` ; ${e.c2s} C2S` : ''})`,
  );
  line('fmt-variable', 'Part variable (indicateurs validés)', `${euros(e.variable)} (${e.items} item(s) validé(s))`);
  line('fmt-total', 'Total estimé', euros(e.total));
  const heading = document.createElement('p');
  heading.textContent = 'Hypothèses de cette estimation :';
  const list = document.createElement('ul');
  list.id = 'fmt-assumptions';
  list.append(
    ...e.assumptions.map((a) => {
      const li = document.createElement('li');
      li.textContent = a;
      return li;
    }),
  );
  section.append(title, figures, heading, list);
  return section;
}
