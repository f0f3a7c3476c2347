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
  for (const g of grads) sq += sumSquares(g);
  const totalNorm = Math.sqrt(sq);
  if (!Number.isFinite(totalNorm)) return { totalNorm, clipped: false };
  const coef = maxNorm / (totalNorm + 1e-6);
  if (!(coef < 1)) return { totalNorm, clipped: false };
  for (const g of grads) for (let e = 0; e < g.length; e++) g[e] *= coef;
  return { totalNorm, clipped: true };
}
