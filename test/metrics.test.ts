import { describe, expect, it } from "vitest";
import { RETRIEVAL_PRIMARY_METRIC, retrievalMetrics, searchTopK } from "../src/eval/retrieval.js";
import { averageRanks, SIMILARITY_PRIMARY_METRIC, similarityMetrics, spearman } from "../src/eval/similarity.js";
import { Rng } from "../src/util/rng.js";

/**
 * A 2-d corpus whose ranking for the query (1, 0) is known: the document at rank r (0-based)
 * is corpus index perm[r], at angle step * r from the query (cosine falls with the angle).
 */
function rankedCorpus(perm: number[], step: number): Float32Array {
  const corpus = new Float32Array(perm.length * 2);
  perm.forEach((doc, r) => {
    corpus[doc * 2] = Math.cos(step * r);
    corpus[doc * 2 + 1] = Math.sin(step * r);
  });
  return corpus;
}

const PERM = [7, 3, 11, 0, 5, 9, 1, 10, 2, 6, 8, 4]; // rank -> corpus index
const atRanks = (...ranks: number[]): number[] => ranks.map((r) => PERM[r - 1]); // 1-based ranks

describe("retrievalMetrics (sentence-transformers definitions)", () => {
  const corpus = rankedCorpus(PERM, 0.1);

  it("ranks by cosine, ties by lower corpus index", () => {
    const top = searchTopK(new Float32Array([3, 0]), corpus, 2, 5); // unnormalised query: same cosines
    expect(top.k).toBe(5);
    expect([...top.indices]).toEqual(PERM.slice(0, 5));
    const tied = new Float32Array([0, 1, 1, 0, 1, 0, 0.5, 0.5, 2, 0]); // docs 1, 2, 4 tie at cosine 1
    expect([...searchTopK(new Float32Array([1, 0]), tied, 2, 10).indices]).toEqual([1, 2, 4, 3, 0]);
  });

  it("matches hand-computed values for single and multiple relevant documents", () => {
    const queries = new Float32Array([1, 0, 2, 0, 1, 0, 0.5, 0]); // 4 queries, same direction
    const relevant = [atRanks(2, 5), new Set(atRanks(1, 11)), [], atRanks(4)]; // query 2: skipped
    const m = retrievalMetrics(queries, corpus, 2, relevant);
    const mean = (...v: number[]): number => v.reduce((s, x) => s + x, 0) / v.length;
    const l = (i: number): number => 1 / Math.log2(i + 1); // DCG gain at 1-based rank i
    const expected: Record<string, number> = {
      "accuracy@1": mean(0, 1, 0), "accuracy@3": mean(1, 1, 0), "accuracy@5": mean(1, 1, 1), "accuracy@10": 1,
      "precision@1": mean(0, 1, 0), "precision@3": mean(1 / 3, 1 / 3, 0),
      "precision@5": mean(2 / 5, 1 / 5, 1 / 5), "precision@10": mean(2 / 10, 1 / 10, 1 / 10),
      "recall@1": mean(0, 1 / 2, 0), "recall@3": mean(1 / 2, 1 / 2, 0), "recall@5": mean(1, 1 / 2, 1),
      "recall@10": mean(1, 1 / 2, 1),
      "mrr@10": mean(1 / 2, 1, 1 / 4),
      "ndcg@10": mean((l(2) + l(5)) / (l(1) + l(2)), l(1) / (l(1) + l(2)), l(4) / l(1)),
      "map@100": mean((1 / 2 + 2 / 5) / 2, (1 / 1 + 2 / 11) / 2, 1 / 4),
    };
    expect(Object.keys(m).sort()).toEqual(Object.keys(expected).sort());
    for (const [name, value] of Object.entries(expected)) expect(m[name as keyof typeof m], name).toBeCloseTo(value, 12);
    expect(m["ndcg@10"]).toBeCloseTo(mean(0.6240505200038379, 0.6131471927654584, 1 / Math.log2(5)), 12);
    expect(RETRIEVAL_PRIMARY_METRIC).toBe("ndcg@10");
  });

  it("cuts at 10 and 100: relevant documents ranked 11th or 120th count only where they should", () => {
    const perm = Array.from({ length: 150 }, (_, r) => (r * 37) % 150);
    const big = rankedCorpus(perm, 0.01);
    const relevant = [[perm[0], perm[10]], [perm[0], perm[119]], perm.slice(0, 12)];
    const m = retrievalMetrics(new Float32Array([1, 0, 1, 0, 1, 0]), big, 2, relevant);
    expect(m["recall@10"]).toBeCloseTo((1 / 2 + 1 / 2 + 10 / 12) / 3, 12);
    expect(m["mrr@10"]).toBeCloseTo(1, 12);
    // 12 relevant, first 12 ranks: ideal DCG is over min(12, 10) = 10 ranks, so ndcg@10 = 1
    expect(m["ndcg@10"]).toBeCloseTo((1 / (1 + 1 / Math.log2(3)) * 2 + 1) / 3, 12);
    // map@100: rank 11 counts (2/11), rank 120 does not; the 12-relevant query is perfect
    expect(m["map@100"]).toBeCloseTo(((1 + 2 / 11) / 2 + 1 / 2 + 1) / 3, 12);
  });

  it("divides precision@k by k even when the corpus is smaller than k", () => {
    const small = new Float32Array([1, 0, 0, 1, 1, 1]);
    const m = retrievalMetrics(new Float32Array([1, 0]), small, 2, [[0, 1, 2]]);
    expect(m["precision@10"]).toBeCloseTo(3 / 10, 12);
    expect(m["recall@10"]).toBe(1);
    expect(m["ndcg@10"]).toBeCloseTo(1, 12);
  });

  it("gives identical results for any query and corpus block size", () => {
    const rng = Rng.seeded(7);
    const dim = 8;
    const nq = 37;
    const nc = 300;
    const rand = (n: number): Float32Array => Float32Array.from({ length: n }, () => rng.uniform() * 2 - 1);
    const queries = rand(nq * dim);
    const corpus = rand(nc * dim);
    corpus.copyWithin(5 * dim, 9 * dim, 10 * dim); // a tie between docs 5 and 9
    const relevant = Array.from({ length: nq }, () => [rng.int(nc), rng.int(nc), rng.int(nc)]);
    const base = retrievalMetrics(queries, corpus, dim, relevant);
    const baseTop = searchTopK(queries, corpus, dim, 100);
    for (const [queryBlock, corpusBlock] of [[1, 1], [5, 7], [36, 300], [1000, 64]]) {
      expect(retrievalMetrics(queries, corpus, dim, relevant, { queryBlock, corpusBlock })).toEqual(base);
      expect(searchTopK(queries, corpus, dim, 100, { queryBlock, corpusBlock })).toEqual(baseTop);
    }
    // the heap's ranking equals a full sort
    for (let q = 0; q < nq; q++) {
      const scores = Array.from({ length: nc }, (_, c) => {
        let dot = 0;
        let qq = 0;
        let cc = 0;
        for (let d = 0; d < dim; d++) {
          dot += queries[q * dim + d] * corpus[c * dim + d];
          qq += queries[q * dim + d] ** 2;
          cc += corpus[c * dim + d] ** 2;
        }
        return { c, s: dot * (1 / Math.sqrt(qq)) * (1 / Math.sqrt(cc)) };
      });
      scores.sort((x, y) => y.s - x.s || x.c - y.c);
      expect([...baseTop.indices.subarray(q * 100, q * 100 + 100)]).toEqual(scores.slice(0, 100).map((e) => e.c));
    }
  });

  it("rejects inconsistent inputs", () => {
    expect(() => retrievalMetrics(new Float32Array(4), new Float32Array(4), 2, [[0]])).toThrow(/2 query vectors/);
    expect(() => retrievalMetrics(new Float32Array(2), new Float32Array(4), 2, [[2]])).toThrow(/relevant document 2 is not in \[0, 2\)/);
    expect(() => retrievalMetrics(new Float32Array(2), new Float32Array(4), 2, [[]])).toThrow(/no query has a relevant/);
    expect(() => retrievalMetrics(new Float32Array(3), new Float32Array(4), 2, [[0]])).toThrow(/not a multiple/);
  });
});

describe("similarityMetrics", () => {
  it("average ranks for ties", () => {
    expect([...averageRanks([10, 20, 20, 5, 20])]).toEqual([2, 4, 4, 1, 4]);
  });

  it("spearman with ties matches the hand-computed value", () => {
    // ranks x = [1, 2.5, 2.5, 4], y = [1, 3, 2, 4]: rho = 4.5 / sqrt(4.5 * 5)
    expect(spearman([1, 2, 2, 3], [1, 3, 2, 4])).toBeCloseTo(4.5 / Math.sqrt(22.5), 14);
    expect(spearman([1, 2, 2, 3], [1, 3, 2, 4])).toBeCloseTo(0.9486832980505138, 14); // scipy.stats.spearmanr
  });

  it("computes both correlations from row-pair cosines", () => {
    // cosines of the pairs: [1, c, c, 0] with two exact ties (identical rows)
    const a = new Float32Array([1, 0, 1, 0, 1, 0, 1, 0]);
    const b = new Float32Array([2, 0, 1, 1, 1, 1, 0, 3]);
    const m = similarityMetrics(a, b, [5, 3, 4, 1]);
    expect(m.spearman_cosine).toBeCloseTo(4.5 / Math.sqrt(22.5), 12); // ranks [4, 2.5, 2.5, 1] vs [4, 2, 3, 1]
    const c = Math.SQRT1_2;
    const x = [1, c, c, 0];
    const y = [5, 3, 4, 1];
    const mx = (1 + 2 * c) / 4;
    const sxy = x.reduce((s, xi, i) => s + (xi - mx) * (y[i] - 3.25), 0);
    const sxx = x.reduce((s, xi) => s + (xi - mx) ** 2, 0);
    const syy = y.reduce((s, yi) => s + (yi - 3.25) ** 2, 0);
    expect(m.pearson_cosine).toBeCloseTo(sxy / Math.sqrt(sxx * syy), 6);
    const three = similarityMetrics(new Float32Array([1, 0, 1, 0, 1, 0]), new Float32Array([1, 0, 0, 1, 1, 1]),
      new Float32Array([2, 0, 1]));
    expect(three.pearson_cosine).toBeCloseTo(0.9725753987341064, 6); // [1, 0, 1/sqrt 2] vs [2, 0, 1]
    expect(three.spearman_cosine).toBeCloseTo(1, 12);
    expect(SIMILARITY_PRIMARY_METRIC).toBe("spearman_cosine");
  });

  it("NaN for a constant side; errors for bad shapes", () => {
    const m = similarityMetrics(new Float32Array([1, 0, 1, 0]), new Float32Array([1, 0, 2, 0]), [1, 2]);
    expect(m.pearson_cosine).toBeNaN();
    expect(() => similarityMetrics(new Float32Array(2), new Float32Array(2), [1])).toThrow(/at least 2 pairs/);
    expect(() => similarityMetrics(new Float32Array(4), new Float32Array(6), [1, 2])).toThrow(/do not hold 2 rows/);
  });
});
