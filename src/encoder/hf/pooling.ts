import type { Pooling } from "./folder.js";

/**
 * Pools token vectors (B, L, H) into text vectors (B, H) and L2-normalises them:
 *   mean:      Σ_t mask[b,t] x[b,t,:] / max(Σ_t mask[b,t], 1e-9)   (sentence-transformers' clamp)
 *   cls:       x[b,0,:]
 *   lasttoken: x[b, last valid t, :]
 * Writes rows into out (N, H) at the given row indices.
 */
export function poolInto(
  out: Float32Array, rows: readonly number[], hidden: Float32Array, mask: BigInt64Array,
  B: number, L: number, H: number, pooling: Pooling,
): void {
  const v = new Float64Array(H);
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
    let norm = 0;
    for (let h = 0; h < H; h++) norm += v[h] * v[h];
    const inv = 1 / Math.max(Math.sqrt(norm), 1e-12); // F.normalize's eps
    const o = rows[b] * H;
    for (let h = 0; h < H; h++) out[o + h] = v[h] * inv;
  }
}
