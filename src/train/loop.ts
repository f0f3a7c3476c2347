import { rm } from "node:fs/promises";
import path from "node:path";

import type { TrainConfig } from "../config.js";
import type { TextTable } from "../data/texts.js";
import { textColumns, type IndexedDataset } from "../data/texts.js";
import { EmbedtuneError } from "../errors.js";
import type { AdamW } from "../optim/adamw.js";
import { linearWarmupDecay } from "../optim/schedule.js";
import type { Rng } from "../util/rng.js";
import { checkpointDirFor, checkpointTensor, loadCheckpoint, runFingerprint, saveCheckpoint, type Checkpoint, type CheckpointKind } from "./checkpoint.js";
import { trainingRecord } from "./prepare.js";
import type { TrainEvent, TrainResult } from "./train.js";
import type { BestKeeper } from "./validation.js";

/**
 * The step loop both adapter kinds share: learning-rate schedule, skipped (non-finite) steps
 * and divergence, loss history, validation every --eval-steps or at epoch ends with
 * --patience, SIGINT/SIGTERM (shouldStop), and checkpoints / --resume. What differs between
 * the kinds (the step, the tensors trained, how evaluation encodes) comes in as LoopInput.
 *
 * Checkpoints: the batch plan is a pure function of the seed and the data, so a run is
 * resumed by restoring weights, optimizer moments, RNGs, counters and validation state, then
 * skipping the first k batches of the same plan.
 */
export interface LoopStep {
  run(batch: readonly number[], lr: number): { loss: number; skipped: boolean } | Promise<{ loss: number; skipped: boolean }>;
  close?(): Promise<void>;
}

export interface LoopInput {
  kind: CheckpointKind;
  config: TrainConfig;
  /** Every epoch's batches, planned up front. */
  epochs: number[][][];
  /** The trained tensors by the name a checkpoint gives them, in the optimizer's order. */
  params: Array<[string, Float32Array]>;
  optimizer: AdamW;
  /** The sampler's RNG first, then any the steps draw from (LoRA dropout). */
  rngs: Rng[];
  validator: BestKeeper | null;
  /** Evaluates and emits the evaluation (the validator records it). */
  validate: (when: "before" | "step" | "after", step: number, epoch: number) => void | Promise<void>;
  fingerprint: string;
  emit: (e: TrainEvent) => void;
  shouldStop?: () => boolean;
}

/** sha256 over what a resumed run must share with the run that wrote its checkpoint. */
export function fingerprintRun(config: TrainConfig, extra: Record<string, unknown>, table: TextTable, trainData: IndexedDataset, base: { vectors: Float32Array; model: { sha256: string } }): string {
  const { resume: _resume, checkpointEvery: _every, checkpointDir: _dir, ...settings } = config;
  return runFingerprint([JSON.stringify(trainingRecord(settings as TrainConfig, extra)), ...table.texts(), ...textColumns(trainData), base.vectors, base.model.sha256]);
}

export class TrainingLoop {
  readonly history: TrainResult["history"] = [];
  readonly totalSteps: number;
  /** Where checkpoints go ("" = nowhere: no --out and no --checkpoint-dir). */
  readonly checkpointDir: string;
  k = 0; // optimizer steps done, skipped ones included
  skippedSteps = 0;
  stoppedAt: number | undefined;
  resumedFrom: number | null = null;
  private badInARow = 0;

  constructor(private readonly input: LoopInput) {
    const { config, epochs } = input;
    this.totalSteps = epochs.reduce((s, batches) => s + batches.length, 0);
    if (this.totalSteps === 0) throw new EmbedtuneError("INVALID_DATA", "no batch of at least 2 distinct examples could be formed", { file: config.data });
    this.checkpointDir = config.checkpointDir || (config.out ? checkpointDirFor(config.out) : "");
  }

  /** With --resume, continues from the checkpoint when there is one (else starts at step 0). */
  async resume(): Promise<void> {
    const { config, kind, fingerprint, params, optimizer, rngs, validator } = this.input;
    if (!config.resume) return;
    const dir = this.checkpointDir;
    if (!dir) throw new EmbedtuneError("INVALID_ARGUMENT", "--resume needs --out (or --checkpoint-dir) to find the checkpoint", { field: "resume" });
    const saved = await loadCheckpoint(dir, fingerprint, kind);
    if (!saved) return;
    const t = (name: string, length: number) => checkpointTensor(saved, dir, name, length);
    const { state } = saved;
    const stepRngs = state.stepRngs ?? [];
    if (stepRngs.length !== rngs.length - 1) {
      throw new EmbedtuneError("INVALID_FILE", `stepRngs holds ${stepRngs.length} RNG states, this run has ${rngs.length - 1}`, { file: path.join(dir, "checkpoint.json"), field: "stepRngs" }, "delete the folder to start over");
    }
    for (const [name, p] of params) p.set(t(name, p.length));
    optimizer.loadState({ step: state.adamStep, m: params.map(([name, p]) => t(`exp_avg.${name}`, p.length)), v: params.map(([name, p]) => t(`exp_avg_sq.${name}`, p.length)) });
    [state.rng, ...stepRngs].forEach((s, i) => rngs[i].restore(s));
    if (validator && state.validation) validator.restore(state.validation, t);
    ({ step: this.k, skippedSteps: this.skippedSteps, badInARow: this.badInARow } = state);
    this.history.push(...state.history);
    this.resumedFrom = this.k;
  }

  /** Runs the steps left; stops early on --patience, throws DIVERGED or INTERRUPTED. */
  async run(step: LoopStep): Promise<void> {
    const { config, epochs, validator, validate, emit, shouldStop } = this.input;
    const lrAt = linearWarmupDecay(config.lr, this.totalSteps, config.warmupRatio);
    // Validation: every evalSteps steps, else at the end of every epoch; the last step's
    // evaluation is the final one ("after"). --patience stops after evaluations without gain.
    const evalNow = (epoch: number, i: number): boolean =>
      validator !== null && this.k < this.totalSteps && (config.evalSteps > 0 ? this.k % config.evalSteps === 0 : i === epochs[epoch].length - 1);
    let position = 0; // index of the batch in the whole plan
    try {
      training: for (let epoch = 0; epoch < epochs.length; epoch++) {
        for (let i = 0; i < epochs[epoch].length; i++, position++) {
          if (position < this.k) continue; // done before the checkpoint this run resumed from
          const lr = lrAt(this.k);
          const result = await step.run(epochs[epoch][i], lr);
          const k = ++this.k;
          if (result.skipped) {
            this.skippedSteps++;
            if (++this.badInARow >= config.maxBadSteps) {
              throw new EmbedtuneError("DIVERGED", `training diverged: ${this.badInARow} steps in a row had a non-finite loss or gradient (at step ${k})`, {}, `try a lower --lr than ${config.lr}`);
            }
          } else {
            this.badInARow = 0;
            this.history.push({ step: k, epoch: epoch + 1, loss: result.loss, lr });
            emit({ phase: "train", step: k, totalSteps: this.totalSteps, epoch: epoch + 1, loss: result.loss, lr });
          }
          if (evalNow(epoch, i)) {
            await validate("step", k, epoch + (i + 1) / epochs[epoch].length);
            if (validator!.exhausted) {
              this.stoppedAt = k;
              break training;
            }
          }
          if (shouldStop?.()) {
            await this.checkpoint();
            const where = this.checkpointDir ? `checkpoint saved in ${this.checkpointDir}` : "nothing saved (no --out)";
            throw new EmbedtuneError("INTERRUPTED", `interrupted at step ${k} of ${this.totalSteps}; ${where}`, {}, this.checkpointDir ? "run the same command with --resume to continue" : undefined);
          }
          if (config.checkpointEvery > 0 && k % config.checkpointEvery === 0 && k < this.totalSteps) await this.checkpoint();
        }
      }
    } finally {
      await step.close?.();
    }
    if (validator && this.stoppedAt === undefined) await validate("after", this.k, epochs.length);
  }

  /** The metrics TrainResult reports: the base encoder's, the best evaluation's, the last one's. */
  metrics(): TrainResult["metrics"] {
    const v = this.input.validator;
    return v ? { before: v.history[0].metrics, after: v.last!.metrics, best: v.best!.metrics } : {};
  }

  /** Called once the adapter is whole on disk: its checkpoint has nothing left to give. */
  async discardCheckpoint(): Promise<void> {
    if (this.checkpointDir) await rm(this.checkpointDir, { recursive: true, force: true });
  }

  private async checkpoint(): Promise<void> {
    if (this.checkpointDir) await saveCheckpoint(this.checkpointDir, this.snapshot());
  }

  private snapshot(): Checkpoint {
    const { kind, fingerprint, params, optimizer, rngs, validator } = this.input;
    const adam = optimizer.state();
    const tensors = new Map<string, Float32Array>();
    params.forEach(([name, p], i) => {
      tensors.set(name, p);
      tensors.set(`exp_avg.${name}`, adam.m[i]);
      tensors.set(`exp_avg_sq.${name}`, adam.v[i]);
    });
    if (validator) for (const [name, t] of validator.checkpointTensors()) tensors.set(name, t);
    return {
      state: {
        version: 1, kind, fingerprint, step: this.k, skippedSteps: this.skippedSteps, badInARow: this.badInARow, adamStep: adam.step,
        rng: rngs[0].state(), stepRngs: rngs.slice(1).map((r) => r.state()), history: this.history, validation: validator?.state(),
      },
      tensors,
    };
  }
}
