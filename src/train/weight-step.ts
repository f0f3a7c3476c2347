/**
 * One optimisation step of weight-space LoRA (LoRA pairs inside the encoder), the counterpart
 * of AdapterStep (step.ts) with the same losses, clipping, AdamW and StepResult:
 *
 *   token ids of the batch's texts -> engine forward (LoRA inside) -> z -> loss forward/backward
 *   -> dz -> engine backward (dA, dB of every pair) -> clip global norm -> AdamW
 *
 * The adapted columns (anchors / sentence1 always; positives, negatives / sentence2 when
 * apply_to is "both") go through the engine as ONE packed batch of B · C texts; with
 * apply_to "query" the other columns keep the frozen encoder's base vectors (normalised).
 *
 * With LoRA only on the top layers, the hidden state entering the first trained layer
 * depends on the text alone: StartCache keeps it per text (up to a memory cap), so the
 * frozen lower layers run once per text, like the base vectors.
 */
import type { IndexedDataset } from "../data/texts.js";
import { packBatch, type TokenBatch } from "../engine/batch.js";
import { Engine } from "../engine/engine.js";
import type { WeightLora } from "../engine/lora.js";
import { loraParams } from "../engine/lora.js";
import type { EngineModel } from "../engine/model.js";
import type { ApplyTo } from "../io/adapter-folder.js";
import { createCosentWork, cosentForwardBackward, type CosentWork } from "../losses/cosent.js";
import { createInfoNceWork, infoNceForwardBackward, type InfoNceWork } from "../losses/infonce.js";
import { normalizeForward } from "../lora/output-adapter.js";
import { AdamW } from "../optim/adamw.js";
import { clipGradNorm } from "../optim/clip.js";
import type { Rng } from "../util/rng.js";
import type { StepResult } from "./step.js";

/** x_first per text id, kept while the total stays under a byte budget (float32). */
export class StartCache {
  private readonly rows = new Map<number, Float32Array>();
  private bytes = 0;
  constructor(readonly width: number, readonly maxBytes: number) {}

  get(id: number): Float32Array | undefined {
    return this.rows.get(id);
  }

  /** Keeps a copy of a text's rows (L, width) if the budget allows; returns whether it did. */
  put(id: number, rows: Float32Array): boolean {
    if (this.rows.has(id)) return true;
    if (this.bytes + rows.byteLength > this.maxBytes) return false;
    this.rows.set(id, rows.slice());
    this.bytes += rows.byteLength;
    return true;
  }

  get size(): number {
    return this.rows.size;
  }

  get usedBytes(): number {
    return this.bytes;
  }
}

export interface WeightStepOptions {
  applyTo: ApplyTo;
  scale: number;
  maxGradNorm: number;
  /** Draws lora_dropout masks. */
  rng: Rng;
  /** Cap for StartCache in bytes (0 = no cache); used when LoRA sits above layer 0 only. */
  startCacheBytes: number;
}

export class WeightLoraStep {
  readonly params: Float32Array[];
  private engine: Engine | null = null;
  private z = new Float32Array(0); // (C·B, D) outputs of the adapted texts
  private dz = new Float32Array(0);
  private start = new Float32Array(0); // (T, startWidth)
  private discard = new Float32Array(0); // (B, D) CoSENT's gradient for a side that is not adapted
  private readonly sides: Array<{ ids: Int32Array; adapted: boolean }>;
  private readonly base: { z: Float32Array; norms: Float32Array };
  private readonly infoNce: InfoNceWork | null;
  private readonly cosent: CosentWork | null;
  private readonly scores: Float32Array;
  readonly startCache: StartCache | null;

  constructor(
    readonly model: EngineModel,
    readonly lora: WeightLora,
    private readonly optimizer: AdamW,
    private readonly data: IndexedDataset,
    private readonly tokens: readonly Int32Array[], // token ids of every text id, cut to the model's maximum
    private readonly baseVectors: Float32Array | null, // (T, D) frozen encoder vectors: needed when apply_to is "query"
    private readonly options: WeightStepOptions,
    maxBatch: number,
  ) {
    const D = model.dim;
    const columns = data.kind === "pairs" ? [data.anchors, data.positives, ...(data.negatives ? [data.negatives] : [])] : [data.s1, data.s2];
    this.sides = columns.map((ids, i) => ({ ids, adapted: i === 0 || options.applyTo === "both" }));
    this.params = loraParams(lora) as Float32Array[];
    this.base = { z: new Float32Array(maxBatch * D * columns.length), norms: new Float32Array(maxBatch * columns.length) };
    this.infoNce = data.kind === "pairs" ? createInfoNceWork(maxBatch) : null;
    this.cosent = data.kind === "scored" ? createCosentWork(maxBatch) : null;
    this.scores = new Float32Array(maxBatch);
    const n = model.layers.length;
    const width = lora.firstLayer < n ? model.layers[lora.firstLayer].query.inDim : model.dim;
    this.startCache = lora.firstLayer > 0 && options.startCacheBytes > 0 ? new StartCache(width, options.startCacheBytes) : null;
  }

  run(batch: readonly number[], lr: number): StepResult {
    const B = batch.length;
    const D = this.model.dim;
    const adapted = this.sides.filter((s) => s.adapted);
    const textIds: number[] = [];
    for (const side of adapted) for (let b = 0; b < B; b++) textIds.push(side.ids[batch[b]]);
    const packed = packBatch(textIds.map((t) => this.tokens[t]));
    const engine = this.engineFor(packed);
    const N = packed.N;
    if (this.z.length < N * D) {
      this.z = new Float32Array(N * D);
      this.dz = new Float32Array(N * D);
    }
    engine.forward(this.z, packed, this.options.rng, this.startRows(engine, packed, textIds));

    // z and dz of each column: views into the packed outputs, or normalised base vectors.
    const zOf: Float32Array[] = [];
    const dzOf: Array<Float32Array | null> = [];
    let a = 0;
    this.sides.forEach((side, c) => {
      if (side.adapted) {
        zOf.push(this.z.subarray(a * B * D, (a + 1) * B * D));
        dzOf.push(this.dz.subarray(a * B * D, (a + 1) * B * D));
        a++;
        return;
      }
      const x = this.base.z.subarray(c * B * D, (c + 1) * B * D);
      for (let b = 0; b < B; b++) x.set(this.baseVectors!.subarray(side.ids[batch[b]] * D, (side.ids[batch[b]] + 1) * D), b * D);
      normalizeForward(x, this.base.norms.subarray(c * B, (c + 1) * B), x, B, D);
      zOf.push(x);
      dzOf.push(null);
    });

    let loss: number;
    if (this.data.kind === "pairs") {
      loss = infoNceForwardBackward(dzOf[0]!, dzOf[1], dzOf[2] ?? null, zOf[0], zOf[1], zOf[2] ?? null, B, D, this.options.scale, this.infoNce!);
    } else {
      for (let b = 0; b < B; b++) this.scores[b] = this.data.scores[batch[b]];
      if (this.discard.length < B * D) this.discard = new Float32Array(B * D);
      const dz2 = dzOf[1] ?? this.discard; // CoSENT writes both; the base side's is discarded
      loss = cosentForwardBackward(dzOf[0]!, dz2, zOf[0], zOf[1], this.scores, B, D, this.options.scale, this.cosent!);
    }

    engine.zeroGrad();
    engine.backward(this.dz);
    const grads = engine.grads.flat as Float32Array[];
    const { totalNorm } = clipGradNorm(grads, this.options.maxGradNorm);
    if (!Number.isFinite(loss) || !Number.isFinite(totalNorm)) return { loss, gradNorm: totalNorm, skipped: true };
    this.optimizer.step(grads, lr);
    return { loss, gradNorm: totalNorm, skipped: false };
  }

  /** The gradients of the last step, after clipping (what AdamW used), in params order. */
  get grads(): Float32Array[] {
    return (this.engine?.grads.flat ?? []) as Float32Array[];
  }

  /** An engine whose buffers fit the batch; grown (by 25% headroom) when a batch is larger. */
  private engineFor(batch: TokenBatch): Engine {
    const e = this.engine;
    if (e && batch.T <= e.limits.maxT && batch.N <= e.limits.maxN) return e;
    const maxT = Math.max(batch.T, Math.ceil((e?.limits.maxT ?? 0) * 1.25));
    const maxN = Math.max(batch.N, e?.limits.maxN ?? 0);
    this.engine = new Engine(this.model, this.lora, { maxT, maxN });
    return this.engine;
  }

  /** x_first of every text from the StartCache, computing (and caching) what is missing; null without a cache. */
  private startRows(engine: Engine, batch: TokenBatch, textIds: number[]): Float32Array | null {
    const cache = this.startCache;
    if (!cache) return null;
    const W = cache.width;
    if (this.start.length < batch.T * W) this.start = new Float32Array(engine.limits.maxT * W);
    const missing = textIds.some((t) => cache.get(t) === undefined);
    if (missing) engine.bottom(this.start, batch);
    textIds.forEach((t, i) => {
      const o = batch.offsets[i] * W;
      const n = (batch.offsets[i + 1] - batch.offsets[i]) * W;
      const rows = cache.get(t);
      if (rows) this.start.set(rows, o);
      else cache.put(t, this.start.subarray(o, o + n));
    });
    return this.start;
  }
}
