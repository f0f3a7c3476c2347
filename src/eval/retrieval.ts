import { EmbedtuneError } from "../errors.js";

/**
 * Information-retrieval metrics with the definitions of sentence-transformers'
 * InformationRetrievalEvaluator (binary relevance, exact cosine search). Legend: nq queries,
 * nc corpus documents, D the embedding dimension, k the ranking depth kept per query.
 */

const KS = [1, 3, 5, 10] as const;
const DEPTH = 100; // map@100 needs the top 100; the other metrics the top 10

type K = (typeof KS)[number];
export type RetrievalMetricName =
  | `accuracy@${K}` | `precision@${K}` | `recall@${K}` | "mrr@10" | "ndcg@10" | "map@100";
export type RetrievalMetrics = Record<RetrievalMetricName, number>;
export const RETRIEVAL_PRIMARY_METRIC: RetrievalMetricName = "ndcg@10";

export interface SearchOptions {
  queryBlock?: number; // queries ranked together (default 256); results do not depend on it
  corpusBlock?: number; // corpus rows scored per pass over a query block (default 1024)
}

export interface TopK {
  k: number; // min(requested k, nc)
  indices: Int32Array; // (nq, k) corpus indices, best first
  scores: Float64Array; // (nq, k) their cosine similarities
}

/**
 * Exact top-k cosine search. Scores are computed block by block and only a k-entry heap per
 * query is kept, so memory is O(nq * k), never nq * nc. Ties rank the lower corpus index first.
 */
export function searchTopK(queries: Float32Array, corpus: Float32Array, dim: number, k: number,
  options: SearchOptions = {}): TopK {
  const nq = rowsOf(queries, dim, "queries");
  const nc = rowsOf(corpus, dim, "corpus");
  const kk = Math.min(k, nc);
  const qBlock = Math.max(1, options.queryBlock ?? 256);
  const cBlock = Math.max(1, options.corpusBlock ?? 1024);
  const invQ = inverseNorms(queries, nq, dim);
  const invC = inverseNorms(corpus, nc, dim);
  const heapS = new Float64Array(qBlock * kk); // (qBlock, kk) min-heaps: root = worst kept
  const heapI = new Int32Array(qBlock * kk);
  const sizes = new Int32Array(qBlock);
  const indices = new Int32Array(nq * kk);
  const scores = new Float64Array(nq * kk);

  for (let q0 = 0; q0 < nq; q0 += qBlock) {
    const q1 = Math.min(nq, q0 + qBlock);
    sizes.fill(0);
    // Keeps (s, c) in query q's heap if it ranks among the best kk so far.
    const offer = (q: number, s: number, c: number): void => {
      const h = (q - q0) * kk;
      const size = sizes[q - q0];
      if (size < kk) {
        heapPush(heapS, heapI, h, size, s, c);
        sizes[q - q0] = size + 1;
      } else if (worse(heapS[h], heapI[h], s, c)) {
        heapS[h] = s;
        heapI[h] = c;
        siftDown(heapS, heapI, h, kk, 0);
      }
    };
    for (let c0 = 0; c0 < nc; c0 += cBlock) {
      const c1 = Math.min(nc, c0 + cBlock);
      // Four queries per pass over a corpus row: each corpus value is loaded once for four
      // dot products. Every dot product still sums its D terms in order, in float64, so the
      // scores are the same bits as one query at a time.
      let q = q0;
      for (; q + 4 <= q1; q += 4) {
        const o0 = q * dim;
        const o1 = o0 + dim;
        const o2 = o1 + dim;
        const o3 = o2 + dim;
        for (let c = c0; c < c1; c++) {
          const co = c * dim;
          let d0 = 0;
          let d1 = 0;
          let d2 = 0;
          let d3 = 0;
          for (let d = 0; d < dim; d++) {
            const x = corpus[co + d];
            d0 += queries[o0 + d] * x;
            d1 += queries[o1 + d] * x;
            d2 += queries[o2 + d] * x;
            d3 += queries[o3 + d] * x;
          }
          offer(q, d0 * invQ[q] * invC[c], c);
          offer(q + 1, d1 * invQ[q + 1] * invC[c], c);
          offer(q + 2, d2 * invQ[q + 2] * invC[c], c);
          offer(q + 3, d3 * invQ[q + 3] * invC[c], c);
        }
      }
      for (; q < q1; q++) {
        const qo = q * dim;
        for (let c = c0; c < c1; c++) {
          const co = c * dim;
          let dot = 0;
          for (let d = 0; d < dim; d++) dot += queries[qo + d] * corpus[co + d];
          offer(q, dot * invQ[q] * invC[c], c);
        }
      }
    }
    // Empty each heap from the worst end: the ranking comes out back to front.
    for (let q = q0; q < q1; q++) {
      const h = (q - q0) * kk;
      for (let size = kk; size > 0; size--) {
        indices[q * kk + size - 1] = heapI[h];
        scores[q * kk + size - 1] = heapS[h];
        heapS[h] = heapS[h + size - 1];
        heapI[h] = heapI[h + size - 1];
        siftDown(heapS, heapI, h, size - 1, 0);
      }
    }
  }
  return { k: kk, indices, scores };
}

/**
 * Mean metrics over queries. `relevant[q]` lists the corpus indices relevant to query q.
 * Queries with no relevant document are skipped, as sentence-transformers does; precision@k
 * divides by k even when the corpus has fewer than k documents (as sentence-transformers).
 */
export function retrievalMetrics(queries: Float32Array, corpus: Float32Array, dim: number,
  relevant: ReadonlyArray<ReadonlySet<number> | readonly number[]>, options: SearchOptions = {}): RetrievalMetrics {
  const nq = rowsOf(queries, dim, "queries");
  const nc = rowsOf(corpus, dim, "corpus");
  if (relevant.length !== nq) {
    throw new EmbedtuneError("INVALID_ARGUMENT", `relevance lists for ${relevant.length} queries, but ${nq} query vectors`);
  }
  const top = searchTopK(queries, corpus, dim, DEPTH, options);
  const sums = new Map<RetrievalMetricName, number>();
  const add = (name: RetrievalMetricName, v: number): void => void sums.set(name, (sums.get(name) ?? 0) + v);
  let counted = 0;
  for (let q = 0; q < nq; q++) {
    const rel = relevant[q] instanceof Set ? (relevant[q] as ReadonlySet<number>) : new Set(relevant[q] as number[]);
    if (rel.size === 0) continue;
    for (const id of rel) {
      if (!Number.isInteger(id) || id < 0 || id >= nc) {
        throw new EmbedtuneError("INVALID_ARGUMENT", `query ${q}: relevant document ${id} is not in [0, ${nc})`);
      }
    }
    counted++;
    const hit = (rank: number): boolean => rank < top.k && rel.has(top.indices[q * top.k + rank]);
    for (const k of KS) {
      let correct = 0;
      for (let r = 0; r < k; r++) if (hit(r)) correct++;
      add(`accuracy@${k}`, correct > 0 ? 1 : 0);
      add(`precision@${k}`, correct / k);
      add(`recall@${k}`, correct / rel.size);
    }
    // mrr@10: reciprocal rank of the first relevant document within the top 10.
    for (let r = 0; r < 10; r++) {
      if (hit(r)) {
        add("mrr@10", 1 / (r + 1));
        break;
      }
    }
    // ndcg@10: DCG = sum over relevant ranks i <= 10 of 1/log2(i+1); ideal: all relevant first.
    let dcg = 0;
    let idcg = 0;
    for (let r = 0; r < 10; r++) {
      if (hit(r)) dcg += 1 / Math.log2(r + 2);
      if (r < rel.size) idcg += 1 / Math.log2(r + 2);
    }
    add("ndcg@10", dcg / idcg);
    // map@100: precision at each relevant rank, summed, over min(|relevant|, 100).
    let correct = 0;
    let sumPrecision = 0;
    for (let r = 0; r < DEPTH; r++) {
      if (hit(r)) sumPrecision += ++correct / (r + 1);
    }
    add("map@100", sumPrecision / Math.min(rel.size, DEPTH));
  }
  if (counted === 0) throw new EmbedtuneError("INVALID_ARGUMENT", "no query has a relevant document");
  const names: RetrievalMetricName[] = [
    ...KS.map((k) => `accuracy@${k}` as const), ...KS.map((k) => `precision@${k}` as const),
    ...KS.map((k) => `recall@${k}` as const), "mrr@10", "ndcg@10", "map@100",
  ];
  return Object.fromEntries(names.map((name) => [name, (sums.get(name) ?? 0) / counted])) as RetrievalMetrics;
}

function rowsOf(x: Float32Array, dim: number, what: string): number {
  if (!Number.isInteger(dim) || dim < 1 || x.length % dim !== 0) {
    throw new EmbedtuneError("INVALID_ARGUMENT", `${what}: length ${x.length} is not a multiple of dimension ${dim}`);
  }
  return x.length / dim;
}

/** 1/|row| per row; 0 for a zero row, whose cosine with anything is then 0. */
function inverseNorms(x: Float32Array, n: number, dim: number): Float64Array {
  const inv = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let ss = 0;
    for (let d = 0; d < dim; d++) ss += x[i * dim + d] * x[i * dim + d];
    inv[i] = ss > 0 ? 1 / Math.sqrt(ss) : 0;
  }
  return inv;
}

/** Ranking order: higher score first, then lower index. True when (s1, i1) ranks below (s2, i2). */
function worse(s1: number, i1: number, s2: number, i2: number): boolean {
  return s1 < s2 || (s1 === s2 && i1 > i2);
}

function heapPush(hs: Float64Array, hi: Int32Array, base: number, size: number, s: number, i: number): void {
  let pos = size;
  while (pos > 0) {
    const parent = (pos - 1) >> 1;
    if (!worse(s, i, hs[base + parent], hi[base + parent])) break;
    hs[base + pos] = hs[base + parent];
    hi[base + pos] = hi[base + parent];
    pos = parent;
  }
  hs[base + pos] = s;
  hi[base + pos] = i;
}

function siftDown(hs: Float64Array, hi: Int32Array, base: number, size: number, pos: number): void {
  const s = hs[base + pos];
  const i = hi[base + pos];
  for (;;) {
    let child = 2 * pos + 1;
    if (child >= size) break;
    if (child + 1 < size && worse(hs[base + child + 1], hi[base + child + 1], hs[base + child], hi[base + child])) child++;
    if (!worse(hs[base + child], hi[base + child], s, i)) break;
    hs[base + pos] = hs[base + child];
    hi[base + pos] = hi[base + child];
    pos = child;
  }
  hs[base + pos] = s;
  hi[base + pos] = i;
}
