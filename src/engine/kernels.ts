/**
 * The engine's matrix products. Same contracts as src/tensor/ops.ts (row-major, explicit
 * dimensions, `out` never aliases an input):
 *
 *   mm(out, a, b, M, K, N, alpha, acc)      out (M, N) (+)= alpha · a (M, K) b (K, N)
 *   mmABt(out, a, b, M, K, N, alpha, acc)   out (M, N) (+)= alpha · a (M, K) b (N, K)ᵀ
 *   mmAtB(out, a, b, K, M, N, alpha)        out (M, N)  += alpha · a (K, M)ᵀ b (K, N)
 *
 * Float64 arrays (gradient checks) always take the JavaScript kernels of ops.ts. Float32
 * products big enough to pay for a call go to a faster backend when one is installed
 * (setGemmBackend; src/encoder/sync-gemm.ts provides onnxruntime's MLAS GEMM), else to the
 * same JavaScript kernels.
 */
import { type Float, matmul, matmulABt, matmulAtB } from "../tensor/ops.js";

/** A float32 GEMM: out (M, N) = op(a) op(b), op = transpose when the flag is set; OVERWRITES out. */
export interface GemmBackend {
  name: string;
  gemm(out: Float32Array, a: Float32Array, b: Float32Array, M: number, K: number, N: number, transA: boolean, transB: boolean): void;
}

let backend: GemmBackend | null = null;
/** Below this many multiply-adds a call costs more than the arithmetic: stay in JavaScript. */
const MIN_WORK = 32 * 1024;
let scratch = new Float32Array(0);

export function setGemmBackend(b: GemmBackend | null): void {
  backend = b;
}

export function gemmBackendName(): string {
  return backend?.name ?? "javascript";
}

function fast(out: Float, a: Float, b: Float, work: number): boolean {
  return backend !== null && work >= MIN_WORK && out instanceof Float32Array && a instanceof Float32Array && b instanceof Float32Array;
}

/** Runs the backend into out directly, or into scratch then out (+)= alpha · scratch. */
function viaBackend(out: Float32Array, a: Float32Array, b: Float32Array, M: number, K: number, N: number, transA: boolean, transB: boolean, alpha: number, acc: boolean): void {
  const MN = M * N;
  if (!acc && alpha === 1) {
    backend!.gemm(out.subarray(0, MN), a, b, M, K, N, transA, transB);
    return;
  }
  if (scratch.length < MN) scratch = new Float32Array(MN);
  const s = scratch.subarray(0, MN);
  backend!.gemm(s, a, b, M, K, N, transA, transB);
  if (acc) for (let e = 0; e < MN; e++) out[e] += alpha * s[e];
  else for (let e = 0; e < MN; e++) out[e] = alpha * s[e];
}

export function mm(out: Float, a: Float, b: Float, M: number, K: number, N: number, alpha = 1, acc = false): void {
  if (fast(out, a, b, M * K * N)) viaBackend(out as Float32Array, a.subarray(0, M * K) as Float32Array, b.subarray(0, K * N) as Float32Array, M, K, N, false, false, alpha, acc);
  else matmul(out, a, b, M, K, N, alpha, acc);
}

export function mmABt(out: Float, a: Float, b: Float, M: number, K: number, N: number, alpha = 1, acc = false): void {
  if (fast(out, a, b, M * K * N)) viaBackend(out as Float32Array, a.subarray(0, M * K) as Float32Array, b.subarray(0, N * K) as Float32Array, M, K, N, false, true, alpha, acc);
  else matmulABt(out, a, b, M, K, N, alpha, acc);
}

export function mmAtB(out: Float, a: Float, b: Float, K: number, M: number, N: number, alpha = 1): void {
  if (fast(out, a, b, M * K * N)) viaBackend(out as Float32Array, a.subarray(0, K * M) as Float32Array, b.subarray(0, K * N) as Float32Array, M, K, N, true, false, alpha, true);
  else matmulAtB(out, a, b, K, M, N, alpha);
}
