import { readdir } from "node:fs/promises";
import path from "node:path";

import type { TrainConfig } from "../config.js";
import { withPrefixes } from "../data/prefix.js";
import { indexData, indexPairs, TextTable, type IndexedDataset, type IndexedEvalData } from "../data/texts.js";
import type { AnyDataset, Dataset } from "../data/types.js";
import { NO_PREFIXES, resolvePrefixes, type Prefixes } from "../encoder/hf/prefixes.js";
import { loadFrozenEncoder } from "../encoder/load.js";
import { EmbedtuneError } from "../errors.js";
import { ensureWritableDir, isDirectory } from "../io/atomic.js";
import type { TrainEvent } from "./train.js";
import { encodeTexts, vectorsFromNpy, type BaseVectors } from "./vectors.js";

// What a training run settles before its first step: the loss, the eval set's fitness, the
// output folder, and the base vector of every text.

/** The eval set must suit the training data, and must not be the training queries themselves. */
export function checkEvalSet(config: TrainConfig, dataset: Dataset, evalSet: AnyDataset | null): void {
  if (!evalSet) return;
  const evalKind = evalSet.kind === "retrieval" ? "pairs" : evalSet.kind;
  if (evalKind !== dataset.kind) {
    throw new EmbedtuneError("INVALID_ARGUMENT", `eval data holds ${evalSet.kind === "retrieval" ? "a retrieval set" : evalSet.kind} but training data holds ${dataset.kind}`, { file: config.eval });
  }
  if (evalSet.kind === "retrieval" && !evalSet.holdout && path.resolve(evalSet.file) === path.resolve(dataset.file)) {
    const split = config.split || "";
    if (!split || split === evalSet.split) {
      throw new EmbedtuneError("INVALID_ARGUMENT", `--data and --eval are the same BEIR folder and split "${evalSet.split}": the eval would score the training queries`, { file: config.eval },
        "pass --holdout <percent> to evaluate on held-out queries, or --eval-split <other split>");
    }
  }
}

/**
 * The settings that shaped the adapter, in the snake_case of the rest of adapter_config.json,
 * without machine-specific ones (cache folder, overwrite, output folder).
 */
export function trainingRecord(config: TrainConfig, extra: Record<string, unknown>): Record<string, unknown> {
  const { cacheDir: _cache, overwrite: _overwrite, out: _out, ...settings } = config;
  const snake = (key: string) => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  return Object.fromEntries(Object.entries({ ...settings, ...extra }).map(([k, v]) => [snake(k), v]));
}

export function lossFor(config: TrainConfig, data: Dataset): "mnrl" | "cosent" {
  const wanted = config.loss === "auto" ? (data.kind === "pairs" ? "mnrl" : "cosent") : config.loss;
  if (wanted === "mnrl" && data.kind !== "pairs") {
    throw new EmbedtuneError("INVALID_ARGUMENT", "loss mnrl needs (anchor, positive) pairs but the file holds scored pairs", { file: config.data }, "use --loss cosent");
  }
  if (wanted === "cosent" && data.kind !== "scored") {
    throw new EmbedtuneError("INVALID_ARGUMENT", "loss cosent needs scored pairs (sentence1, sentence2, score) but the file holds unscored pairs", { file: config.data }, "use --loss mnrl");
  }
  return wanted;
}

export interface Prepared {
  table: TextTable; // every distinct (prefixed) text of train and eval
  trainData: IndexedDataset;
  evalData: IndexedEvalData | null;
  base: BaseVectors;
  prefixes: Prefixes;
}

/**
 * Base vectors for every text: from --vectors files, or from the frozen encoder (through the
 * cache) after the model's query/document prefixes are put in front of the texts.
 */
export async function baseVectors(config: TrainConfig, dataset: Dataset, evalSet: AnyDataset | null, emit: (e: TrainEvent) => void): Promise<Prepared> {
  const table = new TextTable();
  if (config.vectors) {
    if (evalSet && !config.evalVectors) {
      throw new EmbedtuneError("INVALID_ARGUMENT", "with --vectors, the eval set needs its vectors too", { field: "eval-vectors" }, "pass --eval-vectors anchors.npy,positives.npy");
    }
    const trainData = indexPairs(dataset, table);
    const evalData = evalSet ? indexData(evalSet, table) : null;
    const sets: Parameters<typeof vectorsFromNpy>[1] = [{ data: trainData, files: config.vectors, dataFile: config.data }];
    if (evalData && config.evalVectors) sets.push({ data: evalData, files: config.evalVectors, dataFile: config.eval! });
    return { table, trainData, evalData, base: await vectorsFromNpy(table, sets), prefixes: NO_PREFIXES };
  }
  if (config.evalVectors) throw new EmbedtuneError("INVALID_ARGUMENT", "eval vectors were given without training vectors", { field: "eval-vectors" });
  const encoder = await loadFrozenEncoder(config.model, { offline: config.offline, cacheRoot: config.cacheDir ?? undefined });
  try {
    const prefixes = resolvePrefixes(encoder.defaultPrefixes, config.queryPrefix, config.docPrefix);
    const trainData = indexPairs(withPrefixes(dataset, prefixes), table);
    const evalData = evalSet ? indexData(withPrefixes(evalSet, prefixes), table) : null;
    const base = await encodeTexts(encoder, table, config.cacheDir, (done, total) => emit({ phase: "encode", done, total }));
    return { table, trainData, evalData, base, prefixes };
  } finally {
    await encoder.close();
  }
}

/** Fails before any work when the adapter could not be written at the end. */
export async function checkOutputFolder(out: string, overwrite: boolean): Promise<void> {
  if (await isDirectory(out)) {
    if (!overwrite && (await readdir(out)).length > 0) {
      throw new EmbedtuneError("OUTPUT_EXISTS", `output folder ${out} already exists and is not empty`, {}, "pass --overwrite to replace it");
    }
  }
  await ensureWritableDir(path.dirname(path.resolve(out)));
}
