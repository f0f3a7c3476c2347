import { readDataset } from "./data/read.js";
import { indexPairs, TextTable } from "./data/texts.js";
import { checkBaseModel, loadAdapter } from "./io/adapter-folder.js";
import { withPrefixes } from "./data/prefix.js";
import { resolvePrefixes } from "./encoder/hf/prefixes.js";
import { loadFrozenEncoder } from "./encoder/load.js";
import { encodeTexts } from "./train/vectors.js";
import { evaluate, type EvalResult } from "./train/evaluate.js";

export interface EvaluateOptions {
  /** Pairs (retrieval metrics) or scored pairs (similarity metrics), as `train` reads them. */
  data: string;
  /** An adapter folder; omitted = the base encoder. */
  adapter?: string;
  model?: string;
  /** Vector cache folder ("" = default, null = no cache). */
  cacheDir?: string | null;
  offline?: boolean;
  /** Override the adapter's (or the model's default) prefixes. */
  queryPrefix?: string;
  docPrefix?: string;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Evaluates the base encoder, or the encoder with an adapter, on a data file.
 * Pairs: each query retrieves among all positives of the file (recall@k, mrr@10, ndcg@10 …);
 * scored pairs: spearman_cosine and pearson_cosine.
 */
export async function evaluateFile(options: EvaluateOptions): Promise<EvalResult & { examples: number; truncated: number }> {
  const dataset = await readDataset(options.data);
  const adapter = options.adapter ? await loadAdapter(options.adapter) : null;
  const model = options.model ?? adapter?.config.base_model.name ?? "default";
  const cacheDir = options.cacheDir ?? "";
  const encoder = await loadFrozenEncoder(model, { offline: options.offline, cacheRoot: cacheDir ?? undefined });
  try {
    if (adapter && options.adapter) checkBaseModel(adapter.config, encoder.identity, encoder.dim, options.adapter);
    const prefixes = resolvePrefixes(adapter?.config.prefixes ?? encoder.defaultPrefixes, options.queryPrefix, options.docPrefix);
    const table = new TextTable();
    const indexed = indexPairs(withPrefixes(dataset, prefixes), table);
    const base = await encodeTexts(encoder, table, cacheDir, options.onProgress);
    const result = evaluate(indexed, base.vectors, base.dim, adapter?.lora ?? null, adapter?.applyTo ?? "both");
    return { ...result, examples: dataset.examples.length, truncated: base.truncated };
  } finally {
    await encoder.close();
  }
}
