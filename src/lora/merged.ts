import { EmbedtuneError } from "../errors.js";
import type { AnyAdapter } from "../io/adapter-folder.js";
import { l2NormalizeRows, matmulABt } from "../tensor/ops.js";
import { applyAdapter, scaling, type OutputLora } from "./output-adapter.js";

/**
 * The output adapter as one matrix: x + s·B(A x) = (I + s·B·A) x, so
 *   W = I + s · B A     (D, D), row-major [out, in], W[i][j] = δ_ij + s Σ_k B[i][k] A[k][j]
 * and the adapted vector is normalize(W x). One matmul instead of two thin ones, and the
 * form a sentence-transformers Dense layer or an ONNX MatMul takes.
 */
export function mergeOutputLora(p: OutputLora): Float32Array {
  const { dim: D, r: R } = p;
  const s = scaling(p);
  const W = new Float32Array(D * D); // (D, D)
  for (let i = 0; i < D; i++) {
    for (let j = 0; j < D; j++) {
      let acc = 0;
      for (let k = 0; k < R; k++) acc += p.B[i * R + k] * p.A[k * D + j];
      W[i * D + j] = (i === j ? 1 : 0) + s * acc;
    }
  }
  return W;
}

/** normalize(x Wᵀ) row by row: x (N, D) -> (N, D). */
export function applyMerged(x: Float32Array, N: number, W: Float32Array, D: number): Float32Array {
  const h = new Float32Array(N * D); // (N, D)
  matmulABt(h, x, W, N, D, D);
  l2NormalizeRows(h, h, N, D);
  return h;
}

/** The map an adapter applies to base vectors (N, D) -> adapted unit vectors (N, D). */
export function adapterTransform(adapter: AnyAdapter): (x: Float32Array, N: number) => Float32Array {
  if (adapter.kind === "merged") return (x, N) => applyMerged(x, N, adapter.weight, adapter.config.dim);
  if (adapter.kind === "weights") throw new EmbedtuneError("INVALID_ADAPTER", "a weight-space adapter acts inside the encoder, not on base vectors (src/engine/merged-encoder.ts runs it)");
  return (x, N) => applyAdapter(x, N, adapter.lora);
}
