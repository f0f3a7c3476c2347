/**
 * The encoder engine: forward and backward of a whole model (model.ts) with LoRA pairs
 * (lora.ts) on a packed batch (batch.ts), llm.c-style: buffers allocated once for the
 * largest batch, the forward keeps what the backward needs, the backward accumulates.
 *
 *   frozen bottom:  x_0 = embed(tokens); x_{l+1} = layer_l(x_l) for l < first     (nothing kept)
 *   trained top:    x_{l+1} = layer_l(x_l) for first ≤ l < n                        (activations kept)
 *   head:           z = normalize(pool(x_n) ...)
 *   backward:       dz -> dx_n -> layer backward n−1 .. first (LoRA grads +=) -> stop
 *
 * `first` is the lowest layer with a LoRA pair: no gradient flows below it, and its input
 * x_first depends on the text alone, so a trainer may compute it once per text and pass it
 * back in (forward's `start`), skipping the frozen bottom.
 */
import type { Float } from "../tensor/ops.js";
import type { Rng } from "../util/rng.js";
import { probsSize } from "./attention.js";
import type { TokenBatch } from "./batch.js";
import { createLoraGrads, type WeightLora } from "./lora.js";
import type { EngineModel, HeadCache, Precision } from "./model.js";
import {
  createLayerActs, createLayerScratch, layerBackward, layerForward, layerWidths,
  type LayerActs, type LayerLora, type LayerLoraGrads, type LayerParams, type LayerScratch,
} from "./transformer-layer.js";

export interface EngineLimits {
  maxT: number; // tokens per batch
  maxN: number; // texts per batch
  precision?: Precision;
}

export class Engine {
  readonly first: number; // lowest trained layer (n when there is no LoRA)
  readonly grads: { flat: Float[]; perLayer: LayerLoraGrads[] };
  private readonly perLayer: LayerLora[];
  private readonly hidden: Float[]; // hidden[l] (T, Din_l) for first ≤ l ≤ n; hidden[n] is the last hidden state
  private readonly acts: LayerActs[]; // for first ≤ l < n
  private readonly bottomActs = new Map<string, LayerActs>(); // frozen layers' scratch, one per layer shape
  private readonly pingPong: [Float, Float];
  private readonly head: HeadCache;
  private readonly scratch: LayerScratch | null;
  private readonly dHidden: [Float, Float];
  private readonly maxProbs: number;
  private batch: TokenBatch | null = null;

  constructor(readonly model: EngineModel, readonly lora: WeightLora | null, readonly limits: EngineLimits) {
    const prec = limits.precision ?? 32;
    const C = prec === 64 ? Float64Array : Float32Array;
    const n = model.layers.length;
    const { maxT, maxN } = limits;
    const maxL = Math.min(model.maxTokens, maxT);
    this.first = lora ? lora.firstLayer : n;
    this.perLayer = lora ? lora.perLayer : model.layers.map(() => ({}));
    const heads = Math.max(...model.layers.map((p) => p.heads));
    this.maxProbs = heads * maxT * maxL; // Σ L_i² ≤ maxT · maxL
    const widths = model.layers.map(layerWidths);
    const widest = Math.max(...widths.map((w) => Math.max(w.Din, w.H)));
    this.hidden = [];
    for (let l = this.first; l <= n; l++) this.hidden[l] = new C(maxT * (l < n ? widths[l].Din : widths[n - 1].H));
    this.acts = [];
    for (let l = this.first; l < n; l++) this.acts[l] = createLayerActs(model.layers[l], this.perLayer[l], maxT, this.maxProbs, prec);
    for (let l = 0; l < this.first; l++) {
      const key = shapeKey(model.layers[l]);
      if (!this.bottomActs.has(key)) this.bottomActs.set(key, createLayerActs(model.layers[l], {}, maxT, this.maxProbs, prec));
    }
    this.pingPong = [new C(this.first > 0 ? maxT * widest : 0), new C(this.first > 0 ? maxT * widest : 0)];
    this.head = model.createHeadCache(maxN, prec);
    const trained = model.layers.slice(this.first);
    this.scratch = trained.length ? createLayerScratch(trained, maxT, maxL, prec) : null;
    this.dHidden = [new C(trained.length ? maxT * widest : 0), new C(trained.length ? maxT * widest : 0)];
    this.grads = lora ? createLoraGrads(lora, n, prec) : { flat: [], perLayer: model.layers.map(() => ({})) };
  }

  /** Width of the hidden state entering the first trained layer (what `start` holds per token). */
  get startWidth(): number {
    const n = this.model.layers.length;
    return this.first < n ? layerWidths(this.model.layers[this.first]).Din : layerWidths(this.model.layers[n - 1]).H;
  }

  /** x_first (T, startWidth) of a batch: the embeddings through the frozen layers below `first`. OVERWRITES out. */
  bottom(out: Float, batch: TokenBatch): void {
    this.check(batch);
    const n = this.model.layers.length;
    if (this.first === 0) {
      this.model.embedForward(out, batch);
      return;
    }
    let x = this.pingPong[0];
    this.model.embedForward(x, batch);
    for (let l = 0; l < this.first; l++) {
      const y = l === this.first - 1 ? out : this.pingPong[(l + 1) % 2];
      layerForward(y, this.bottomActs.get(shapeKey(this.model.layers[l]))!, x, batch, this.model.layers[l], this.perLayer[l], null);
      x = y;
    }
  }

  /**
   * z (N, dim) = the encoder's unit vectors for the batch, OVERWRITTEN. `start`: x_first
   * (T, startWidth) computed earlier by bottom(); omitted, the bottom runs now. `rng`: draws
   * lora_dropout masks (training); null at inference.
   */
  forward(z: Float, batch: TokenBatch, rng: Rng | null = null, start: Float | null = null): void {
    this.check(batch);
    const n = this.model.layers.length;
    const x0 = this.hidden[this.first];
    if (start) x0.set(start.subarray(0, batch.T * this.startWidth));
    else this.bottom(x0, batch);
    for (let l = this.first; l < n; l++) layerForward(this.hidden[l + 1], this.acts[l], this.hidden[l], batch, this.model.layers[l], this.perLayer[l], rng);
    this.model.headForward(z, this.head, this.hidden[n], batch);
    this.batch = batch;
  }

  /** The last hidden state (T, H) of the latest forward. */
  get lastHidden(): Float {
    return this.hidden[this.model.layers.length];
  }

  /** Sets every LoRA gradient to zero (the only place gradients are cleared). */
  zeroGrad(): void {
    for (const g of this.grads.flat) g.fill(0);
  }

  /** Backward of the latest forward: ACCUMULATES dL/dA, dL/dB of every pair into grads, given dz (N, dim). */
  backward(dz: Float): void {
    const batch = this.batch;
    if (!batch) throw new Error("Engine.backward before forward");
    const n = this.model.layers.length;
    if (this.first >= n) return;
    const T = batch.T;
    let dy = this.dHidden[0];
    dy.fill(0, 0, T * layerWidths(this.model.layers[n - 1]).H);
    this.model.headBackward(dy, dz, this.head, this.hidden[n], batch);
    for (let l = n - 1; l >= this.first; l--) {
      const p = this.model.layers[l];
      const dx = l > this.first ? this.dHidden[(n - l) % 2] : null;
      dx?.fill(0, 0, T * layerWidths(p).Din);
      layerBackward(dx, dy, this.acts[l], this.hidden[l], batch, p, this.perLayer[l], this.grads.perLayer[l], this.scratch!);
      if (dx) dy = dx;
    }
  }

  private check(batch: TokenBatch): void {
    const { maxT, maxN } = this.limits;
    if (batch.T > maxT || batch.N > maxN) throw new Error(`batch of ${batch.N} texts / ${batch.T} tokens exceeds the engine's ${maxN} / ${maxT}`);
    for (let i = 0; i < batch.N; i++) {
      if (batch.offsets[i + 1] - batch.offsets[i] > this.model.maxTokens) throw new Error(`text ${i} has more than the model's ${this.model.maxTokens} tokens`);
    }
    if (probsSize(batch.offsets, batch.N, Math.max(...this.model.layers.map((p) => p.heads))) > this.maxProbs) throw new Error("attention buffer too small");
  }
}

/** Layers with the same key can share activation buffers. */
function shapeKey(p: LayerParams): string {
  const w = layerWidths(p);
  return `${p.order}:${w.Din}:${w.A}:${w.H}:${w.F}:${p.residual ? 1 : 0}`;
}
