/**
 * Divergence: a non-finite loss or gradient never reaches the weights; the step is skipped
 * and counted, N bad steps in a row stop the run with a hint, and no adapter is written.
 */
import { existsSync, writeFileSync } from "node:fs";
import path from "node:path";

import { describe, expect, it } from "vitest";

import { createTrainStep } from "../src/train/onnx-step.js";
import { AdapterStep } from "../src/train/step.js";
import { initOutputLora } from "../src/lora/output-adapter.js";
import { AdamW } from "../src/optim/adamw.js";
import { encodeNpyMatrix } from "../src/io/npy.js";
import { Rng } from "../src/util/rng.js";
import { runCli, tempDir } from "./helpers.js";

const D = 8;
const N = 6;

function setup() {
  const rng = Rng.seeded(3);
  const lora = initOutputLora(D, 2, 4, rng);
  lora.B.forEach((_, i) => (lora.B[i] = 0.1 * Math.sin(i)));
  const vectors = Float32Array.from({ length: 2 * N * D }, () => rng.uniform() - 0.5); // (2N, D)
  const data = { kind: "pairs" as const, anchors: Int32Array.from({ length: N }, (_, i) => i), positives: Int32Array.from({ length: N }, (_, i) => N + i), negatives: null };
  return { lora, vectors, data };
}

describe("divergence", () => {
  for (const kind of ["js", "onnx"] as const) {
    it(`${kind} step: a batch with a NaN vector is skipped and leaves the weights untouched`, async () => {
      const { lora, vectors, data } = setup();
      vectors[3] = Number.NaN; // text 0 (anchor of example 0)
      const optimizer = new AdamW([lora.A, lora.B]);
      const step = kind === "js" ? new AdapterStep(lora, optimizer, data, vectors, "both", 20, 1, N) : createTrainStep(lora, optimizer, data, vectors, "both", 20, 1, N, 1);
      const [A0, B0] = [lora.A.slice(), lora.B.slice()];
      const bad = await step.run([0, 1, 2], 1e-2);
      expect(bad.skipped).toBe(true);
      expect(Array.from(lora.A)).toEqual(Array.from(A0));
      expect(Array.from(lora.B)).toEqual(Array.from(B0));
      const good = await step.run([3, 4, 5], 1e-2);
      expect(good.skipped).toBe(false);
      expect(Number.isFinite(good.loss)).toBe(true);
      expect(Array.from(lora.B)).not.toEqual(Array.from(B0));
      if ("close" in step) await step.close();
    });
  }

  it("stops after 10 bad steps in a row with a hint, writing nothing", async () => {
    const work = tempDir();
    const rows = 40;
    const data = path.join(work, "pairs.jsonl");
    writeFileSync(data, Array.from({ length: rows }, (_, i) => JSON.stringify({ query: `q${i}`, positive: `p${i}` })).join("\n") + "\n");
    const rng = Rng.seeded(5);
    const random = () => Float32Array.from({ length: rows * D }, () => rng.uniform() - 0.5);
    writeFileSync(path.join(work, "a.npy"), encodeNpyMatrix(random(), rows, D));
    writeFileSync(path.join(work, "p.npy"), encodeNpyMatrix(random(), rows, D));
    const out = path.join(work, "adapter");
    // lr 1e30: the first real update throws the weights so far that the next forward overflows.
    const { code, stderr } = await runCli(["train", "--data", data, "--vectors", `${path.join(work, "a.npy")},${path.join(work, "p.npy")}`, "--batch-size", "2", "--epochs", "2", "--lr", "1e30", "--warmup-ratio", "0", "--out", out]);
    expect(code).toBe(1);
    expect(stderr.trim()).toMatch(/^embedtune: error: training diverged: 10 steps in a row had a non-finite loss or gradient \(at step \d+\) \(try a lower --lr than 1e\+30\)$/);
    expect(existsSync(out)).toBe(false);
  });
});
