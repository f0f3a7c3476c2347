import type { IndexedDataset } from "../data/texts.js";
import type { ApplyTo } from "../io/adapter-folder.js";
import { createCosentWork, cosentForwardBackward, type CosentWork } from "../losses/cosent.js";
import { createInfoNceWork, infoNceForwardBackward, type InfoNceWork } from "../losses/infonce.js";
import {
  adapterBackward,
  adapterForward,
  createAdapterCache,
  normalizeForward,
  type AdapterCache,
  type OutputLora,
} from "../lora/output-adapter.js";
import { AdamW } from "../optim/adamw.js";
import { clipGradNorm } from "../optim/clip.js";

/**
 * One optimisation step of the output-space adapter on cached base vectors:
 *
 *   gather rows -> adapter forward (z) -> loss forward/backward (dz) -> adapter backward (dA, dB)
 *   -> clip global norm -> AdamW
 *
 * Dimensions: B examples in the batch, D vector dim, R rank. Buffers are allocated once for
 * the largest batch and reused, so the step loop does not allocate.
 *
 * The "left" column (anchors / sentence1) always passes through the adapter; the "right"
 * columns (positives, negatives / sentence2) do too when apply_to is "both", and are only
 * normalised when it is "query" (their gradient is then not needed).
 */
export interface StepResult {
  loss: number;
  gradNorm: number; // global norm before clipping
  /** The loss or gradient was not finite: the weights were left untouched. */
  skipped: boolean;
}

export class AdapterStep {
  private readonly sides: Side[]; // [left, right, (negatives)]
  private readonly dA: Float32Array; // (R, D)
  private readonly dB: Float32Array; // (D, R)
  private readonly infoNce: InfoNceWork | null;
  private readonly cosent: CosentWork | null;

  constructor(
    readonly lora: OutputLora,
    private readonly optimizer: AdamW,
    private readonly data: IndexedDataset,
    private readonly vectors: Float32Array, // (T, D) base vector of every text id
    private readonly applyTo: ApplyTo,
    private readonly scale: number,
    private readonly maxGradNorm: number,
    maxBatch: number,
  ) {
    const { dim: D, r: R } = lora;
    const columns = data.kind === "pairs" ? [data.anchors, data.positives, ...(data.negatives ? [data.negatives] : [])] : [data.s1, data.s2];
    this.sides = columns.map((ids, i) => new Side(ids, i === 0 || applyTo === "both", maxBatch, D, R));
    this.dA = new Float32Array(R * D);
    this.dB = new Float32Array(D * R);
    this.infoNce = data.kind === "pairs" ? createInfoNceWork(maxBatch) : null;
    this.cosent = data.kind === "scored" ? createCosentWork(maxBatch) : null;
  }

  run(batch: readonly number[], lr: number): StepResult {
    const B = batch.length;
    const D = this.lora.dim;
    for (const side of this.sides) side.forward(batch, this.vectors, this.lora);
    const [left, right, negatives] = this.sides;

    let loss: number;
    if (this.data.kind === "pairs") {
      loss = infoNceForwardBackward(
        left.dz, right.adapted ? right.dz : null, negatives?.adapted ? negatives.dz : null,
        left.z, right.z, negatives ? negatives.z : null,
        B, D, this.scale, this.infoNce!,
      );
    } else {
      const scores = this.scoresOf(batch);
      loss = cosentForwardBackward(left.dz, right.dz, left.z, right.z, scores, B, D, this.scale, this.cosent!);
    }

    this.dA.fill(0);
    this.dB.fill(0);
    for (const side of this.sides) if (side.adapted) adapterBackward(this.dA, this.dB, null, side.dz, side.cache, side.x, B, this.lora);
    const { totalNorm } = clipGradNorm([this.dA, this.dB], this.maxGradNorm);
    if (!Number.isFinite(loss) || !Number.isFinite(totalNorm)) return { loss, gradNorm: totalNorm, skipped: true };
    this.optimizer.step([this.dA, this.dB], lr);
    return { loss, gradNorm: totalNorm, skipped: false };
  }

  private scoreBuffer = new Float32Array(0);

  private scoresOf(batch: readonly number[]): Float32Array {
    if (this.data.kind !== "scored") throw new Error("scores of a pairs dataset");
    if (this.scoreBuffer.length < batch.length) this.scoreBuffer = new Float32Array(batch.length);
    batch.forEach((e, i) => (this.scoreBuffer[i] = (this.data as { scores: Float32Array }).scores[e]));
    return this.scoreBuffer;
  }
}

/** One column of the batch: its gathered base rows, outputs and gradient buffers. */
class Side {
  readonly x: Float32Array; // (B, D) gathered base vectors
  readonly z: Float32Array; // (B, D) normalised outputs
  readonly dz: Float32Array; // (B, D) dL/dz
  readonly norms: Float32Array; // (B) when only normalised
  readonly cache: AdapterCache;

  constructor(
    private readonly ids: Int32Array,
    readonly adapted: boolean,
    maxBatch: number,
    private readonly D: number,
    R: number,
  ) {
    this.x = new Float32Array(maxBatch * D);
    this.z = new Float32Array(maxBatch * D);
    this.dz = new Float32Array(maxBatch * D);
    this.norms = new Float32Array(maxBatch);
    this.cache = createAdapterCache(adapted ? maxBatch : 1, D, R);
  }

  forward(batch: readonly number[], vectors: Float32Array, lora: OutputLora): void {
    const D = this.D;
    const B = batch.length;
    for (let b = 0; b < B; b++) {
      const t = this.ids[batch[b]];
      this.x.set(vectors.subarray(t * D, (t + 1) * D), b * D);
    }
    if (this.adapted) adapterForward(this.z, this.cache, this.x, B, lora);
    else normalizeForward(this.z, this.norms, this.x, B, D);
  }
}
