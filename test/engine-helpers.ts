/**
 * Helpers for the engine's tests: central finite differences in float64, and a tiny
 * USE-Lite-shaped weight set (same tensor names as the published files, small shapes) so
 * the USE-Lite model code runs in float64 on a model small enough to difference.
 */
import { expect } from "vitest";

import type { UseLiteFiles } from "../src/encoder/use-lite/weights.js";
import { Rng } from "../src/util/rng.js";

export const FD_EPS = 1e-6;

export function rand(rng: Rng, n: number, amp = 1): Float64Array {
  const x = new Float64Array(n);
  for (let e = 0; e < n; e++) x[e] = (2 * rng.uniform() - 1) * amp;
  return x;
}

/** Σ w ⊙ y: a scalar whose gradient with respect to y is w. */
export function wsum(w: ArrayLike<number>, y: ArrayLike<number>, n = w.length): number {
  let s = 0;
  for (let e = 0; e < n; e++) s += w[e] * y[e];
  return s;
}

/**
 * Compares an analytic gradient with central differences of f over `entries` of x (all by
 * default): max |num − ana| / max(max |ana|, 1e-3) < tol. Returns the relative error.
 */
export function expectGrad(label: string, analytic: ArrayLike<number>, f: () => number, x: Float64Array, tol = 1e-7, entries?: number[]): number {
  const idx = entries ?? Array.from({ length: x.length }, (_, i) => i);
  let maxDiff = 0;
  let maxAna = 0;
  for (const e of idx) {
    const v = x[e];
    x[e] = v + FD_EPS;
    const up = f();
    x[e] = v - FD_EPS;
    const down = f();
    x[e] = v;
    const num = (up - down) / (2 * FD_EPS);
    maxDiff = Math.max(maxDiff, Math.abs(num - analytic[e]));
    maxAna = Math.max(maxAna, Math.abs(analytic[e]));
  }
  const rel = maxDiff / Math.max(maxAna, 1e-3);
  expect(rel < tol, `${label}: max |numeric - analytic| = ${maxDiff} (relative ${rel}, max |analytic| ${maxAna})`).toBe(true);
  expect(maxAna, `${label}: gradient is identically zero, check is vacuous`).toBeGreaterThan(0);
  return rel;
}

/** `count` distinct entries of [0, n), spread by the rng. */
export function sample(rng: Rng, n: number, count: number): number[] {
  const out = new Set<number>();
  while (out.size < Math.min(count, n)) out.add(rng.int(n));
  return [...out];
}

/** USE-Lite's tensor names with small shapes: embedding width D0, model width H, feed-forward F. */
export function tinyUseLiteFiles(seed: number, D0 = 8, H = 12, F = 10, vocab = 30): UseLiteFiles {
  const rng = Rng.seeded(seed);
  const tensors: UseLiteFiles["tensors"] = new Map();
  const add = (name: string, shape: number[], amp: number, mean = 0) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let e = 0; e < n; e++) data[e] = mean + (2 * rng.uniform() - 1) * amp;
    tensors.set(name, { shape, data });
  };
  add("Embeddings_en/sharded_0", [vocab, D0], 0.5);
  tensors.set("Encode/AddTimingSignal/TimingSignal/ExpandDims_1", { shape: [1, D0 / 2], data: Float32Array.from({ length: D0 / 2 }, (_, c) => Math.exp(-c * 0.7)) });
  for (const l of [0, 1]) {
    const Din = l === 0 ? D0 : H;
    const L = `Layer_${l}/TransformerLayer`;
    add(`Encode/TransformerStack/${L}/MultiheadAttention/qkv_transform_single/kernel`, [1, 1, Din, 3 * Din], 1 / Math.sqrt(Din));
    add(`Encode/TransformerStack/${L}/MultiheadAttention/qkv_transform_single/bias`, [3 * Din], 0.1);
    add(`Encode/TransformerStack/${L}/MultiheadAttention/output_transform_single/kernel`, [1, 1, Din, H], 1 / Math.sqrt(Din));
    add(`Encode/TransformerStack/${L}/MultiheadAttention/output_transform_single/bias`, [H], 0.1);
    tensors.set(`TransformerStack/${L}/MultiheadAttention/mul/y`, { shape: [], data: Float32Array.of(1 / Math.sqrt(Din / 2)) });
    add(`TransformerStack/${L}/FFN/conv1/Tensordot/Reshape_1`, [H, F], 1 / Math.sqrt(H));
    add(`Encode/${L}/FFN/conv1/bias`, [F], 0.1);
    add(`TransformerStack/${L}/FFN/conv2/Tensordot/Reshape_1`, [F, H], 1 / Math.sqrt(F));
    add(`Encode/${L}/FFN/conv2/bias`, [H], 0.1);
    add(`Encode/TransformerStack/${L}/layer_prepostprocess/layer_norm/layer_norm_scale`, [Din], 0.2, 1);
    add(`Encode/TransformerStack/${L}/layer_prepostprocess/layer_norm/layer_norm_bias`, [Din], 0.1);
    add(`Encode/TransformerStack/${L}/FFN/layer_prepostprocess/layer_norm/layer_norm_scale`, [H], 0.2, 1);
    add(`Encode/TransformerStack/${L}/FFN/layer_prepostprocess/layer_norm/layer_norm_bias`, [H], 0.1);
  }
  add("Encode/TransformerStack/Layer_0/TransformerLayer/dense/kernel", [D0, H], 1 / Math.sqrt(D0));
  add("Encode/TransformerStack/Layer_0/TransformerLayer/dense/bias", [H], 0.1);
  add("Encode/hidden_layers/tanh_layer_0/weights", [H, H], 1 / Math.sqrt(H));
  add("Encode/hidden_layers/tanh_layer_0/bias", [H], 0.1);
  return { dir: "(tiny)", tensors, vocabulary: [], sha256: "tiny" };
}
