import { EmbedtuneError } from "../errors.js";

/**
 * Semantic-similarity metrics as sentence-transformers' EmbeddingSimilarityEvaluator
 * reports them: the correlation between the cosine of each embedded pair and its gold
 * score. Spearman (rank correlation) is the primary metric: it ignores any monotone
 * rescaling of the cosines, so only the ordering of pairs matters.
 */
export interface SimilarityMetrics {
  spearman_cosine: number;
  pearson_cosine: number;
}
export const SIMILARITY_PRIMARY_METRIC: keyof SimilarityMetrics = "spearman_cosine";

/**
 * @param a (N, D) first sentence of each pair, row-major
 * @param b (N, D) second sentence
 * @param gold (N,) gold scores (any scale: correlations do not depend on it)
 * A correlation is NaN when either side is constant (as scipy returns).
 */
export function similarityMetrics(a: Float32Array, b: Float32Array,
  gold: Float32Array | readonly number[]): SimilarityMetrics {
  const n = gold.length;
  if (n < 2) throw new EmbedtuneError("INVALID_ARGUMENT", `similarity metrics need at least 2 pairs, got ${n}`);
  if (a.length !== b.length || a.length % n !== 0 || a.length === 0) {
    throw new EmbedtuneError("INVALID_ARGUMENT",
      `embedding lengths ${a.length} and ${b.length} do not hold ${n} rows of one dimension`);
  }
  const dim = a.length / n;
  const cosines = new Float64Array(n);
  for (let i = 0; i < n; i++) cosines[i] = cosine(a, b, i * dim, dim);
  return { spearman_cosine: spearman(cosines, gold), pearson_cosine: pearson(cosines, gold) };
}

/** Cosine of rows a[o:o+dim] and b[o:o+dim]; 0 if either is zero. */
function cosine(a: Float32Array, b: Float32Array, o: number, dim: number): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let d = o; d < o + dim; d++) {
    dot += a[d] * b[d];
    na += a[d] * a[d];
    nb += b[d] * b[d];
  }
  return na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 0;
}

/** Pearson's r = cov(x, y) / (sd(x) sd(y)), two-pass in float64. */
export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = x.length;
  if (y.length !== n) throw new EmbedtuneError("INVALID_ARGUMENT", `pearson: lengths ${n} and ${y.length} differ`);
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = x[i] - mx;
    const dy = y[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx === 0 || syy === 0) return Number.NaN;
  return Math.max(-1, Math.min(1, sxy / Math.sqrt(sxx * syy)));
}

/** Spearman's rho: Pearson's r of the ranks, tied values sharing their average rank. */
export function spearman(x: ArrayLike<number>, y: ArrayLike<number>): number {
  return pearson(averageRanks(x), averageRanks(y));
}

/** 1-based ranks; a run of equal values gets the mean of the ranks it spans. */
export function averageRanks(x: ArrayLike<number>): Float64Array {
  const n = x.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => x[i] - x[j]);
  const ranks = new Float64Array(n);
  for (let start = 0; start < n; ) {
    let end = start + 1;
    while (end < n && x[order[end]] === x[order[start]]) end++;
    const rank = (start + 1 + end) / 2; // mean of ranks start+1 .. end
    for (let t = start; t < end; t++) ranks[order[t]] = rank;
    start = end;
  }
  return ranks;
}
