import { existsSync } from "node:fs";
import path from "node:path";

import { loadTrainingData } from "./data/load.js";
import { withPrefixes } from "./data/prefix.js";
import { TextTable } from "./data/texts.js";
import type { PairsDataset } from "./data/types.js";
import { resolvePrefixes } from "./encoder/hf/prefixes.js";
import { loadFrozenEncoder } from "./encoder/load.js";
import { EmbedtuneError } from "./errors.js";
import { searchTopK } from "./eval/retrieval.js";
import { checkBaseModel, loadAdapter } from "./io/adapter-folder.js";
import { writeFileAtomic } from "./io/atomic.js";
import { embedRows } from "./train/evaluate.js";
import { encodeTexts } from "./train/vectors.js";

/** Defaults of `embedtune mine` (sentence-transformers' mine_hard_negatives uses range_max 10 too). */
export const MINE_DEFAULTS = { k: 10, margin: 0, negatives: 1 } as const;

export interface MineOptions {
  /** (anchor, positive) pairs: a data file or a BEIR folder (its qrels as pairs), as `train` reads them. */
  data: string;
  /** JSONL file to write: {"anchor", "positive", "negative"} per line. */
  out: string;
  model?: string;
  /** Mine with the adapted encoder (e.g. a first round's adapter). */
  adapter?: string;
  /** Candidates retrieved per anchor (the top k by cosine among all positives). Default 10. */
  k?: number;
  /**
   * Absolute margin: a candidate scoring above (positive's score - margin) is skipped as a
   * likely false negative. 0 (default) skips candidates that score as high as the positive.
   */
  margin?: number;
  /** Triplets written per pair: the best `negatives` candidates left. Default 1. */
  negatives?: number;
  split?: string;
  holdout?: number;
  cacheDir?: string | null;
  offline?: boolean;
  queryPrefix?: string;
  docPrefix?: string;
  overwrite?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export interface MineResult {
  out: string;
  pairs: number; // input pairs
  triplets: number; // rows written
  withoutNegative: number; // pairs for which no candidate survived (left out of the output)
  candidates: number; // distinct positives searched
  k: number;
  margin: number;
  negatives: number;
}

/**
 * Hard-negative mining: for every (anchor, positive) pair, the anchor searches all distinct
 * positives of the data with the current encoder (and adapter); its own positives are
 * skipped, and so is any candidate scoring above (positive score - margin), a likely
 * false negative; the best remaining candidates become the pair's negatives. Writes
 * triplets (anchor, positive, negative), one per negative, that `train` uses as the
 * hard-negative column. Texts are written as read (prefixes are added when encoding only).
 */
export async function mineHardNegatives(options: MineOptions): Promise<MineResult> {
  const k = options.k ?? MINE_DEFAULTS.k;
  const margin = options.margin ?? MINE_DEFAULTS.margin;
  const negatives = options.negatives ?? MINE_DEFAULTS.negatives;
  if (!Number.isSafeInteger(k) || k < 1) throw new EmbedtuneError("INVALID_ARGUMENT", `k must be a positive integer, got ${k}`, { field: "k" });
  if (!(Number.isFinite(margin) && margin >= 0)) throw new EmbedtuneError("INVALID_ARGUMENT", `margin must be a non-negative number, got ${margin}`, { field: "margin" });
  if (!Number.isSafeInteger(negatives) || negatives < 1 || negatives > k) {
    throw new EmbedtuneError("INVALID_ARGUMENT", `negatives must be an integer in [1, k = ${k}], got ${negatives}`, { field: "negatives" });
  }
  const ext = path.extname(options.out).toLowerCase();
  if (ext !== ".jsonl" && ext !== ".json") {
    throw new EmbedtuneError("INVALID_ARGUMENT", `the output must be a .jsonl file, got "${ext || options.out}"`, { file: options.out, field: "out" });
  }
  if (!options.overwrite && existsSync(options.out)) {
    throw new EmbedtuneError("OUTPUT_EXISTS", "output file already exists", { file: options.out }, "pass --overwrite to replace it");
  }
  const dataset = await loadTrainingData(options.data, { split: options.split, holdout: options.holdout });
  if (dataset.kind !== "pairs") {
    throw new EmbedtuneError("INVALID_ARGUMENT", "mining needs (anchor, positive) pairs; this file holds scored pairs", { file: options.data });
  }
  const adapter = options.adapter ? await loadAdapter(options.adapter) : null;
  const cacheDir = options.cacheDir ?? "";
  const encoder = await loadFrozenEncoder(options.model ?? adapter?.config.base_model.name ?? "default", { offline: options.offline, cacheRoot: cacheDir ?? undefined });
  let rows: string[];
  let stats: { withoutNegative: number; candidates: number };
  try {
    if (adapter && options.adapter) checkBaseModel(adapter.config, encoder.identity, encoder.dim, options.adapter);
    const prefixes = resolvePrefixes(adapter?.config.prefixes ?? encoder.defaultPrefixes, options.queryPrefix, options.docPrefix);
    const prefixed = withPrefixes(dataset, prefixes) as PairsDataset;
    const table = new TextTable();
    const a = Int32Array.from(prefixed.examples, (e) => table.add(e.anchor));
    const p = Int32Array.from(prefixed.examples, (e) => table.add(e.positive));
    const base = await encodeTexts(encoder, table, cacheDir, options.onProgress);
    const lora = adapter?.lora ?? null;
    ({ rows, ...stats } = mine(dataset, a, p, base.vectors, base.dim, lora, adapter?.applyTo === "query" ? null : lora, { k, margin, negatives }));
  } finally {
    await encoder.close();
  }
  await writeFileAtomic(options.out, rows.join(""));
  return { out: options.out, pairs: dataset.examples.length, triplets: rows.length, ...stats, k, margin, negatives };
}

const TIE = 1e-6;

/** The search and the filters, on text ids `a`, `p` (N,) and base vectors (T, D). */
function mine(dataset: PairsDataset, a: Int32Array, p: Int32Array, vectors: Float32Array, D: number,
  queryLora: Parameters<typeof embedRows>[3], docLora: Parameters<typeof embedRows>[3],
  o: { k: number; margin: number; negatives: number }): { rows: string[]; withoutNegative: number; candidates: number } {
  const anchorIds = [...new Set(a)];
  const candIds = [...new Set(p)];
  const anchorRow = new Map(anchorIds.map((t, i) => [t, i]));
  const candRow = new Map(candIds.map((t, i) => [t, i]));
  const candText: string[] = []; // candidate row -> the text as read
  dataset.examples.forEach((e, i) => (candText[candRow.get(p[i])!] ??= e.positive));
  const own = anchorIds.map(() => new Set<number>()); // anchor row -> its positives' rows
  a.forEach((t, i) => own[anchorRow.get(t)!].add(candRow.get(p[i])!));

  const za = embedRows(vectors, anchorIds, D, queryLora); // (na, D) unit rows
  const zc = embedRows(vectors, candIds, D, docLora); // (nc, D)
  const top = searchTopK(za, zc, D, o.k);
  const rows: string[] = [];
  let withoutNegative = 0;
  dataset.examples.forEach((e, i) => {
    const q = anchorRow.get(a[i])!;
    const c0 = candRow.get(p[i])!;
    let positiveScore = 0;
    for (let d = 0; d < D; d++) positiveScore += za[q * D + d] * zc[c0 * D + d];
    let found = 0;
    for (let r = 0; r < top.k && found < o.negatives; r++) {
      const c = top.indices[q * top.k + r];
      if (own[q].has(c) || candText[c] === e.anchor) continue; // the anchor's own positives, or itself
      // Likely a false negative. TIE absorbs float rounding: a text the encoder maps to the
      // positive's very vector (e.g. the same text past the model's length limit) is skipped.
      if (top.scores[q * top.k + r] > positiveScore - o.margin - TIE) continue;
      rows.push(`${JSON.stringify({ anchor: e.anchor, positive: e.positive, negative: candText[c] })}\n`);
      found++;
    }
    if (found === 0) withoutNegative++;
  });
  return { rows, withoutNegative, candidates: candIds.length };
}
