/**
 * How close the training step runs to the machine's limit: its arithmetic rate (GFLOP/s from
 * the step graph's exact FLOP count, loss and gradients only) beside the rate of plain
 * matrix multiplies of the same shapes (the step's GEMMs run back to back, nothing else) and
 * of one large square matrix multiply (the machine's practical peak), all on onnxruntime's
 * CPU GEMM with the same thread count.
 *
 *   tsx bench/gflops-child.ts --dim 768 --threads 1 [--batch 128] [--rank 16] [--seconds 2]
 * Prints one JSON line.
 */
import * as ort from "onnxruntime-node";

import type { IndexedPairs } from "../src/data/texts.js";
import { FLOAT, GraphBuilder } from "../src/encoder/onnx-graph.js";
import { AdamW } from "../src/optim/adamw.js";
import { OnnxInfoNceStep } from "../src/train/onnx-step.js";
import { buildInfoNceStepGraph } from "../src/train/step-graph.js";
import { median, syntheticPairs } from "./common.js";

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const D = arg("dim", 768);
const threads = arg("threads", 1);
const B = arg("batch", 128);
const R = arg("rank", 16);
const seconds = arg("seconds", 2);
const N = 4096;

/** Runs fn repeatedly for about `seconds`, in 5 slices; returns the median seconds per call. */
async function timeIt(fn: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < 5; i++) await fn();
  const slices: number[] = [];
  const sliceEnd = (seconds * 1000) / 5;
  for (let s = 0; s < 5; s++) {
    const t0 = performance.now();
    let n = 0;
    do {
      await fn();
      n++;
    } while (performance.now() - t0 < sliceEnd);
    slices.push((performance.now() - t0) / 1000 / n);
  }
  return median(slices);
}

/** Seconds per run of `copies` independent Gemm nodes of one shape, divided by copies. */
async function gemmSeconds(M: number, Nn: number, K: number, transA: boolean, transB: boolean, copies = 8): Promise<number> {
  const g = new GraphBuilder("gemm");
  const aShape = transA ? [K, M] : [M, K];
  const bShape = transB ? [Nn, K] : [K, Nn];
  const a = g.input("a", FLOAT, aShape);
  const b = g.input("b", FLOAT, bShape);
  // Every copy is a graph output (so none is pruned); only the first is fetched.
  for (let c = 0; c < copies; c++) {
    g.opNamed("Gemm", [a, b], [`y${c}`], { transA: transA ? 1 : 0, transB: transB ? 1 : 0, alpha: { float: 1 + c / 64 } });
    g.output(`y${c}`, FLOAT, [M, Nn]);
  }
  const session = await ort.InferenceSession.create(g.toBytes(), { executionProviders: ["cpu"], intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: "all" });
  const fill = (n: number) => new Float32Array(n).map((_, e) => Math.sin(e) * 0.1);
  const feeds = { a: new ort.Tensor("float32", fill(M * K), aShape), b: new ort.Tensor("float32", fill(K * Nn), bShape) };
  const fetches = { y0: new ort.Tensor("float32", new Float32Array(M * Nn), [M, Nn]) };
  const s = await timeIt(() => session.run(feeds, fetches));
  await session.release();
  return s / copies;
}

// The training step, loss and gradients (the graph alone; AdamW is timed in the comparison).
const { anchors, positives } = syntheticPairs(N, D, 7);
const vectors = new Float32Array(2 * N * D);
vectors.set(anchors);
vectors.set(positives, N * D);
const data: IndexedPairs = { kind: "pairs", anchors: Int32Array.from({ length: N }, (_, i) => i), positives: Int32Array.from({ length: N }, (_, i) => N + i), negatives: null };
const lora = { dim: D, r: R, loraAlpha: 32, A: new Float32Array(R * D).map((_, e) => Math.sin(e) / Math.sqrt(D)), B: new Float32Array(D * R).map((_, e) => Math.cos(e) * 0.01) };
const step = new OnnxInfoNceStep(lora, new AdamW([lora.A, lora.B]), data, vectors, "both", 20, 1, { threads, spinning: true });
let k = 0;
const batch = () => Array.from({ length: B }, (_, i) => (k * B + i * 31) % N);
const stepSeconds = await timeIt(async () => {
  k++;
  return step.gradients(batch());
});
await step.close();
const graph = buildInfoNceStepGraph({ B, D, R, T: 2 * N, columns: 2, adaptRight: true, s: 2, scale: 20 });

// The same GEMMs alone.
let gemmFlops = 0;
let gemmTime = 0;
for (const m of graph.gemms) {
  gemmFlops += 2 * m.M * m.N * m.K;
  gemmTime += await gemmSeconds(m.M, m.N, m.K, m.transA, m.transB);
}
const square = D;
const squareSeconds = await gemmSeconds(square, square, square, false, false, 4);

console.log(JSON.stringify({
  D, B, R, threads,
  step_flops: graph.flops,
  step_gemm_flops: gemmFlops,
  step_seconds: stepSeconds,
  step_gflops: graph.flops / stepSeconds / 1e9,
  same_shape_gemm_seconds: gemmTime,
  same_shape_gemm_gflops: gemmFlops / gemmTime / 1e9,
  square_gemm: `${square}x${square}x${square}`,
  square_gemm_gflops: (2 * square ** 3) / squareSeconds / 1e9,
}));
