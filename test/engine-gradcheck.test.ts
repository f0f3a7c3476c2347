/**
 * Every backward of the engine (src/engine/) against central finite differences, in float64
 * through the same code that trains in float32: each layer alone, a transformer layer in both
 * orders, and two whole tiny models (BERT from scripts/make-tiny-bert.ts; a USE-Lite-shaped
 * model with the published tensor names) with LoRA pairs on every linear.
 */
import path from "node:path";

import { describe, expect, it } from "vitest";

import { writeTinyBert } from "../scripts/make-tiny-bert.js";
import { attentionBackward, attentionForward, createAttentionCache, createAttentionScratch, probsSize } from "../src/engine/attention.js";
import { packBatch, type TokenBatch } from "../src/engine/batch.js";
import { activationBackward, activationForward, tanhBackward, tanhForward } from "../src/engine/elementwise.js";
import { bertEmbeddingBackward, bertEmbeddingForward, useLiteEmbeddingBackward, useLiteEmbeddingForward } from "../src/engine/embedding.js";
import { Engine } from "../src/engine/engine.js";
import { layerNormBackward, layerNormForward, createLayerNormCache } from "../src/engine/layernorm.js";
import { createLinearCache, linearBackward, linearForward, type LoraPair } from "../src/engine/linear.js";
import { engineFromFolder } from "../src/engine/load.js";
import { initWeightLora } from "../src/engine/lora.js";
import type { EngineModel } from "../src/engine/model.js";
import { poolBackward, poolForward, type PoolingMode } from "../src/engine/pooling.js";
import { createLayerActs, createLayerScratch, layerBackward, layerForward, type LayerParams } from "../src/engine/transformer-layer.js";
import { createUseLiteModel } from "../src/engine/use-lite.js";
import { readModelFolder } from "../src/encoder/hf/folder.js";
import { Rng } from "../src/util/rng.js";
import { expectGrad, rand, sample, tinyUseLiteFiles, wsum } from "./engine-helpers.js";
import { tempDir } from "./helpers.js";

/** Three texts of different lengths, packed. */
function tinyBatch(vocab: number, lengths = [3, 5, 1], seed = 9): TokenBatch {
  const rng = Rng.seeded(seed);
  const b = packBatch(lengths.map((L) => Array.from({ length: L }, () => rng.int(vocab))));
  for (let t = 0; t < b.T; t++) b.types[t] = t % 2;
  return b;
}

describe("engine layers (float64 central differences)", () => {
  it("LayerNorm: dx, dγ, dβ", () => {
    const rng = Rng.seeded(1);
    const T = 4, H = 7;
    const x = rand(rng, T * H, 2), g = rand(rng, H), b = rand(rng, H), w = rand(rng, T * H);
    const y = new Float64Array(T * H);
    const cache = createLayerNormCache(T);
    const L = () => (layerNormForward(y, cache, x, g, b, T, H, 1e-5), wsum(w, y));
    L();
    const dx = new Float64Array(T * H), dg = new Float64Array(H), db = new Float64Array(H);
    layerNormBackward(dx, dg, db, w, x, cache, g, T, H);
    expectGrad("LN dx", dx, L, x);
    expectGrad("LN dgamma", dg, L, g);
    expectGrad("LN dbeta", db, L, b);
  });

  for (const dropout of [0, 0.3]) {
    it(`linear with a LoRA pair${dropout ? " and lora_dropout" : ""}: dx, dW, db, dA, dB`, () => {
      const rng = Rng.seeded(2);
      const T = 5, I = 6, O = 4, R = 3;
      const x = rand(rng, T * I), W = rand(rng, I * O), bias = rand(rng, O), w = rand(rng, T * O);
      const lora: LoraPair = { r: R, scaling: 8 / R, dropout, A: rand(rng, R * I), B: rand(rng, O * R) };
      const lin = { W, b: bias, inDim: I, outDim: O };
      const cache = createLinearCache(T, I, lora, 64);
      const y = new Float64Array(T * O);
      // The same mask on every evaluation: reseed the dropout generator.
      const L = () => (linearForward(y, cache, x, lin, lora, T, dropout ? Rng.seeded(5) : null), wsum(w, y));
      L();
      const dx = new Float64Array(T * I), dW = new Float64Array(I * O), db = new Float64Array(O), dA = new Float64Array(R * I), dB = new Float64Array(O * R);
      linearBackward(dx, dW, db, dA, dB, w, x, lin, lora, cache, T, dropout > 0);
      expectGrad("linear dx", dx, L, x);
      expectGrad("linear dW", dW, L, W);
      expectGrad("linear db", db, L, bias);
      expectGrad("lora dA", dA, L, lora.A as Float64Array);
      expectGrad("lora dB", dB, L, lora.B as Float64Array);
    });
  }

  it("attention over a packed batch (texts of 3, 5, 1 tokens): dq, dk, dv", () => {
    const rng = Rng.seeded(3);
    const batch = tinyBatch(10);
    const H = 6, nh = 2, T = batch.T;
    const q = rand(rng, T * H), k = rand(rng, T * H), v = rand(rng, T * H), w = rand(rng, T * H);
    const out = new Float64Array(T * H);
    const cache = createAttentionCache(T, H, probsSize(batch.offsets, batch.N, nh), 64);
    const L = () => (attentionForward(out, cache, new Float64Array(T * H), q, k, v, batch.offsets, batch.N, H, nh, 0.7), wsum(w, out));
    L();
    const dq = new Float64Array(T * H), dk = new Float64Array(T * H), dv = new Float64Array(T * H);
    attentionBackward(dq, dk, dv, w, cache, createAttentionScratch(T, H, 5, 64), batch.offsets, batch.N, H, nh, 0.7);
    expectGrad("attention dq", dq, L, q);
    expectGrad("attention dk", dk, L, k);
    expectGrad("attention dv", dv, L, v);
  });

  it("GELU (erf), ReLU, tanh", () => {
    const rng = Rng.seeded(4);
    const n = 40;
    const u = rand(rng, n, 3);
    for (let e = 0; e < n; e++) if (Math.abs(u[e]) < 1e-3) u[e] = 0.5; // keep ReLU away from its kink
    const w = rand(rng, n), y = new Float64Array(n);
    for (const act of ["gelu", "relu"] as const) {
      const L = () => (activationForward(y, u, n, act), wsum(w, y));
      L();
      const du = new Float64Array(n);
      activationBackward(du, w, u, n, act);
      expectGrad(`${act} du`, du, L, u);
    }
    const L = () => (tanhForward(y, u, n), wsum(w, y));
    L();
    const du = new Float64Array(n);
    tanhBackward(du, w, y, n);
    expectGrad("tanh du", du, L, u);
  });

  it("embeddings: BERT word + position + type; USE-Lite 2E + timing", () => {
    const rng = Rng.seeded(5);
    const batch = tinyBatch(6);
    const H = 4, T = batch.T;
    const word = rand(rng, 6 * H), pos = rand(rng, 8 * H), type = rand(rng, 2 * H), w = rand(rng, T * H);
    const x = new Float64Array(T * H);
    const L = () => (bertEmbeddingForward(x, batch, word, pos, type, H), wsum(w, x));
    L();
    const dW = new Float64Array(word.length), dP = new Float64Array(pos.length), dT = new Float64Array(type.length);
    bertEmbeddingBackward(dW, dP, dT, w, batch, H);
    expectGrad("word embeddings", dW, L, word);
    expectGrad("position embeddings", dP, L, pos);
    expectGrad("type embeddings", dT, L, type);
    const timing = rand(rng, 8 * H);
    const L2 = () => (useLiteEmbeddingForward(x, batch, word, timing, H), wsum(w, x));
    L2();
    const dE = new Float64Array(word.length);
    useLiteEmbeddingBackward(dE, w, batch, H);
    expectGrad("USE-Lite embeddings", dE, L2, word);
  });

  for (const mode of ["mean", "cls", "lasttoken"] as PoolingMode[]) {
    it(`${mode} pooling`, () => {
      const rng = Rng.seeded(6);
      const batch = tinyBatch(5, [3, 0, 4]); // an empty text pools to zeros
      const H = 5;
      const x = rand(rng, batch.T * H), w = rand(rng, batch.N * H), p = new Float64Array(batch.N * H);
      const L = () => (poolForward(p, x, batch.offsets, batch.N, H, mode), wsum(w, p));
      L();
      const dx = new Float64Array(batch.T * H);
      poolBackward(dx, w, batch.offsets, batch.N, H, mode);
      expectGrad(`${mode} pooling dx`, dx, L, x);
    });
  }
});

/** A random layer (float64) in either order; pre-LN with a residual projection when Din ≠ H. */
function randomLayer(rng: Rng, order: "post" | "pre", Din: number, A: number, H: number, F: number): LayerParams {
  const lin = (i: number, o: number) => ({ W: rand(rng, i * o, 1 / Math.sqrt(i)), b: rand(rng, o, 0.1), inDim: i, outDim: o });
  const norm = (n: number) => ({ gamma: Float64Array.from(rand(rng, n, 0.2), (v) => 1 + v), beta: rand(rng, n, 0.1), eps: 1e-6 });
  return {
    order, act: order === "post" ? "gelu" : "relu", heads: 2, scale: 1 / Math.sqrt(A / 2),
    query: lin(Din, A), key: lin(Din, A), value: lin(Din, A), attnOut: lin(A, H), ffnIn: lin(H, F), ffnOut: lin(F, H),
    residual: Din !== H ? lin(Din, H) : null, ln1: norm(order === "post" ? H : Din), ln2: norm(H),
  };
}

describe("a transformer layer with LoRA on every linear (float64 central differences)", () => {
  for (const [order, Din] of [["post", 6], ["pre", 4]] as const) {
    it(`${order}-LN${Din !== 6 ? " with a residual projection" : ""}: dx and every dA, dB`, () => {
      const rng = Rng.seeded(order === "post" ? 7 : 8);
      const H = 6, A = Din, F = 8;
      const p = randomLayer(rng, order, Din, A, H, F);
      const batch = tinyBatch(10);
      const T = batch.T;
      const slots = ["query", "key", "value", "attnOut", "ffnIn", "ffnOut", ...(p.residual ? ["residual"] : [])] as const;
      const lora: Record<string, LoraPair> = {};
      const grads: Record<string, { dA: Float64Array; dB: Float64Array }> = {};
      for (const s of slots) {
        const l = s === "residual" ? p.residual! : p[s];
        lora[s] = { r: 2, scaling: 1.5, dropout: 0, A: rand(rng, 2 * l.inDim), B: rand(rng, l.outDim * 2) };
        grads[s] = { dA: new Float64Array(2 * l.inDim), dB: new Float64Array(l.outDim * 2) };
      }
      const acts = createLayerActs(p, lora, T, probsSize(batch.offsets, batch.N, 2), 64);
      const x = rand(rng, T * Din), w = rand(rng, T * H), y = new Float64Array(T * H);
      const L = () => (layerForward(y, acts, x, batch, p, lora, null), wsum(w, y));
      L();
      const dx = new Float64Array(T * Din);
      layerBackward(dx, w, acts, x, batch, p, lora, grads, createLayerScratch([p], T, 8, 64));
      expectGrad(`${order} layer dx`, dx, L, x, 1e-6);
      for (const s of slots) {
        expectGrad(`${order} layer ${s} dA`, grads[s].dA, L, lora[s].A as Float64Array, 1e-6);
        expectGrad(`${order} layer ${s} dB`, grads[s].dB, L, lora[s].B as Float64Array, 1e-6);
      }
    });
  }
});

/** Whole-model check: L = Σ w ⊙ z over the unit output vectors, gradients of sampled LoRA entries. */
function checkWholeModel(label: string, model: EngineModel, batch: TokenBatch, topLayers: number): void {
  const rng = Rng.seeded(11);
  const lora = initWeightLora(model, { r: 2, loraAlpha: 4, dropout: 0, targets: ["all-linear"], topLayers }, rng, 64);
  for (const m of lora.modules) for (let e = 0; e < m.pair.B.length; e++) m.pair.B[e] = (2 * rng.uniform() - 1) * 0.3; // B ≠ 0 so dA is not zero
  const engine = new Engine(model, lora, { maxT: batch.T, maxN: batch.N, precision: 64 });
  const z = new Float64Array(batch.N * model.dim);
  const w = rand(rng, batch.N * model.dim);
  const L = () => (engine.forward(z, batch), wsum(w, z));
  L();
  engine.zeroGrad();
  engine.backward(w);
  expect(lora.modules.length).toBeGreaterThan(0);
  let worst = 0;
  lora.modules.forEach((m, i) => {
    const { flat } = engine.grads;
    worst = Math.max(worst, expectGrad(`${label} ${m.name} dA`, flat[2 * i], L, m.pair.A as Float64Array, 1e-6, sample(rng, m.pair.A.length, 6)));
    worst = Math.max(worst, expectGrad(`${label} ${m.name} dB`, flat[2 * i + 1], L, m.pair.B as Float64Array, 1e-6, sample(rng, m.pair.B.length, 6)));
  });
  console.log(`${label}: ${lora.modules.length} LoRA modules, worst relative difference ${worst.toExponential(2)}`);
}

describe("whole models with LoRA on all linear layers (float64 central differences)", () => {
  it("tiny BERT from its ONNX file (mean pooling)", async () => {
    const dir = path.join(tempDir(), "tiny-bert");
    writeTinyBert(dir, { seed: 3, hidden: 8, layers: 2 });
    const { model } = engineFromFolder(await readModelFolder(dir), 64);
    checkWholeModel("tiny BERT", model, tinyBatch(50, [4, 7, 2]), 0);
  });

  it("tiny BERT, top layer only (--lora-layers 1)", async () => {
    const dir = path.join(tempDir(), "tiny-bert");
    writeTinyBert(dir, { seed: 4, hidden: 8, layers: 2 });
    const { model } = engineFromFolder(await readModelFolder(dir), 64);
    checkWholeModel("tiny BERT top layer", model, tinyBatch(50, [4, 7, 2]), 1);
  });

  it("tiny USE-Lite-shaped model (pre-LN, residual projection, ReLU, tanh head)", () => {
    const model = createUseLiteModel(tinyUseLiteFiles(12), 64);
    checkWholeModel("tiny USE-Lite", model, tinyBatch(30, [5, 1, 3]), 0);
  });
});
