/**
 * A weight-space LoRA folded into a copy of the encoder's weights, as one ONNX model that
 * onnxruntime runs like the base model (same graph, same speed):
 *
 *   W' = W + s · Aᵀ Bᵀ      W (in, out) as the graph stores it; s = lora_alpha / r
 *   (an initializer stored (out, in) for Gemm with transB: W' = W + s · B A)
 *
 * BERT: the model's own ONNX file with the merged initializers replaced in place (names,
 * nodes, inputs and outputs untouched). USE-Lite: the graph built by graph.ts from a copy of
 * the published weights with the merged kernels (q, k, v are column blocks of the fused qkv).
 * Like PEFT's merge, a non-finite merged weight is refused.
 */
import onnxProto from "onnx-proto";

import type { EngineSource } from "../engine/load.js";
import type { LoraModule, WeightLora } from "../engine/lora.js";
import { useLiteWeightOf } from "../engine/use-lite.js";
import { buildUseLiteGraph } from "../encoder/use-lite/graph.js";
import { findFloat, type UseLiteFiles } from "../encoder/use-lite/weights.js";
import { EmbedtuneError } from "../errors.js";

const { onnx } = onnxProto;

/**
 * Adds s · (B A) to a weight held as rows × cols starting at column `c0` of a row-major matrix
 * with `stride` columns: layout "in-out" puts in on rows (W[i][c0 + o] += s Σ_r A[r][i] B[o][r]),
 * "out-in" puts out on rows (W[o][c0 + i] += s Σ_r B[o][r] A[r][i]).
 */
function addProduct(W: Float32Array, stride: number, c0: number, m: LoraModule, layout: "in-out" | "out-in"): void {
  const { r, scaling: s, A, B } = m.pair;
  const I = m.inDim;
  const O = m.outDim;
  for (let i = 0; i < I; i++) {
    for (let o = 0; o < O; o++) {
      let acc = 0;
      for (let k = 0; k < r; k++) acc += A[k * I + i] * B[o * r + k];
      const at = layout === "in-out" ? i * stride + c0 + o : o * stride + c0 + i;
      W[at] += s * acc;
    }
  }
}

function checkFinite(W: Float32Array, module: string): void {
  const i = W.findIndex((v) => !Number.isFinite(v));
  if (i >= 0) throw new EmbedtuneError("INVALID_ADAPTER", `merging ${module} gives a non-finite weight at index ${i}; refusing to write a broken model`);
}

/** ONNX bytes of the encoder with the adapter merged in. */
export function mergedOnnx(source: EngineSource, lora: WeightLora): Uint8Array {
  return source.arch === "bert" ? mergedBert(source, lora) : buildUseLiteGraph(mergedUseLiteFiles(source.files, lora));
}

function mergedBert(source: Extract<EngineSource, { arch: "bert" }>, lora: WeightLora): Uint8Array {
  const model = onnx.ModelProto.decode(source.folder.onnxBytes);
  const inits = new Map((model.graph?.initializer ?? []).map((t) => [t.name ?? "", t]));
  for (const m of lora.modules) {
    const stateName = `${m.name}.weight`;
    const initName = source.weights.initializerOf.get(stateName);
    const init = initName ? inits.get(initName) : undefined;
    if (!init) throw new EmbedtuneError("INVALID_FILE", `no initializer for ${stateName} in ${source.folder.onnxFile}`);
    const stored = source.weights.transposed.has(stateName) ? "out-in" : "in-out";
    const W = readFloats(init);
    addProduct(W, stored === "in-out" ? m.outDim : m.inDim, 0, m, stored);
    checkFinite(W, m.name);
    init.rawData = new Uint8Array(W.buffer, W.byteOffset, W.byteLength);
    init.floatData = [];
  }
  return onnx.ModelProto.encode(model).finish();
}

function readFloats(t: onnxProto.onnx.ITensorProto): Float32Array {
  if (t.rawData && t.rawData.length) {
    const copy = new Uint8Array(t.rawData.length);
    copy.set(t.rawData);
    return new Float32Array(copy.buffer);
  }
  return Float32Array.from(t.floatData ?? []);
}

/** A copy of the published weights with every adapted kernel merged (other tensors shared). */
export function mergedUseLiteFiles(files: UseLiteFiles, lora: WeightLora): UseLiteFiles {
  const tensors = new Map(files.tensors);
  for (const m of lora.modules) {
    const where = useLiteWeightOf(m.layer, m.slot);
    const name = [...tensors.keys()].find((k) => k.includes(where.kernel));
    if (!name) throw new EmbedtuneError("INVALID_FILE", `no weight matching ${where.kernel}`);
    const t = findFloat({ ...files, tensors }, where.kernel);
    const cols = t.shape[t.shape.length - 1];
    const W = t.data.slice(); // (in, cols); for q/k/v, cols = 3 · out and the block starts at columns · out
    addProduct(W, cols, where.columns === null ? 0 : where.columns * m.outDim, m, "in-out");
    checkFinite(W, m.name);
    tensors.set(name, { shape: t.shape, data: W });
  }
  return { ...files, tensors };
}
