import type { IndexedEvalData } from "../data/texts.js";
import { RETRIEVAL_PRIMARY_METRIC, retrievalMetrics } from "../eval/retrieval.js";
import { SIMILARITY_PRIMARY_METRIC, similarityMetrics } from "../eval/similarity.js";
import type { ApplyTo } from "../io/adapter-folder.js";
import { applyAdapter, type OutputLora } from "../lora/output-adapter.js";
import { l2NormalizeRows } from "../tensor/ops.js";

export interface EvalResult {
  metrics: Record<string, number>;
  primary: string; // the metric that ranks adapters: ndcg@10 or spearman_cosine
}

/**
 * Evaluates cached base vectors (T, D) of every text id, through `lora` when given.
 * Pairs: each distinct anchor is a query, the corpus is every distinct positive (plus any
 * negatives), and a query's relevant documents are the positives it is paired with.
 * Scored pairs: Spearman and Pearson correlation of cosine(sentence1, sentence2) with the gold score.
 * Retrieval sets (BEIR): each query searches the whole corpus; relevance from the qrels.
 * The left side (anchors / sentence1 / queries) is a query; the right side is adapted only
 * when apply_to is "both".
 */
export function evaluate(data: IndexedEvalData, vectors: Float32Array, D: number, lora: AdapterMap | null, applyTo: ApplyTo): EvalResult {
  const embed = (ids: ArrayLike<number>, isQuery: boolean): Float32Array => embedRows(vectors, ids, D, lora && (isQuery || applyTo === "both") ? lora : null);

  if (data.kind === "retrieval") {
    const metrics = retrievalMetrics(embed(data.queries, true), embed(data.corpus, false), D, data.relevant);
    return { metrics: { ...metrics }, primary: RETRIEVAL_PRIMARY_METRIC };
  }
  if (data.kind === "scored") {
    const metrics = similarityMetrics(embed(data.s1, true), embed(data.s2, false), data.scores);
    return { metrics: { ...metrics }, primary: SIMILARITY_PRIMARY_METRIC };
  }
  const queryIds = distinct([data.anchors]);
  const corpusIds = distinct([data.positives, ...(data.negatives ? [data.negatives] : [])]);
  const queryRow = new Map(queryIds.map((t, i) => [t, i]));
  const corpusRow = new Map(corpusIds.map((t, i) => [t, i]));
  const relevant: Set<number>[] = queryIds.map(() => new Set<number>());
  data.anchors.forEach((a, e) => relevant[queryRow.get(a)!].add(corpusRow.get(data.positives[e])!));
  const metrics = retrievalMetrics(embed(queryIds, true), embed(corpusIds, false), D, relevant);
  return { metrics: { ...metrics }, primary: RETRIEVAL_PRIMARY_METRIC };
}

/** Distinct text ids of the columns, in order of first appearance. */
function distinct(columns: Int32Array[]): number[] {
  const seen = new Set<number>();
  for (const column of columns) for (const t of column) seen.add(t);
  return [...seen];
}

/**
 * An output adapter's parameters, or any map of base rows (N, D) to adapted unit rows (e.g. a
 * merged adapter), or `{ vectors }`: the adapted vector of every text id (T, D), from an
 * encoder with a weight-space adapter inside, taken as they are.
 */
export type AdapterMap = OutputLora | ((x: Float32Array, N: number) => Float32Array) | { vectors: Float32Array };

const EMBED_BLOCK = 4096; // rows gathered and adapted at a time

/**
 * Rows `ids` of the base vectors (T, D), through the adapter when given, else L2-normalised,
 * into one (N, D) buffer. Done in blocks, so a 100k-document corpus needs its output buffer
 * (200 MB at D = 512) and 8 MB of scratch, not a gathered copy as well.
 */
export function embedRows(vectors: Float32Array, ids: ArrayLike<number>, D: number, lora: AdapterMap | null): Float32Array {
  const N = ids.length;
  const out = new Float32Array(N * D); // (N, D)
  const block = new Float32Array(Math.min(N, EMBED_BLOCK) * D); // (block, D) gathered base rows
  for (let i0 = 0; i0 < N; i0 += EMBED_BLOCK) {
    const n = Math.min(EMBED_BLOCK, N - i0);
    const x = block.subarray(0, n * D);
    const rows = lora && "vectors" in lora ? lora.vectors : vectors;
    for (let i = 0; i < n; i++) x.set(rows.subarray(ids[i0 + i] * D, (ids[i0 + i] + 1) * D), i * D);
    const z = out.subarray(i0 * D, (i0 + n) * D);
    if (lora && !("vectors" in lora)) z.set(typeof lora === "function" ? lora(x, n) : applyAdapter(x, n, lora));
    else l2NormalizeRows(z, x, n, D);
  }
  return out;
}
