/**
 * The onnxruntime training step (src/train/step-graph.ts) against the TypeScript reference
 * step (src/train/step.ts, itself checked against PyTorch in fixtures.test.ts): the same
 * loss, dA and dB within float32 rounding, step after step (so AdamW and clipping see the
 * same gradients), for symmetric, query-only and hard-negative batches; and bitwise
 * reproducible for a fixed thread count.
 */
import { describe, expect, it } from "vitest";

import type { IndexedPairs } from "../src/data/texts.js";
import type { ApplyTo } from "../src/io/adapter-folder.js";
import { initOutputLora } from "../src/lora/output-adapter.js";
import { AdamW } from "../src/optim/adamw.js";
import { OnnxInfoNceStep } from "../src/train/onnx-step.js";
import { AdapterStep } from "../src/train/step.js";
import { Rng } from "../src/util/rng.js";

const D = 48;
const R = 4;
const N = 40; // pairs
const rng = Rng.seeded(11);
const vectors = new Float32Array(3 * N * D); // anchors, positives, negatives: text ids 0..3N-1
for (let e = 0; e < vectors.length; e++) vectors[e] = rng.uniform() - 0.5;
const ids = (offset: number) => Int32Array.from({ length: N }, (_, i) => offset + i);

function data(negatives: boolean): IndexedPairs {
  return { kind: "pairs", anchors: ids(0), positives: ids(N), negatives: negatives ? ids(2 * N) : null };
}

function setup(applyTo: ApplyTo, negatives: boolean, threads = 1) {
  const mk = () => {
    const lora = initOutputLora(D, R, 8, Rng.seeded(5));
    return { lora, opt: new AdamW([lora.A, lora.B], { lr: 0.02 }) };
  };
  const ref = mk();
  const onnx = mk();
  return {
    ref,
    onnx,
    refStep: new AdapterStep(ref.lora, ref.opt, data(negatives), vectors, applyTo, 20, 1.0, 16),
    onnxStep: new OnnxInfoNceStep(onnx.lora, onnx.opt, data(negatives), vectors, applyTo, 20, 1.0, { threads, spinning: true }),
  };
}

/** max |a − b| / max |b|, the float32-rounding yardstick. */
function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let m = 0;
  for (let e = 0; e < b.length; e++) {
    d = Math.max(d, Math.abs(a[e] - b[e]));
    m = Math.max(m, Math.abs(b[e]));
  }
  return d / (m || 1);
}

const batches = [
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
  [16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31],
  [5, 9, 33, 37, 2, 14, 21, 39, 30, 11],
  [32, 33, 34, 35, 36, 37, 38, 39, 0, 1, 2, 3, 4, 5, 6, 7],
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
];

describe.each([
  ["symmetric", "both", false],
  ["query-only", "query", false],
  ["hard negatives", "both", true],
  ["query-only with hard negatives", "query", true],
] as const)("ONNX InfoNCE step = TypeScript step (%s)", (_name, applyTo, negatives) => {
  it("gives the same loss, gradients and weights over several steps", async () => {
    const { ref, onnx, refStep, onnxStep } = setup(applyTo, negatives);
    let worst = 0;
    for (const [k, batch] of batches.entries()) {
      const lr = 0.02;
      const want = refStep.run(batch, lr);
      const got = await onnxStep.run(batch, lr);
      expect(got.skipped).toBe(false);
      expect(Math.abs(got.loss - want.loss) / want.loss, `loss at step ${k}`).toBeLessThan(2e-6);
      expect(Math.abs(got.gradNorm - want.gradNorm) / want.gradNorm, `grad norm at step ${k}`).toBeLessThan(2e-5);
      const dA = relDiff(onnx.lora.A, ref.lora.A);
      const dB = relDiff(onnx.lora.B, ref.lora.B);
      worst = Math.max(worst, dA, dB);
      expect(dA, `A after step ${k}`).toBeLessThan(2e-5);
      expect(dB, `B after step ${k}`).toBeLessThan(2e-5);
    }
    // The gradients themselves, at the weights both have reached.
    const refGrad = new AdapterStep(onnx.lora, new AdamW([onnx.lora.A, onnx.lora.B], { lr: 0 }), data(negatives), vectors, applyTo, 20, 1e9, 16);
    const before = [onnx.lora.A.slice(), onnx.lora.B.slice()];
    const loss = await onnxStep.gradients(batches[0]);
    const dA = onnxStep.dA.slice();
    const dB = onnxStep.dB.slice();
    const spy = captureGradients(refGrad);
    const want = refGrad.run(batches[0], 0);
    expect(Math.abs(loss - want.loss) / want.loss).toBeLessThan(2e-6);
    expect(relDiff(dA, spy.dA!)).toBeLessThan(1e-5);
    expect(relDiff(dB, spy.dB!)).toBeLessThan(1e-5);
    onnx.lora.A.set(before[0]);
    onnx.lora.B.set(before[1]);
    console.log(`${_name}: worst relative difference of A, B over ${batches.length} steps ${worst.toExponential(2)}`);
    await onnxStep.close();
  });
});

// The graph computes logits and norms in factored form (Gram + rank-R terms through
// M = BᵀB); from B = 0 those terms start small. Here A and B are random and large, so the
// adapter's correction s·B·A·x is as large as x itself and every factored term counts.
describe.each([
  ["symmetric", "both", false],
  ["query-only", "query", false],
  ["hard negatives", "both", true],
] as const)("ONNX InfoNCE step far from the init (%s)", (_name, applyTo, negatives) => {
  it("gives the reference step's loss and gradients", async () => {
    const lora = initOutputLora(D, R, 8, Rng.seeded(9));
    const r = Rng.seeded(10);
    for (let e = 0; e < lora.A.length; e++) lora.A[e] = (r.uniform() - 0.5) * 0.6;
    for (let e = 0; e < lora.B.length; e++) lora.B[e] = (r.uniform() - 0.5) * 0.6;
    const ref = new AdapterStep(lora, new AdamW([lora.A, lora.B], { lr: 0 }), data(negatives), vectors, applyTo, 20, 1e9, 16);
    const onnxStep = new OnnxInfoNceStep(lora, new AdamW([lora.A, lora.B], { lr: 0 }), data(negatives), vectors, applyTo, 20, 1e9, { threads: 1, spinning: true });
    const spy = captureGradients(ref);
    for (const batch of batches.slice(0, 3)) {
      const loss = await onnxStep.gradients(batch);
      const want = ref.run(batch, 0);
      expect(Math.abs(loss - want.loss) / want.loss).toBeLessThan(2e-6);
      expect(relDiff(onnxStep.dA, spy.dA!)).toBeLessThan(2e-5);
      expect(relDiff(onnxStep.dB, spy.dB!)).toBeLessThan(2e-5);
    }
    await onnxStep.close();
  });
});

/** The dA, dB the reference step hands to AdamW (read through its optimizer). */
function captureGradients(step: AdapterStep): { dA?: Float32Array; dB?: Float32Array } {
  const seen: { dA?: Float32Array; dB?: Float32Array } = {};
  const opt = (step as unknown as { optimizer: AdamW }).optimizer;
  const original = opt.step.bind(opt);
  opt.step = (grads, lr) => {
    seen.dA = Float32Array.from(grads[0]);
    seen.dB = Float32Array.from(grads[1]);
    original(grads, lr);
  };
  return seen;
}

describe("ONNX step reproducibility", () => {
  it.each([1, 2])("gives bitwise the same weights run after run with %i thread(s)", async (threads) => {
    const runs: Float32Array[][] = [];
    for (let rep = 0; rep < 2; rep++) {
      const { onnx, onnxStep } = setup("both", true, threads);
      for (const batch of batches) await onnxStep.run(batch, 0.02);
      runs.push([onnx.lora.A.slice(), onnx.lora.B.slice()]);
      await onnxStep.close();
    }
    expect(Buffer.from(runs[0][0].buffer).equals(Buffer.from(runs[1][0].buffer))).toBe(true);
    expect(Buffer.from(runs[0][1].buffer).equals(Buffer.from(runs[1][1].buffer))).toBe(true);
  });
});
