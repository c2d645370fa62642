// FHIR API access for the dashboard: token, session, requests, OperationOutcome text, and the
// reading of MeasureReports (counts, scores, suppression) as the gateway writes them.

/** @typedef {import('@medplum/fhirtypes').MeasureReport} MeasureReport */
/** @typedef {import('@medplum/fhirtypes').Measure} Measure */
/** @typedef {import('@medplum/fhirtypes').Bundle} Bundle */
/** @typedef {import('@medplum/fhirtypes').OperationOutcome} OperationOutcome */
/** @typedef {import('@medplum/fhirtypes').Extension} Extension */
/** @typedef {import('@medplum/fhirtypes').MeasureReportGroupPopulation} Population */

/**
 * One cell of a report (the total or a stratum): counts and score, or why they are hidden.
 * @typedef {object} Cell
 * @property {Record<PopulationCode, number | null>} counts null: masked
 * @property {number | null} score a proportion (0–1); null when masked or not applicable
 * @property {'small' | 'complementary' | 'total' | null} suppressed
 */
/** @typedef {'initial-population' | 'denominator' | 'denominator-exclusion' | 'numerator'} PopulationCode */

/** Identifier system of the stored monthly reports (libs/indicators REPORT_RUN_SYSTEM). */
export const REPORT_RUN_SYSTEM = 'https://gateway.fr-primary-care.org/fhir/NamingSystem/measure-report-run';
const MASKED_URL = 'http://hl7.org/fhir/StructureDefinition/data-absent-reason';
const TOKEN_KEY = 'gw-dashboard-token';
/** @type {PopulationCode[]} */
export const POPULATIONS = ['initial-population', 'denominator', 'denominator-exclusion', 'numerator'];

/** The gateway's root path (the page is served at `<root>/dashboard/`). */
export const ROOT = location.pathname.replace(/\/dashboard(\/.*)?$/, '');

/** An error the API answered: its HTTP status and the OperationOutcome's text. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} message
   */
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/**
 * The readable text of an OperationOutcome (or an OAuth error body).
 * @param {unknown} body
 * @returns {string}
 */
export function outcomeText(body) {
  const b = /** @type {Partial<OperationOutcome> & { error?: string; error_description?: string }} */ (body ?? {});
  if (b.resourceType === 'OperationOutcome' && b.issue?.length) {
    return b.issue.map((i) => i.details?.text ?? i.diagnostics ?? i.code).join(' ; ');
  }
  return b.error_description ?? b.error ?? 'Réponse inattendue du serveur';
}

/** @returns {string | null} */
export function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** @param {string} token */
export function keepToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/**
 * The claims of a gateway access token (a JWT; the page only reads them, the server verifies).
 * @param {string} token
 * @returns {{ org?: string; adm?: boolean; exp?: number; scope?: string; sub?: string; practitioner_role?: string; profession?: string; health?: boolean }}
 */
export function claimsOf(token) {
  try {
    const part = token.split('.')[1] ?? '';
    return JSON.parse(atob(part.replace(/-/g, '+').replace(/_/g, '/')));
  } catch {
    return {};
  }
}

/**
 * SMART Backend Services client credentials, the secret sent as client_secret_post: with HTTP
 * Basic, the gateway's 401 challenge (RFC 6749 §5.2) would make the browser open its own
 * credentials dialog instead of letting the page show the error.
 * @param {string} clientId
 * @param {string} secret
 * @returns {Promise<string>} the access token
 */
export async function requestToken(clientId, secret) {
  const res = await fetch(`${ROOT}/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: secret }),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok || typeof body.access_token !== 'string') {
    throw new ApiError(res.status, outcomeText(body));
  }
  return body.access_token;
}

/**
 * GET on the FHIR API with the session's token. 401 means the token expired or is invalid.
 * @template T
 * @param {string} path after `/fhir/`
 * @returns {Promise<T>}
 */
export async function fhirGet(path) {
  const token = storedToken();
  if (!token) {
    throw new ApiError(401, 'Non connecté');
  }
  const res = await fetch(`${ROOT}/fhir/${path}`, {
    headers: { authorization: `Bearer ${token}`, accept: 'application/fhir+json' },
  });
  const body = await res.json().catch(() => undefined);
  if (!res.ok) {
    throw new ApiError(res.status, outcomeText(body));
  }
  return body;
}

/**
 * The resources of a search Bundle (matches only).
 * @template T
 * @param {Bundle} bundle
 * @returns {T[]}
 */
export function resourcesOf(bundle) {
  return (bundle.entry ?? [])
    .filter((e) => e.search?.mode !== 'outcome' && e.resource?.resourceType !== 'OperationOutcome')
    .map((e) => /** @type {T} */ (/** @type {unknown} */ (e.resource)));
}

/**
 * `rosp-diabete-hba1c` from `https://…/Measure/rosp-diabete-hba1c|2026.1`.
 * @param {MeasureReport} report
 */
export function measureIdOf(report) {
  return /\/Measure\/([^|/]+)/.exec(report.measure ?? '')?.[1] ?? '';
}

/**
 * The ROSP-style objectives of a Measure (extension measure-objectives), as proportions.
 * @param {Measure} measure
 * @returns {{ intermediate?: number; target?: number; minimumDenominator?: number; lowerIsBetter: boolean }}
 */
export function objectivesOf(measure) {
  const ext = measure.extension?.find((e) => e.url.endsWith('/measure-objectives'));
  /** @param {string} name */
  const value = (name) => {
    const e = ext?.extension?.find((x) => x.url === name);
    return e?.valueDecimal ?? e?.valueInteger;
  };
  return {
    intermediate: value('intermediate'),
    target: value('target'),
    minimumDenominator: value('minimumDenominator'),
    lowerIsBetter: measure.improvementNotation?.coding?.[0]?.code === 'decrease',
  };
}

/**
 * The small-cell threshold the report was suppressed with.
 * @param {MeasureReport} report
 * @returns {number | undefined}
 */
export function thresholdOf(report) {
  const ext = report.extension?.find((e) => e.url.endsWith('/measure-suppression'));
  return ext?.extension?.find((e) => e.url === 'threshold')?.valueInteger;
}

/** @param {{ extension?: Extension[] } | undefined} node */
function masked(node) {
  return !!node?.extension?.some((e) => e.url === MASKED_URL && e.valueCode === 'masked');
}

/**
 * Counts and score of a group or a stratum.
 * @param {{ population?: Population[]; measureScore?: import('@medplum/fhirtypes').Quantity; extension?: Extension[] }} node
 * @param {boolean} isTotal
 * @returns {Cell}
 */
export function cellOf(node, isTotal) {
  const counts = /** @type {Record<PopulationCode, number | null>} */ ({});
  for (const code of POPULATIONS) {
    const p = node.population?.find((x) => x.code?.coding?.[0]?.code === code);
    counts[code] = p?.count ?? null;
  }
  const kind = node.extension?.find((e) => e.url.endsWith('/measure-suppression'))?.valueCode;
  const hidden = masked(node.measureScore) || (node.population ?? []).some(masked);
  /** @type {Cell['suppressed']} */
  const suppressed =
    kind === 'small' || kind === 'complementary' ? kind : hidden ? (isTotal ? 'total' : 'small') : null;
  return { counts, score: node.measureScore?.value ?? null, suppressed };
}

/**
 * The structures of a report's `structure` stratifier: `Organization/id` and display name.
 * @param {MeasureReport} report
 * @returns {{ key: string; name: string }[]}
 */
export function structuresOf(report) {
  const strat = report.group?.[0]?.stratifier?.find(
    (s) => s.code?.[0]?.text === 'structure' || s.code?.[0]?.coding?.[0]?.code === 'structure',
  );
  return (strat?.stratum ?? []).map((s) => ({
    key: s.value?.coding?.[0]?.code ?? '',
    name: s.value?.text ?? s.value?.coding?.[0]?.code ?? '',
  }));
}

/**
 * The cell of a report for the whole subject (`structure` undefined) or one of its structures.
 * @param {MeasureReport} report
 * @param {string | undefined} structure `Organization/id`
 * @returns {Cell | undefined} undefined: the structure has no stratum in this report
 */
export function reportCell(report, structure) {
  const group = report.group?.[0];
  if (!group) {
    return undefined;
  }
  if (!structure) {
    return cellOf(group, true);
  }
  const strat = group.stratifier?.find((s) => s.code?.[0]?.text === 'structure');
  const stratum = strat?.stratum?.find((s) => s.value?.coding?.[0]?.code === structure);
  return stratum ? cellOf(stratum, false) : undefined;
}

/**
 * The objective status the gateway computed for the report's total.
 * @param {MeasureReport} report
 */
export function objectiveStatusOf(report) {
  return report.group?.[0]?.extension?.find((e) => e.url.endsWith('/measure-objective-status'))?.valueCode;
}
