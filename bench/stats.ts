/** Percentiles of a sample, nearest-rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export interface Summary {
  p50: number;
  p95: number;
}

export function summarize(values: readonly number[]): Summary {
  const round = (v: number) => Math.round(v * 1000) / 1000;
  return { p50: round(percentile(values, 50)), p95: round(percentile(values, 95)) };
}
