// What the page says about who is looking and about the history behind each figure: the heading
// per role (a structure, a CPTS's territory, an administrator) and the windows computed on
// incomplete history (the stored reports' measure-data-since).

/** @typedef {import('./fhir.js').MeasureReport} MeasureReport */
/** @typedef {import('@medplum/fhirtypes').Organization} Organization */

const DATA_SINCE_URL = 'https://gateway.fr-primary-care.org/fhir/StructureDefinition/measure-data-since';

/**
 * The page heading for the client: a structure's indicators, a CPTS's territory, or all
 * structures for an administrator (a CPTS is not "une structure" and an admin has none).
 * @param {{ adm?: boolean }} claims
 * @param {Organization | undefined} org the client's own organization
 * @returns {string}
 */
export function headingOf(claims, org) {
  if (claims.adm) {
    return 'Indicateurs de toutes les structures (administration)';
  }
  const name = org?.name ?? '';
  const type = org?.type?.flatMap((t) => t.coding ?? []).find((c) => c.code === 'CPTS');
  if (type) {
    return `Indicateurs du territoire — ${name}`;
  }
  return name ? `Indicateurs de la structure — ${name}` : 'Indicateurs de la structure';
}

/**
 * The first month the subject's data covers (YYYY-MM-DD, a first of month), from the latest
 * stored report that says it; undefined when none does.
 * @param {MeasureReport[]} reports
 * @returns {string | undefined}
 */
export function dataSinceOf(reports) {
  const dated = reports
    .map((r) => ({ end: r.period?.end ?? '', since: r.extension?.find((e) => e.url === DATA_SINCE_URL)?.valueDate }))
    .filter((x) => x.since !== undefined)
    .sort((a, b) => b.end.localeCompare(a.end));
  return dated[0]?.since;
}

/**
 * Whether a report's 12-month window starts before the data does (its figure misses visits,
 * assays and vaccinations that were never loaded, so it is lower than the truth).
 * @param {MeasureReport} report
 * @param {string | undefined} since
 */
export function incompleteWindow(report, since) {
  return since !== undefined && (report.period?.start ?? '') < since;
}
