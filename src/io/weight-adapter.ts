/**
 * Weight-space adapters in the adapter folder (kind "weights"): LoRA pairs inside the
 * encoder, stored under PEFT's state-dict keys so the tensors are PEFT's own:
 *
 *   adapter_config.json        embedtune's config (format, kind "weights", r, lora_alpha, lora_dropout,
 *                              target_modules, layers_to_transform, arch, base model, training, metrics)
 *   adapter_model.safetensors  base_model.model.<module>.lora_A.weight (r, in)
 *                              base_model.model.<module>.lora_B.weight (out, r)       float32
 *
 * <module> is the model's own name for the linear layer (PEFT's for BERT:
 * encoder.layer.0.attention.self.query). `embedtune export --format peft` writes the same
 * tensors with PEFT's adapter_config.json (src/export/peft.ts).
 */
import path from "node:path";

import { EmbedtuneError } from "../errors.js";
import { assemble, peftKey, type LoraModule, type WeightLora } from "../engine/lora.js";
import type { EngineModel } from "../engine/model.js";
import { LINEAR_SLOTS } from "../engine/transformer-layer.js";
import type { AdapterConfig } from "./adapter-folder.js";
import { CONFIG_FILE, WEIGHTS_FILE } from "./adapter-folder.js";
import { writeFolderAtomic } from "./atomic.js";
import { encodeSafetensors, type Tensor } from "./safetensors.js";

/** The extra fields of a "weights" adapter_config.json. */
export interface WeightAdapterFields {
  lora_dropout: number;
  /** The --lora-targets names as given ("all-linear" included). */
  target_modules: string[];
  /** Layers holding pairs (null = every layer). */
  layers_to_transform: number[] | null;
  arch: "bert" | "use-lite";
}

/** A weights adapter as read from its folder: pairs by module name, not yet bound to a model. */
export interface WeightAdapterFile {
  config: AdapterConfig & WeightAdapterFields;
  pairs: Map<string, { A: Float32Array; B: Float32Array; inDim: number; outDim: number }>;
  applyTo: AdapterConfig["apply_to"];
}

/** Tensors of a weight LoRA under PEFT's keys. */
export function weightLoraTensors(lora: WeightLora): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const m of lora.modules) {
    out[peftKey(m.name, "lora_A")] = { shape: [m.pair.r, m.inDim], data: m.pair.A as Float32Array };
    out[peftKey(m.name, "lora_B")] = { shape: [m.outDim, m.pair.r], data: m.pair.B as Float32Array };
  }
  return out;
}

export async function saveWeightAdapter(dir: string, config: WeightAdapterFile["config"], lora: WeightLora, overwrite: boolean): Promise<void> {
  const tensors = weightLoraTensors(lora);
  for (const [name, t] of Object.entries(tensors)) {
    const bad = t.data.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new EmbedtuneError("INVALID_ADAPTER", `${name} holds a non-finite value at index ${bad}`, { file: path.join(dir, WEIGHTS_FILE) });
  }
  const weights = encodeSafetensors(tensors, { format: "pt" });
  await writeFolderAtomic(dir, { [CONFIG_FILE]: `${JSON.stringify(config, null, 2)}\n`, [WEIGHTS_FILE]: weights }, overwrite);
}

const KEY = /^base_model\.model\.(.+)\.lora_([AB])\.weight$/;

/** Checks a "weights" config's extra fields and pairs its tensors up; any flaw names the file. */
export function parseWeightAdapter(config: AdapterConfig, tensors: Map<string, Tensor>, configPath: string, weightsPath: string): WeightAdapterFile {
  const c = config as AdapterConfig & Partial<WeightAdapterFields>;
  const bad = (field: string, what: string): never => {
    throw new EmbedtuneError("INVALID_ADAPTER", what, { file: configPath, field });
  };
  if (typeof c.lora_dropout !== "number" || !(c.lora_dropout >= 0 && c.lora_dropout < 1)) bad("lora_dropout", "must be a number in [0, 1)");
  if (!Array.isArray(c.target_modules) || c.target_modules.length === 0 || !c.target_modules.every((t) => typeof t === "string")) bad("target_modules", "must be a non-empty list of names");
  if (c.layers_to_transform !== null && !(Array.isArray(c.layers_to_transform) && c.layers_to_transform.every((l) => Number.isSafeInteger(l) && l >= 0))) bad("layers_to_transform", "must be null or a list of layer numbers");
  if (c.arch !== "bert" && c.arch !== "use-lite") bad("arch", `must be "bert" or "use-lite", found ${JSON.stringify(c.arch)}`);
  const halves = new Map<string, { A?: Tensor; B?: Tensor }>();
  for (const [key, t] of tensors) {
    const m = KEY.exec(key);
    if (!m) throw new EmbedtuneError("INVALID_ADAPTER", `unexpected tensor ${key} (expected base_model.model.<module>.lora_A.weight / lora_B.weight)`, { file: weightsPath });
    const entry = halves.get(m[1]) ?? {};
    entry[m[2] as "A" | "B"] = t;
    halves.set(m[1], entry);
  }
  if (halves.size === 0) throw new EmbedtuneError("INVALID_ADAPTER", "no LoRA tensors", { file: weightsPath });
  const pairs: WeightAdapterFile["pairs"] = new Map();
  for (const [name, { A, B }] of halves) {
    if (!A || !B) throw new EmbedtuneError("INVALID_ADAPTER", `module ${name} has lora_${A ? "A" : "B"} but not lora_${A ? "B" : "A"}`, { file: weightsPath });
    if (A.shape.length !== 2 || B.shape.length !== 2 || A.shape[0] !== c.r || B.shape[1] !== c.r) {
      throw new EmbedtuneError("INVALID_ADAPTER", `module ${name}: lora_A ${JSON.stringify(A.shape)} and lora_B ${JSON.stringify(B.shape)} must be [r, in] and [out, r] with r = ${c.r}`, { file: weightsPath });
    }
    for (const [which, t] of [["lora_A", A], ["lora_B", B]] as const) {
      const i = t.data.findIndex((v) => !Number.isFinite(v));
      if (i >= 0) throw new EmbedtuneError("INVALID_ADAPTER", `${name}.${which} holds a non-finite value at index ${i}`, { file: weightsPath });
    }
    pairs.set(name, { A: A.data, B: B.data, inDim: A.shape[1], outDim: B.shape[0] });
  }
  return { config: c as WeightAdapterFile["config"], pairs, applyTo: c.apply_to };
}

/** The adapter's pairs placed on a model's linear layers (shapes checked); dropout off unless asked. */
export function bindWeightAdapter(model: EngineModel, adapter: WeightAdapterFile, where: string, dropout = 0): WeightLora {
  const byName = new Map<string, { layer: number; slot: (typeof LINEAR_SLOTS)[number] }>();
  model.layers.forEach((_, l) => LINEAR_SLOTS.forEach((slot) => {
    const name = model.moduleName(l, slot);
    if (name) byName.set(name, { layer: l, slot });
  }));
  const c = adapter.config;
  const modules: LoraModule[] = [];
  for (const [name, p] of adapter.pairs) {
    const at = byName.get(name);
    if (!at) throw new EmbedtuneError("INVALID_ADAPTER", `module ${name} is not a linear layer of this ${model.arch} model`, { file: path.join(where, WEIGHTS_FILE) });
    const lp = model.layers[at.layer];
    const lin = at.slot === "residual" ? lp.residual! : lp[at.slot];
    if (lin.inDim !== p.inDim || lin.outDim !== p.outDim) {
      throw new EmbedtuneError("INVALID_ADAPTER", `module ${name} is ${lin.inDim} -> ${lin.outDim} in the model but ${p.inDim} -> ${p.outDim} in the adapter`, { file: path.join(where, WEIGHTS_FILE) });
    }
    modules.push({ name, layer: at.layer, slot: at.slot, inDim: p.inDim, outDim: p.outDim, pair: { r: c.r, scaling: c.lora_alpha / c.r, dropout, A: p.A, B: p.B } });
  }
  modules.sort((a, b) => a.layer - b.layer || LINEAR_SLOTS.indexOf(a.slot) - LINEAR_SLOTS.indexOf(b.slot));
  const spec = { r: c.r, loraAlpha: c.lora_alpha, dropout, targets: c.target_modules, topLayers: 0 };
  return assemble(model, spec, modules);
}
