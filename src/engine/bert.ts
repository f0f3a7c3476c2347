/**
 * BERT (BertModel: post-LayerNorm, GELU, learned positions) as an engine model, with the math
 * of src/encoder/bert/graph.ts:
 *
 *   x_0 = LN(E_word[ids] + E_pos[0..L) + E_type[types])
 *   per layer (post-LN, transformer-layer.ts): attention with scale 1/√dh, GELU feed-forward
 *   z = normalize(pool(x_n))           pool: the model's sentence-transformers pooling (mean, cls, lasttoken)
 *
 * Weights are named as in a transformers BertModel state dict, linear weights stored (in, out)
 * as the ONNX graph holds them (bert-weights.ts reads them from the model's ONNX file).
 * LoRA module names are PEFT's: encoder.layer.{l}.attention.self.query, ... .output.dense.
 */
import type { BertConfig } from "../encoder/bert/graph.js";
import { EmbedtuneError } from "../errors.js";
import { normalizeBackward } from "../lora/output-adapter.js";
import { type Float, l2NormalizeRows } from "../tensor/ops.js";
import type { TokenBatch } from "./batch.js";
import { bertEmbeddingForward } from "./embedding.js";
import type { Activation } from "./elementwise.js";
import { layerNormForward } from "./layernorm.js";
import type { Linear } from "./linear.js";
import { createHeadCacheOf, type EngineModel, type HeadCache, type Precision } from "./model.js";
import { poolBackward, poolForward, type PoolingMode } from "./pooling.js";
import type { LayerParams, LinearSlot } from "./transformer-layer.js";

/** A weight as read from a file: float32, row-major. */
export type NamedTensors = Map<string, { shape: number[]; data: Float32Array }>;

/** PEFT's module suffixes for BERT, and our short aliases, mapped to layer slots. */
export const BERT_TARGETS: Record<string, LinearSlot> = {
  query: "query", key: "key", value: "value",
  "attention.output.dense": "attnOut", attention_output: "attnOut",
  "intermediate.dense": "ffnIn", ffn_in: "ffnIn",
  "output.dense": "ffnOut", ffn_out: "ffnOut",
};

const SLOT_PATH: Record<LinearSlot, string | null> = {
  query: "attention.self.query", key: "attention.self.key", value: "attention.self.value",
  attnOut: "attention.output.dense", ffnIn: "intermediate.dense", ffnOut: "output.dense", residual: null,
};

/** State-dict prefixes of every linear layer of a BERT config (what onnx-weights.ts must find). */
export function bertLinearNames(config: BertConfig): string[] {
  const out: string[] = [];
  for (let l = 0; l < config.num_hidden_layers; l++) for (const path of Object.values(SLOT_PATH)) if (path) out.push(`encoder.layer.${l}.${path}`);
  return out;
}

export interface BertModelOptions {
  pooling: PoolingMode;
  maxTokens: number;
  precision?: Precision; // 64 for gradient checks
  activation?: string; // config.json hidden_act
}

export function createBertModel(config: BertConfig, weights: NamedTensors, options: BertModelOptions): EngineModel {
  const precision = options.precision ?? 32;
  const cast = (d: Float32Array): Float => (precision === 64 ? Float64Array.from(d) : d);
  const get = (name: string, shape: number[]): Float => {
    const t = weights.get(name);
    if (!t) throw new EmbedtuneError("INVALID_FILE", `BERT weight ${name} not found`);
    if (t.shape.join() !== shape.join()) throw new EmbedtuneError("INVALID_FILE", `BERT weight ${name} has shape [${t.shape}], expected [${shape}]`);
    return cast(t.data);
  };
  const H = config.hidden_size;
  const F = config.intermediate_size;
  const nh = config.num_attention_heads;
  const act = activationOf(options.activation ?? "gelu");
  const linear = (name: string, inDim: number, outDim: number): Linear => ({ W: get(`${name}.weight`, [inDim, outDim]), b: get(`${name}.bias`, [outDim]), inDim, outDim });
  const norm = (name: string) => ({ gamma: get(`${name}.weight`, [H]), beta: get(`${name}.bias`, [H]), eps: config.layer_norm_eps });

  const word = get("embeddings.word_embeddings.weight", [config.vocab_size, H]);
  const pos = get("embeddings.position_embeddings.weight", [config.max_position_embeddings, H]);
  const type = get("embeddings.token_type_embeddings.weight", [config.type_vocab_size, H]);
  const embLn = norm("embeddings.LayerNorm");
  const layers: LayerParams[] = [];
  for (let l = 0; l < config.num_hidden_layers; l++) {
    const p = `encoder.layer.${l}`;
    layers.push({
      order: "post", act, heads: nh, scale: 1 / Math.sqrt(H / nh),
      query: linear(`${p}.attention.self.query`, H, H), key: linear(`${p}.attention.self.key`, H, H), value: linear(`${p}.attention.self.value`, H, H),
      attnOut: linear(`${p}.attention.output.dense`, H, H), ffnIn: linear(`${p}.intermediate.dense`, H, F), ffnOut: linear(`${p}.output.dense`, F, H),
      residual: null, ln1: norm(`${p}.attention.output.LayerNorm`), ln2: norm(`${p}.output.LayerNorm`),
    });
  }
  const mode = options.pooling;
  const maxTokens = Math.min(options.maxTokens, config.max_position_embeddings);

  return {
    arch: "bert",
    dim: H,
    maxTokens,
    layers,
    embedForward(x: Float, batch: TokenBatch): void {
      for (let t = 0; t < batch.T; t++) {
        if (batch.positions[t] >= config.max_position_embeddings) throw new EmbedtuneError("INVALID_ARGUMENT", `text longer than the model's ${config.max_position_embeddings} positions`);
      }
      bertEmbeddingForward(x, batch, word, pos, type, H);
      layerNormForward(x, null, x, embLn.gamma, embLn.beta, batch.T, H, embLn.eps);
    },
    createHeadCache: (maxN: number, prec: Precision): HeadCache => createHeadCacheOf(maxN, H, H, prec),
    headForward(z: Float, c: HeadCache, x: Float, batch: TokenBatch): void {
      poolForward(c.y, x, batch.offsets, batch.N, H, mode);
      l2NormalizeRows(c.z, c.y, batch.N, H, c.norms);
      if (z !== c.z) z.set(c.z.subarray(0, batch.N * H));
    },
    headBackward(dx: Float, dz: Float, c: HeadCache, _x: Float, batch: TokenBatch): void {
      c.dY.fill(0, 0, batch.N * H);
      normalizeBackward(c.dY, dz, c.z, c.norms, batch.N, H);
      poolBackward(dx, c.dY, batch.offsets, batch.N, H, mode);
    },
    moduleName: (layer: number, slot: LinearSlot) => (SLOT_PATH[slot] ? `encoder.layer.${layer}.${SLOT_PATH[slot]}` : null),
    targetSlots: BERT_TARGETS,
  };
}

function activationOf(name: string): Activation {
  if (name === "gelu") return "gelu";
  if (name === "relu") return "relu";
  throw new EmbedtuneError("INVALID_FILE", `hidden_act "${name}" is not supported by the training engine (supported: gelu, relu)`, { field: "hidden_act" });
}
