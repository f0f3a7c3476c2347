import { FLOAT, GraphBuilder, INT64 } from "../onnx-graph.js";

/** BERT hyper-parameters, named as in a transformers config.json. */
export interface BertConfig {
  vocab_size: number;
  hidden_size: number; // H
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number; // F
  max_position_embeddings: number;
  type_vocab_size: number;
  layer_norm_eps: number;
}

/** Row-major float32 weights, named as in a transformers BertModel state dict. */
export type BertWeights = Map<string, { shape: number[]; data: Float32Array }>;

/**
 * A BertModel forward pass as ONNX (post-LayerNorm, GELU, learned positions), with the
 * inputs and output of a Hugging Face / optimum export:
 *   input_ids, attention_mask, token_type_ids: int64 (B, L)  ->  last_hidden_state: float32 (B, L, H)
 *
 *   x = LN(E_word[ids] + E_pos[0..L) + E_type[types])
 *   per layer:  a = softmax(q kᵀ / √d_head + mask_bias) v  (per head);  x = LN(x + a W_o + b_o)
 *               x = LN(x + GELU(x W_1 + b_1) W_2 + b_2),   GELU(u) = u/2 · (1 + erf(u/√2))
 * Linear weights are stored (in, out) here, i.e. transposed from PyTorch's (out, in).
 */
export function buildBertGraph(config: BertConfig, weights: BertWeights): Uint8Array {
  const g = new GraphBuilder("bert");
  const w = (name: string): string => {
    const t = weights.get(name);
    if (!t) throw new Error(`missing weight ${name}`);
    return g.floatTensor(name, t.data, t.shape);
  };
  const ids = g.input("input_ids", INT64, ["batch", "sequence"]);
  const mask = g.input("attention_mask", INT64, ["batch", "sequence"]);
  const types = g.input("token_type_ids", INT64, ["batch", "sequence"]);
  g.output("last_hidden_state", FLOAT, ["batch", "sequence", config.hidden_size]);

  const length = g.op("Shape", [ids], { start: 1, end: 2 });
  const zero = g.int64Tensor("zero", [0]);
  const positions = g.op("Slice", [w("embeddings.position_embeddings.weight"), zero, length, zero]); // (L, H)
  const summed = g.op("Add", [g.op("Add", [g.op("Gather", [w("embeddings.word_embeddings.weight"), ids]), positions]), g.op("Gather", [w("embeddings.token_type_embeddings.weight"), types])]);
  let x = layerNorm(g, summed, w, "embeddings.LayerNorm", config.layer_norm_eps); // (B, L, H)

  // Additive bias on padded keys, (B, 1, 1, L).
  const maskF = g.op("Cast", [mask], { to: FLOAT });
  const bias = g.op("Mul", [g.op("Sub", [g.scalar("one", 1), maskF]), g.scalar("mask_value", -1e4)]);
  const keyBias = g.op("Unsqueeze", [bias, g.int64Tensor("axes_1_2", [1, 2])]);

  const H = config.hidden_size;
  const heads = config.num_attention_heads;
  const headSize = H / heads;
  const headShape = g.int64Tensor("head_shape", [0, 0, heads, headSize]);
  const mergeShape = g.int64Tensor("merge_shape", [0, 0, H]);
  const scale = g.scalar("attention_scale", 1 / Math.sqrt(headSize));
  for (let l = 0; l < config.num_hidden_layers; l++) {
    const p = `encoder.layer.${l}`;
    const linear = (input: string, name: string) => g.op("Add", [g.op("MatMul", [input, w(`${name}.weight`)]), w(`${name}.bias`)]);
    const split = (t: string, perm: number[]) => g.op("Transpose", [g.op("Reshape", [t, headShape])], { perm });
    const q = g.op("Mul", [split(linear(x, `${p}.attention.self.query`), [0, 2, 1, 3]), scale]); // (B, h, L, d)
    const k = split(linear(x, `${p}.attention.self.key`), [0, 2, 3, 1]); // (B, h, d, L)
    const v = split(linear(x, `${p}.attention.self.value`), [0, 2, 1, 3]); // (B, h, L, d)
    const probs = g.op("Softmax", [g.op("Add", [g.op("MatMul", [q, k]), keyBias])], { axis: -1 });
    const context = g.op("Reshape", [g.op("Transpose", [g.op("MatMul", [probs, v])], { perm: [0, 2, 1, 3] }), mergeShape]);
    x = layerNorm(g, g.op("Add", [x, linear(context, `${p}.attention.output.dense`)]), w, `${p}.attention.output.LayerNorm`, config.layer_norm_eps);
    const u = linear(x, `${p}.intermediate.dense`);
    const gelu = g.op("Mul", [g.op("Mul", [u, g.scalar(`half_${l}`, 0.5)]), g.op("Add", [g.op("Erf", [g.op("Div", [u, g.scalar(`sqrt2_${l}`, Math.SQRT2)])]), g.scalar(`one_${l}`, 1)])]);
    x = layerNorm(g, g.op("Add", [x, linear(gelu, `${p}.output.dense`)]), w, `${p}.output.LayerNorm`, config.layer_norm_eps);
  }
  g.opNamed("Identity", [x], ["last_hidden_state"]);
  return g.toBytes();
}

function layerNorm(g: GraphBuilder, x: string, w: (name: string) => string, name: string, eps: number): string {
  return g.op("LayerNormalization", [x, w(`${name}.weight`), w(`${name}.bias`)], { axis: -1, epsilon: { float: eps } });
}
