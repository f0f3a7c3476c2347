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
    this.m = params.map((p) => new Float32Array(p.length));
    this.v = params.map((p) => new Float32Array(p.length));
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
    this.m = s.m.map((a) => Float32Array.from(a));
    this.v = s.v.map((a) => Float32Array.from(a));
  }
}

function check(ok: boolean, field: string, value: number, what: string): void {
  if (!ok || Number.isNaN(value)) {
    throw new EmbedtuneError("INVALID_ARGUMENT", `AdamW ${field} ${what}, got ${value}`, { field });
  }
}
