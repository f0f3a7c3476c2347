/**
 * Output-space LoRA: a low-rank residual on the pooled embedding, then L2 normalisation.
 *
 *     u = A x                  (R)        batched  U = X Aᵀ        (N, R)
 *     h = x + s · B u          (D)        batched  H = X + s U Bᵀ  (N, D)
 *     z = h / max(‖h‖, 1e-12)  (D)        s = scaling = lora_alpha / r
 *
 * Names follow PEFT: `r`, `lora_alpha`, `lora_A` (r, in) = A (R, D), `lora_B` (out, r) =
 * B (D, R). B starts at zero, so a fresh adapter is the identity followed by normalisation.
 *
 * Backward, given dz = dL/dz (N, D):
 *
 *     dh  = (dz − z (z·dz)) / ‖h‖     row-wise: the normaliser's Jacobian (I − z zᵀ)/‖h‖
 *     dB += s · dhᵀ U                 (D, R)
 *     dU  = s · dh B                  (N, R)
 *     dA += dUᵀ X                     (R, D)
 *     dx += dh + dU A                 (N, D)   (only when the input's gradient is wanted)
 *
 * Forward/backward pairs follow llm.c: the forward fills an AdapterCache with what the
 * backward needs; the backward accumulates (+=) into the gradients it is given.
 */
import { EmbedtuneError } from "../errors.js";
import type { Rng } from "../util/rng.js";
import { type Float, NORM_EPS, dotAt, l2NormalizeRows, matmul, matmulABt, matmulAtB } from "../tensor/ops.js";

/** Adapter parameters; T is Float32Array for training, Float64Array in gradient checks. */
export interface OutputLora<T extends Float = Float32Array> {
  dim: number; // D
  r: number; // R
  loraAlpha: number;
  A: T; // lora_A (R, D)
  B: T; // lora_B (D, R)
}

/** PEFT's `scaling = lora_alpha / r`. */
export function scaling(p: { r: number; loraAlpha: number }): number {
  return p.loraAlpha / p.r;
}

/**
 * A fresh adapter as PEFT initialises it: A by `kaiming_uniform_(a=sqrt(5))` on the (r, d)
 * weight, i.e. U(−1/√d, 1/√d) (gain √(2/(1+5)) = 1/√3, bound = √3 · gain / √fan_in = 1/√d);
 * B = 0.
 */
export function initOutputLora(dim: number, r: number, loraAlpha: number, rng: Rng): OutputLora {
  checkPositiveInt(dim, "dim");
  checkPositiveInt(r, "r");
  if (!Number.isFinite(loraAlpha) || loraAlpha <= 0) {
    throw new EmbedtuneError("INVALID_ARGUMENT", `lora_alpha must be a positive number, got ${loraAlpha}`,
      { field: "lora_alpha" });
  }
  const bound = 1 / Math.sqrt(dim);
  const A = new Float32Array(r * dim); // (R, D)
  for (let e = 0; e < A.length; e++) A[e] = (2 * rng.uniform() - 1) * bound;
  const B = new Float32Array(dim * r); // (D, R) zeros
  return { dim, r, loraAlpha, A, B };
}

/** What adapterForward saves for adapterBackward, sized for up to maxRows rows; reused. */
export interface AdapterCache<T extends Float = Float> {
  maxRows: number;
  dim: number;
  r: number;
  U: T; // (N, R)  u = A x
  H: T; // (N, D)  h = x + s B u
  norms: T; // (N)     ‖h‖
  Z: T; // (N, D)  z = h / ‖h‖
  dH: T; // (N, D)  backward scratch: dL/dh
  dU: T; // (N, R)  backward scratch: dL/du
}

/** Buffers for up to maxRows rows; `precision` 64 is for gradient checks. */
export function createAdapterCache(maxRows: number, dim: number, r: number, precision: 32 | 64 = 32): AdapterCache {
  checkPositiveInt(maxRows, "maxRows");
  const Ctor = precision === 64 ? Float64Array : Float32Array;
  return {
    maxRows, dim, r,
    U: new Ctor(maxRows * r),
    H: new Ctor(maxRows * dim),
    norms: new Ctor(maxRows),
    Z: new Ctor(maxRows * dim),
    dH: new Ctor(maxRows * dim),
    dU: new Ctor(maxRows * r),
  };
}

/**
 * z (N, D) = normalise(x + s · B (A x)) for the N rows of x (N, D). OVERWRITES z and the
 * cache's U, H, norms, Z (rows < N).
 */
export function adapterForward(z: Float, cache: AdapterCache, x: Float, N: number, p: OutputLora<Float>): void {
  checkShapes(cache, N, p);
  const D = p.dim;
  const R = p.r;
  const s = scaling(p);
  const { U, H, Z } = cache;
  matmulABt(U, x, p.A, N, D, R); // U = X Aᵀ          (N, R)
  matmulABt(H, U, p.B, N, R, D, s); // H = s U Bᵀ       (N, D)
  const ND = N * D;
  for (let e = 0; e < ND; e++) H[e] += x[e]; // H += X
  l2NormalizeRows(Z, H, N, D, cache.norms);
  if (z !== Z) for (let e = 0; e < ND; e++) z[e] = Z[e];
}

/**
 * Backward of adapterForward for the same x and N. ACCUMULATES dA (R, D), dB (D, R) and,
 * when dx (N, D) is given, dx. dz (N, D) is dL/dz. Uses the cache's dH, dU as scratch.
 */
export function adapterBackward(
  dA: Float, dB: Float, dx: Float | null, dz: Float,
  cache: AdapterCache, x: Float, N: number, p: OutputLora<Float>,
): void {
  checkShapes(cache, N, p);
  const D = p.dim;
  const R = p.r;
  const s = scaling(p);
  const { U, dH, dU } = cache;
  dH.fill(0, 0, N * D);
  normalizeBackward(dH, dz, cache.Z, cache.norms, N, D); // dH = dL/dh          (N, D)
  matmulAtB(dB, dH, U, N, D, R, s); // dB += s dHᵀ U     (D, R)
  matmul(dU, dH, p.B, N, D, R, s); // dU = s dH B        (N, R)
  matmulAtB(dA, dU, x, N, R, D); // dA += dUᵀ X        (R, D)
  if (dx) {
    const ND = N * D;
    for (let e = 0; e < ND; e++) dx[e] += dH[e]; // the identity path of h = x + ...
    matmul(dx, dU, p.A, N, R, D, 1, true); // dx += dU A
  }
}

/**
 * z (N, D) = x / max(‖x‖, 1e-12): the side without an adapter (documents in query-only
 * mode). OVERWRITES z and norms (N); norms are what normalizeBackward needs.
 */
export function normalizeForward(z: Float, norms: Float, x: Float, N: number, D: number): void {
  l2NormalizeRows(z, x, N, D, norms);
}

/**
 * dx (N, D) += dL/dx for z = x / max(‖x‖, 1e-12), given dz, the forward's z and norms.
 * For ‖x‖ > eps: dx = (dz − z (z·dz)) / ‖x‖ (the component of dz along z is lost, as
 * scaling x does not move z). Below eps the map is x / eps, linear, so dx = dz / eps.
 */
export function normalizeBackward(dx: Float, dz: Float, z: Float, norms: Float, N: number, D: number): void {
  for (let i = 0; i < N; i++) {
    const o = i * D;
    const n = norms[i];
    if (n > NORM_EPS) {
      const zdz = dotAt(z, o, dz, o, D);
      const inv = 1 / n;
      for (let j = 0; j < D; j++) dx[o + j] += (dz[o + j] - z[o + j] * zdz) * inv;
    } else {
      const inv = 1 / NORM_EPS;
      for (let j = 0; j < D; j++) dx[o + j] += dz[o + j] * inv;
    }
  }
}

/** Rows per chunk in applyAdapter: bounds the cache however many rows are encoded. */
const APPLY_CHUNK = 256;

/**
 * Inference: the adapted, normalised rows of x (N, D) as a new Float32Array (N, D).
 * Works through x in chunks, so memory beyond the result is O(chunk · D).
 */
export function applyAdapter(x: Float32Array, N: number, p: OutputLora<Float>): Float32Array {
  const D = p.dim;
  if (x.length < N * D) {
    throw new EmbedtuneError("INVALID_ARGUMENT", `applyAdapter: x has ${x.length} values, need ${N} rows x ${D}`);
  }
  const out = new Float32Array(N * D); // (N, D)
  const rows = Math.max(1, Math.min(APPLY_CHUNK, N));
  const cache = createAdapterCache(rows, D, p.r);
  for (let start = 0; start < N; start += rows) {
    const n = Math.min(rows, N - start);
    adapterForward(out.subarray(start * D, (start + n) * D), cache, x.subarray(start * D, (start + n) * D), n, p);
  }
  return out;
}

function checkShapes(cache: AdapterCache, N: number, p: OutputLora<Float>): void {
  if (N > cache.maxRows || cache.dim !== p.dim || cache.r !== p.r) {
    throw new EmbedtuneError("INVALID_ARGUMENT",
      `adapter cache (rows ${cache.maxRows}, dim ${cache.dim}, r ${cache.r}) does not fit ` +
      `${N} rows of an adapter with dim ${p.dim}, r ${p.r}`, {}, "create the cache with createAdapterCache(maxRows, dim, r)");
  }
  if (p.A.length !== p.r * p.dim || p.B.length !== p.dim * p.r) {
    throw new EmbedtuneError("INVALID_ARGUMENT",
      `adapter weights have ${p.A.length} (A) and ${p.B.length} (B) values, expected ${p.r * p.dim} each`);
  }
}

function checkPositiveInt(v: number, field: string): void {
  if (!Number.isInteger(v) || v <= 0) {
    throw new EmbedtuneError("INVALID_ARGUMENT", `${field} must be a positive integer, got ${v}`, { field });
  }
}
