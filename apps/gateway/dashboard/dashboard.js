// The indicator dashboard (issue #5). Plain browser module: every figure comes from the FHIR API
// with the user's own token (stored monthly MeasureReports, live $evaluate-measure), so the page
// shows exactly what the client may see and nothing else.
import {
  ApiError,
  REPORT_RUN_SYSTEM,
  claimsOf,
  fhirGet,
  forgetToken,
  keepToken,
  measureIdOf,
  objectiveStatusOf,
  objectivesOf,
  reportCell,
  requestToken,
  resourcesOf,
  storedToken,
  structuresOf,
  thresholdOf,
} from './fhir.js';
import { benchmarkLine } from './benchmark.js';
import { loadRecall, renderRecall } from './recall.js';
import { dataSinceOf, headingOf, incompleteWindow } from './view.js';

/** @typedef {import('./fhir.js').MeasureReport} MeasureReport */
/** @typedef {import('./fhir.js').Measure} Measure */
/** @typedef {import('./fhir.js').Cell} Cell */
/** @typedef {import('@medplum/fhirtypes').Organization} Organization */
/** @typedef {{ report: MeasureReport; live: boolean }} Row */

/** Series colour of the indicator (the tests look for it in the chart). */
const SERIES_COLOUR = '#0b63c5';
/** Points of windows that start before the data does (view.js incompleteWindow). */
const INCOMPLETE_COLOUR = '#8a8a8a';
const INTERMEDIATE_COLOUR = '#b45309';
const TARGET_COLOUR = '#15803d';
const REPORTED_TYPES = ['CPTS', 'MSP', 'CDS', 'cabinet'];
const STATUS_TEXT = /** @type {Record<string, string>} */ ({
  'target-reached': 'cible atteinte',
  'intermediate-reached': 'objectif intermédiaire atteint',
  'not-reached': 'non atteint',
  'below-minimum-denominator': 'dénominateur insuffisant',
  suppressed: 'masqué',
});

/**
 * The element of id `id`, of the expected type.
 * @template {HTMLElement} T
 * @param {string} id
 * @param {new () => T} type
 * @returns {T}
 */
function $(id, type) {
  const node = document.getElementById(id);
  if (!(node instanceof type)) {
    throw new Error(`missing #${id}`);
  }
  return node;
}

const ui = {
  heading: $('page-title', HTMLHeadingElement),
  message: $('message', HTMLDivElement),
  who: $('who', HTMLParagraphElement),
  logout: $('logout', HTMLButtonElement),
  login: $('login', HTMLElement),
  loginForm: $('login-form', HTMLFormElement),
  clientId: $('client-id', HTMLInputElement),
  clientSecret: $('client-secret', HTMLInputElement),
  bearer: $('bearer', HTMLTextAreaElement),
  board: $('board', HTMLElement),
  subject: $('subject', HTMLSelectElement),
  measure: $('measure', HTMLSelectElement),
  structure: $('structure', HTMLSelectElement),
  live: $('live', HTMLButtonElement),
  noReports: $('no-reports', HTMLParagraphElement),
  objectives: $('objectives', HTMLParagraphElement),
  chart: $('chart', HTMLCanvasElement),
  caption: $('values-caption', HTMLElement),
  tbody: /** @type {HTMLTableSectionElement} */ ($('values', HTMLTableElement).tBodies[0]),
  note: $('suppression-note', HTMLParagraphElement),
  recallButton: $('recall-button', HTMLButtonElement),
  recallResult: $('recall-result', HTMLDivElement),
  coverage: $('coverage-note', HTMLParagraphElement),
  benchmark: $('benchmark', HTMLParagraphElement),
};

const state = {
  /** @type {Map<string, Measure>} */
  measures: new Map(),
  /** Stored and live reports of the current subject. @type {Row[]} */
  rows: [],
  /** @type {import('chart.js').Chart | undefined} */
  chart: undefined,
};

/**
 * Runs an action; an expired or invalid token sends the user back to the login form, any other
 * refusal is shown as the OperationOutcome's text.
 * @param {() => Promise<void>} action
 */
async function guarded(action) {
  try {
    await action();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      forgetToken();
      showLogin(`Session expirée ou jeton refusé (${err.message}) : reconnectez-vous.`);
      return;
    }
    say(err instanceof Error ? err.message : String(err));
  }
}

/**
 * @param {string} text
 * @param {'error' | 'info'} [kind]
 */
function say(text, kind = 'error') {
  ui.message.textContent = text;
  ui.message.className = kind === 'info' ? 'info' : '';
  ui.message.hidden = text === '';
}

/** @param {string} [why] */
function showLogin(why) {
  state.chart?.destroy();
  state.chart = undefined;
  ui.board.hidden = true;
  ui.logout.hidden = true;
  ui.who.hidden = true;
  ui.login.hidden = false;
  say(why ?? '', 'info');
}

async function onLogin() {
  const pasted = ui.bearer.value.trim().replace(/^bearer\s+/i, '');
  if (pasted) {
    keepToken(pasted);
  } else {
    if (!ui.clientId.value.trim() || !ui.clientSecret.value) {
      say('Saisissez l’identifiant et le secret du client, ou collez un jeton.');
      return;
    }
    try {
      keepToken(await requestToken(ui.clientId.value.trim(), ui.clientSecret.value));
    } catch (err) {
      say(`Connexion refusée : ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
  }
  ui.clientSecret.value = '';
  ui.bearer.value = '';
  await guarded(start);
}

/** TRE_G15 professions the page names (others: "professionnel de santé"). */
const PROFESSIONS = /** @type {Record<string, string>} */ ({
  10: 'médecin',
  21: 'pharmacien',
  40: 'chirurgien-dentiste',
  50: 'sage-femme',
  60: 'infirmier',
  70: 'masseur-kinésithérapeute',
});

/**
 * Who is logged in, for a person's token: their name (the directory's Practitioner), profession and
 * structure: "Dr Jeanne Martin — médecin — MSP des Lilas".
 * @param {ReturnType<typeof claimsOf>} claims
 * @param {Organization | undefined} ownOrg
 */
async function personLabel(claims, ownOrg) {
  /** @type {{ name?: { family?: string; given?: string[]; prefix?: string[] }[] } | undefined} */
  const practitioner = claims.sub ? await fhirGet(claims.sub).catch(() => undefined) : undefined;
  const n = practitioner?.name?.[0];
  const name = n ? [n.prefix?.[0], n.given?.[0], n.family].filter(Boolean).join(' ') : (claims.sub ?? '?');
  const profession =
    claims.health === false
      ? 'personnel non soignant'
      : (PROFESSIONS[claims.profession ?? ''] ?? 'professionnel de santé');
  return `${name} — ${profession} — ${ownOrg?.name ?? claims.org ?? '?'}`;
}

/** After login: who the client is, the catalogue, the organizations it may report on. */
async function start() {
  const token = storedToken() ?? '';
  const claims = claimsOf(token);
  if (claims.exp !== undefined && claims.exp * 1000 <= Date.now()) {
    throw new ApiError(401, 'le jeton a expiré');
  }
  // The client's own Organization is always readable (without an Organization scope, its id will do).
  /** @type {Organization | undefined} */
  const ownOrg = claims.org ? await fhirGet(claims.org).catch(() => undefined) : undefined;
  /** @type {Measure[]} */
  const measures = resourcesOf(await fhirGet('Measure?_count=100'));
  state.measures = new Map(measures.map((m) => [m.id ?? '', m]));
  /** @type {{ ref: string; name: string }[]} */
  let subjects = [];
  if (claims.adm) {
    /** @type {Organization[]} */
    const orgs = resourcesOf(await fhirGet('Organization?_count=1000'));
    subjects = orgs
      .filter((o) => REPORTED_TYPES.includes(o.type?.[0]?.coding?.[0]?.code ?? ''))
      .map((o) => ({ ref: `Organization/${o.id}`, name: `${o.name ?? o.id} (${o.type?.[0]?.coding?.[0]?.code})` }));
  } else if (claims.org) {
    subjects = [{ ref: claims.org, name: ownOrg?.name ?? claims.org }];
  }
  ui.heading.textContent = headingOf(claims, ownOrg);
  document.title = `${ui.heading.textContent} — tableau de bord`;
  ui.who.textContent = claims.practitioner_role
    ? await personLabel(claims, ownOrg)
    : claims.adm
      ? 'Client administrateur'
      : `Client de ${ownOrg?.name ?? claims.org ?? '?'}`;
  fill(
    ui.subject,
    subjects.map((s) => [s.ref, s.name]),
  );
  fill(
    ui.measure,
    measures.map((m) => [m.id ?? '', m.title ?? m.name ?? m.id ?? '']),
  );
  ui.login.hidden = true;
  ui.board.hidden = false;
  ui.who.hidden = false;
  ui.logout.hidden = false;
  say('');
  if (subjects.length === 0) {
    say('Ce client ne rend compte d’aucune structure.');
    return;
  }
  await loadSubject();
}

/**
 * @param {HTMLSelectElement} select
 * @param {[string, string][]} options value, label
 */
function fill(select, options) {
  select.replaceChildren(...options.map(([value, label]) => new Option(label, value)));
}

/** The stored monthly reports of the chosen subject (all measures), then the view. */
async function loadSubject() {
  ui.recallResult.replaceChildren();
  const subject = ui.subject.value;
  // One search for the whole catalogue (8 measures × 12 months fit in a page); the run identifier
  // keeps to the monthly reports, whoever else stores MeasureReports for this subject.
  const query = new URLSearchParams({ subject, identifier: `${REPORT_RUN_SYSTEM}|`, _count: '1000' });
  /** @type {MeasureReport[]} */
  const stored = resourcesOf(await fhirGet(`MeasureReport?${query}`));
  state.rows = stored.map((report) => ({ report, live: false }));
  fillStructures();
  ui.noReports.hidden = stored.length > 0;
  if (stored.length === 0) {
    await evaluateLive();
    return;
  }
  render();
}

/** The structures of the reports' `structure` stratifier (a CPTS: its member structures). */
function fillStructures() {
  const chosen = ui.structure.value;
  /** @type {Map<string, string>} */
  const structures = new Map();
  for (const row of state.rows) {
    for (const s of structuresOf(row.report)) {
      structures.set(s.key, s.name);
    }
  }
  fill(ui.structure, [
    ['', 'Tout le périmètre'],
    ...[...structures.entries()].sort((a, b) => a[1].localeCompare(b[1])),
  ]);
  ui.structure.value = structures.has(chosen) ? chosen : '';
}

/** `$evaluate-measure` for the default period (the last 12 whole months), added to the view. */
async function evaluateLive() {
  const measure = ui.measure.value;
  const query = new URLSearchParams({ subject: ui.subject.value });
  /** @type {MeasureReport} */
  const report = await fhirGet(`Measure/${encodeURIComponent(measure)}/$evaluate-measure?${query}`);
  state.rows = state.rows.filter((r) => !(r.live && measureIdOf(r.report) === measure));
  state.rows.push({ report, live: true });
  fillStructures();
  render();
}

/** The rows of the chosen measure, oldest period first. */
function currentRows() {
  const measure = ui.measure.value;
  return state.rows
    .filter((r) => measureIdOf(r.report) === measure)
    .sort(
      (a, b) =>
        (a.report.period?.end ?? '').localeCompare(b.report.period?.end ?? '') || Number(a.live) - Number(b.live),
    );
}

function render() {
  const measure = state.measures.get(ui.measure.value);
  if (!measure) {
    return;
  }
  const structure = ui.structure.value || undefined;
  const objectives = objectivesOf(measure);
  const rows = currentRows();
  const cells = rows.map((r) => reportCell(r.report, structure));
  const since = dataSinceOf(state.rows.filter((r) => !r.live).map((r) => r.report));
  const incomplete = rows.map((r) => incompleteWindow(r.report, since));
  const labels = rows.map(
    (r, i) => `${(r.report.period?.end ?? '').slice(0, 7)}${r.live ? ' (en direct)' : ''}${incomplete[i] ? ' *' : ''}`,
  );
  ui.coverage.hidden = !incomplete.some(Boolean);
  ui.coverage.textContent = since
    ? `* Historique incomplet : les données de ce périmètre commencent en ${since.slice(0, 7)} ; une fenêtre de 12 mois qui commence avant compte des actes manquants (points gris, valeurs sous-estimées).`
    : '';
  const scope = structure ? ui.structure.selectedOptions[0]?.text : ui.subject.selectedOptions[0]?.text;
  const title = `${measure.title ?? measure.id} — ${scope ?? ''}`;
  ui.objectives.textContent = [
    objectives.intermediate !== undefined ? `Objectif intermédiaire : ${percent(objectives.intermediate)}` : '',
    objectives.target !== undefined ? `Cible : ${percent(objectives.target)}` : '',
    objectives.lowerIsBetter ? '(plus bas est meilleur)' : '',
    `Résultat sur 12 mois glissants, à chaque fin de mois.`,
  ]
    .filter((s) => s !== '')
    .join(' · ');
  // The published national figures sit beside the whole territory's figure, not a structure's.
  ui.benchmark.textContent = structure ? '' : benchmarkLine(rows[rows.length - 1]?.report);
  ui.benchmark.hidden = ui.benchmark.textContent === '';
  drawChart(title, labels, cells, objectives, incomplete);
  renderTable(title, rows, cells, labels, structure !== undefined, objectives, incomplete);
}

/**
 * @param {number} p a proportion
 */
function percent(p) {
  return `${(p * 100).toLocaleString('fr-FR', { maximumFractionDigits: 1 })} %`;
}

/**
 * @param {string} title
 * @param {string[]} labels
 * @param {(Cell | undefined)[]} cells
 * @param {ReturnType<typeof objectivesOf>} objectives
 * @param {boolean[]} incomplete windows that start before the data does
 */
function drawChart(title, labels, cells, objectives, incomplete) {
  state.chart?.destroy();
  /** @param {number | undefined} v */
  const flat = (v) => labels.map(() => (v === undefined ? null : v * 100));
  const values = cells.map((c) => (c?.score == null ? null : c.score * 100));
  // The incomplete windows in grey, joined to the first complete one so the curve reads as one.
  const firstComplete = incomplete.indexOf(false);
  const datasets = [
    ...(incomplete.some(Boolean)
      ? [
          {
            label: 'Historique incomplet (%)',
            data: values.map((v, i) => (incomplete[i] || i === firstComplete ? v : null)),
            borderColor: INCOMPLETE_COLOUR,
            backgroundColor: '#ffffff',
            borderDash: [4, 4],
            borderWidth: 2,
            pointRadius: 4,
            spanGaps: false,
          },
        ]
      : []),
    {
      label: 'Résultat (%)',
      data: values.map((v, i) => (incomplete[i] ? null : v)),
      borderColor: SERIES_COLOUR,
      backgroundColor: SERIES_COLOUR,
      borderWidth: 3,
      pointRadius: 5,
      spanGaps: false,
    },
    ...(objectives.intermediate !== undefined
      ? [
          {
            label: 'Objectif intermédiaire',
            data: flat(objectives.intermediate),
            borderColor: INTERMEDIATE_COLOUR,
            backgroundColor: INTERMEDIATE_COLOUR,
            borderDash: [6, 4],
            borderWidth: 2,
            pointRadius: 0,
          },
        ]
      : []),
    ...(objectives.target !== undefined
      ? [
          {
            label: 'Cible',
            data: flat(objectives.target),
            borderColor: TARGET_COLOUR,
            backgroundColor: TARGET_COLOUR,
            borderDash: [2, 3],
            borderWidth: 2,
            pointRadius: 0,
          },
        ]
      : []),
  ];
  ui.chart.setAttribute('aria-label', `Graphique : ${title}`);
  state.chart = new Chart(ui.chart, {
    type: 'line',
    data: { labels, datasets },
    options: {
      animation: false,
      maintainAspectRatio: false,
      scales: { y: { min: 0, max: 100, title: { display: true, text: '%' } } },
      plugins: { title: { display: true, text: title } },
    },
  });
}

/**
 * @param {string} title
 * @param {Row[]} rows
 * @param {(Cell | undefined)[]} cells
 * @param {string[]} labels
 * @param {boolean} isStratum
 * @param {ReturnType<typeof objectivesOf>} objectives
 * @param {boolean[]} incomplete
 */
function renderTable(title, rows, cells, labels, isStratum, objectives, incomplete) {
  ui.caption.textContent = `Valeurs : ${title}`;
  const threshold = rows.map((r) => thresholdOf(r.report)).find((t) => t !== undefined);
  ui.tbody.replaceChildren(
    ...rows.map((row, i) => {
      const cell = cells[i];
      const tr = document.createElement('tr');
      const source = `${row.live ? 'en direct' : 'rapport mensuel'}${incomplete[i] ? ' — historique incomplet' : ''}`;
      if (incomplete[i]) {
        tr.className = 'incomplete';
      }
      const th = document.createElement('th');
      th.scope = 'row';
      th.textContent = labels[i] ?? '';
      tr.append(th);
      if (!cell) {
        tr.append(td('pas de données pour cette structure', false, 6), td(source, false));
        return tr;
      }
      const hidden = cell.suppressed === 'complementary' ? 'masqué (complément)' : `masqué (< ${threshold ?? '?'})`;
      for (const code of /** @type {const} */ ([
        'initial-population',
        'denominator',
        'denominator-exclusion',
        'numerator',
      ])) {
        const v = cell.counts[code];
        tr.append(v === null ? td(cell.suppressed ? hidden : '—', !!cell.suppressed) : td(String(v), false));
      }
      tr.append(
        cell.suppressed ? td(hidden, true) : td(cell.score == null ? 'sans objet' : percent(cell.score), false),
      );
      const status = isStratum ? stratumStatus(cell, objectives) : objectiveStatusOf(row.report);
      tr.append(td(STATUS_TEXT[status ?? ''] ?? '—', false), td(source, false));
      return tr;
    }),
  );
  ui.note.textContent =
    threshold !== undefined
      ? `« masqué (< ${threshold}) » : un effectif, ou l’écart entre deux populations, est compris entre 1 et ${threshold - 1} (secret statistique) ; « masqué (complément) » : cellule masquée pour que la précédente ne puisse pas être recalculée.`
      : '';
}

/**
 * @param {Cell} cell
 * @param {ReturnType<typeof objectivesOf>} o
 * @returns {string | undefined}
 */
function stratumStatus(cell, o) {
  if (cell.suppressed) {
    return 'suppressed';
  }
  const s = cell.score;
  if (s === null) {
    return undefined;
  }
  /** @param {number | undefined} goal */
  const reached = (goal) => goal !== undefined && (o.lowerIsBetter ? s <= goal : s >= goal);
  return reached(o.target) ? 'target-reached' : reached(o.intermediate) ? 'intermediate-reached' : 'not-reached';
}

/**
 * @param {string} text
 * @param {boolean} masked
 * @param {number} [span]
 */
function td(text, masked, span = 1) {
  const cell = document.createElement('td');
  cell.textContent = text;
  if (masked) {
    cell.className = 'masked';
  }
  cell.colSpan = span;
  return cell;
}

/**
 * The recall list (reportType=subject-list) of the chosen structure for the last period shown:
 * one row per person (recall.js), its count checked against the same evaluation's counts.
 */
async function showRecall() {
  const rows = currentRows();
  const lastRow = rows[rows.length - 1];
  const subject = ui.structure.value || ui.subject.value;
  ui.recallResult.replaceChildren(paragraph('Chargement…'));
  let data;
  try {
    data = await loadRecall(ui.measure.value, subject, lastRow?.report.period);
  } catch (err) {
    if (err instanceof ApiError && err.status !== 401) {
      const refusal = paragraph(`Liste de rappel non disponible : ${err.message}`);
      refusal.className = 'refusal';
      refusal.setAttribute('role', 'alert');
      ui.recallResult.replaceChildren(refusal);
      return;
    }
    throw err;
  }
  if (data.rows.length === 0) {
    ui.recallResult.replaceChildren(paragraph('Aucun patient à rappeler sur cette période.'));
    return;
  }
  const shown = lastRow ? reportCell(lastRow.report, ui.structure.value || undefined)?.counts : undefined;
  renderRecall(ui.recallResult, data, {
    measure: ui.measure.value,
    structureName: (ui.structure.value ? ui.structure : ui.subject).selectedOptions[0]?.text ?? subject,
    shownCounts: shown,
  });
}

/** @param {string} text */
function paragraph(text) {
  const p = document.createElement('p');
  p.textContent = text;
  return p;
}

ui.loginForm.addEventListener('submit', (e) => {
  e.preventDefault();
  void onLogin();
});
ui.logout.addEventListener('click', () => {
  forgetToken();
  showLogin('Déconnecté.');
});
ui.subject.addEventListener('change', () => void guarded(loadSubject));
ui.measure.addEventListener('change', () => {
  ui.recallResult.replaceChildren();
  // Without stored reports, each measure's only point is its live evaluation.
  if (!ui.noReports.hidden && currentRows().length === 0) {
    void guarded(evaluateLive);
    return;
  }
  render();
});
ui.structure.addEventListener('change', () => {
  ui.recallResult.replaceChildren();
  render();
});
ui.live.addEventListener('click', () => void guarded(evaluateLive));
ui.recallButton.addEventListener('click', () => void guarded(showRecall));

// Person login through the OpenID Connect provider, the gateway being the relying party: its
// callback comes back here with a one-time code in the fragment (never the token), redeemed once
// by POST; or with the reason of a refusal.
const oidcLoginBox = $('oidc-login-box', HTMLParagraphElement);
fetch('login/options')
  .then((r) => (r.ok ? r.json() : { oidc: false }))
  .then((o) => {
    oidcLoginBox.hidden = !(/** @type {{ oidc?: boolean }} */ (o).oidc);
  })
  .catch(() => undefined);

/** @param {URLSearchParams} fragment */
async function personLogin(fragment) {
  history.replaceState(null, '', location.pathname + location.search);
  const refused = fragment.get('login_error');
  if (refused !== null) {
    showLogin(`Connexion refusée : ${refused}`);
    return;
  }
  const res = await fetch('session', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ code: fragment.get('login_code') }),
  });
  const body = /** @type {{ access_token?: string; error_description?: string }} */ (await res.json());
  if (!res.ok || !body.access_token) {
    showLogin(`Connexion refusée : ${body.error_description ?? res.status}`);
    return;
  }
  keepToken(body.access_token);
  await guarded(start);
}

// chart.js is a deferred classic script: modules run after it, so `Chart` is defined here.
const loginFragment = new URLSearchParams(location.hash.slice(1));
if (loginFragment.has('login_code') || loginFragment.has('login_error')) {
  void personLogin(loginFragment);
} else if (storedToken()) {
  void guarded(start);
} else {
  showLogin();
}
