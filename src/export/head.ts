import { FLOAT, GraphBuilder } from "../encoder/onnx-graph.js";
import type { Pooling } from "../encoder/hf/folder.js";

export interface SentenceHead {
  /** Graph tensor to start from: token vectors (B, L, H) to pool, or text vectors (B, H). */
  source: string;
  pooling: Pooling | "none";
  /** The adapter as one matrix W (D, H) row-major [out, in]; null = no adapter. */
  weight: Float32Array | null;
  inDim: number; // H
  outDim: number; // D
}

/**
 * Appends to an encoder graph what turns its output into adapted sentence embeddings:
 *   pooled = mean_t(mask · x) | x[:, 0] | x              (B, H)
 *   y      = pooled Wᵀ                                  (B, D)   (when an adapter is given)
 *   sentence_embedding = y / max(‖y‖, 1e-12)            (B, D)
 * normalize(W p) = normalize(W normalize(p)), so W applies equally to raw or unit vectors.
 * The result has one output, sentence_embedding [batch, D].
 */
export function appendSentenceHead(model: Uint8Array, head: SentenceHead): Uint8Array {
  const g = GraphBuilder.fromModel(model);
  let source = head.source;
  if (source === "sentence_embedding") {
    g.renameTensor("sentence_embedding", "et_base_sentence_embedding");
    source = "et_base_sentence_embedding";
  }
  let pooled: string;
  if (head.pooling === "mean") {
    const maskF = g.op("Cast", ["attention_mask"], { to: FLOAT }); // (B, L)
    const mask3 = g.op("Reshape", [maskF, g.int64Tensor("et_mask_shape", [0, 1, -1])]); // (B, 1, L)
    const summed = g.op("Reshape", [g.op("MatMul", [mask3, source]), g.int64Tensor("et_flat_shape", [0, -1])]); // (B, H)
    const count = g.op("Max", [g.reduceSum(maskF, -1), g.scalar("et_min_count", 1e-9)]); // (B, 1)
    pooled = g.op("Div", [summed, count]);
  } else if (head.pooling === "cls") {
    pooled = g.op("Gather", [source, g.int64Tensor("et_first", [0], [])], { axis: 1 }); // (B, H)
  } else if (head.pooling === "lasttoken") {
    throw new Error("last-token pooling is not supported in ONNX export yet");
  } else {
    pooled = source;
  }
  const y = head.weight ? g.op("MatMul", [pooled, g.floatTensor("et_adapter_weight_t", transpose(head.weight, head.outDim, head.inDim), [head.inDim, head.outDim])]) : pooled;
  const norm = g.op("Max", [g.op("Sqrt", [g.reduceSum(g.op("Mul", [y, y]), -1)]), g.scalar("et_norm_eps", 1e-12)]);
  g.clearOutputs();
  g.opNamed("Div", [y, norm], ["sentence_embedding"]);
  g.output("sentence_embedding", FLOAT, ["batch", head.outDim]);
  return g.toBytes();
}

/** (rows, cols) -> (cols, rows), row-major. */
function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = m[i * cols + j];
  return t;
}
