/**
 * USE-Lite (the default encoder) as an engine model, with the math of
 * src/encoder/use-lite/graph.ts and /work/shared/USE-LITE.md:
 *
 *   x_0 = 2 E[ids] + timing[0..L)                                  (256 wide)
 *   layer 0 (pre-LN, 256 -> 512): h1 = MHA(LN(x_0)) W_o + (x_0 W_res + b_res);  x_1 = h1 + ReLU(LN(h1) W_1) W_2
 *   layer 1 (pre-LN, 512):        h1 = MHA(LN(x_1)) W_o + x_1;                  x_2 = h1 + ReLU(LN(h1) W_1) W_2
 *   z = normalize(tanh(mean(x_2) W_t + b_t))                         (512)
 *
 * Weights come from the published shards (weights.ts) by the names graph.ts uses. The fused
 * qkv kernel (Din, 3 Din) is read as three (Din, Din) column blocks q | k | v, so LoRA can sit
 * on query, key or value alone exactly as on BERT. Module names: layer.{l}.query, .key,
 * .value, .attention_output, .ffn_in, .ffn_out, and layer.0.residual_projection. The tanh
 * head stays frozen.
 */
import { findFloat, type UseLiteFiles } from "../encoder/use-lite/weights.js";
import { USE_LITE_MAX_TOKENS } from "../encoder/use-lite/graph.js";
import { normalizeBackward } from "../lora/output-adapter.js";
import { type Float, l2NormalizeRows } from "../tensor/ops.js";
import type { TokenBatch } from "./batch.js";
import { tanhBackward, tanhForward } from "./elementwise.js";
import { useLiteEmbeddingForward } from "./embedding.js";
import { mm, mmABt } from "./kernels.js";
import type { Linear } from "./linear.js";
import { createHeadCacheOf, type EngineModel, type HeadCache, type Precision } from "./model.js";
import { poolBackward, poolForward } from "./pooling.js";
import type { LayerParams, LinearSlot } from "./transformer-layer.js";

export const USE_LITE_TARGETS: Record<string, LinearSlot> = {
  query: "query", key: "key", value: "value", attention_output: "attnOut", ffn_in: "ffnIn", ffn_out: "ffnOut", residual_projection: "residual",
};
const SLOT_NAME: Record<LinearSlot, string> = {
  query: "query", key: "key", value: "value", attnOut: "attention_output", ffnIn: "ffn_in", ffnOut: "ffn_out", residual: "residual_projection",
};

/** Where a module's weight lives in the published files: manifest name fragment and, for q/k/v, its column block. */
export function useLiteWeightOf(layer: number, slot: LinearSlot): { kernel: string; bias: string; columns: number | null } {
  const L = `Layer_${layer}/TransformerLayer`;
  const qkv = { kernel: `${L}/MultiheadAttention/qkv_transform_single/kernel`, bias: `${L}/MultiheadAttention/qkv_transform_single/bias` };
  switch (slot) {
    case "query": return { ...qkv, columns: 0 };
    case "key": return { ...qkv, columns: 1 };
    case "value": return { ...qkv, columns: 2 };
    case "attnOut": return { kernel: `${L}/MultiheadAttention/output_transform_single/kernel`, bias: `${L}/MultiheadAttention/output_transform_single/bias`, columns: null };
    case "ffnIn": return { kernel: `TransformerStack/${L}/FFN/conv1/Tensordot/Reshape_1`, bias: `Encode/${L}/FFN/conv1/bias`, columns: null };
    case "ffnOut": return { kernel: `TransformerStack/${L}/FFN/conv2/Tensordot/Reshape_1`, bias: `Encode/${L}/FFN/conv2/bias`, columns: null };
    case "residual": return { kernel: `${L}/dense/kernel`, bias: `${L}/dense/bias`, columns: null };
  }
}

/** The tensor2tensor timing signal (128, 256), computed in float32 exactly as graph.ts does. */
export function useLiteTiming(files: UseLiteFiles): Float32Array {
  const inv = findFloat(files, "AddTimingSignal/TimingSignal/ExpandDims_1").data;
  const half = inv.length;
  const table = new Float32Array(USE_LITE_MAX_TOKENS * 2 * half);
  for (let p = 0; p < USE_LITE_MAX_TOKENS; p++) {
    for (let c = 0; c < half; c++) {
      const angle = Math.fround(p * inv[c]);
      table[p * 2 * half + c] = Math.sin(angle);
      table[p * 2 * half + half + c] = Math.cos(angle);
    }
  }
  return table;
}

export function createUseLiteModel(files: UseLiteFiles, precision: Precision = 32): EngineModel {
  const cast = (d: Float32Array): Float => (precision === 64 ? Float64Array.from(d) : d);
  const matrix = (name: string) => {
    const t = findFloat(files, name);
    return { rows: t.shape[t.shape.length - 2], cols: t.shape[t.shape.length - 1], data: t.data };
  };
  const linear = (layer: number, slot: LinearSlot): Linear => {
    const where = useLiteWeightOf(layer, slot);
    const k = matrix(where.kernel);
    const b = findFloat(files, where.bias).data;
    if (where.columns === null) return { W: cast(k.data), b: cast(b), inDim: k.rows, outDim: k.cols };
    const d = k.cols / 3; // one block of the fused q | k | v
    const W = new Float32Array(k.rows * d);
    for (let i = 0; i < k.rows; i++) W.set(k.data.subarray(i * k.cols + where.columns * d, i * k.cols + (where.columns + 1) * d), i * d);
    return { W: cast(W), b: cast(b.slice(where.columns * d, (where.columns + 1) * d)), inDim: k.rows, outDim: d };
  };
  const norm = (prefix: string) => ({
    gamma: cast(findFloat(files, `${prefix}/layer_norm/layer_norm_scale`).data),
    beta: cast(findFloat(files, `${prefix}/layer_norm/layer_norm_bias`).data),
    eps: 1e-6,
  });
  const layers: LayerParams[] = [0, 1].map((l) => ({
    order: "pre", act: "relu", heads: 4,
    scale: findFloat(files, `TransformerStack/Layer_${l}/TransformerLayer/MultiheadAttention/mul/y`).data[0],
    query: linear(l, "query"), key: linear(l, "key"), value: linear(l, "value"), attnOut: linear(l, "attnOut"),
    ffnIn: linear(l, "ffnIn"), ffnOut: linear(l, "ffnOut"), residual: l === 0 ? linear(0, "residual") : null,
    ln1: norm(`Layer_${l}/TransformerLayer/layer_prepostprocess`), ln2: norm(`Layer_${l}/TransformerLayer/FFN/layer_prepostprocess`),
  }));
  const table = findFloat(files, "Embeddings_en");
  const E = cast(table.data);
  const D0 = table.shape[1];
  const timing = cast(useLiteTiming(files));
  const Wt = cast(findFloat(files, "hidden_layers/tanh_layer_0/weights").data); // (512, 512)
  const bt = cast(findFloat(files, "hidden_layers/tanh_layer_0/bias").data);
  const H = findFloat(files, "hidden_layers/tanh_layer_0/weights").shape[1]; // 512 (USE_LITE_DIM) for the published model

  return {
    arch: "use-lite",
    dim: H,
    maxTokens: USE_LITE_MAX_TOKENS,
    layers,
    embedForward: (x: Float, batch: TokenBatch) => useLiteEmbeddingForward(x, batch, E, timing, D0),
    createHeadCache: (maxN: number, prec: Precision): HeadCache => createHeadCacheOf(maxN, H, H, prec),
    // pooled = mean(x); pre = pooled W_t + b_t; y = tanh(pre); z = y / ‖y‖
    headForward(z: Float, c: HeadCache, x: Float, batch: TokenBatch): void {
      const N = batch.N;
      poolForward(c.pooled, x, batch.offsets, N, H, "mean");
      mm(c.pre, c.pooled, Wt, N, H, H);
      for (let i = 0; i < N; i++) for (let j = 0; j < H; j++) c.pre[i * H + j] += bt[j];
      tanhForward(c.y, c.pre, N * H);
      l2NormalizeRows(c.z, c.y, N, H, c.norms);
      if (z !== c.z) z.set(c.z.subarray(0, N * H));
    },
    // dy = normalizeᵀ dz; dpre = dy (1 − y²); dpooled = dpre W_tᵀ; dx += meanᵀ dpooled
    headBackward(dx: Float, dz: Float, c: HeadCache, _x: Float, batch: TokenBatch): void {
      const N = batch.N;
      c.dY.fill(0, 0, N * H);
      normalizeBackward(c.dY, dz, c.z, c.norms, N, H);
      c.pre.fill(0, 0, N * H); // reused as dpre: the forward's pre is not needed any more
      tanhBackward(c.pre, c.dY, c.y, N * H);
      mmABt(c.dPooled, c.pre, Wt, N, H, H);
      poolBackward(dx, c.dPooled, batch.offsets, N, H, "mean");
    },
    moduleName: (layer: number, slot: LinearSlot) => (slot === "residual" && layer !== 0 ? null : `layer.${layer}.${SLOT_NAME[slot]}`),
    targetSlots: USE_LITE_TARGETS,
  };
}
