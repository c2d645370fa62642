// The synthetic CPTS territory (demo and benchmarks): a generator of realistic FHIR data and its loader.
export { TerritoryGenerator } from './generator';
export type { TerritoryOptions } from './generator';
export { TerritoryLoader } from './loader';
export type { LoadProgress, LoadSummary, TerritoryLoaderOptions } from './loader';
export type { PersonFacts, PersonRecords } from './person';
export { BulkTerritoryLoader } from './bulk';
export type { BulkLoaderOptions } from './bulk';
