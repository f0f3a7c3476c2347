import type { DenseLayer, Pooling } from "./folder.js";

/**
 * Pools token vectors (B, L, H) into text vectors (B, H) and L2-normalises them:
 *   mean:      Σ_t mask[b,t] x[b,t,:] / max(Σ_t mask[b,t], 1e-9)   (sentence-transformers' clamp)
 *   cls:       x[b,0,:]
 *   lasttoken: x[b, last valid t, :]
 * Writes rows into out (N, H) at the given row indices.
 */
export function poolInto(
  out: Float32Array, rows: readonly number[], hidden: Float32Array, mask: BigInt64Array,
  B: number, L: number, H: number, pooling: Pooling, dense: readonly DenseLayer[] = [],
): void {
  const v = new Float64Array(H);
  const D = dense.length > 0 ? dense[dense.length - 1].outFeatures : H;
  for (let b = 0; b < B; b++) {
    v.fill(0);
    let valid = 0;
    for (let t = 0; t < L; t++) if (mask[b * L + t] !== 0n) valid++;
    if (pooling === "mean") {
      for (let t = 0; t < L; t++) {
        if (mask[b * L + t] === 0n) continue;
        const o = (b * L + t) * H;
        for (let h = 0; h < H; h++) v[h] += hidden[o + h];
      }
      const inv = 1 / Math.max(valid, 1e-9);
      for (let h = 0; h < H; h++) v[h] *= inv;
    } else {
      const t = pooling === "cls" ? 0 : Math.max(valid - 1, 0);
      const o = (b * L + t) * H;
      for (let h = 0; h < H; h++) v[h] = hidden[o + h];
    }
    const y = applyDense(v, dense);
    let norm = 0;
    for (let h = 0; h < D; h++) norm += y[h] * y[h];
    const inv = 1 / Math.max(Math.sqrt(norm), 1e-12); // F.normalize's eps
    const o = rows[b] * D;
    for (let h = 0; h < D; h++) out[o + h] = y[h] * inv;
  }
}

/** Dense modules in order: y = act(W x + b), W (out, in). */
function applyDense(x: Float64Array, dense: readonly DenseLayer[]): Float64Array {
  let v = x;
  for (const layer of dense) {
    const y = new Float64Array(layer.outFeatures);
    for (let i = 0; i < layer.outFeatures; i++) {
      let acc = layer.bias ? layer.bias[i] : 0;
      const row = i * layer.inFeatures;
      for (let j = 0; j < layer.inFeatures; j++) acc += layer.weight[row + j] * v[j];
      y[i] = layer.activation === "tanh" ? Math.tanh(acc) : acc;
    }
    v = y;
  }
  return v;
}
