/**
 * The InfoNCE training step run by onnxruntime: the graph of src/train/step-graph.ts computes
 * loss, dA and dB in one call; clipping and AdamW run here in JavaScript on the same
 * Float32Arrays the graph reads as lora_A / lora_B, so the weights never leave JS memory.
 *
 * Per step the only work on the JS side is writing C·B int64 text ids into a reusable buffer;
 * the vector table (T, D) and its rows' squared norms (computed here once: the table is
 * frozen) are bound once and gathered inside the graph. One session per batch
 * size (the last batch of an epoch may be smaller), created on first use.
 *
 * Reproducible: onnxruntime's CPU kernels with a fixed thread count give bitwise the same
 * results run after run, and AdamW/clipping are the same code as the reference step.
 * test/onnx-step.test.ts checks loss, dA and dB against the TypeScript reference step.
 */
import type { IndexedDataset, IndexedPairs } from "../data/texts.js";
import { BoundRun, OnnxSession } from "../encoder/runtime.js";
import type { ApplyTo } from "../io/adapter-folder.js";
import { scaling, type OutputLora } from "../lora/output-adapter.js";
import type { AdamW } from "../optim/adamw.js";
import { clipGradNorm } from "../optim/clip.js";
import { dotAt } from "../tensor/ops.js";
import { buildInfoNceStepGraph } from "./step-graph.js";
import { AdapterStep, type StepResult } from "./step.js";

/**
 * The runtime `embedtune train` uses: one thread. A step is ~60 small nodes, where a second
 * thread gains ~1.6x on an idle 2-core machine but loses 1.3-2.3x when the cores are shared
 * (bench: train); and with one thread the trained adapter is bitwise the same on every
 * machine, whatever its core count.
 */
export function defaultStepRuntime(): StepRuntime {
  return { threads: 1, spinning: true };
}

/** Batches above this size use the TypeScript step: the graph holds a few (B, B) float32 matrices. */
export const ONNX_STEP_MAX_BATCH = 4096;

/** How the step graph runs: intra-op threads, and whether idle threads spin (see OnnxSession.create). */
export interface StepRuntime {
  threads: number;
  spinning: boolean;
}

/** One optimisation step of the adapter (either implementation). */
export interface TrainStep {
  run(batch: readonly number[], lr: number): StepResult | Promise<StepResult>;
  close(): Promise<void>;
}

/**
 * The step for a dataset: the onnxruntime graph for pairs (InfoNCE), the TypeScript
 * reference step for scored pairs (CoSENT, O(B²) scalars, already cheap), for batches over
 * ONNX_STEP_MAX_BATCH, or everywhere when EMBEDTUNE_STEP=js (the reference, for debugging).
 */
export function createTrainStep(
  lora: OutputLora, optimizer: AdamW, data: IndexedDataset, vectors: Float32Array, applyTo: ApplyTo,
  scale: number, maxGradNorm: number, maxBatch: number, runtime: StepRuntime = defaultStepRuntime(),
): TrainStep {
  if (data.kind === "pairs" && maxBatch <= ONNX_STEP_MAX_BATCH && process.env.EMBEDTUNE_STEP !== "js") {
    return new OnnxInfoNceStep(lora, optimizer, data, vectors, applyTo, scale, maxGradNorm, runtime);
  }
  const step = new AdapterStep(lora, optimizer, data, vectors, applyTo, scale, maxGradNorm, maxBatch);
  return { run: (batch, lr) => step.run(batch, lr), close: async () => {} };
}

interface Bound {
  session: OnnxSession;
  run: BoundRun;
  rows: BigInt64Array; // (C·B) text ids
}

export class OnnxInfoNceStep implements TrainStep {
  readonly dA: Float32Array; // (R, D)
  readonly dB: Float32Array; // (D, R)
  private readonly loss = new Float32Array(1);
  private readonly columns: Int32Array[];
  private readonly bound = new Map<number, Bound>();
  private readonly T: number;
  private sqNorms: Float32Array | null = null; // (T, 1) ‖x‖² per row, made on first use

  constructor(
    readonly lora: OutputLora,
    private readonly optimizer: AdamW,
    data: IndexedPairs,
    private readonly vectors: Float32Array, // (T, D) base vector of every text id
    private readonly applyTo: ApplyTo,
    private readonly scale: number,
    private readonly maxGradNorm: number,
    private readonly runtime: StepRuntime = { threads: 1, spinning: true },
  ) {
    const { dim: D, r: R } = lora;
    this.columns = [data.anchors, data.positives, ...(data.negatives ? [data.negatives] : [])];
    this.dA = new Float32Array(R * D);
    this.dB = new Float32Array(D * R);
    this.T = Math.floor(vectors.length / D);
  }

  /** Floating-point operations of one step at batch size B (the graph's, without AdamW). */
  flopsAt(B: number): number {
    return buildInfoNceStepGraph(this.spec(B)).flops;
  }

  /** Loss and gradients for a batch, without the optimizer step (for tests and the bench). */
  async gradients(batch: readonly number[]): Promise<number> {
    const b = await this.boundFor(batch.length);
    const C = this.columns.length;
    const B = batch.length;
    for (let c = 0; c < C; c++) {
      const ids = this.columns[c];
      for (let i = 0; i < B; i++) b.rows[c * B + i] = BigInt(ids[batch[i]]);
    }
    await b.run.run();
    return this.loss[0];
  }

  async run(batch: readonly number[], lr: number): Promise<StepResult> {
    const loss = await this.gradients(batch);
    if (!Number.isFinite(loss)) return { loss, gradNorm: clipGradNorm([this.dA, this.dB], Infinity).totalNorm, skipped: true };
    // Clip the global norm, then AdamW (skipped when the norm is not finite), in one pass
    // through the optimiser's SIMD memory.
    const { totalNorm } = this.optimizer.clipAndStep([this.dA, this.dB], this.maxGradNorm, lr);
    return { loss, gradNorm: totalNorm, skipped: !Number.isFinite(totalNorm) };
  }

  async close(): Promise<void> {
    for (const b of this.bound.values()) await b.session.close();
    this.bound.clear();
  }

  private spec(B: number) {
    const { dim: D, r: R } = this.lora;
    const columns = this.columns.length as 2 | 3;
    return { B, D, R, T: this.T, columns, adaptRight: this.applyTo === "both", s: scaling(this.lora), scale: this.scale };
  }

  private async boundFor(B: number): Promise<Bound> {
    const existing = this.bound.get(B);
    if (existing) return existing;
    const { dim: D, r: R } = this.lora;
    const session = await OnnxSession.create(buildInfoNceStepGraph(this.spec(B)).model, this.runtime.threads, { spinning: this.runtime.spinning });
    const rows = new BigInt64Array(this.columns.length * B);
    this.sqNorms ??= rowSquaredNorms(this.vectors, this.T, D);
    const run = session.bind(
      {
        vectors: { type: "float32", data: this.vectors.subarray(0, this.T * D), dims: [this.T, D] },
        sq_norms: { type: "float32", data: this.sqNorms, dims: [this.T, 1] },
        rows: { type: "int64", data: rows, dims: [rows.length] },
        lora_A: { type: "float32", data: this.lora.A, dims: [R, D] },
        lora_B: { type: "float32", data: this.lora.B, dims: [D, R] },
      },
      {
        loss: { type: "float32", data: this.loss, dims: [] },
        dA: { type: "float32", data: this.dA, dims: [R, D] },
        dB: { type: "float32", data: this.dB, dims: [D, R] },
      },
    );
    const b = { session, run, rows };
    this.bound.set(B, b);
    return b;
  }
}

/** ‖x‖² of each of the T rows of a (T, D) table, summed in float64. */
function rowSquaredNorms(vectors: Float32Array, T: number, D: number): Float32Array {
  const out = new Float32Array(T);
  for (let t = 0; t < T; t++) out[t] = dotAt(vectors, t * D, vectors, t * D, D);
  return out;
}
