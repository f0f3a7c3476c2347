/**
 * Linear warm-up then linear decay to 0: transformers' get_linear_schedule_with_warmup.
 * With warmup = ceil(warmupRatio · totalSteps), the optimizer step with 0-based index k uses
 *
 *     lr_k = baseLr · k / max(1, warmup)                            if k < warmup
 *     lr_k = baseLr · max(0, (total − k) / max(1, total − warmup))  otherwise
 *
 * so with any warm-up the first step has lr 0 (AdamW still updates its moments then).
 */
import { EmbedtuneError } from "../errors.js";

/** ceil(ratio · total), computed as Python's math.ceil(ratio * total) would (same float64). */
export function warmupSteps(totalSteps: number, warmupRatio: number): number {
  return Math.ceil(warmupRatio * totalSteps);
}

export function linearWarmupDecay(baseLr: number, totalSteps: number, warmupRatio: number): (k: number) => number {
  if (!Number.isFinite(baseLr) || baseLr < 0) {
    throw new EmbedtuneError("INVALID_ARGUMENT", `learning rate must be a finite number >= 0, got ${baseLr}`, { field: "lr" });
  }
  if (!Number.isInteger(totalSteps) || totalSteps < 1) {
    throw new EmbedtuneError("INVALID_ARGUMENT", `total steps must be a positive integer, got ${totalSteps}`);
  }
  if (!(warmupRatio >= 0 && warmupRatio <= 1)) {
    throw new EmbedtuneError("INVALID_ARGUMENT", `warmup ratio must be in [0, 1], got ${warmupRatio}`, { field: "warmup_ratio" });
  }
  const warmup = warmupSteps(totalSteps, warmupRatio);
  return (k: number): number => {
    // Same float64 operation order as transformers' lr_lambda times LambdaLR's base_lr.
    if (k < warmup) return baseLr * (k / Math.max(1, warmup));
    return baseLr * Math.max(0, (totalSteps - k) / Math.max(1, totalSteps - warmup));
  };
}
