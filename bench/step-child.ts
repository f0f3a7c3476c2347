/**
 * Our side of the adapter-training comparison (run as a child by bench/run.ts): embedtune's
 * training step (onnxruntime graph + JS AdamW/clipping, as `embedtune train` runs it) on the
 * same vectors, initial weights and batches as bench/torch_adapter.py, with a fixed thread
 * count. Prints one JSON line: steps/s per repeat, and the loss trajectory from the shared
 * initial weights (first and final loss) so equal work is visible.
 *
 *   tsx bench/step-child.ts --dir DIR --threads 1 [--spin 1|0] [--repeats 5] [--warmup 20] [--alpha 32]
 */
import path from "node:path";

import type { IndexedPairs } from "../src/data/texts.js";
import { AdamW } from "../src/optim/adamw.js";
import { OnnxInfoNceStep } from "../src/train/onnx-step.js";
import { readNpy } from "./common.js";

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const dir = arg("dir", "");
const threads = Number(arg("threads", "1"));
const spinning = arg("spin", "1") === "1";
const repeats = Number(arg("repeats", "5"));
const warmup = Number(arg("warmup", "20"));
const alpha = Number(arg("alpha", "32"));
const lr = Number(arg("lr", "1e-3"));

const anchors = readNpy(path.join(dir, "anchors.npy"));
const positives = readNpy(path.join(dir, "positives.npy"));
const A0 = readNpy(path.join(dir, "A0.npy"));
const batchFile = readNpy(path.join(dir, "batches.npy"));
const N = anchors.rows;
const D = anchors.cols;
const R = A0.rows;
const B = batchFile.cols;
const steps = batchFile.rows;
const batches = Array.from({ length: steps }, (_, k) => Array.from(batchFile.data.subarray(k * B, (k + 1) * B)));

// Text ids: anchors 0..N-1, positives N..2N-1, rows of one contiguous (2N, D) table.
const vectors = new Float32Array(2 * N * D);
vectors.set(anchors.data as Float32Array, 0);
vectors.set(positives.data as Float32Array, N * D);
const data: IndexedPairs = {
  kind: "pairs",
  anchors: Int32Array.from({ length: N }, (_, i) => i),
  positives: Int32Array.from({ length: N }, (_, i) => N + i),
  negatives: null,
};

function fresh() {
  const lora = { dim: D, r: R, loraAlpha: alpha, A: Float32Array.from(A0.data), B: new Float32Array(D * R) };
  const optimizer = new AdamW([lora.A, lora.B], { lr, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 });
  return new OnnxInfoNceStep(lora, optimizer, data, vectors, "both", 20, 1.0, { threads, spinning });
}

let step = fresh();
for (let k = 0; k < warmup; k++) await step.run(batches[k % steps], lr);
const stepsPerS: number[] = [];
for (let rep = 0; rep < repeats; rep++) {
  const t0 = performance.now();
  for (let k = 0; k < steps; k++) await step.run(batches[k], lr);
  stepsPerS.push(steps / ((performance.now() - t0) / 1000));
}
const flops = step.flopsAt(B);
await step.close();

// The loss trajectory from the shared initial weights (what torch_adapter.py reports too).
step = fresh();
const losses: number[] = [];
for (let k = 0; k < steps; k++) losses.push((await step.run(batches[k], lr)).loss);
await step.close();

const sorted = stepsPerS.slice().sort((a, b) => a - b);
console.log(JSON.stringify({
  threads, spinning, D, R, B, steps,
  steps_per_s: stepsPerS,
  median_steps_per_s: sorted[sorted.length >> 1],
  first_loss: losses[0],
  final_loss: losses[losses.length - 1],
  flops_per_step: flops,
}));
