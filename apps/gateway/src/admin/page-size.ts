/**
 * Page size of an operator listing (`_count`): a whole number in 1..1000, 100 when absent or
 * unusable (LIMIT rejects -5 or 1.5).
 */
export function pageSize(count: string | undefined): number {
  const n = Math.floor(Number(count));
  return Number.isFinite(n) && n >= 1 ? Math.min(n, 1000) : 100;
}
