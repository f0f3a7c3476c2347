/**
 * Pooling token rows of a packed batch (T, H) into one row per text (N, H), as
 * sentence-transformers' Pooling module (and USE-Lite's mean) does:
 *
 *   mean       p_i = Σ_{t in text i} x[t] / max(L_i, 1)       dx[t] += dp_i / max(L_i, 1)
 *   cls        p_i = x[first row of text i]                   dx[first] += dp_i
 *   lasttoken  p_i = x[last row of text i]                    dx[last]  += dp_i
 *
 * (sentence-transformers clamps the count at 1e-9, USE-Lite at 1; for L_i ≥ 1 both are L_i.
 * An empty text pools to zeros.) L2 normalisation follows in the model, with
 * l2NormalizeRows / normalizeBackward from the output adapter.
 */
import type { Float } from "../tensor/ops.js";

export type PoolingMode = "mean" | "cls" | "lasttoken";

/** p (N, H) = pool(x); OVERWRITES p. */
export function poolForward(p: Float, x: Float, offsets: Int32Array, N: number, H: number, mode: PoolingMode): void {
  for (let i = 0; i < N; i++) {
    const t0 = offsets[i];
    const L = offsets[i + 1] - t0;
    const o = i * H;
    for (let h = 0; h < H; h++) p[o + h] = 0;
    if (L === 0) continue;
    if (mode === "mean") {
      for (let t = t0; t < t0 + L; t++) for (let h = 0; h < H; h++) p[o + h] += x[t * H + h];
      const inv = 1 / Math.max(L, 1);
      for (let h = 0; h < H; h++) p[o + h] *= inv;
    } else {
      const t = mode === "cls" ? t0 : t0 + L - 1;
      for (let h = 0; h < H; h++) p[o + h] = x[t * H + h];
    }
  }
}

/** dx (T, H) += the pooling's transpose applied to dp (N, H). */
export function poolBackward(dx: Float, dp: Float, offsets: Int32Array, N: number, H: number, mode: PoolingMode): void {
  for (let i = 0; i < N; i++) {
    const t0 = offsets[i];
    const L = offsets[i + 1] - t0;
    if (L === 0) continue;
    const o = i * H;
    if (mode === "mean") {
      const inv = 1 / Math.max(L, 1);
      for (let t = t0; t < t0 + L; t++) for (let h = 0; h < H; h++) dx[t * H + h] += dp[o + h] * inv;
    } else {
      const t = mode === "cls" ? t0 : t0 + L - 1;
      for (let h = 0; h < H; h++) dx[t * H + h] += dp[o + h];
    }
  }
}
