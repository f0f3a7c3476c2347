/**
 * The training-step cases that bench/torch_tiny_step.py recomputes in PyTorch and
 * test/engine-step.test.ts checks against (test/fixtures/engine-step.json): the tiny BERT of
 * scripts/make-tiny-bert.ts (seed 7), LoRA r 4 / lora_alpha 8 on query and value of both
 * layers (PEFT's default targets), two steps of 4 examples with constant lr.
 *
 *   npx tsx bench/engine-step-case.ts /tmp/engine-step          # writes the inputs
 *   /usr/bin/python3 bench/torch_tiny_step.py /tmp/engine-step > test/fixtures/engine-step.json
 */
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { writeTinyBert } from "../scripts/make-tiny-bert.js";
import { engineFromFolder } from "../src/engine/load.js";
import { initWeightLora, type WeightLora } from "../src/engine/lora.js";
import type { EngineModel } from "../src/engine/model.js";
import { readModelFolder } from "../src/encoder/hf/folder.js";
import { HfEncoder } from "../src/encoder/hf/index.js";
import { encodeSafetensors } from "../src/io/safetensors.js";
import { Rng } from "../src/util/rng.js";

const here = path.dirname(fileURLToPath(import.meta.url));

export const STEP_SETTINGS = { r: 4, loraAlpha: 8, targets: ["query", "value"], scale: 20, maxGradNorm: 1.0, lr: 1e-3, weightDecay: 0.01, betas: [0.9, 0.999] as [number, number], eps: 1e-8, loraSeed: 42 };

export interface StepCase {
  kind: "mnrl" | "cosent";
  left: number[][]; // token ids per example, two steps of 4 back to back
  right: number[][];
  scores: number[]; // cosent only, in [0, 1]
}

export interface StepFixtureInputs {
  model: EngineModel;
  lora: WeightLora;
  weights: Map<string, { shape: number[]; data: Float32Array }>;
  cases: StepCase[];
  config: Record<string, unknown>;
}

/** Builds the model, a fresh adapter and the two cases; `dir` receives the tiny model folder. */
export async function stepFixtureInputs(dir: string): Promise<StepFixtureInputs> {
  const modelDir = path.join(dir, "tiny-bert");
  const config = writeTinyBert(modelDir, { seed: 7 });
  const folder = await readModelFolder(modelDir);
  const { model, source } = engineFromFolder(folder);
  if (source.arch !== "bert") throw new Error("expected BERT");
  const lora = initWeightLora(model, { r: STEP_SETTINGS.r, loraAlpha: STEP_SETTINGS.loraAlpha, dropout: 0, targets: STEP_SETTINGS.targets, topLayers: 0 }, Rng.seeded(STEP_SETTINGS.loraSeed));
  const encoder = await HfEncoder.load(modelDir, { offline: true, cacheRoot: path.join(dir, "cache") });
  const pairs = readFileSync(path.join(here, "../data/debian-eval.jsonl"), "utf8").trim().split("\n").slice(0, 8).map((l) => JSON.parse(l) as { query: string; positive: string });
  const sts = readFileSync(path.join(here, "../../shared/data/stsb/train.csv"), "utf8").trim().split("\n").slice(1, 9).map((l) => {
    const parts = l.split(",");
    return { s1: parts[0], s2: parts.slice(1, -1).join(","), score: Number(parts[parts.length - 1]) / 5 };
  });
  const cases: StepCase[] = [
    { kind: "mnrl", left: pairs.map((p) => encoder.tokenize(p.query)), right: pairs.map((p) => encoder.tokenize(p.positive)), scores: [] },
    { kind: "cosent", left: sts.map((p) => encoder.tokenize(p.s1)), right: sts.map((p) => encoder.tokenize(p.s2)), scores: sts.map((p) => p.score) },
  ];
  await encoder.close();
  return { model, lora, weights: source.weights.tensors, cases, config: { ...config, pooling: folder.pooling } };
}

/** Writes inputs.json (config, cases, settings) and weights.safetensors (state dict (in, out) and lora A). */
export async function writeStepInputs(dir: string): Promise<void> {
  const inputs = await stepFixtureInputs(dir);
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [name, t] of inputs.weights) if (/^(embeddings|encoder)\./.test(name)) tensors[name] = t;
  for (const m of inputs.lora.modules) tensors[`lora.${m.name}.lora_A`] = { shape: [m.pair.r, m.inDim], data: m.pair.A as Float32Array };
  writeFileSync(path.join(dir, "weights.safetensors"), encodeSafetensors(tensors));
  writeFileSync(path.join(dir, "inputs.json"), JSON.stringify({ config: inputs.config, settings: STEP_SETTINGS, modules: inputs.lora.modules.map((m) => m.name), cases: inputs.cases }));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = process.argv[2];
  if (!out) throw new Error("usage: npx tsx bench/engine-step-case.ts <dir>");
  await writeStepInputs(out);
  console.log(`wrote ${out}/inputs.json and weights.safetensors`);
}
