/**
 * AdamW exactly as torch.optim.AdamW (amsgrad off, single-tensor path), per element, at
 * step t = 1, 2, … with m, v starting at 0:
 *
 *     p ← p · (1 − lr · weight_decay)            decoupled decay, first, with this step's lr
 *     m ← β1 m + (1 − β1) g
 *     v ← β2 v + (1 − β2) g²
 *     p ← p − (lr / (1 − β1ᵗ)) · m / ( √v / √(1 − β2ᵗ) + eps )
 *
 * i.e. p − lr · m̂ / (√v̂ + eps). Not √(v̂ + eps), and not the "epsilon-hat" form
 * lr·√(1 − β2ᵗ)/(1 − β1ᵗ) · m / (√v + eps). Each element is computed in float64 and rounded
 * once when stored; m and v are kept in float32 like torch's state for float32 parameters.
 */
import { EmbedtuneError } from "../errors.js";
import { clipGradNorm, type ClipResult } from "./clip.js";
import { simdKernels, type SimdKernels } from "./simd-kernels.js";

export const ADAMW_DEFAULTS = {
  lr: 1e-3,
  betas: [0.9, 0.999] as [number, number],
  eps: 1e-8,
  weightDecay: 0.01,
};

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

/** Optimizer state, as saved in a checkpoint: step count t and the two moments per parameter. */
export interface AdamWState {
  step: number;
  m: Float32Array[];
  v: Float32Array[];
}

export class AdamW {
  readonly params: Float32Array[];
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private t = 0;
  private m: Float32Array[];
  private v: Float32Array[];
  /** The WebAssembly SIMD update (bitwise the same as the loops below), with p, g, m, v of each parameter in its memory. */
  private readonly simd: { k: SimdKernels; p: Float32Array[]; g: Float32Array[]; offsets: number[][]; scratch: number; parts: Float64Array } | null;

  /** Updates `params` in place on every step. */
  constructor(params: Float32Array[], opts: AdamWOptions = {}) {
    this.params = params;
    this.lr = opts.lr ?? ADAMW_DEFAULTS.lr;
    [this.beta1, this.beta2] = opts.betas ?? ADAMW_DEFAULTS.betas;
    this.eps = opts.eps ?? ADAMW_DEFAULTS.eps;
    this.weightDecay = opts.weightDecay ?? ADAMW_DEFAULTS.weightDecay;
    check(this.lr >= 0, "lr", this.lr, "must be >= 0");
    check(this.beta1 >= 0 && this.beta1 < 1, "betas[0]", this.beta1, "must be in [0, 1)");
    check(this.beta2 >= 0 && this.beta2 < 1, "betas[1]", this.beta2, "must be in [0, 1)");
    check(this.eps >= 0, "eps", this.eps, "must be >= 0");
    check(this.weightDecay >= 0, "weight_decay", this.weightDecay, "must be >= 0");
    this.simd = process.env.EMBEDTUNE_SIMD === "0" ? null : simdLayout(params);
    this.m = this.simd ? this.simd.offsets.map((o, k) => viewAt(this.simd!.k, o[2], params[k].length)) : params.map((p) => new Float32Array(p.length));
    this.v = this.simd ? this.simd.offsets.map((o, k) => viewAt(this.simd!.k, o[3], params[k].length)) : params.map((p) => new Float32Array(p.length));
  }

  /** One update with gradients `grads` (same order and sizes as params) and this step's lr. */
  step(grads: ArrayLike<number>[], lr: number = this.lr): void {
    if (grads.length !== this.params.length) {
      throw new EmbedtuneError("INVALID_ARGUMENT", `AdamW.step: ${grads.length} gradients for ${this.params.length} parameters`);
    }
    this.t += 1;
    const { beta1: b1, beta2: b2, eps } = this;
    const stepSize = lr / (1 - b1 ** this.t); // lr / bias_correction1
    const invBc2Sqrt = 1 / Math.sqrt(1 - b2 ** this.t); // 1 / √bias_correction2
    const decay = 1 - lr * this.weightDecay;
    const c1 = 1 - b1;
    const c2 = 1 - b2;
    for (let k = 0; k < this.params.length; k++) {
      const p = this.params[k];
      const g = grads[k];
      const m = this.m[k];
      const v = this.v[k];
      if (g.length !== p.length) {
        throw new EmbedtuneError("INVALID_ARGUMENT", `AdamW.step: gradient ${k} has ${g.length} values, parameter has ${p.length}`);
      }
      if (this.simd && g instanceof Float32Array) {
        // Two elements per SIMD step; an odd last element goes through the loop below.
        const { k: kernels, offsets } = this.simd;
        const [po, go, mo, vo] = offsets[k];
        this.simd.p[k].set(p);
        this.simd.g[k].set(g);
        const pairs = p.length >> 1;
        kernels.adamw(po, go, mo, vo, pairs, b1, b2, c1, c2, stepSize, invBc2Sqrt, eps, decay);
        p.set(this.simd.p[k].subarray(0, 2 * pairs));
        if (p.length % 2) updateF32(p.subarray(2 * pairs), g.subarray(2 * pairs), m.subarray(2 * pairs), v.subarray(2 * pairs), b1, b2, c1, c2, stepSize, invBc2Sqrt, eps, decay);
        continue;
      }
      // Float32Array gradients (training) take a loop the JIT sees with one array type only.
      const update = g instanceof Float32Array ? updateF32 : updateAny;
      update(p, g as Float32Array, m, v, b1, b2, c1, c2, stepSize, invBc2Sqrt, eps, decay);
    }
  }

  /**
   * clipGradNorm(grads, maxNorm) then step(grads, lr), skipping the step when the norm is
   * not finite: the same results, bitwise, with both passes in the SIMD memory when it is
   * available (the caller's gradient arrays are then left unclipped).
   */
  clipAndStep(grads: Float32Array[], maxNorm: number, lr: number = this.lr): ClipResult {
    if (!this.simd || grads.length !== this.params.length || grads.some((g, k) => !(g instanceof Float32Array) || g.length !== this.params[k].length)) {
      const result = clipGradNorm(grads, maxNorm);
      if (Number.isFinite(result.totalNorm)) this.step(grads, lr);
      return result;
    }
    const { k: kernels, offsets, g: views } = this.simd;
    let sq = 0;
    for (let k = 0; k < grads.length; k++) {
      views[k].set(grads[k]);
      sq += sumSquaresSimd(kernels, views[k], offsets[k][1], this.simd.scratch, this.simd.parts);
    }
    const totalNorm = Math.sqrt(sq);
    if (!Number.isFinite(totalNorm)) return { totalNorm, clipped: false };
    const coef = maxNorm / (totalNorm + 1e-6);
    const clipped = coef < 1;
    for (let k = 0; k < grads.length; k++) {
      const g = views[k];
      if (clipped) {
        const pairs = g.length >> 1;
        kernels.scale(offsets[k][1], pairs, coef);
        if (g.length % 2) g[g.length - 1] *= coef;
      }
    }
    this.step(views, lr);
    return { totalNorm, clipped };
  }

  /** Number of steps taken so far. */
  get stepCount(): number {
    return this.t;
  }

  /** A copy of the state (safe to serialise while training continues). */
  state(): AdamWState {
    return { step: this.t, m: this.m.map((a) => a.slice()), v: this.v.map((a) => a.slice()) };
  }

  /** Restores a state saved by state(); sizes must match the parameters. */
  loadState(s: AdamWState): void {
    check(Number.isInteger(s.step) && s.step >= 0, "step", s.step, "must be a non-negative integer");
    const n = this.params.length;
    if (s.m.length !== n || s.v.length !== n) {
      throw new EmbedtuneError("INVALID_ARGUMENT", `AdamW state has ${s.m.length}/${s.v.length} moments for ${n} parameters`);
    }
    for (let k = 0; k < n; k++) {
      if (s.m[k].length !== this.params[k].length || s.v[k].length !== this.params[k].length) {
        throw new EmbedtuneError("INVALID_ARGUMENT", `AdamW state for parameter ${k} has the wrong size`);
      }
    }
    this.t = s.step;
    for (let k = 0; k < n; k++) {
      this.m[k].set(s.m[k]);
      this.v[k].set(s.v[k]);
    }
  }
}

/** p, g, m, v of every parameter, 16-byte aligned, in one SIMD instance's memory. */
function simdLayout(params: Float32Array[]): AdamW["simd"] {
  const offsets: number[][] = [];
  let at = 0;
  for (const p of params) {
    const bytes = Math.ceil((p.length * 4) / 16) * 16;
    offsets.push([at, at + bytes, at + 2 * bytes, at + 3 * bytes]);
    at += 4 * bytes;
  }
  const scratch = at; // 4 float64 partial sums
  const k = simdKernels(at + 32);
  if (!k) return null;
  return { k, offsets, scratch, parts: new Float64Array(k.memory.buffer, scratch, 4), p: offsets.map((o, i) => viewAt(k, o[0], params[i].length)), g: offsets.map((o, i) => viewAt(k, o[1], params[i].length)) };
}

/** sumSquares (tensor/ops.ts) of x at byteOffset in SIMD memory: the same four partial sums, the same value. */
function sumSquaresSimd(k: SimdKernels, x: Float32Array, byteOffset: number, scratch: number, parts: Float64Array): number {
  const quads = x.length >> 2;
  k.sumsq(byteOffset, quads, scratch);
  let s0 = parts[0];
  for (let t = 4 * quads; t < x.length; t++) s0 += x[t] * x[t];
  return s0 + parts[1] + (parts[2] + parts[3]);
}

function viewAt(k: SimdKernels, byteOffset: number, length: number): Float32Array {
  return new Float32Array(k.memory.buffer, byteOffset, length);
}

/**
 * The per-element update, written twice with the same arithmetic: once for Float32Array
 * gradients (monomorphic, ~2x faster in a process where other array types pass through
 * generic code) and once for anything array-like.
 */
function updateF32(
  p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array,
  b1: number, b2: number, c1: number, c2: number, stepSize: number, invBc2Sqrt: number, eps: number, decay: number,
): void {
  for (let e = 0; e < p.length; e++) {
    const ge = g[e];
    const me = b1 * m[e] + c1 * ge;
    const ve = b2 * v[e] + c2 * ge * ge;
    m[e] = me;
    v[e] = ve;
    // √v̂ = √v / √bias_correction2, as a product: one division per element, not two.
    p[e] = p[e] * decay - (stepSize * me) / (Math.sqrt(ve) * invBc2Sqrt + eps);
  }
}

function updateAny(
  p: Float32Array, g: ArrayLike<number>, m: Float32Array, v: Float32Array,
  b1: number, b2: number, c1: number, c2: number, stepSize: number, invBc2Sqrt: number, eps: number, decay: number,
): void {
  for (let e = 0; e < p.length; e++) {
    const ge = g[e];
    const me = b1 * m[e] + c1 * ge;
    const ve = b2 * v[e] + c2 * ge * ge;
    m[e] = me;
    v[e] = ve;
    p[e] = p[e] * decay - (stepSize * me) / (Math.sqrt(ve) * invBc2Sqrt + eps);
  }
}

function check(ok: boolean, field: string, value: number, what: string): void {
  if (!ok || Number.isNaN(value)) {
    throw new EmbedtuneError("INVALID_ARGUMENT", `AdamW ${field} ${what}, got ${value}`, { field });
  }
}
