/**
 * Speed of one weight-space LoRA training step (`npm run bench:engine`): the default encoder
 * (USE-Lite), 32 Debian (summary, description) pairs cut to 64 tokens, LoRA r 16 on query and
 * value of both layers, symmetric InfoNCE, clipping, AdamW; against PyTorch training the same
 * architecture from the same weights on the CPU with the same threads (bench/torch_engine.py,
 * Debian's python3-torch). Also a plain float32 matrix multiply, for the GFLOP/s ceiling.
 *
 *   npx tsx bench/engine-bench.ts [--threads 1] [--steps 10] [--python /usr/bin/python3]
 *
 * Prints a table and writes bench/engine-results.json.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { gemmBackendName, mm, setGemmBackend } from "../src/engine/kernels.js";
import { loadEngineModel } from "../src/engine/load.js";
import { initWeightLora, type WeightLora } from "../src/engine/lora.js";
import type { EngineModel } from "../src/engine/model.js";
import { useLiteTiming } from "../src/engine/use-lite.js";
import { createSyncGemm } from "../src/encoder/sync-gemm.js";
import { UseLiteEncoder } from "../src/encoder/use-lite/index.js";
import { findFloat } from "../src/encoder/use-lite/weights.js";
import { encodeSafetensors } from "../src/io/safetensors.js";
import { AdamW } from "../src/optim/adamw.js";
import { WeightLoraStep } from "../src/train/weight-step.js";
import { Rng } from "../src/util/rng.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const threads = Number(arg("threads", "1"));
const steps = Number(arg("steps", "10"));
const python = arg("python", "/usr/bin/python3");
const PAIRS = 32;
const MAX_TOKENS = 64;

/** Multiply-adds × 2 of one step as the engine runs it (packed texts; backward forms dx and LoRA grads only). */
function stepFlops(model: EngineModel, lora: WeightLora, lengths: number[]): number {
  const T = lengths.reduce((a, b) => a + b, 0);
  const L2 = lengths.reduce((a, b) => a + b * b, 0);
  let f = 0;
  model.layers.forEach((p, l) => {
    const lin = [p.query, p.key, p.value, p.attnOut, p.ffnIn, p.ffnOut, ...(p.residual ? [p.residual] : [])];
    const A = p.query.outDim;
    const trained = l >= lora.firstLayer;
    for (const x of lin) f += 2 * T * x.inDim * x.outDim * (trained ? 2 : 1); // forward, and dx backward
    if (trained && l === lora.firstLayer) f -= 2 * T * p.query.inDim * A * 3 + (p.residual ? 2 * T * p.residual.inDim * p.residual.outDim : 0); // no dx below the first trained layer
    f += 4 * L2 * A * (trained ? 3 : 1); // attention: forward 4, backward 8
  });
  for (const m of lora.modules) f += 2 * T * m.pair.r * (m.inDim + m.outDim) * 3; // forward, dA/dB, dU/dx
  f += 2 * lengths.length * model.dim * model.dim * 2; // tanh head forward and backward
  return f;
}

function gflopsOfMatmul(): number {
  const M = 2048, K = 512, N = 1536;
  const a = new Float32Array(M * K).map((_, i) => Math.sin(i));
  const b = new Float32Array(K * N).map((_, i) => Math.cos(i));
  const out = new Float32Array(M * N);
  mm(out, a, b, M, K, N);
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < 1500) {
    mm(out, a, b, M, K, N);
    n++;
  }
  return (2 * M * K * N * n) / ((performance.now() - t0) / 1000) / 1e9;
}

async function main(): Promise<void> {
  const dir = path.join(os.tmpdir(), "embedtune-engine-bench");
  mkdirSync(dir, { recursive: true });
  const { model, source } = await loadEngineModel("default", { offline: true, cacheRoot: dir });
  if (source.arch !== "use-lite") throw new Error("expected USE-Lite");
  const encoder = await UseLiteEncoder.load();
  const pairs = readFileSync(path.join(here, "../data/debian-train.jsonl"), "utf8").trim().split("\n").slice(0, PAIRS).map((l) => JSON.parse(l) as { query: string; positive: string });
  const tokens = [...pairs.map((p) => p.query), ...pairs.map((p) => p.positive)].map((t) => Int32Array.from(encoder.tokenize(t).slice(0, MAX_TOKENS)));
  await encoder.close();
  const lengths = tokens.map((t) => t.length);

  // Inputs for the PyTorch side: every weight of the model, the tokens, the initial lora_A.
  const lora0 = initWeightLora(model, { r: 16, loraAlpha: 32, dropout: 0, targets: ["query", "value"], topLayers: 0 }, Rng.seeded(42));
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  const files = source.files;
  tensors.embeddings = findFloat(files, "Embeddings_en");
  tensors.timing = { shape: [128, 256], data: useLiteTiming(files) };
  tensors["head.weight"] = findFloat(files, "hidden_layers/tanh_layer_0/weights");
  tensors["head.bias"] = findFloat(files, "hidden_layers/tanh_layer_0/bias");
  model.layers.forEach((p, l) => {
    for (const [name, lin] of Object.entries({ query: p.query, key: p.key, value: p.value, attn_out: p.attnOut, ffn_in: p.ffnIn, ffn_out: p.ffnOut, ...(p.residual ? { residual: p.residual } : {}) })) {
      tensors[`layer.${l}.${name}.weight`] = { shape: [lin.inDim, lin.outDim], data: lin.W as Float32Array };
      tensors[`layer.${l}.${name}.bias`] = { shape: [lin.outDim], data: lin.b as Float32Array };
    }
    for (const [name, n] of Object.entries({ ln1: p.ln1, ln2: p.ln2 })) {
      tensors[`layer.${l}.${name}.weight`] = { shape: [n.gamma.length], data: n.gamma as Float32Array };
      tensors[`layer.${l}.${name}.bias`] = { shape: [n.beta.length], data: n.beta as Float32Array };
    }
    tensors[`layer.${l}.scale`] = { shape: [1], data: Float32Array.of(p.scale) };
  });
  for (const m of lora0.modules) tensors[`lora.${m.name}.A`] = { shape: [m.pair.r, m.inDim], data: m.pair.A as Float32Array };
  writeFileSync(path.join(dir, "weights.safetensors"), encodeSafetensors(tensors));
  writeFileSync(path.join(dir, "inputs.json"), JSON.stringify({ pairs: PAIRS, tokens: tokens.map((t) => Array.from(t)), modules: lora0.modules.map((m) => m.name), r: 16, alpha: 32, scale: 20, lr: 1e-3, max_norm: 1 }));

  const results: Record<string, unknown> = { pairs: PAIRS, max_tokens: MAX_TOKENS, tokens: lengths.reduce((a, b) => a + b, 0), threads, cpu: os.cpus()[0]?.model, node: process.version };
  const flops = stepFlops(model, lora0, lengths);
  results.step_gflop = flops / 1e9;
  for (const kernel of ["mlas", "javascript"] as const) {
    setGemmBackend(kernel === "mlas" ? await createSyncGemm(threads) : null);
    if (kernel === "mlas" && gemmBackendName() === "javascript") continue;
    const lora = initWeightLora(model, { r: 16, loraAlpha: 32, dropout: 0, targets: ["query", "value"], topLayers: 0 }, Rng.seeded(42));
    const params = lora.modules.flatMap((m) => [m.pair.A, m.pair.B]) as Float32Array[];
    const data = { kind: "pairs" as const, anchors: Int32Array.from({ length: PAIRS }, (_, i) => i), positives: Int32Array.from({ length: PAIRS }, (_, i) => PAIRS + i), negatives: null };
    const step = new WeightLoraStep(model, lora, new AdamW(params, { lr: 1e-3 }), data, tokens, null, { applyTo: "both", scale: 20, maxGradNorm: 1, rng: Rng.seeded(1), startCacheBytes: 0 }, PAIRS);
    const batch = Array.from({ length: PAIRS }, (_, i) => i);
    const before = process.memoryUsage().arrayBuffers;
    step.run(batch, 1e-3);
    const engineMb = (process.memoryUsage().arrayBuffers - before) / 2 ** 20; // the engine's buffers for this batch (first run only)
    step.run(batch, 1e-3);
    const times: number[] = [];
    for (let s = 0; s < (kernel === "mlas" ? steps : Math.max(2, Math.ceil(steps / 4))); s++) {
      const t0 = performance.now();
      step.run(batch, 1e-3);
      times.push(performance.now() - t0);
    }
    const ms = times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
    results[`embedtune_${kernel}`] = { ms_per_step: ms, steps_per_s: 1000 / ms, gflops: flops / (ms / 1000) / 1e9, matmul_gflops: gflopsOfMatmul(), ...(kernel === "mlas" ? { engine_buffers_mb: engineMb } : {}), peak_rss_mb: process.resourceUsage().maxRSS / 1024 };
  }
  setGemmBackend(null);
  try {
    const env = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
    const out = execFileSync(python, [path.join(here, "torch_engine.py"), dir, "--threads", String(threads), "--steps", String(steps)], { encoding: "utf8", env, stdio: ["ignore", "pipe", "inherit"] });
    results.pytorch = JSON.parse(out.trim().split("\n").pop()!);
  } catch (err) {
    results.pytorch = { error: `${python} bench/torch_engine.py failed: ${(err as Error).message.split("\n")[0]} (apt-get install python3-torch)` };
  }
  const torch = results.pytorch as { ms_per_step?: number; gflops?: number; matmul_gflops?: number };
  const ours = results.embedtune_mlas as { ms_per_step: number; gflops: number; matmul_gflops: number } | undefined;
  if (torch.ms_per_step && ours) results.throughput_vs_pytorch = torch.ms_per_step / ours.ms_per_step;
  writeFileSync(path.join(here, "engine-results.json"), `${JSON.stringify(results, null, 2)}\n`);
  console.log(JSON.stringify(results, null, 2));
}

await main();
