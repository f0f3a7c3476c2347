import { FLOAT, GraphBuilder, INT64 } from "../onnx-graph.js";
import { findFloat, type UseLiteFiles } from "./weights.js";

/** The graph keeps at most this many tokens per text (ClipToMaxLength). */
export const USE_LITE_MAX_TOKENS = 128;
export const USE_LITE_DIM = 512;

/**
 * USE-Lite's forward pass as an ONNX graph over the published weights (see USE-LITE.md):
 *
 *   x0 = E + (E + T)                       E: token embeddings (B, L, 256), T: timing signal (L, 256)
 *   layer 0 (pre-LN, 256 -> 512):  x1 = MHA(LN(x0)) + x0 W_res + b_res;  x2 = x1 + FFN(LN(x1))
 *   layer 1 (pre-LN, 512):         x3 = x2 + MHA(LN(x2));                x4 = x3 + FFN(LN(x3))
 *   pooled = Σ_valid x4 / max(L, 1)  (FFN's second matmul applied after the sum);  y = tanh(pooled W_t + b_t);  out = y / sqrt(max(|y|², 1e-12))
 *
 * Inputs: input_ids int64 (B, L) and attention_mask int64 (B, L) (1 = token, 0 = padding);
 * output: sentence_embedding float32 (B, 512), unit length.
 */
export function buildUseLiteGraph(files: UseLiteFiles): Uint8Array {
  const g = new GraphBuilder("use_lite_en");
  const ids = g.input("input_ids", INT64, ["batch", "sequence"]);
  const mask = g.input("attention_mask", INT64, ["batch", "sequence"]);
  g.output("sentence_embedding", FLOAT, ["batch", USE_LITE_DIM]);

  const maskF = g.op("Cast", [mask], { to: FLOAT }); // (B, L)
  // Additive attention bias: 0 on tokens, -1e9 on padded keys, shaped (B, 1, 1, L).
  const one = g.scalar("one", 1);
  const padBias = g.op("Mul", [g.op("Sub", [one, maskF]), g.scalar("neg_inf", -1e9)]);
  const keyBias = g.op("Unsqueeze", [padBias, g.int64Tensor("axes_1_2", [1, 2])]);

  const table = findFloat(files, "Embeddings_en");
  const E = g.op("Gather", [g.floatTensor("embeddings", table.data, table.shape), ids], { axis: 0 }); // (B, L, 256)
  const T = timingSignal(g, files, ids); // (L, 256)
  let x = g.op("Add", [E, g.op("Add", [E, T])]); // (B, L, 256)

  const attn0 = layerWeights(files, "Layer_0");
  const a0 = attention(g, layerNorm(g, x, files, "Layer_0/TransformerLayer/layer_prepostprocess", "l0_attn_ln"), attn0, keyBias, 4, "l0");
  const res = findFloat(files, "Layer_0/TransformerLayer/dense/kernel");
  const resB = findFloat(files, "Layer_0/TransformerLayer/dense/bias");
  const projected = g.op("Add", [g.op("MatMul", [x, g.floatTensor("l0_res_w", res.data, res.shape)]), g.floatTensor("l0_res_b", resB.data, resB.shape)]);
  x = g.op("Add", [a0, projected]); // (B, L, 512)
  x = g.op("Add", [x, ffn(g, layerNorm(g, x, files, "Layer_0/TransformerLayer/FFN/layer_prepostprocess", "l0_ffn_ln"), files, "Layer_0", "l0")]);

  const attn1 = layerWeights(files, "Layer_1");
  x = g.op("Add", [x, attention(g, layerNorm(g, x, files, "Layer_1/TransformerLayer/layer_prepostprocess", "l1_attn_ln"), attn1, keyBias, 4, "l1")]); // x3 (B, L, 512)

  // Layer 1's feed-forward and the mean over valid positions, x4 = x3 + ReLU(LN(x3) W1 + b1) W2 + b2
  // and pooled = Σ_l m_l x4_l / max(n, 1) with n = Σ_l m_l. W2 is linear, so it is applied after
  // the sum, once per text instead of once per token (a sixth of the model's FLOPs):
  //   pooled = ( Σ_l m_l x3_l + (Σ_l m_l h_l) W2 + n b2 ) / max(n, 1),   h = ReLU(LN(x3) W1 + b1).
  // An empty text (n = 0) still pools to 0.
  const maskRow = g.op("Unsqueeze", [maskF, g.int64Tensor("axis_1", [1])]); // (B, 1, L)
  const axis1b = g.int64Tensor("axis_1b", [1]);
  const sumOver = (t: string) => g.op("Squeeze", [g.op("MatMul", [maskRow, t]), axis1b]); // Σ_l m_l t_l  (B, width)
  const w1 = findFloat(files, "TransformerStack/Layer_1/TransformerLayer/FFN/conv1/Tensordot/Reshape_1");
  const b1 = findFloat(files, "Encode/Layer_1/TransformerLayer/FFN/conv1/bias");
  const w2 = findFloat(files, "TransformerStack/Layer_1/TransformerLayer/FFN/conv2/Tensordot/Reshape_1");
  const b2 = findFloat(files, "Encode/Layer_1/TransformerLayer/FFN/conv2/bias");
  const ln = layerNorm(g, x, files, "Layer_1/TransformerLayer/FFN/layer_prepostprocess", "l1_ffn_ln");
  const h = g.op("Relu", [g.op("Add", [g.op("MatMul", [ln, g.floatTensor("l1_ffn_w1", w1.data, w1.shape)]), g.floatTensor("l1_ffn_b1", b1.data, b1.shape)])]); // (B, L, 1536)
  const n = g.op("ReduceSum", [maskF, g.int64Tensor("axis_m1", [-1])], { keepdims: 1 }); // (B, 1)
  const summed = g.op("Add", [
    g.op("Add", [sumOver(x), g.op("MatMul", [sumOver(h), g.floatTensor("l1_ffn_w2", w2.data, w2.shape)])]),
    g.op("Mul", [n, g.floatTensor("l1_ffn_b2", b2.data, b2.shape)]),
  ]); // Σ_l m_l x4_l  (B, 512)
  const pooled = g.op("Div", [summed, g.op("Max", [n, one])]); // (B, 512)

  const wt = findFloat(files, "hidden_layers/tanh_layer_0/weights");
  const bt = findFloat(files, "hidden_layers/tanh_layer_0/bias");
  const y = g.op("Tanh", [g.op("Add", [g.op("MatMul", [pooled, g.floatTensor("tanh_w", wt.data, wt.shape)]), g.floatTensor("tanh_b", bt.data, bt.shape)])]);
  // tf.nn.l2_normalize: y * rsqrt(max(Σ y², eps)).
  const sq = g.op("ReduceSum", [g.op("Mul", [y, y]), g.int64Tensor("axis_m1b", [-1])], { keepdims: 1 });
  const norm = g.op("Sqrt", [g.op("Max", [sq, g.scalar("l2_eps", 1e-12)])]);
  g.opNamed("Div", [y, norm], ["sentence_embedding"]);
  return g.toBytes();
}

/**
 * tensor2tensor timing signal: channel c < 128 is sin(p · inv[c]), channel 128 + c is
 * cos(p · inv[c]) at position p. Precomputed for all 128 positions (in float32, as the
 * reference does) and sliced to the batch's length L.
 */
function timingSignal(g: GraphBuilder, files: UseLiteFiles, ids: string): string {
  const inv = findFloat(files, "AddTimingSignal/TimingSignal/ExpandDims_1").data; // (1, 128)
  const half = inv.length;
  const table = new Float32Array(USE_LITE_MAX_TOKENS * 2 * half); // (128, 256)
  for (let p = 0; p < USE_LITE_MAX_TOKENS; p++) {
    for (let c = 0; c < half; c++) {
      const angle = Math.fround(p * inv[c]);
      table[p * 2 * half + c] = Math.sin(angle);
      table[p * 2 * half + half + c] = Math.cos(angle);
    }
  }
  const length = g.op("Shape", [ids], { start: 1, end: 2 }); // [L]
  const zero = g.int64Tensor("zero_1", [0]);
  return g.op("Slice", [g.floatTensor("timing_signal", table, [USE_LITE_MAX_TOKENS, 2 * half]), zero, length, zero]);
}

/** LayerNorm over the last axis with eps 1e-6, scale and bias from `prefix`. */
function layerNorm(g: GraphBuilder, x: string, files: UseLiteFiles, prefix: string, name: string): string {
  const scale = findFloat(files, `${prefix}/layer_norm/layer_norm_scale`);
  const bias = findFloat(files, `${prefix}/layer_norm/layer_norm_bias`);
  return g.op("LayerNormalization", [x, g.floatTensor(`${name}_scale`, scale.data, scale.shape), g.floatTensor(`${name}_bias`, bias.data, bias.shape)], {
    axis: -1,
    epsilon: { float: 1e-6 },
  });
}

interface AttentionWeights {
  qkv: { shape: number[]; data: Float32Array }; // (Din, 3 Din), from a [1, 1, Din, 3 Din] conv kernel
  qkvBias: { shape: number[]; data: Float32Array };
  out: { shape: number[]; data: Float32Array }; // (Din, Dout)
  outBias: { shape: number[]; data: Float32Array };
  queryScale: number; // 1/sqrt(head size)
}

function layerWeights(files: UseLiteFiles, layer: string): AttentionWeights {
  const qkv = findFloat(files, `${layer}/TransformerLayer/MultiheadAttention/qkv_transform_single/kernel`);
  const out = findFloat(files, `${layer}/TransformerLayer/MultiheadAttention/output_transform_single/kernel`);
  const matrix = (t: { shape: number[]; data: Float32Array }) => ({ shape: t.shape.slice(-2), data: t.data });
  return {
    qkv: matrix(qkv),
    qkvBias: findFloat(files, `${layer}/TransformerLayer/MultiheadAttention/qkv_transform_single/bias`),
    out: matrix(out),
    outBias: findFloat(files, `${layer}/TransformerLayer/MultiheadAttention/output_transform_single/bias`),
    queryScale: findFloat(files, `TransformerStack/${layer}/TransformerLayer/MultiheadAttention/mul/y`).data[0],
  };
}

/**
 * Multi-head self-attention: [q k v] = x W_qkv + b; per head h, softmax(q_h k_hᵀ · scale + bias) v_h;
 * heads concatenated and projected by W_out + b_out.
 */
function attention(g: GraphBuilder, x: string, w: AttentionWeights, keyBias: string, heads: number, name: string): string {
  const din = w.qkv.shape[0];
  const headSize = din / heads;
  const qkv = g.op("Add", [g.op("MatMul", [x, g.floatTensor(`${name}_qkv_w`, w.qkv.data, w.qkv.shape)]), g.floatTensor(`${name}_qkv_b`, w.qkvBias.data, w.qkvBias.shape)]);
  const [q, k, v] = g.opMulti("Split", [qkv, g.int64Tensor(`${name}_split`, [din, din, din])], 3, { axis: -1 });
  const headShape = g.int64Tensor(`${name}_heads`, [0, 0, heads, headSize]);
  const split = (t: string, perm: number[]) => g.op("Transpose", [g.op("Reshape", [t, headShape])], { perm });
  const qh = g.op("Mul", [split(q, [0, 2, 1, 3]), g.scalar(`${name}_q_scale`, w.queryScale)]); // (B, H, L, S)
  const kt = split(k, [0, 2, 3, 1]); // (B, H, S, L)
  const vh = split(v, [0, 2, 1, 3]); // (B, H, L, S)
  const probs = g.op("Softmax", [g.op("Add", [g.op("MatMul", [qh, kt]), keyBias])], { axis: -1 }); // (B, H, L, L)
  const context = g.op("Transpose", [g.op("MatMul", [probs, vh])], { perm: [0, 2, 1, 3] }); // (B, L, H, S)
  const merged = g.op("Reshape", [context, g.int64Tensor(`${name}_merge`, [0, 0, din])]); // (B, L, Din)
  return g.op("Add", [g.op("MatMul", [merged, g.floatTensor(`${name}_out_w`, w.out.data, w.out.shape)]), g.floatTensor(`${name}_out_b`, w.outBias.data, w.outBias.shape)]);
}

/** Position-wise feed-forward: ReLU(x W1 + b1) W2 + b2. */
function ffn(g: GraphBuilder, x: string, files: UseLiteFiles, layer: string, name: string): string {
  const w1 = findFloat(files, `TransformerStack/${layer}/TransformerLayer/FFN/conv1/Tensordot/Reshape_1`);
  const b1 = findFloat(files, `Encode/${layer}/TransformerLayer/FFN/conv1/bias`);
  const w2 = findFloat(files, `TransformerStack/${layer}/TransformerLayer/FFN/conv2/Tensordot/Reshape_1`);
  const b2 = findFloat(files, `Encode/${layer}/TransformerLayer/FFN/conv2/bias`);
  const h = g.op("Relu", [g.op("Add", [g.op("MatMul", [x, g.floatTensor(`${name}_ffn_w1`, w1.data, w1.shape)]), g.floatTensor(`${name}_ffn_b1`, b1.data, b1.shape)])]);
  return g.op("Add", [g.op("MatMul", [h, g.floatTensor(`${name}_ffn_w2`, w2.data, w2.shape)]), g.floatTensor(`${name}_ffn_b2`, b2.data, b2.shape)]);
}
