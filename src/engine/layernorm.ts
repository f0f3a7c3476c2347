/**
 * LayerNorm over the last axis (torch.nn.LayerNorm, ONNX LayerNormalization), row by row:
 *
 *   μ_t = mean_h x[t,h]     σ²_t = mean_h (x[t,h] − μ_t)²     r_t = 1 / √(σ²_t + eps)
 *   x̂[t,h] = (x[t,h] − μ_t) r_t      y[t,h] = x̂[t,h] γ[h] + β[h]
 *
 * Backward, per row with g = dy ⊙ γ (the Jacobian of the centring and scaling):
 *
 *   dx = r (g − mean_h g − x̂ mean_h(g ⊙ x̂))
 *   dγ += Σ_t dy ⊙ x̂        dβ += Σ_t dy
 *
 * Dimensions: T rows (tokens), H features. Statistics are taken in float64.
 */
import type { Float } from "../tensor/ops.js";

/** What the forward saves: (T) row means and reciprocal standard deviations. */
export interface LayerNormCache {
  mean: Float64Array; // (T)
  rstd: Float64Array; // (T)
}

/** Kept in float64 whatever the activations' precision, so the backward sees the forward's exact statistics. */
export function createLayerNormCache(maxT: number): LayerNormCache {
  return { mean: new Float64Array(maxT), rstd: new Float64Array(maxT) };
}

/** y (T, H) = LN(x); OVERWRITES y and the cache's rows < T. y may be x. */
export function layerNormForward(y: Float, cache: LayerNormCache | null, x: Float, gamma: Float, beta: Float, T: number, H: number, eps: number): void {
  for (let t = 0; t < T; t++) {
    const o = t * H;
    let s = 0;
    for (let h = 0; h < H; h++) s += x[o + h];
    const mu = s / H;
    let v = 0;
    for (let h = 0; h < H; h++) {
      const d = x[o + h] - mu;
      v += d * d;
    }
    const r = 1 / Math.sqrt(v / H + eps);
    if (cache) {
      cache.mean[t] = mu;
      cache.rstd[t] = r;
    }
    for (let h = 0; h < H; h++) y[o + h] = (x[o + h] - mu) * r * gamma[h] + beta[h];
  }
}

/**
 * Backward of layerNormForward for the same x. ACCUMULATES dx (T, H) and, when given,
 * dgamma (H) and dbeta (H). The cache must hold the forward's statistics.
 */
export function layerNormBackward(
  dx: Float, dgamma: Float | null, dbeta: Float | null, dy: Float,
  x: Float, cache: LayerNormCache, gamma: Float, T: number, H: number,
): void {
  for (let t = 0; t < T; t++) {
    const o = t * H;
    const mu = cache.mean[t];
    const r = cache.rstd[t];
    let sg = 0; // Σ g
    let sgx = 0; // Σ g x̂
    for (let h = 0; h < H; h++) {
      const g = dy[o + h] * gamma[h];
      sg += g;
      sgx += g * (x[o + h] - mu) * r;
    }
    const mg = sg / H;
    const mgx = sgx / H;
    for (let h = 0; h < H; h++) {
      const xh = (x[o + h] - mu) * r;
      dx[o + h] += r * (dy[o + h] * gamma[h] - mg - xh * mgx);
      if (dgamma) dgamma[h] += dy[o + h] * xh;
      if (dbeta) dbeta[h] += dy[o + h];
    }
  }
}
