// Latency summaries of the benchmark: nearest-rank percentiles over every
// attempt, a missed deadline counting as infinitely late; rounding.

/** Latency samples; a missed deadline counts as +Infinity (it never happened in time). */
export interface Summary {
  n: number;
  /** Attempts whose event never came within the scenario's timeout. */
  timeouts: number;
  min: number | null;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  max: number | null;
  mean: number | null;
}

/** Nearest-rank percentile over all attempts, timeouts as +Infinity. */
export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1];
}

export function summarize(samples: number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const finite = sorted.filter(Number.isFinite);
  const num = (v: number) => (Number.isFinite(v) ? round(v) : null);
  return {
    n: samples.length,
    timeouts: sorted.length - finite.length,
    min: num(percentile(sorted, 0)),
    p50: num(percentile(sorted, 50)),
    p95: num(percentile(sorted, 95)),
    p99: num(percentile(sorted, 99)),
    max: num(sorted[sorted.length - 1]),
    mean: finite.length ? round(finite.reduce((a, b) => a + b, 0) / finite.length) : null,
  };
}

export function round(v: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
