import { describeData, loadEvalData, loadTrainingData } from "../data/load.js";
import { NoDuplicatesBatchSampler } from "../data/sampler.js";
import { indexData, indexPairs, textColumns, TextTable, type IndexedDataset, type IndexedEvalData } from "../data/texts.js";
import type { AnyDataset, Dataset } from "../data/types.js";
import { AUTO_BATCH_SIZE, resolveTrainConfig, type TrainConfig } from "../config.js";
import { EmbedtuneError } from "../errors.js";
import { ADAPTER_FORMAT, ADAPTER_FORMAT_VERSION, saveAdapter, type LoadedAdapter } from "../io/adapter-folder.js";
import { ensureWritableDir, isDirectory } from "../io/atomic.js";
import { initOutputLora } from "../lora/output-adapter.js";
import { AdamW } from "../optim/adamw.js";
import { linearWarmupDecay } from "../optim/schedule.js";
import { Rng } from "../util/rng.js";
import { VERSION } from "../version.js";
import { createTrainStep } from "./onnx-step.js";
import { writeReport } from "./report.js";
import { trainWeightAdapter, type TrainedWeightAdapter } from "./weight-train.js";
import { Validator, type Evaluation } from "./validation.js";
import { encodeTexts, vectorsFromNpy, type BaseVectors } from "./vectors.js";
import { withPrefixes } from "../data/prefix.js";
import { loadFrozenEncoder } from "../encoder/load.js";
import { NO_PREFIXES, resolvePrefixes, type Prefixes } from "../encoder/hf/prefixes.js";
import { readdir } from "node:fs/promises";
import path from "node:path";

export type TrainEvent =
  | { phase: "encode"; done: number; total: number }
  | { phase: "train"; step: number; totalSteps: number; epoch: number; loss: number; lr: number }
  // before: the base encoder (step 0); step: a periodic evaluation; after: the final adapter
  | { phase: "eval"; when: "before" | "step" | "after"; step: number; metrics: Record<string, number>; best: boolean };

export interface TrainOptions {
  onEvent?: (event: TrainEvent) => void;
}

export interface TrainResult {
  /** The adapter trained (for --adapter-kind weights, the LoRA pairs inside the encoder). */
  adapter: LoadedAdapter | TrainedWeightAdapter;
  config: TrainConfig;
  /**
   * Eval-set metrics of the base encoder (`before`), at the best evaluation (`best`, the
   * adapter returned and saved) and with the adapter at the last step (`after`).
   */
  metrics: { before?: Record<string, number>; best?: Record<string, number>; after?: Record<string, number> };
  primaryMetric?: string;
  /** The step of the best evaluation (0 = the base encoder was never beaten). */
  bestStep?: number;
  /** Every evaluation, the base encoder's first. */
  evaluations: Evaluation[];
  /** Set when --patience stopped training before its last step. */
  stoppedAt?: number;
  totalSteps: number;
  /** What was read, one line each. */
  dataInfo: { train: string; eval?: string };
  history: Array<{ step: number; epoch: number; loss: number; lr: number }>;
  skippedSteps: number;
  /** Distinct texts; how many the encoder ran on (the rest were cached); how many it truncated. */
  texts: { distinct: number; encoded: number; truncated: number };
  /** The adapter folder written, when config.out was given. */
  out?: string;
  /** report.html in the adapter folder, when config.out was given. */
  report?: string;
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
  // --holdout acts on whichever of data and eval is a BEIR folder (e.g. triplets mined from
  // the training part, evaluated on the held-out queries); it needs at least one.
  const beirData = await isDirectory(config.data);
  const beirEval = config.eval ? await isDirectory(config.eval) : false;
  if (config.holdout && !beirData && !beirEval) {
    throw new EmbedtuneError("INVALID_ARGUMENT", "--holdout applies to BEIR folders; --data and --eval are data files", { field: "holdout" });
  }
  const dataset = await loadTrainingData(config.data, { split: config.split || undefined, holdout: beirData ? config.holdout : 0 });
  const evalSet = config.eval ? await loadEvalData(config.eval, { split: config.evalSplit || undefined, holdout: beirEval ? config.holdout : 0 }) : null;
  const loss = lossFor(config, dataset);
  checkEvalSet(config, dataset, evalSet);
  const n = dataset.examples.length;
  const batchSize = config.batchSize === "auto" ? Math.min(AUTO_BATCH_SIZE[loss], n) : config.batchSize;
  if (batchSize !== "all" && batchSize > n) {
    throw new EmbedtuneError("INVALID_ARGUMENT", `batch size ${batchSize} is larger than the ${n} training examples`, { field: "batch-size" }, `use --batch-size all or at most ${n}`);
  }
  if (config.out) await checkOutputFolder(config.out, config.overwrite);

  const { table, trainData, evalData, base, prefixes } = await baseVectors(config, dataset, evalSet, emit);
  if (config.adapterKind === "weights") {
    const dataInfo = { train: describeData(dataset), ...(evalSet ? { eval: describeData(evalSet) } : {}) };
    return trainWeightAdapter({ config, dataset, evalSet, loss, batchSize, table, trainData, evalData, base, prefixes, dataInfo }, emit);
  }
  const D = base.dim;

  const rng = Rng.seeded(config.seed);
  const lora = initOutputLora(D, config.r, config.loraAlpha, rng);
  const validator = evalData ? new Validator(evalData, base.vectors, D, config.applyTo, config.patience, lora) : null;
  const validate = (when: "before" | "step" | "after", step: number, epoch: number): void => {
    const e = validator!.run(step, epoch, lora);
    emit({ phase: "eval", when, step, metrics: e.metrics, best: validator!.best === e });
  };
  if (validator) validate("before", 0, 0);
  const optimizer = new AdamW([lora.A, lora.B], { lr: config.lr, betas: config.betas, eps: config.eps, weightDecay: config.weightDecay });
  const sampler = new NoDuplicatesBatchSampler(textColumns(trainData), batchSize, rng);
  const epochs = Array.from({ length: config.epochs }, () => sampler.epoch());
  const totalSteps = epochs.reduce((s, batches) => s + batches.length, 0);
  if (totalSteps === 0) throw new EmbedtuneError("INVALID_DATA", "no batch of at least 2 distinct examples could be formed", { file: config.data });
  const lrAt = linearWarmupDecay(config.lr, totalSteps, config.warmupRatio);
  const step = createTrainStep(lora, optimizer, trainData, base.vectors, config.applyTo, config.scale, config.maxGradNorm, sampler.batchSize);

  const history: TrainResult["history"] = [];
  let k = 0;
  let skippedSteps = 0;
  let badInARow = 0;
  let stoppedAt: number | undefined;
  // Validation: every evalSteps steps, else at the end of every epoch; the last step's
  // evaluation is the final one ("after"). --patience stops after evaluations without gain.
  const evalNow = (epoch: number, i: number): boolean =>
    validator !== null && k < totalSteps && (config.evalSteps > 0 ? k % config.evalSteps === 0 : i === epochs[epoch].length - 1);
  training: for (let epoch = 0; epoch < epochs.length; epoch++) {
    for (let i = 0; i < epochs[epoch].length; i++) {
      const batch = epochs[epoch][i];
      const lr = lrAt(k);
      const result = await step.run(batch, lr);
      k++;
      if (result.skipped) {
        skippedSteps++;
        if (++badInARow >= config.maxBadSteps) {
          await step.close();
          throw new EmbedtuneError("DIVERGED", `training diverged: ${badInARow} steps in a row had a non-finite loss or gradient (at step ${k})`, {}, `try a lower --lr than ${config.lr}`);
        }
      } else {
        badInARow = 0;
        history.push({ step: k, epoch: epoch + 1, loss: result.loss, lr });
        emit({ phase: "train", step: k, totalSteps, epoch: epoch + 1, loss: result.loss, lr });
      }
      if (evalNow(epoch, i)) {
        validate("step", k, epoch + (i + 1) / epochs[epoch].length);
        if (validator!.exhausted) {
          stoppedAt = k;
          break training;
        }
      }
    }
  }
  await step.close();

  const metrics: TrainResult["metrics"] = {};
  if (validator) {
    if (stoppedAt === undefined) validate("after", k, epochs.length);
    metrics.before = validator.history[0].metrics;
    metrics.after = validator.last!.metrics;
    metrics.best = validator.best!.metrics;
    validator.restoreBest(lora); // the adapter returned and saved is the best one
  }
  const bestStep = validator?.best?.step;

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
      training: trainingRecord(config, { loss, batchSize, steps: totalSteps, stoppedAt: stoppedAt ?? null, skippedSteps, examples: n, distinctTexts: table.size }),
      metrics: validator ? { ...metrics, best_step: bestStep } : metrics,
      created_at: new Date().toISOString(),
      embedtune_version: VERSION,
    },
  };
  const dataInfo = { train: describeData(dataset), ...(evalSet ? { eval: describeData(evalSet) } : {}) };
  const result: TrainResult = {
    adapter, config, metrics, primaryMetric: validator?.primary, bestStep, evaluations: validator?.history ?? [], stoppedAt, totalSteps, dataInfo,
    history, skippedSteps, texts: { distinct: table.size, encoded: base.encoded, truncated: base.truncated }, out: config.out,
  };
  if (config.out) {
    await saveAdapter(config.out, adapter, config.overwrite);
    result.report = await writeReport(result, { trainData, evalData, vectors: base.vectors, batchSize: sampler.batchSize, loss });
  }
  return result;
}

/** The eval set must suit the training data, and must not be the training queries themselves. */
function checkEvalSet(config: TrainConfig, dataset: Dataset, evalSet: AnyDataset | null): void {
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
  evalData: IndexedEvalData | null;
  base: BaseVectors;
  prefixes: Prefixes;
}

/**
 * Base vectors for every text: from --vectors files, or from the frozen encoder (through the
 * cache) after the model's query/document prefixes are put in front of the texts.
 */
async function baseVectors(config: TrainConfig, dataset: Dataset, evalSet: AnyDataset | null, emit: (e: TrainEvent) => void): Promise<Prepared> {
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
async function checkOutputFolder(out: string, overwrite: boolean): Promise<void> {
  if (await isDirectory(out)) {
    if (!overwrite && (await readdir(out)).length > 0) {
      throw new EmbedtuneError("OUTPUT_EXISTS", `output folder ${out} already exists and is not empty`, {}, "pass --overwrite to replace it");
    }
  }
  await ensureWritableDir(path.dirname(path.resolve(out)));
}
