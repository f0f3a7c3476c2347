import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import path from "node:path";

import { EmbedtuneError } from "../../errors.js";
import { decodeSafetensors } from "../../io/safetensors.js";

/** How token vectors become one text vector (sentence-transformers' Pooling module). */
export type Pooling = "mean" | "cls" | "lasttoken";

/** A sentence-transformers Dense module: y = act(W x + b), W (out, in) as torch.nn.Linear stores it. */
export interface DenseLayer {
  inFeatures: number;
  outFeatures: number;
  weight: Float32Array; // (out, in)
  bias: Float32Array | null; // (out)
  activation: "identity" | "tanh";
}

/** A model folder in the Hugging Face Hub layout, read and checked. */
export interface ModelFolder {
  dir: string;
  config: Record<string, unknown>;
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
  onnxFile: string; // onnx/model.onnx, else onnx/model_quantized.onnx
  onnxBytes: Uint8Array;
  onnxSha256: string;
  pooling: Pooling;
  /** sentence-transformers Dense modules after pooling, in order (e.g. an exported adapter). */
  dense: DenseLayer[];
  /** sentence-transformers prompts (config_sentence_transformers.json), e.g. {query: "query: "}. */
  prompts: Record<string, string> | null;
  /** Longest input in tokens, special tokens included. */
  maxLength: number;
}

const ONNX_CANDIDATES = ["onnx/model.onnx", "onnx/model_quantized.onnx", "model.onnx"];

/**
 * Reads a model folder. `modelId` (Hub id or folder path) picks the pooling of known model
 * families when the folder has no sentence-transformers pooling config: BGE uses CLS.
 */
export async function readModelFolder(dir: string, modelId = dir): Promise<ModelFolder> {
  const missing = (file: string, hint: string) =>
    new EmbedtuneError("FILE_NOT_FOUND", `model folder has no ${file}`, { file: path.join(dir, file) }, hint);
  const st = await stat(dir).catch(() => null);
  if (!st?.isDirectory()) throw new EmbedtuneError("FILE_NOT_FOUND", "model folder does not exist", { file: dir });
  const config = await readJson(dir, "config.json", () => missing("config.json", "a Hub-layout model folder has config.json"));
  const tokenizerJson = await readJson(dir, "tokenizer.json", () => missing("tokenizer.json", "export the fast tokenizer with tokenizer.save_pretrained()"));
  const tokenizerConfig = (await readJson(dir, "tokenizer_config.json", () => null)) ?? {};
  const onnxRel = ONNX_CANDIDATES.find((f) => existsSync(path.join(dir, f)));
  if (!onnxRel) throw missing("onnx/model.onnx", "export the model to ONNX, e.g. with optimum-cli export onnx, or use a Xenova/... repository");
  const onnxFile = path.join(dir, onnxRel);
  const onnxBytes = new Uint8Array(await readFile(onnxFile));
  return {
    dir,
    config,
    tokenizerJson,
    tokenizerConfig,
    onnxFile,
    onnxBytes,
    onnxSha256: createHash("sha256").update(onnxBytes).digest("hex"),
    pooling: (await readPooling(dir)) ?? knownPooling(modelId),
    dense: await readDense(dir),
    prompts: await readPrompts(dir),
    maxLength: maxLengthOf(config, tokenizerConfig),
  };
}

const ACTIVATIONS: Record<string, DenseLayer["activation"]> = {
  "torch.nn.modules.linear.Identity": "identity",
  "torch.nn.modules.activation.Tanh": "tanh",
};

/** The Dense modules listed in modules.json, with their weights from model.safetensors. */
async function readDense(dir: string): Promise<DenseLayer[]> {
  const modules = await readJson(dir, "modules.json", () => null);
  if (!Array.isArray(modules)) return [];
  const layers: DenseLayer[] = [];
  for (const m of modules as Array<{ type?: string; path?: string }>) {
    if (!m.type?.endsWith("models.Dense") || typeof m.path !== "string") continue;
    const configFile = path.join(dir, m.path, "config.json");
    const cfg = await readJson(dir, path.join(m.path, "config.json"), () => new EmbedtuneError("FILE_NOT_FOUND", "Dense module has no config.json", { file: configFile }));
    const inFeatures = cfg.in_features as number;
    const outFeatures = cfg.out_features as number;
    const activation = ACTIVATIONS[String(cfg.activation_function ?? "torch.nn.modules.linear.Identity")];
    if (!activation) throw new EmbedtuneError("INVALID_FILE", `unsupported activation ${String(cfg.activation_function)}`, { file: configFile, field: "activation_function" });
    const weightsFile = path.join(dir, m.path, "model.safetensors");
    const bytes = await readFile(weightsFile).catch(() => {
      throw new EmbedtuneError("FILE_NOT_FOUND", "Dense module has no model.safetensors (pytorch_model.bin is not read: no pickle)", { file: weightsFile });
    });
    const { tensors } = decodeSafetensors(bytes, weightsFile);
    const weight = tensors.get("linear.weight");
    if (!weight || weight.shape.join() !== `${outFeatures},${inFeatures}`) {
      throw new EmbedtuneError("INVALID_FILE", `linear.weight must have shape [${outFeatures}, ${inFeatures}]`, { file: weightsFile });
    }
    const bias = cfg.bias === false ? null : (tensors.get("linear.bias")?.data ?? null);
    layers.push({ inFeatures, outFeatures, weight: weight.data, bias, activation });
  }
  return layers;
}

async function readPrompts(dir: string): Promise<Record<string, string> | null> {
  const cfg = await readJson(dir, "config_sentence_transformers.json", () => null);
  const prompts = cfg?.prompts;
  if (typeof prompts !== "object" || prompts === null || Object.keys(prompts).length === 0) return null;
  return Object.fromEntries(Object.entries(prompts).filter(([, v]) => typeof v === "string")) as Record<string, string>;
}

/** Pooling of model families whose ONNX exports often lack 1_Pooling/config.json; mean otherwise. */
function knownPooling(modelId: string): Pooling {
  return /(^|[/-])bge-/i.test(modelId) ? "cls" : "mean";
}

/** sentence-transformers' modules.json -> Pooling module config; null when absent. */
async function readPooling(dir: string): Promise<Pooling | null> {
  const modules = await readJson(dir, "modules.json", () => null);
  const entry = Array.isArray(modules) ? (modules as Array<{ type?: string; path?: string }>).find((m) => m.type?.endsWith("Pooling")) : undefined;
  const poolingPath = entry?.path ?? "1_Pooling";
  const cfg = await readJson(dir, path.join(poolingPath, "config.json"), () => null);
  if (!cfg) return null;
  if (cfg.pooling_mode_cls_token === true) return "cls";
  if (cfg.pooling_mode_lasttoken === true) return "lasttoken";
  if (cfg.pooling_mode_mean_tokens === true) return "mean";
  const modes = Object.entries(cfg).filter(([k, v]) => k.startsWith("pooling_mode") && v === true).map(([k]) => k);
  throw new EmbedtuneError("INVALID_FILE", `unsupported pooling ${modes.join(", ") || "(none set)"}; supported: mean, cls, lasttoken`, { file: path.join(dir, poolingPath, "config.json") });
}

/**
 * The tokenizer's model_max_length when it is a real limit (tokenizers store 1e30 for "none"),
 * capped by the position table of the model.
 */
function maxLengthOf(config: Record<string, unknown>, tokenizerConfig: Record<string, unknown>): number {
  const positions = typeof config.max_position_embeddings === "number" ? config.max_position_embeddings : 512;
  const declared = typeof tokenizerConfig.model_max_length === "number" && tokenizerConfig.model_max_length < 1e6 ? tokenizerConfig.model_max_length : positions;
  return Math.min(declared, positions);
}

async function readJson(dir: string, file: string, ifMissing: () => EmbedtuneError | null): Promise<Record<string, unknown>> {
  const full = path.join(dir, file);
  let text: string;
  try {
    text = await readFile(full, "utf8");
  } catch {
    const err = ifMissing();
    if (err) throw err;
    return null as unknown as Record<string, unknown>;
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new EmbedtuneError("INVALID_FILE", `not valid JSON (${(e as Error).message})`, { file: full });
  }
}
