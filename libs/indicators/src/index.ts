export { ACT_CODE, ATC, CCAM, CIM10, CODES, CONDITION_CLINICAL, LOINC } from './codes';
export { CRITERIA_LANGUAGE, compileCriterion, parseCriterion, FACT_TYPES } from './criteria';
export type { Criterion, FactCriterion, FactType, Window } from './criteria';
export {
  CatalogueError,
  MeasureCatalogue,
  DENOMINATOR_POPULATIONS,
  PATIENTELE_DATE_EXTENSION,
  STRATIFIER_SYSTEM,
  isInForce,
} from './catalogue';
export type { CompiledMeasure, DenominatorPopulation, PatienteleDate } from './catalogue';
export { MeasureEvaluator, AGE_BANDS, STRATIFIERS, OPTIONAL_STRATIFIERS } from './evaluator';
export type { Stratifier } from './evaluator';
export { ALD_SYSTEM, COVERAGE_TYPE_SYSTEM, C2S_CODE, PCP_ROLE } from './fmt-projection.schema';
export type { MeasureCounts, Period, RecallEntry, Scope } from './evaluator';
export {
  buildMeasureReport,
  score,
  DATA_ABSENT_REASON,
  SUPPRESSION_EXTENSION,
  OBJECTIVE_STATUS_EXTENSION,
  RECALL_LIST_EXTENSION,
  DATA_SINCE_EXTENSION,
  RECALL_EVIDENCE_EXTENSION,
  RECALL_OTHER_RECORD_EXTENSION,
  RECALL_EVENTS_EXTENSION,
} from './report';
export { suppressStrata, totalSuppressed } from './suppression';
export { IndicatorsService, INDICATORS_PRINCIPAL, parsePeriod } from './indicators.service';
export type { EvaluateParams } from './indicators.service';
export { INDICATOR_MIGRATIONS } from './indicators.schema';
export { CareGapsEvaluator, GAP_STATUSES, gapKinds, measuresInForce, validUntil } from './care-gaps';
export type { CareGapItem, GapEvidence, GapStatus, PatientGaps } from './care-gaps';
export { CareGapsService } from './care-gaps.service';
export type { CareGapsParams, CareGapsAnswer } from './care-gaps.service';
export {
  GAP_STATUS_EXTENSION,
  GAP_STATUS_SYSTEM,
  CARE_GAP_CLOSES_BY_EXTENSION,
  CARE_GAP_SINCE_EXTENSION,
  CARE_GAP_VALID_UNTIL_EXTENSION,
} from './care-gaps.report';
export {
  BENCHMARK_COLUMNS,
  BENCHMARK_MIGRATIONS,
  BenchmarkFormatError,
  BenchmarkStore,
  MEASURE_BENCHMARK_EXTENSION,
  REPORT_BENCHMARK_EXTENSION,
  departementOf,
  parseBenchmarkCsv,
} from './benchmarks';
export type { BenchmarkRow } from './benchmarks';
export { loadDrugAtc, parseMapFile, readBdpmFiles, parseCisCip, parseCisAtc, bdpmEntries } from './drug-atc.loader';
export type { DrugAtc } from './drug-atc.loader';
export { PractitionerRoleVouching } from './role-vouch.service';
export type { RoleVouchEntry, RoleVouchPage } from './role-vouch.service';
