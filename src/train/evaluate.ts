import type { IndexedDataset } from "../data/texts.js";
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
 * The left side (anchors / sentence1) is a query; the right side is adapted only when
 * apply_to is "both".
 */
export function evaluate(data: IndexedDataset, vectors: Float32Array, D: number, lora: OutputLora | null, applyTo: ApplyTo): EvalResult {
  const embed = (ids: ArrayLike<number>, isQuery: boolean): Float32Array => {
    const x = gather(vectors, ids, D);
    if (lora && (isQuery || applyTo === "both")) return applyAdapter(x, ids.length, lora);
    const z = new Float32Array(x.length);
    l2NormalizeRows(z, x, ids.length, D);
    return z;
  };

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

function gather(vectors: Float32Array, ids: ArrayLike<number>, D: number): Float32Array {
  const out = new Float32Array(ids.length * D); // (N, D)
  for (let i = 0; i < ids.length; i++) out.set(vectors.subarray(ids[i] * D, (ids[i] + 1) * D), i * D);
  return out;
}
