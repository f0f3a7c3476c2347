/**
 * Exports of a weight-space adapter (kind "weights"):
 *
 *   peft   PEFT's own folder: adapter_config.json (peft_type LORA, r, lora_alpha, lora_dropout,
 *          target_modules, layers_to_transform, base_model_name_or_path, task_type
 *          FEATURE_EXTRACTION) and adapter_model.safetensors with PEFT's keys
 *          (base_model.model.encoder.layer.0.attention.self.query.lora_A.weight [r, in],
 *          ... .lora_B.weight [out, r]). PeftModel.from_pretrained(AutoModel...) and
 *          sentence-transformers' model.load_adapter read it; so do inference servers that read
 *          PEFT LoRA adapters. BERT-family models only (USE-Lite is not a PyTorch model).
 *   onnx   the encoder with the LoRA merged into a copy of its weights (merged-weights-onnx.ts):
 *   merged a Hub-layout folder (BERT: config, tokenizer, pooling files and onnx/model.onnx) that
 *          `--model <folder>`, transformers.js and onnxruntime load as a plain model, at the
 *          base model's speed; for USE-Lite, onnx/model.onnx (sentence_embedding) and vocab.json.
 *
 * PEFT matches target_modules by name suffix, so "output.dense" also selects
 * attention.output.dense: such extra modules get PEFT's initial lora_B = 0 and change nothing.
 */
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";

import { loadEngineModel } from "../engine/load.js";
import { BERT_TARGETS } from "../engine/bert.js";
import { ALL_LINEAR } from "../engine/lora.js";
import { EmbedtuneError } from "../errors.js";
import { isOffline } from "../encoder/hf/hub.js";
import { useLiteDir } from "../encoder/use-lite/weights.js";
import type { AnyAdapter } from "../io/adapter-folder.js";
import { writeFolderAtomic } from "../io/atomic.js";
import { encodeSafetensors } from "../io/safetensors.js";
import { defaultCacheRoot } from "../io/vector-cache.js";
import { bindWeightAdapter, type WeightAdapterFile } from "../io/weight-adapter.js";
import type { ExportOptions } from "./base.js";
import { mergedOnnx } from "./merged-weights-onnx.js";

/** Our target names (aliases included) as PEFT's module-name suffixes for BERT. */
const PEFT_NAME: Record<string, string> = { query: "query", key: "key", value: "value", attnOut: "attention.output.dense", ffnIn: "intermediate.dense", ffnOut: "output.dense" };

export function peftTargetModules(targets: string[]): string[] {
  const slots = targets.includes(ALL_LINEAR) || targets.includes("all") ? Object.keys(PEFT_NAME) : targets.map((t) => BERT_TARGETS[t]);
  return [...new Set(slots.map((s) => PEFT_NAME[s]))];
}

/** PEFT's LoraConfig as JSON, with only fields every PEFT release since 0.3 reads. */
export function peftConfig(adapter: WeightAdapterFile): Record<string, unknown> {
  const c = adapter.config;
  const base = c.base_model;
  return {
    peft_type: "LORA",
    task_type: "FEATURE_EXTRACTION",
    base_model_name_or_path: base.name,
    revision: base.revision ?? null,
    r: c.r,
    lora_alpha: c.lora_alpha,
    lora_dropout: c.lora_dropout,
    target_modules: peftTargetModules(c.target_modules),
    layers_to_transform: c.layers_to_transform,
    layers_pattern: c.layers_to_transform ? "layer" : null,
    bias: "none",
    fan_in_fan_out: false,
    modules_to_save: null,
    init_lora_weights: true,
    inference_mode: true,
  };
}

export async function exportWeightAdapter(adapter: Extract<AnyAdapter, { kind: "weights" }>, adapterDir: string, format: string, options: ExportOptions): Promise<string[]> {
  const c = adapter.config;
  const files: Record<string, Uint8Array | string> = {};
  if (format === "peft") {
    if (c.arch !== "bert") {
      throw new EmbedtuneError("INVALID_ARGUMENT", "PEFT adapters apply to PyTorch models; the default encoder (USE-Lite) is not one", { file: adapterDir, field: "format" }, "use --format onnx (the merged model)");
    }
    const src = await readFile(path.join(adapterDir, "adapter_model.safetensors"));
    files["adapter_config.json"] = `${JSON.stringify(peftConfig(adapter), null, 2)}\n`;
    files["adapter_model.safetensors"] = new Uint8Array(src); // already PEFT's keys and layout
    files["README.md"] = `LoRA adapter for ${c.base_model.name}, trained with embedtune (PEFT format).\n\n` +
      "```python\nfrom sentence_transformers import SentenceTransformer\nmodel = SentenceTransformer(\"" + c.base_model.name + "\")\nmodel.load_adapter(\"<this folder>\")\n```\n";
  } else if (format === "onnx" || format === "merged") {
    const spec = c.base_model.revision ? `${c.base_model.name}@${c.base_model.revision}` : c.base_model.name;
    const { model, source } = await loadEngineModel(spec, { offline: isOffline(options.offline), cacheRoot: options.cacheDir || defaultCacheRoot() });
    const sha = source.arch === "bert" ? source.folder.onnxSha256 : source.files.sha256;
    if (sha !== c.base_model.sha256) {
      throw new EmbedtuneError("INVALID_ADAPTER", `the model found for ${spec} (sha256 ${sha.slice(0, 12)}) is not the one the adapter was trained on (${c.base_model.sha256.slice(0, 12)})`, { file: adapterDir });
    }
    files["onnx/model.onnx"] = mergedOnnx(source, bindWeightAdapter(model, adapter, adapterDir));
    if (source.arch === "bert") {
      for (const rel of await modelFolderFiles(source.folder.dir)) files[rel] = new Uint8Array(await readFile(path.join(source.folder.dir, rel)));
    } else {
      files["vocab.json"] = new Uint8Array(await readFile(path.join(useLiteDir(), "vocab.json")));
      files["README.md"] = "USE-Lite with an embedtune weight-space adapter merged into its weights. Inputs: input_ids and attention_mask,\nint64 [batch, sequence], at most 128 tokens (vocab.json, the tokenizer of @energetic-ai/embeddings). Output: sentence_embedding [batch, 512].\n";
    }
  } else {
    throw new EmbedtuneError("INVALID_ARGUMENT", `a weight-space adapter exports as peft, onnx or merged, not ${format}`, { field: "format" });
  }
  await writeFolderAtomic(options.out, files, options.overwrite ?? false);
  return Object.keys(files).sort();
}

/** Every file of a Hub-layout model folder but its ONNX models (the merged one replaces them). */
async function modelFolderFiles(dir: string, rel = ""): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(path.join(dir, rel), { withFileTypes: true })) {
    const name = rel ? `${rel}/${entry.name}` : entry.name;
    if (entry.isDirectory()) {
      if (name !== "onnx" && !entry.name.startsWith(".")) out.push(...(await modelFolderFiles(dir, name)));
    } else if (!name.endsWith(".onnx") && !name.endsWith(".onnx_data")) {
      out.push(name);
    }
  }
  return out;
}
