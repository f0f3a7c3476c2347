import { describeData, loadEvalData } from "./data/load.js";
import { indexData, TextTable } from "./data/texts.js";
import { checkBaseModel, readAdapter } from "./io/adapter-folder.js";
import { adapterTransform } from "./lora/merged.js";
import { withPrefixes } from "./data/prefix.js";
import { resolvePrefixes } from "./encoder/hf/prefixes.js";
import { loadFrozenEncoder } from "./encoder/load.js";
import { encodeTexts } from "./train/vectors.js";
import { evaluate, type EvalResult } from "./train/evaluate.js";
import { weightAdapterVectors } from "./engine/merged-encoder.js";

export interface EvaluateOptions {
  /** Pairs or a BEIR folder (retrieval metrics), or scored pairs (similarity metrics), as `train` reads them. */
  data: string;
  /** BEIR folders: the qrels split (default: the only one, else "test"). */
  split?: string;
  /** BEIR folders: evaluate only the queries `train --holdout` held out (the same percentage). */
  holdout?: number;
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
 * BEIR folders: each query retrieves among the whole corpus, several relevant documents allowed;
 * scored pairs: spearman_cosine and pearson_cosine.
 * `examples` counts pairs, or queries for a BEIR folder; `description` says what was read.
 */
export async function evaluateFile(options: EvaluateOptions): Promise<EvalResult & { examples: number; truncated: number; description: string }> {
  const dataset = await loadEvalData(options.data, { split: options.split, holdout: options.holdout });
  const adapter = options.adapter ? await readAdapter(options.adapter) : null;
  const model = options.model ?? adapter?.config.base_model.name ?? "default";
  const cacheDir = options.cacheDir ?? "";
  const encoder = await loadFrozenEncoder(model, { offline: options.offline, cacheRoot: cacheDir ?? undefined });
  try {
    if (adapter && options.adapter) checkBaseModel(adapter.config, encoder.identity, encoder.dim, options.adapter);
    const prefixes = resolvePrefixes(adapter?.config.prefixes ?? encoder.defaultPrefixes, options.queryPrefix, options.docPrefix);
    const table = new TextTable();
    const indexed = indexData(withPrefixes(dataset, prefixes), table);
    const base = await encodeTexts(encoder, table, cacheDir, options.onProgress);
    // A weight-space adapter changes the encoder itself: its vectors come from the merged model.
    const adapted = adapter?.kind === "weights" ? { vectors: await weightAdapterVectors(encoder, model, adapter, options.adapter!, table, options) } : null;
    const result = evaluate(indexed, base.vectors, base.dim, adapted ?? (adapter ? adapterTransform(adapter) : null), adapter?.applyTo ?? "both");
    const examples = dataset.kind === "retrieval" ? dataset.queries.length : dataset.examples.length;
    return { ...result, examples, truncated: base.truncated, description: describeData(dataset) };
  } finally {
    await encoder.close();
  }
}
