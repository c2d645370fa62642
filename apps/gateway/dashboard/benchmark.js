// The published national figures a territory report carries (measure-report-benchmark: open data
// loaded by `indicators:load-benchmarks`), written as one line beside the territory's own figure.

/** @typedef {import('./fhir.js').MeasureReport} MeasureReport */
/** @typedef {import('@medplum/fhirtypes').Extension} Extension */

const BENCHMARK_URL = 'https://gateway.fr-primary-care.org/fhir/StructureDefinition/measure-report-benchmark';

/**
 * @param {Extension} e
 * @param {string} url
 */
function part(e, url) {
  return e.extension?.find((x) => x.url === url);
}

/** @param {number} value a percentage */
function pct(value) {
  return `${value.toLocaleString('fr-FR', { maximumFractionDigits: 1 })} %`;
}

/**
 * The territory's figure that the benchmark compares to: the report's stratum named by the
 * benchmark (`ald:yes`: the ALD stratum), or its total; null when hidden or absent.
 * @param {MeasureReport} report
 * @param {string | undefined} stratum
 * @returns {number | null}
 */
function territoryScore(report, stratum) {
  const group = report.group?.[0];
  if (!stratum) {
    return group?.measureScore?.value ?? null;
  }
  const [code, value] = stratum.split(':');
  const strat = group?.stratifier?.find((s) => s.code?.[0]?.coding?.[0]?.code === code || s.code?.[0]?.text === code);
  const cell = strat?.stratum?.find((s) => s.value?.coding?.[0]?.code === value);
  return cell?.measureScore?.value ?? null;
}

/**
 * One line: the territory's figure and the published ones (France, the CPTS's départements), each
 * with the month it describes; empty when the report carries no benchmark.
 * @param {MeasureReport | undefined} report the latest report shown
 * @returns {string}
 */
export function benchmarkLine(report) {
  const exts = (report?.group?.[0]?.extension ?? []).filter((e) => e.url === BENCHMARK_URL);
  if (!report || exts.length === 0) {
    return '';
  }
  const stratum = part(/** @type {Extension} */ (exts[0]), 'stratum')?.valueString;
  const own = territoryScore(report, stratum);
  const published = exts
    .map((e) => {
      const level = part(e, 'level')?.valueCode;
      const territory = part(e, 'territory')?.valueString ?? '';
      const value = part(e, 'value')?.valueQuantity?.value;
      const date = (part(e, 'date')?.valueDate ?? '').slice(0, 7);
      const where = level === 'france' ? 'France' : `département ${territory}`;
      return value === undefined ? '' : `${where} ${pct(value)} (${date})`;
    })
    .filter((s) => s !== '');
  const scope = stratum === 'ald:yes' ? 'patients en ALD du territoire' : 'territoire';
  const ownText = own === null ? 'non disponible (masqué ou vide)' : pct(own * 100);
  return `Référence publiée (open data) — ${scope} : ${ownText} · ${published.join(' · ')}`;
}
