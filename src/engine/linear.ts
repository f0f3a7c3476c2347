/**
 * A linear layer with an optional LoRA pair (PEFT's lora.Linear), on T rows:
 *
 *   y = x W + b + s · (d(x) Aᵀ) Bᵀ        W (in, out) as stored in ONNX, b (out)
 *   A = lora_A (R, in), B = lora_B (out, R), s = scaling = lora_alpha / r
 *   d(x) = x ⊙ m / (1 − p): lora_dropout, on the LoRA branch's input only (m ~ Bernoulli(1 − p))
 *
 * Backward, given dy (T, out), with U = d(x) Aᵀ (T, R) saved by the forward:
 *
 *   db += Σ_t dy            dW += xᵀ dy            dx += dy Wᵀ
 *   dB += s · dyᵀ U         dU = s · dy B          dA += dUᵀ d(x)
 *   dx += d(dU A)           (the same mask and 1/(1 − p) on the way back)
 *
 * The frozen encoder passes null for dW and db: only lora_A, lora_B and dx are computed.
 */
import type { Float } from "../tensor/ops.js";
import type { Rng } from "../util/rng.js";
import { mm, mmABt, mmAtB } from "./kernels.js";

/** A frozen linear map: W (in, out) row-major, b (out) or null. */
export interface Linear<T extends Float = Float> {
  W: T;
  b: T | null;
  inDim: number;
  outDim: number;
}

/** One LoRA pair in PEFT's layout. */
export interface LoraPair<T extends Float = Float> {
  r: number;
  scaling: number; // lora_alpha / r
  dropout: number; // lora_dropout p in [0, 1)
  A: T; // lora_A.weight (R, in)
  B: T; // lora_B.weight (out, R)
}

/** What a LoRA-carrying linear's forward saves for its backward, for up to maxT rows. */
export interface LinearCache {
  U: Float; // (T, R)   d(x) Aᵀ
  dU: Float; // (T, R)  backward scratch
  xd: Float | null; // (T, in)  d(x), when dropout is on
  mask: Uint8Array | null; // (T, in)  1 where d(x) kept the entry
  dxd: Float | null; // (T, in) backward scratch for the masked dx
}

export function createLinearCache(maxT: number, inDim: number, lora: LoraPair, precision: 32 | 64 = 32): LinearCache {
  const Ctor = precision === 64 ? Float64Array : Float32Array;
  const drop = lora.dropout > 0;
  return {
    U: new Ctor(maxT * lora.r),
    dU: new Ctor(maxT * lora.r),
    xd: drop ? new Ctor(maxT * inDim) : null,
    mask: drop ? new Uint8Array(maxT * inDim) : null,
    dxd: drop ? new Ctor(maxT * inDim) : null,
  };
}

/**
 * y (T, out) = x W + b (+ the LoRA branch). OVERWRITES y. With a LoRA pair, `cache` receives
 * U (and d(x)); `rng` draws the dropout mask (null: no dropout, as at inference).
 */
export function linearForward(
  y: Float, cache: LinearCache | null, x: Float, lin: Linear, lora: LoraPair | null, T: number, rng: Rng | null,
): void {
  const { inDim: I, outDim: O } = lin;
  mm(y, x, lin.W, T, I, O); // y = x W            (T, O)
  if (lin.b) {
    const b = lin.b;
    for (let t = 0; t < T; t++) {
      const o = t * O;
      for (let j = 0; j < O; j++) y[o + j] += b[j];
    }
  }
  if (!lora) return;
  const R = lora.r;
  const U = cache ? cache.U : new Float64Array(T * R);
  const src = dropoutInput(cache, x, lora, T, I, rng);
  mmABt(U, src, lora.A, T, I, R); // U = d(x) Aᵀ     (T, R)
  mmABt(y, U, lora.B, T, R, O, lora.scaling, true); // y += s U Bᵀ
}

/** d(x) into cache.xd when dropout is active, else x itself. */
function dropoutInput(cache: LinearCache | null, x: Float, lora: LoraPair, T: number, I: number, rng: Rng | null): Float {
  if (!rng || lora.dropout <= 0 || !cache?.xd) return x;
  const keep = 1 - lora.dropout;
  const inv = 1 / keep;
  const { xd, mask } = cache;
  const n = T * I;
  for (let e = 0; e < n; e++) {
    const kept = rng.uniform() < keep;
    mask![e] = kept ? 1 : 0;
    xd[e] = kept ? x[e] * inv : 0;
  }
  return xd;
}

/**
 * Backward of linearForward for the same x, T and dropout mask. ACCUMULATES into every
 * gradient given (null = not wanted): dx (T, in), dW (in, out), db (out), dA (R, in), dB (out, R).
 * `dropped` says whether the forward applied dropout (then cache.xd holds d(x)).
 */
export function linearBackward(
  dx: Float | null, dW: Float | null, db: Float | null, dA: Float | null, dB: Float | null,
  dy: Float, x: Float, lin: Linear, lora: LoraPair | null, cache: LinearCache | null, T: number, dropped: boolean,
): void {
  const { inDim: I, outDim: O } = lin;
  if (db) {
    for (let t = 0; t < T; t++) {
      const o = t * O;
      for (let j = 0; j < O; j++) db[j] += dy[o + j];
    }
  }
  if (dW) mmAtB(dW, x, dy, T, I, O); // dW += xᵀ dy      (I, O)
  if (dx) mmABt(dx, dy, lin.W, T, O, I, 1, true); // dx += dy Wᵀ       (T, I)
  if (!lora || !cache) return;
  const R = lora.r;
  const { U, dU } = cache;
  const src = dropped && cache.xd ? cache.xd : x;
  if (dB) mmAtB(dB, dy, U, T, O, R, lora.scaling); // dB += s dyᵀ U    (O, R)
  mm(dU, dy, lora.B, T, O, R, lora.scaling); // dU = s dy B       (T, R)
  if (dA) mmAtB(dA, dU, src, T, R, I); // dA += dUᵀ d(x)    (R, I)
  if (!dx) return;
  if (src === x) {
    mm(dx, dU, lora.A, T, R, I, 1, true); // dx += dU A
    return;
  }
  // Through the dropout: dx += (dU A) ⊙ m / (1 − p); the mask is where d(x) was kept.
  const dxd = cache.dxd!;
  mm(dxd, dU, lora.A, T, R, I);
  const inv = 1 / (1 - lora.dropout);
  const mask = cache.mask!;
  const n = T * I;
  for (let e = 0; e < n; e++) if (mask[e]) dx[e] += dxd[e] * inv;
}
