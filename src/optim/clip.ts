/**
 * Global-norm gradient clipping, as torch.nn.utils.clip_grad_norm_ over all the given
 * tensors together:
 *
 *     total = √( Σ over every entry of every gradient of g² )
 *     coef  = maxNorm / (total + 1e-6);   if coef < 1: every g *= coef
 *
 * A non-finite total (a NaN or ∞ somewhere) leaves the gradients untouched and is
 * returned as is: the caller should skip the step (torch would scale by NaN).
 */
import { type Float, sumSquares } from "../tensor/ops.js";

export interface ClipResult {
  totalNorm: number; // the norm before clipping
  clipped: boolean; // whether the gradients were scaled
}

export function clipGradNorm(grads: Float[], maxNorm: number): ClipResult {
  let sq = 0;
  for (const g of grads) sq += g instanceof Float32Array ? sumSquaresF32(g) : sumSquares(g);
  const totalNorm = Math.sqrt(sq);
  if (!Number.isFinite(totalNorm)) return { totalNorm, clipped: false };
  const coef = maxNorm / (totalNorm + 1e-6);
  if (!(coef < 1)) return { totalNorm, clipped: false };
  for (const g of grads) for (let e = 0; e < g.length; e++) g[e] *= coef;
  return { totalNorm, clipped: true };
}

/**
 * sumSquares for Float32Array only, in the same order (four float64 partial sums), so the
 * same value: a loop the JIT sees with one array type runs ~2x faster in training.
 */
function sumSquaresF32(x: Float32Array): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let t = 0;
  const n = x.length;
  for (; t + 3 < n; t += 4) {
    s0 += x[t] * x[t];
    s1 += x[t + 1] * x[t + 1];
    s2 += x[t + 2] * x[t + 2];
    s3 += x[t + 3] * x[t + 3];
  }
  for (; t < n; t++) s0 += x[t] * x[t];
  return s0 + s1 + (s2 + s3);
}
