/**
 * Engine models from the files the frozen encoders already use:
 *   "default"            USE-Lite from the published weights (src/encoder/use-lite/weights.ts)
 *   folder or Hub id     BERT from the model's ONNX initializers (onnx-weights.ts), config.json
 *                        for the shapes, the sentence-transformers pooling config for the head
 */
import type { BertConfig } from "../encoder/bert/graph.js";
import { readModelFolder, type ModelFolder } from "../encoder/hf/folder.js";
import { resolveModel, type ResolveOptions } from "../encoder/hf/hub.js";
import { loadUseLiteFiles, type UseLiteFiles } from "../encoder/use-lite/weights.js";
import { EmbedtuneError } from "../errors.js";
import { bertLinearNames, createBertModel } from "./bert.js";
import type { EngineModel, Precision } from "./model.js";
import { bertWeightsFromOnnx, type OnnxWeights } from "./onnx-weights.js";
import { createUseLiteModel } from "./use-lite.js";

export type EngineSource =
  | { arch: "bert"; folder: ModelFolder; weights: OnnxWeights; config: BertConfig }
  | { arch: "use-lite"; files: UseLiteFiles };

export interface LoadedEngineModel {
  model: EngineModel;
  source: EngineSource;
}

const DEFAULT_NAMES = new Set(["default", "use-lite", "use-lite-en"]);

export async function loadEngineModel(spec: string, options: ResolveOptions, precision: Precision = 32): Promise<LoadedEngineModel> {
  if (DEFAULT_NAMES.has(spec)) {
    const files = await loadUseLiteFiles();
    return { model: createUseLiteModel(files, precision), source: { arch: "use-lite", files } };
  }
  const resolved = await resolveModel(spec, options);
  const folder = await readModelFolder(resolved.dir, resolved.id);
  return engineFromFolder(folder, precision);
}

export function engineFromFolder(folder: ModelFolder, precision: Precision = 32): LoadedEngineModel {
  const config = bertConfigOf(folder);
  if (folder.dense.length > 0) {
    throw new EmbedtuneError("INVALID_FILE", "the model has sentence-transformers Dense modules after pooling, which the training engine does not implement", { file: folder.dir },
      "train an output-space adapter (--adapter-kind output) on this model instead");
  }
  const weights = bertWeightsFromOnnx(folder.onnxBytes, bertLinearNames(config), folder.onnxFile);
  const model = createBertModel(config, weights.tensors, {
    pooling: folder.pooling, maxTokens: folder.maxLength, precision, activation: String(folder.config.hidden_act ?? "gelu"),
  });
  return { model, source: { arch: "bert", folder, weights, config } };
}

function bertConfigOf(folder: ModelFolder): BertConfig {
  const c = folder.config;
  const file = `${folder.dir}/config.json`;
  const type = String(c.model_type ?? "");
  if (type !== "bert") {
    // RoBERTa-style models offset positions by the padding id; other families differ more.
    throw new EmbedtuneError("INVALID_FILE", `model_type "${type}" is not supported by the training engine, which implements BERT (model_type "bert": post-LayerNorm, learned positions from 0)`, { file, field: "model_type" },
      "train an output-space adapter (--adapter-kind output) on this model instead");
  }
  const num = (k: string, fallback?: number): number => {
    const v = c[k] ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v)) throw new EmbedtuneError("INVALID_FILE", `config.json has no number ${k}`, { file, field: k });
    return v;
  };
  return {
    vocab_size: num("vocab_size"), hidden_size: num("hidden_size"), num_hidden_layers: num("num_hidden_layers"),
    num_attention_heads: num("num_attention_heads"), intermediate_size: num("intermediate_size"),
    max_position_embeddings: num("max_position_embeddings"), type_vocab_size: num("type_vocab_size", 2), layer_norm_eps: num("layer_norm_eps", 1e-12),
  };
}
