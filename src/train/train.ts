import { describeData, loadEvalData, loadTrainingData } from "../data/load.js";
import { NoDuplicatesBatchSampler } from "../data/sampler.js";
import { rm } from "node:fs/promises";

import { textColumns } from "../data/texts.js";
import { AUTO_BATCH_SIZE, resolveTrainConfig, type TrainConfig } from "../config.js";
import { EmbedtuneError } from "../errors.js";
import { ADAPTER_FORMAT, ADAPTER_FORMAT_VERSION, saveAdapter, type LoadedAdapter } from "../io/adapter-folder.js";
import { isDirectory } from "../io/atomic.js";
import { initOutputLora } from "../lora/output-adapter.js";
import { AdamW } from "../optim/adamw.js";
import { linearWarmupDecay } from "../optim/schedule.js";
import { Rng } from "../util/rng.js";
import { VERSION } from "../version.js";
import { createTrainStep } from "./onnx-step.js";
import { writeReport } from "./report.js";
import { trainWeightAdapter, type TrainedWeightAdapter } from "./weight-train.js";
import { Validator, type Evaluation } from "./validation.js";
import { checkpointDirFor, loadCheckpoint, runFingerprint, saveCheckpoint, type Checkpoint } from "./checkpoint.js";
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
    if (config.resume || config.checkpointEvery > 0) throw new EmbedtuneError("INVALID_ARGUMENT", "checkpoints are not supported for --adapter-kind weights yet", { field: "checkpoint-every" });
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

  const history: TrainResult["history"] = [];
  let k = 0;
  let skippedSteps = 0;
  let badInARow = 0;
  let stoppedAt: number | undefined;

  // Checkpoints: the plan above is a pure function of the seed and the data, so a run is
  // resumed by restoring weights, optimizer moments, counters and validation state, then
  // skipping the first k batches of the same plan.
  const checkpointDir = config.checkpointDir || (config.out ? checkpointDirFor(config.out) : "");
  const { resume: _resume, checkpointEvery: _every, checkpointDir: _dir, ...settings } = config;
  const fingerprint = runFingerprint([JSON.stringify(trainingRecord(settings as TrainConfig, { loss, batchSize })), ...table.texts(), ...textColumns(trainData), base.vectors, base.model.sha256]);
  const snapshot = (): Checkpoint => {
    const adam = optimizer.state();
    const tensors = new Map<string, Float32Array>([["lora_A", lora.A], ["lora_B", lora.B], ["exp_avg.lora_A", adam.m[0]], ["exp_avg.lora_B", adam.m[1]], ["exp_avg_sq.lora_A", adam.v[0]], ["exp_avg_sq.lora_B", adam.v[1]]]);
    const validation = validator?.snapshot();
    if (validation) {
      tensors.set("best.lora_A", validation.bestA);
      tensors.set("best.lora_B", validation.bestB);
    }
    return { state: { version: 1, fingerprint, step: k, skippedSteps, badInARow, adamStep: adam.step, rng: rng.state(), history, validation: validation?.state }, tensors };
  };
  let resumedFrom: number | null = null;
  if (config.resume) {
    if (!checkpointDir) throw new EmbedtuneError("INVALID_ARGUMENT", "--resume needs --out (or --checkpoint-dir) to find the checkpoint", { field: "resume" });
    const saved = await loadCheckpoint(checkpointDir, fingerprint);
    if (saved) {
      const t = (name: string) => saved.tensors.get(name)!;
      lora.A.set(t("lora_A"));
      lora.B.set(t("lora_B"));
      optimizer.loadState({ step: saved.state.adamStep, m: [t("exp_avg.lora_A"), t("exp_avg.lora_B")], v: [t("exp_avg_sq.lora_A"), t("exp_avg_sq.lora_B")] });
      rng.restore(saved.state.rng);
      if (validator && saved.state.validation) validator.restore(saved.state.validation, t("best.lora_A"), t("best.lora_B"));
      ({ step: k, skippedSteps, badInARow } = saved.state);
      history.push(...saved.state.history);
      resumedFrom = k;
    }
  }
  const step = createTrainStep(lora, optimizer, trainData, base.vectors, config.applyTo, config.scale, config.maxGradNorm, sampler.batchSize);
  const checkpoint = async (): Promise<void> => {
    if (checkpointDir) await saveCheckpoint(checkpointDir, snapshot());
  };
  // Validation: every evalSteps steps, else at the end of every epoch; the last step's
  // evaluation is the final one ("after"). --patience stops after evaluations without gain.
  const evalNow = (epoch: number, i: number): boolean =>
    validator !== null && k < totalSteps && (config.evalSteps > 0 ? k % config.evalSteps === 0 : i === epochs[epoch].length - 1);
  let position = 0; // index of the batch in the whole plan
  training: for (let epoch = 0; epoch < epochs.length; epoch++) {
    for (let i = 0; i < epochs[epoch].length; i++, position++) {
      if (position < k) continue; // done before the checkpoint this run resumed from
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
      if (options.shouldStop?.()) {
        await step.close();
        await checkpoint();
        throw new EmbedtuneError("INTERRUPTED", `interrupted at step ${k} of ${totalSteps}; ${checkpointDir ? `checkpoint saved in ${checkpointDir}` : "nothing saved (no --out)"}`, {}, checkpointDir ? "run the same command with --resume to continue" : undefined);
      }
      if (config.checkpointEvery > 0 && k % config.checkpointEvery === 0 && k < totalSteps) await checkpoint();
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
    history, skippedSteps, texts: { distinct: table.size, encoded: base.encoded, truncated: base.truncated }, out: config.out, resumedFrom,
  };
  if (config.out) {
    await saveAdapter(config.out, adapter, config.overwrite || resumedFrom !== null);
    result.report = await writeReport(result, { trainData, evalData, vectors: base.vectors, batchSize: sampler.batchSize, loss });
  }
  // The adapter is whole on disk: its checkpoint has nothing left to give.
  if (checkpointDir) await rm(checkpointDir, { recursive: true, force: true });
  return result;
}

