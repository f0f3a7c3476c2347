/**
 * Weight-space LoRA: pairs (lora_A (R, in), lora_B (out, R)) on chosen linear layers of the
 * encoder, in PEFT's layout and initialisation:
 *
 *   W x  ->  W x + (lora_alpha / r) · B A d(x)        A ~ kaiming_uniform(a = √5) = U(−1/√in, 1/√in), B = 0
 *
 * so a fresh adapter leaves the encoder unchanged. Modules are named as in the model
 * (PEFT's names for BERT: encoder.layer.3.attention.self.query); their tensors are saved as
 * `base_model.model.<module>.lora_A.weight` / `.lora_B.weight`, PEFT's keys.
 *
 * Targets: the names an architecture accepts (model.targetSlots), or "all-linear" for every
 * linear of the transformer layers. `layers`: restrict to the top k layers (0 = all).
 */
import { EmbedtuneError } from "../errors.js";
import type { Float } from "../tensor/ops.js";
import type { Rng } from "../util/rng.js";
import type { LoraPair } from "./linear.js";
import type { EngineModel } from "./model.js";
import { LINEAR_SLOTS, type LayerLora, type LayerLoraGrads, type LinearSlot } from "./transformer-layer.js";

export interface WeightLoraSpec {
  r: number;
  loraAlpha: number;
  dropout: number;
  /** Target names as given (e.g. ["query", "value"]) or ["all-linear"]. */
  targets: string[];
  /** Train only the top k layers; 0 = every layer. */
  topLayers: number;
}

export interface LoraModule {
  name: string; // e.g. encoder.layer.0.attention.self.query
  layer: number;
  slot: LinearSlot;
  inDim: number;
  outDim: number;
  pair: LoraPair;
}

export interface WeightLora {
  spec: WeightLoraSpec;
  modules: LoraModule[]; // by layer, then slot order
  /** Per layer, the pairs by slot (what layerForward takes). */
  perLayer: LayerLora[];
  /** The lowest layer holding a pair: layers below it are frozen through and through. */
  firstLayer: number;
}

export const ALL_LINEAR = "all-linear";
export const DEFAULT_TARGETS = ["query", "value"]; // PEFT's default for BERT

/** Which (layer, slot) pairs a spec selects on a model; errors name the accepted targets. */
export function selectModules(model: EngineModel, spec: WeightLoraSpec): Array<{ layer: number; slot: LinearSlot }> {
  const n = model.layers.length;
  if (!Number.isSafeInteger(spec.topLayers) || spec.topLayers < 0 || spec.topLayers > n) {
    throw new EmbedtuneError("INVALID_ARGUMENT", `lora layers must be between 0 (all) and the model's ${n} layers, got ${spec.topLayers}`, { field: "lora-layers" });
  }
  const slots = new Set<LinearSlot>();
  for (const t of spec.targets) {
    if (t === ALL_LINEAR || t === "all") {
      for (const s of LINEAR_SLOTS) slots.add(s);
      continue;
    }
    const slot = model.targetSlots[t];
    if (!slot) {
      throw new EmbedtuneError("INVALID_ARGUMENT", `unknown LoRA target "${t}" for a ${model.arch} encoder (accepted: ${[...Object.keys(model.targetSlots), ALL_LINEAR].join(", ")})`, { field: "lora-targets" });
    }
    slots.add(slot);
  }
  if (slots.size === 0) throw new EmbedtuneError("INVALID_ARGUMENT", "no LoRA target given", { field: "lora-targets" });
  const from = spec.topLayers === 0 ? 0 : n - spec.topLayers;
  const out: Array<{ layer: number; slot: LinearSlot }> = [];
  for (let l = from; l < n; l++) {
    for (const slot of LINEAR_SLOTS) if (slots.has(slot) && model.moduleName(l, slot) !== null && linearOf(model, l, slot)) out.push({ layer: l, slot });
  }
  return out;
}

function linearOf(model: EngineModel, layer: number, slot: LinearSlot) {
  const p = model.layers[layer];
  return slot === "residual" ? p.residual : p[slot];
}

/** A fresh adapter (B = 0) for the spec, A drawn from rng in module order. */
export function initWeightLora(model: EngineModel, spec: WeightLoraSpec, rng: Rng, precision: 32 | 64 = 32): WeightLora {
  checkSpec(spec);
  const C = precision === 64 ? Float64Array : Float32Array;
  const modules: LoraModule[] = selectModules(model, spec).map(({ layer, slot }) => {
    const lin = linearOf(model, layer, slot)!;
    const A = new C(spec.r * lin.inDim);
    const bound = 1 / Math.sqrt(lin.inDim);
    for (let e = 0; e < A.length; e++) A[e] = (2 * rng.uniform() - 1) * bound;
    const pair: LoraPair = { r: spec.r, scaling: spec.loraAlpha / spec.r, dropout: spec.dropout, A, B: new C(lin.outDim * spec.r) };
    return { name: model.moduleName(layer, slot)!, layer, slot, inDim: lin.inDim, outDim: lin.outDim, pair };
  });
  return assemble(model, spec, modules);
}

/** Builds the per-layer view of a module list (also used when loading an adapter). */
export function assemble(model: EngineModel, spec: WeightLoraSpec, modules: LoraModule[]): WeightLora {
  const perLayer: LayerLora[] = model.layers.map(() => ({}));
  for (const m of modules) perLayer[m.layer][m.slot] = m.pair;
  const firstLayer = modules.length ? Math.min(...modules.map((m) => m.layer)) : model.layers.length;
  return { spec, modules, perLayer, firstLayer };
}

/** Zeroed gradient buffers, one { dA, dB } per module, and the per-layer view of them. */
export function createLoraGrads(lora: WeightLora, layers: number, precision: 32 | 64 = 32): { flat: Float[]; perLayer: LayerLoraGrads[] } {
  const C = precision === 64 ? Float64Array : Float32Array;
  const perLayer: LayerLoraGrads[] = Array.from({ length: layers }, () => ({}));
  const flat: Float[] = [];
  for (const m of lora.modules) {
    const g = { dA: new C(m.pair.A.length), dB: new C(m.pair.B.length) };
    perLayer[m.layer][m.slot] = g;
    flat.push(g.dA, g.dB);
  }
  return { flat, perLayer };
}

/** The parameters in the same order as createLoraGrads' flat list: [A_0, B_0, A_1, B_1, ...]. */
export function loraParams(lora: WeightLora): Float[] {
  return lora.modules.flatMap((m) => [m.pair.A, m.pair.B]);
}

/** PEFT's state-dict key of a module's tensor. */
export function peftKey(module: string, which: "lora_A" | "lora_B"): string {
  return `base_model.model.${module}.${which}.weight`;
}

function checkSpec(spec: WeightLoraSpec): void {
  if (!Number.isSafeInteger(spec.r) || spec.r < 1) throw new EmbedtuneError("INVALID_ARGUMENT", `r must be a positive integer, got ${spec.r}`, { field: "r" });
  if (!(spec.loraAlpha > 0)) throw new EmbedtuneError("INVALID_ARGUMENT", `lora_alpha must be positive, got ${spec.loraAlpha}`, { field: "lora_alpha" });
  if (!(spec.dropout >= 0 && spec.dropout < 1)) throw new EmbedtuneError("INVALID_ARGUMENT", `lora_dropout must be in [0, 1), got ${spec.dropout}`, { field: "lora-dropout" });
}
