/**
 * Weight-space adapters after training: the adapter folder (kind "weights", PEFT's keys),
 * the merged ONNX model (LoRA folded into a copy of the weights, run by onnxruntime) and the
 * PEFT export, each read back and compared with the engine's forward with the LoRA pairs on.
 */
import { readFileSync } from "node:fs";
import path from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { writeTinyBert } from "../scripts/make-tiny-bert.js";
import { Encoder } from "../src/embed.js";
import { packBatch } from "../src/engine/batch.js";
import { Engine } from "../src/engine/engine.js";
import { engineFromFolder, loadEngineModel, type LoadedEngineModel } from "../src/engine/load.js";
import { initWeightLora, type WeightLora } from "../src/engine/lora.js";
import { MergedSession } from "../src/engine/merged-encoder.js";
import { readModelFolder } from "../src/encoder/hf/folder.js";
import { HfEncoder } from "../src/encoder/hf/index.js";
import { UseLiteEncoder } from "../src/encoder/use-lite/index.js";
import { exportAdapter } from "../src/export/index.js";
import { mergedOnnx } from "../src/export/merged-weights-onnx.js";
import { readAdapter, ADAPTER_FORMAT, ADAPTER_FORMAT_VERSION } from "../src/io/adapter-folder.js";
import { decodeSafetensors } from "../src/io/safetensors.js";
import { bindWeightAdapter, saveWeightAdapter, type WeightAdapterFile } from "../src/io/weight-adapter.js";
import { Rng } from "../src/util/rng.js";
import { readJsonl, repoRoot, tempDir } from "./helpers.js";

const debian = readJsonl<{ query: string; positive: string }>(path.join(repoRoot, "data/debian-eval.jsonl"));
const texts = [...debian.slice(0, 12).map((p) => p.query), ...debian.slice(0, 4).map((p) => p.positive), "short"];
const work = tempDir();
const cacheRoot = path.join(work, "cache");

/** A fresh adapter with lora_B drawn at random, so it changes the vectors. */
function randomAdapter(loaded: LoadedEngineModel, targets: string[], topLayers: number, amp: number): WeightLora {
  const rng = Rng.seeded(3);
  const lora = initWeightLora(loaded.model, { r: 4, loraAlpha: 8, dropout: 0, targets, topLayers }, rng);
  for (const m of lora.modules) for (let e = 0; e < m.pair.B.length; e++) m.pair.B[e] = (2 * rng.uniform() - 1) * amp;
  return lora;
}

function engineVectors(loaded: LoadedEngineModel, lora: WeightLora | null, tokens: number[][]): Float32Array {
  const batch = packBatch(tokens);
  const engine = new Engine(loaded.model, lora, { maxT: batch.T, maxN: batch.N });
  const z = new Float32Array(batch.N * loaded.model.dim);
  engine.forward(z, batch);
  return z;
}

function compare(a: Float32Array, b: Float32Array, D: number): { maxDiff: number; minCos: number } {
  let maxDiff = 0;
  let minCos = 1;
  for (let i = 0; i < a.length / D; i++) {
    let dot = 0;
    for (let j = 0; j < D; j++) {
      dot += a[i * D + j] * b[i * D + j];
      maxDiff = Math.max(maxDiff, Math.abs(a[i * D + j] - b[i * D + j]));
    }
    minCos = Math.min(minCos, dot);
  }
  return { maxDiff, minCos };
}

function configFor(loaded: LoadedEngineModel, lora: WeightLora, sha256: string, name: string): WeightAdapterFile["config"] {
  return {
    format: ADAPTER_FORMAT, format_version: ADAPTER_FORMAT_VERSION, kind: "weights", r: lora.spec.r, lora_alpha: lora.spec.loraAlpha, dim: loaded.model.dim,
    apply_to: "both", base_model: { name, source: "test", sha256 }, lora_dropout: 0, target_modules: lora.spec.targets,
    layers_to_transform: lora.spec.topLayers ? [...new Set(lora.modules.map((m) => m.layer))] : null, arch: loaded.model.arch,
  };
}

describe("weight-space adapter on the tiny BERT: folder, merged ONNX, PEFT export", () => {
  const modelDir = path.join(work, "tiny-bert");
  const adapterDir = path.join(work, "adapter");
  let loaded: LoadedEngineModel;
  let lora: WeightLora;
  let base: HfEncoder;
  let tokens: number[][];
  let want: Float32Array;

  beforeAll(async () => {
    writeTinyBert(modelDir, { seed: 7 });
    loaded = engineFromFolder(await readModelFolder(modelDir));
    lora = randomAdapter(loaded, ["query", "value", "ffn_out"], 0, 0.2);
    base = await HfEncoder.load(modelDir, { offline: true, cacheRoot });
    tokens = texts.map((t) => base.tokenize(t));
    want = engineVectors(loaded, lora, tokens);
    if (loaded.source.arch !== "bert") throw new Error("expected BERT");
    await saveWeightAdapter(adapterDir, configFor(loaded, lora, loaded.source.folder.onnxSha256, modelDir), lora, false);
  });
  afterAll(() => base.close());

  it("the adapter changes the vectors, and a fresh one (lora_B = 0) does not", () => {
    const plain = engineVectors(loaded, null, tokens);
    expect(compare(plain, want, loaded.model.dim).minCos).toBeLessThan(0.999);
    const fresh = initWeightLora(loaded.model, { r: 4, loraAlpha: 8, dropout: 0, targets: ["query", "value"], topLayers: 0 }, Rng.seeded(1));
    expect(compare(plain, engineVectors(loaded, fresh, tokens), loaded.model.dim).maxDiff).toBe(0);
  });

  it("saves PEFT keys and shapes, reads back to the same forward", async () => {
    const { tensors } = decodeSafetensors(readFileSync(path.join(adapterDir, "adapter_model.safetensors")), "x");
    expect(tensors.get("base_model.model.encoder.layer.0.attention.self.query.lora_A.weight")!.shape).toEqual([4, 32]);
    expect(tensors.get("base_model.model.encoder.layer.1.output.dense.lora_B.weight")!.shape).toEqual([32, 4]);
    expect(tensors.size).toBe(2 * 3 * 2);
    const adapter = await readAdapter(adapterDir);
    if (adapter.kind !== "weights") throw new Error("expected a weights adapter");
    const again = engineVectors(loaded, bindWeightAdapter(loaded.model, adapter, adapterDir), tokens);
    expect(compare(again, want, loaded.model.dim).maxDiff).toBe(0);
  });

  it("merged ONNX on onnxruntime = the engine with LoRA (cosine >= 0.99999)", async () => {
    const merged = await MergedSession.create(loaded.source, lora, loaded.model.dim);
    const got = await merged.encodeTokens(tokens);
    await merged.close();
    const { maxDiff, minCos } = compare(got, want, loaded.model.dim);
    console.log(`tiny BERT merged ONNX vs engine+LoRA: max |diff| ${maxDiff.toExponential(2)}, min cosine ${minCos.toFixed(9)}`);
    expect(minCos).toBeGreaterThanOrEqual(0.99999);
    expect(maxDiff).toBeLessThan(1e-5);
  });

  it("Encoder.load({ adapter }) encodes with the merged model; query-only keeps base documents", async () => {
    const encoder = await Encoder.load({ model: modelDir, adapter: adapterDir, cacheDir: cacheRoot, offline: true });
    expect(compare(await encoder.encode(texts), want, 32).minCos).toBeGreaterThanOrEqual(0.99999);
    await encoder.close();
  });

  it("exports PEFT: LoraConfig fields and the same tensors", async () => {
    const out = path.join(work, "peft");
    const files = await exportAdapter(adapterDir, "peft", { out, offline: true, cacheDir: cacheRoot });
    expect(files).toContain("adapter_config.json");
    const cfg = JSON.parse(readFileSync(path.join(out, "adapter_config.json"), "utf8"));
    expect(cfg).toMatchObject({ peft_type: "LORA", task_type: "FEATURE_EXTRACTION", r: 4, lora_alpha: 8, lora_dropout: 0, base_model_name_or_path: modelDir, target_modules: ["query", "value", "output.dense"], layers_to_transform: null });
    expect(readFileSync(path.join(out, "adapter_model.safetensors"))).toEqual(readFileSync(path.join(adapterDir, "adapter_model.safetensors")));
  });

  it("exports the merged model as a Hub-layout folder that loads as a plain model", async () => {
    const out = path.join(work, "merged");
    await exportAdapter(adapterDir, "onnx", { out, offline: true, cacheDir: cacheRoot });
    const plain = await HfEncoder.load(out, { offline: true, cacheRoot });
    const got = await plain.encode(texts);
    await plain.close();
    expect(compare(got, want, 32).minCos).toBeGreaterThanOrEqual(0.99999);
  });

  it("refuses to merge a non-finite adapter", () => {
    const bad = randomAdapter(loaded, ["query"], 1, 0.1);
    bad.modules[0].pair.B[0] = Number.NaN;
    expect(() => mergedOnnx(loaded.source, bad)).toThrow(/non-finite/);
  });
});

describe("weight-space adapter on USE-Lite: merged graph = engine with LoRA", () => {
  it("query, value, ffn_in and the residual projection, merged and run on onnxruntime", async () => {
    const loaded = await loadEngineModel("default", { offline: true, cacheRoot });
    const lora = randomAdapter(loaded, ["query", "value", "ffn_in", "residual_projection"], 0, 0.05);
    const encoder = await UseLiteEncoder.load();
    const tokens = texts.map((t) => encoder.tokenize(t));
    await encoder.close();
    const want = engineVectors(loaded, lora, tokens);
    const merged = await MergedSession.create(loaded.source, lora, 512);
    const got = await merged.encodeTokens(tokens);
    await merged.close();
    const plain = engineVectors(loaded, null, tokens);
    const { maxDiff, minCos } = compare(got, want, 512);
    console.log(`USE-Lite merged ONNX vs engine+LoRA: max |diff| ${maxDiff.toExponential(2)}, min cosine ${minCos.toFixed(9)} (base vs adapted: ${compare(plain, want, 512).minCos.toFixed(4)})`);
    expect(compare(plain, want, 512).minCos).toBeLessThan(0.999);
    expect(minCos).toBeGreaterThanOrEqual(0.99999);
  });

  it("refuses a PEFT export: USE-Lite is not a PyTorch model", async () => {
    const loaded = await loadEngineModel("default", { offline: true, cacheRoot });
    const lora = randomAdapter(loaded, ["query"], 1, 0.05);
    const dir = path.join(work, "use-lite-adapter");
    if (loaded.source.arch !== "use-lite") throw new Error("expected USE-Lite");
    await saveWeightAdapter(dir, configFor(loaded, lora, loaded.source.files.sha256, "default"), lora, false);
    await expect(exportAdapter(dir, "peft", { out: path.join(work, "x") })).rejects.toThrow(/not one/);
  });
});
