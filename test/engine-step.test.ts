/**
 * One weight-space LoRA training step (src/train/weight-step.ts) against PyTorch: the tiny
 * BERT with LoRA on query and value, two steps each of symmetric InfoNCE and CoSENT, clipping
 * and AdamW. Expected values: test/fixtures/engine-step.json, written by
 * bench/torch_tiny_step.py (float64 autograd) from the inputs of bench/engine-step-case.ts.
 */
import { readFileSync } from "node:fs";
import path from "node:path";

import { afterAll, describe, expect, it } from "vitest";

import { STEP_SETTINGS, stepFixtureInputs } from "../bench/engine-step-case.js";
import { initWeightLora, peftKey } from "../src/engine/lora.js";
import { AdamW } from "../src/optim/adamw.js";
import { WeightLoraStep } from "../src/train/weight-step.js";
import type { IndexedDataset } from "../src/data/texts.js";
import { Rng } from "../src/util/rng.js";
import { repoRoot, tempDir } from "./helpers.js";

const REL = 2e-5; // float32 engine against float64 PyTorch
const ABS = 1e-7;
const fixture = JSON.parse(readFileSync(path.join(repoRoot, "test/fixtures/engine-step.json"), "utf8"));
const report: string[] = [];
afterAll(() => console.log(`engine step vs PyTorch:\n  ${report.join("\n  ")}`));

function close(label: string, got: ArrayLike<number>, want: number[]): void {
  expect(got.length, label).toBe(want.length);
  let diff = 0;
  let scale = 0;
  for (let e = 0; e < want.length; e++) {
    diff = Math.max(diff, Math.abs(got[e] - want[e]));
    scale = Math.max(scale, Math.abs(want[e]));
  }
  report.push(`${label}: max diff ${diff.toExponential(2)} of max ${scale.toPrecision(3)}`);
  expect(diff, label).toBeLessThanOrEqual(REL * scale + ABS);
}

describe("weight-space LoRA step = PyTorch (tiny BERT, LoRA on query and value)", async () => {
  const inputs = await stepFixtureInputs(tempDir());
  for (const [c, kase] of inputs.cases.entries()) {
    it(`${kase.kind}: loss, gradient norm, clipped gradients and AdamW parameters over two steps`, () => {
      const want = fixture.cases[c];
      expect(want.kind).toBe(kase.kind);
      const n = kase.left.length;
      const data: IndexedDataset = kase.kind === "mnrl"
        ? { kind: "pairs", anchors: Int32Array.from({ length: n }, (_, i) => i), positives: Int32Array.from({ length: n }, (_, i) => n + i), negatives: null }
        : { kind: "scored", s1: Int32Array.from({ length: n }, (_, i) => i), s2: Int32Array.from({ length: n }, (_, i) => n + i), scores: Float32Array.from(kase.scores) };
      const tokens = [...kase.left, ...kase.right].map((t) => Int32Array.from(t));
      const s = STEP_SETTINGS;
      const lora = initWeightLora(inputs.model, { r: s.r, loraAlpha: s.loraAlpha, dropout: 0, targets: s.targets, topLayers: 0 }, Rng.seeded(s.loraSeed));
      const params = lora.modules.flatMap((m) => [m.pair.A, m.pair.B]) as Float32Array[];
      const optimizer = new AdamW(params, { lr: s.lr, betas: s.betas, eps: s.eps, weightDecay: s.weightDecay });
      const step = new WeightLoraStep(inputs.model, lora, optimizer, data, tokens, null, { applyTo: "both", scale: s.scale, maxGradNorm: s.maxGradNorm, rng: Rng.seeded(1), startCacheBytes: 0 }, 4);
      for (let k = 0; k < 2; k++) {
        const result = step.run([4 * k, 4 * k + 1, 4 * k + 2, 4 * k + 3], s.lr);
        const w = want.steps[k];
        const label = `${kase.kind} step ${k + 1}`;
        close(`${label} loss`, [result.loss], [w.loss]);
        close(`${label} grad norm`, [result.gradNorm], [w.grad_norm]);
        lora.modules.forEach((m, i) => {
          close(`${label} grad ${m.name}.lora_A`, step.grads[2 * i], w.clipped_grads[peftKey(m.name, "lora_A")]);
          close(`${label} grad ${m.name}.lora_B`, step.grads[2 * i + 1], w.clipped_grads[peftKey(m.name, "lora_B")]);
          close(`${label} ${m.name}.lora_A after AdamW`, m.pair.A, w.params_after[peftKey(m.name, "lora_A")]);
          close(`${label} ${m.name}.lora_B after AdamW`, m.pair.B, w.params_after[peftKey(m.name, "lora_B")]);
        });
      }
    });
  }
});
