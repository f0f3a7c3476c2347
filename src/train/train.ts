import { describeData, loadEvalData, loadTrainingData } from "../data/load.js";
import { NoDuplicatesBatchSampler } from "../data/sampler.js";

import { textColumns } from "../data/texts.js";
import { AUTO_BATCH_SIZE, resolveTrainConfig, type TrainConfig } from "../config.js";
import { EmbedtuneError } from "../errors.js";
import { ADAPTER_FORMAT, ADAPTER_FORMAT_VERSION, saveAdapter, type LoadedAdapter } from "../io/adapter-folder.js";
import { isDirectory } from "../io/atomic.js";
import { initOutputLora } from "../lora/output-adapter.js";
import { AdamW } from "../optim/adamw.js";
import { Rng } from "../util/rng.js";
import { VERSION } from "../version.js";
import { createTrainStep } from "./onnx-step.js";
import { writeReport } from "./report.js";
import { trainWeightAdapter, type TrainedWeightAdapter } from "./weight-train.js";
import { Validator, type Evaluation } from "./validation.js";
import { fingerprintRun, TrainingLoop } from "./loop.js";
import { baseVectors, checkEvalSet, checkOutputFolder, lossFor, trainingRecord } from "./prepare.js";

export type TrainEvent =
  | { phase: "encode"; done: number; total: number }
  | { phase: "train"; step: number; totalSteps: number; epoch: number; loss: number; lr: number }
  // before: the base encoder (step 0); step: a periodic evaluation; after: the final adapter
  | { phase: "eval"; when: "before" | "step" | "after"; step: number; metrics: Record<string, number>; best: boolean };

export interface TrainOptions {
  onEvent?: (event: TrainEvent) => void;
  /**
   * Polled after every step: true (e.g. after SIGINT) saves a checkpoint when there is a
   * place for one and stops with an EmbedtuneError of code INTERRUPTED.
   */
  shouldStop?: () => boolean;
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
  /** The step a --resume run continued from (null: it started at step 0). */
  resumedFrom: number | null;
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
    return trainWeightAdapter({ config, dataset, evalSet, loss, batchSize, table, trainData, evalData, base, prefixes, dataInfo }, emit, options);
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
  const loop = new TrainingLoop({
    kind: "output", config, epochs: Array.from({ length: config.epochs }, () => sampler.epoch()), params: [["lora_A", lora.A], ["lora_B", lora.B]], optimizer, rngs: [rng],
    validator, validate, fingerprint: fingerprintRun(config, { loss, batchSize }, table, trainData, base), emit, shouldStop: options.shouldStop,
  });
  await loop.resume();
  const { totalSteps } = loop;
  await loop.run(createTrainStep(lora, optimizer, trainData, base.vectors, config.applyTo, config.scale, config.maxGradNorm, sampler.batchSize));
  const { history, skippedSteps, stoppedAt, resumedFrom } = loop;
  const metrics = loop.metrics();
  validator?.restoreBest(lora); // the adapter returned and saved is the best one
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
    history, skippedSteps, texts: { distinct: table.size, encoded: base.encoded, truncated: base.truncated }, out: config.out, resumedFrom,
  };
  if (config.out) {
    await saveAdapter(config.out, adapter, config.overwrite || resumedFrom !== null);
    result.report = await writeReport(result, { trainData, evalData, vectors: base.vectors, batchSize: sampler.batchSize, loss });
  }
  await loop.discardCheckpoint();
  return result;
}

