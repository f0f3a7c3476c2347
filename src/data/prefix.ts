import type { Prefixes } from "../encoder/hf/prefixes.js";
import type { AnyDataset, Dataset } from "./types.js";

/**
 * The dataset as the encoder should see it: queries (anchors) get the query prefix,
 * documents (positives, negatives) the document prefix, and both sentences of a scored
 * pair the symmetric one. Prefixed texts are distinct texts, so they are cached apart.
 */
export function withPrefixes(dataset: Dataset, prefixes: Prefixes): Dataset;
export function withPrefixes(dataset: AnyDataset, prefixes: Prefixes): AnyDataset;
export function withPrefixes(dataset: AnyDataset, prefixes: Prefixes): AnyDataset {
  if (dataset.kind === "retrieval") {
    // BEIR: queries get the query prefix, every corpus document the document prefix.
    if (!prefixes.query && !prefixes.document) return dataset;
    return {
      ...dataset,
      queries: dataset.queries.map((q) => ({ ...q, text: prefixes.query + q.text })),
      corpus: dataset.corpus.map((d) => ({ ...d, text: prefixes.document + d.text })),
    };
  }
  if (dataset.kind === "pairs") {
    if (!prefixes.query && !prefixes.document) return dataset;
    const examples = dataset.examples.map((e) => ({
      anchor: prefixes.query + e.anchor,
      positive: prefixes.document + e.positive,
      ...(e.negative !== undefined ? { negative: prefixes.document + e.negative } : {}),
    }));
    return { ...dataset, examples };
  }
  if (dataset.kind === "scored") {
    if (!prefixes.symmetric) return dataset;
    const examples = dataset.examples.map((e) => ({ ...e, sentence1: prefixes.symmetric + e.sentence1, sentence2: prefixes.symmetric + e.sentence2 }));
    return { ...dataset, examples };
  }
  return dataset;
}
