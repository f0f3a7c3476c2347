import { readDataset } from "../data/read.js";
import { NoDuplicatesBatchSampler } from "../data/sampler.js";
import { indexPairs, textColumns, TextTable, type IndexedDataset } from "../data/texts.js";
import type { Dataset } from "../data/types.js";
import { AUTO_BATCH_SIZE, resolveTrainConfig, type TrainConfig } from "../config.js";
import { EmbedtuneError } from "../errors.js";
import { ADAPTER_FORMAT, ADAPTER_FORMAT_VERSION, saveAdapter, type LoadedAdapter } from "../io/adapter-folder.js";
import { ensureWritableDir, isDirectory } from "../io/atomic.js";
import { initOutputLora } from "../lora/output-adapter.js";
import { AdamW } from "../optim/adamw.js";
import { linearWarmupDecay } from "../optim/schedule.js";
import { Rng } from "../util/rng.js";
import { VERSION } from "../version.js";
import { evaluate } from "./evaluate.js";
import { AdapterStep } from "./step.js";
import { encodeTexts, vectorsFromNpy, type BaseVectors } from "./vectors.js";
import { withPrefixes } from "../data/prefix.js";
import { loadFrozenEncoder } from "../encoder/load.js";
import { NO_PREFIXES, resolvePrefixes, type Prefixes } from "../encoder/hf/prefixes.js";
import { readdir } from "node:fs/promises";
import path from "node:path";

export type TrainEvent =
  | { phase: "encode"; done: number; total: number }
  | { phase: "train"; step: number; totalSteps: number; epoch: number; loss: number; lr: number }
  | { phase: "eval"; when: "before" | "after"; metrics: Record<string, number> };

export interface TrainOptions {
  onEvent?: (event: TrainEvent) => void;
}

export interface TrainResult {
  adapter: LoadedAdapter;
  config: TrainConfig;
  /** Eval-set metrics of the base encoder (`before`) and with the adapter (`after`). */
  metrics: { before?: Record<string, number>; after?: Record<string, number> };
  primaryMetric?: string;
  history: Array<{ step: number; epoch: number; loss: number; lr: number }>;
  skippedSteps: number;
  /** Distinct texts; how many the encoder ran on (the rest were cached); how many it truncated. */
  texts: { distinct: number; encoded: number; truncated: number };
  /** The adapter folder written, when config.out was given. */
  out?: string;
}

/**
 * Trains an output-space LoRA adapter: read and check the data, encode every distinct text
 * once (cached), evaluate the base vectors, run epochs of mini-batch steps over the cached
 * vectors, evaluate again and write the adapter folder. Nothing is written until training
 * has finished, and then atomically.
 */
export async function train(input: Partial<TrainConfig> & { data: string }, options: TrainOptions = {}): Promise<TrainResult> {
  const emit = options.onEvent ?? (() => {});
  const config = resolveTrainConfig(input);
  const dataset = await readDataset(config.data);
  const evalSet = config.eval ? await readDataset(config.eval) : null;
  const loss = lossFor(config, dataset);
  if (evalSet && evalSet.kind !== dataset.kind) {
    throw new EmbedtuneError("INVALID_ARGUMENT", `eval file holds ${evalSet.kind} but training data holds ${dataset.kind}`, { file: config.eval });
  }
  const n = dataset.examples.length;
  const batchSize = config.batchSize === "auto" ? Math.min(AUTO_BATCH_SIZE[loss], n) : config.batchSize;
  if (batchSize !== "all" && batchSize > n) {
    throw new EmbedtuneError("INVALID_ARGUMENT", `batch size ${batchSize} is larger than the ${n} training examples`, { field: "batch-size" }, `use --batch-size all or at most ${n}`);
  }
  if (config.out) await checkOutputFolder(config.out, config.overwrite);

  const { table, trainData, evalData, base, prefixes } = await baseVectors(config, dataset, evalSet, emit);
  const D = base.dim;

  const metrics: TrainResult["metrics"] = {};
  let primaryMetric: string | undefined;
  if (evalData) {
    const before = evaluate(evalData, base.vectors, D, null, config.applyTo);
    metrics.before = before.metrics;
    primaryMetric = before.primary;
    emit({ phase: "eval", when: "before", metrics: before.metrics });
  }

  const rng = Rng.seeded(config.seed);
  const lora = initOutputLora(D, config.r, config.loraAlpha, rng);
  const optimizer = new AdamW([lora.A, lora.B], { lr: config.lr, betas: config.betas, eps: config.eps, weightDecay: config.weightDecay });
  const sampler = new NoDuplicatesBatchSampler(textColumns(trainData), batchSize, rng);
  const epochs = Array.from({ length: config.epochs }, () => sampler.epoch());
  const totalSteps = epochs.reduce((s, batches) => s + batches.length, 0);
  if (totalSteps === 0) throw new EmbedtuneError("INVALID_DATA", "no batch of at least 2 distinct examples could be formed", { file: config.data });
  const lrAt = linearWarmupDecay(config.lr, totalSteps, config.warmupRatio);
  const step = new AdapterStep(lora, optimizer, trainData, base.vectors, config.applyTo, config.scale, config.maxGradNorm, sampler.batchSize);

  const history: TrainResult["history"] = [];
  let k = 0;
  let skippedSteps = 0;
  let badInARow = 0;
  for (let epoch = 0; epoch < epochs.length; epoch++) {
    for (const batch of epochs[epoch]) {
      const lr = lrAt(k);
      const result = step.run(batch, lr);
      k++;
      if (result.skipped) {
        skippedSteps++;
        if (++badInARow >= config.maxBadSteps) {
          throw new EmbedtuneError("DIVERGED", `training diverged: ${badInARow} steps in a row had a non-finite loss or gradient (at step ${k})`, {}, `try a lower --lr than ${config.lr}`);
        }
        continue;
      }
      badInARow = 0;
      history.push({ step: k, epoch: epoch + 1, loss: result.loss, lr });
      emit({ phase: "train", step: k, totalSteps, epoch: epoch + 1, loss: result.loss, lr });
    }
  }

  if (evalData) {
    const after = evaluate(evalData, base.vectors, D, lora, config.applyTo);
    metrics.after = after.metrics;
    emit({ phase: "eval", when: "after", metrics: after.metrics });
  }

  const adapter: LoadedAdapter = {
    lora,
    applyTo: config.applyTo,
    config: {
      format: ADAPTER_FORMAT,
      format_version: ADAPTER_FORMAT_VERSION,
      kind: "output",
      r: lora.r,
      lora_alpha: lora.loraAlpha,
      dim: D,
      apply_to: config.applyTo,
      base_model: base.model,
      prefixes,
      training: trainingRecord(config, { loss, batchSize, steps: totalSteps, skippedSteps, examples: n, distinctTexts: table.size }),
      metrics,
      created_at: new Date().toISOString(),
      embedtune_version: VERSION,
    },
  };
  if (config.out) await saveAdapter(config.out, adapter, config.overwrite);
  return { adapter, config, metrics, primaryMetric, history, skippedSteps, texts: { distinct: table.size, encoded: base.encoded, truncated: base.truncated }, out: config.out };
}

/**
 * The settings that shaped the adapter, in the snake_case of the rest of adapter_config.json,
 * without machine-specific ones (cache folder, overwrite, output folder).
 */
function trainingRecord(config: TrainConfig, extra: Record<string, unknown>): Record<string, unknown> {
  const { cacheDir: _cache, overwrite: _overwrite, out: _out, ...settings } = config;
  const snake = (key: string) => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  return Object.fromEntries(Object.entries({ ...settings, ...extra }).map(([k, v]) => [snake(k), v]));
}

function lossFor(config: TrainConfig, data: Dataset): "mnrl" | "cosent" {
  const wanted = config.loss === "auto" ? (data.kind === "pairs" ? "mnrl" : "cosent") : config.loss;
  if (wanted === "mnrl" && data.kind !== "pairs") {
    throw new EmbedtuneError("INVALID_ARGUMENT", "loss mnrl needs (anchor, positive) pairs but the file holds scored pairs", { file: config.data }, "use --loss cosent");
  }
  if (wanted === "cosent" && data.kind !== "scored") {
    throw new EmbedtuneError("INVALID_ARGUMENT", "loss cosent needs scored pairs (sentence1, sentence2, score) but the file holds unscored pairs", { file: config.data }, "use --loss mnrl");
  }
  return wanted;
}

interface Prepared {
  table: TextTable; // every distinct (prefixed) text of train and eval
  trainData: IndexedDataset;
  evalData: IndexedDataset | null;
  base: BaseVectors;
  prefixes: Prefixes;
}

/**
 * Base vectors for every text: from --vectors files, or from the frozen encoder (through the
 * cache) after the model's query/document prefixes are put in front of the texts.
 */
async function baseVectors(config: TrainConfig, dataset: Dataset, evalSet: Dataset | null, emit: (e: TrainEvent) => void): Promise<Prepared> {
  const table = new TextTable();
  if (config.vectors) {
    if (evalSet && !config.evalVectors) {
      throw new EmbedtuneError("INVALID_ARGUMENT", "with --vectors, the eval set needs its vectors too", { field: "eval-vectors" }, "pass --eval-vectors anchors.npy,positives.npy");
    }
    const trainData = indexPairs(dataset, table);
    const evalData = evalSet ? indexPairs(evalSet, table) : null;
    const sets = [{ data: trainData, files: config.vectors, dataFile: config.data }];
    if (evalData && config.evalVectors) sets.push({ data: evalData, files: config.evalVectors, dataFile: config.eval! });
    return { table, trainData, evalData, base: await vectorsFromNpy(table, sets), prefixes: NO_PREFIXES };
  }
  if (config.evalVectors) throw new EmbedtuneError("INVALID_ARGUMENT", "eval vectors were given without training vectors", { field: "eval-vectors" });
  const encoder = await loadFrozenEncoder(config.model, { offline: config.offline, cacheRoot: config.cacheDir ?? undefined });
  try {
    const prefixes = resolvePrefixes(encoder.defaultPrefixes, config.queryPrefix, config.docPrefix);
    const trainData = indexPairs(withPrefixes(dataset, prefixes), table);
    const evalData = evalSet ? indexPairs(withPrefixes(evalSet, prefixes), table) : null;
    const base = await encodeTexts(encoder, table, config.cacheDir, (done, total) => emit({ phase: "encode", done, total }));
    return { table, trainData, evalData, base, prefixes };
  } finally {
    await encoder.close();
  }
}

/** Fails before any work when the adapter could not be written at the end. */
async function checkOutputFolder(out: string, overwrite: boolean): Promise<void> {
  if (await isDirectory(out)) {
    if (!overwrite && (await readdir(out)).length > 0) {
      throw new EmbedtuneError("OUTPUT_EXISTS", `output folder ${out} already exists and is not empty`, {}, "pass --overwrite to replace it");
    }
  }
  await ensureWritableDir(path.dirname(path.resolve(out)));
}
