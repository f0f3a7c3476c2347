/**
 * Memory at scale through the vector cache (run twice as a child of bench/run.ts, under
 * /usr/bin/time -v): `fill` encodes T synthetic texts with a stand-in 768-d encoder and caches
 * them; `train` gets all T vectors back from the cache (warm) into one (T, D) array and trains
 * the adapter on T/2 pairs for one epoch, as `embedtune train` does after encoding.
 *
 *   tsx bench/memory-child.ts --mode fill|train --cache DIR [--texts 200000] [--dim 768]
 * Prints one JSON line.
 */
import type { IndexedPairs } from "../src/data/texts.js";
import { encodeWithCache } from "../src/encoder/cached.js";
import type { FrozenEncoder } from "../src/encoder/types.js";
import { initOutputLora } from "../src/lora/output-adapter.js";
import { AdamW } from "../src/optim/adamw.js";
import { createTrainStep } from "../src/train/onnx-step.js";
import { Rng } from "../src/util/rng.js";

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const mode = arg("mode", "train");
const cacheRoot = arg("cache", "");
const T = Number(arg("texts", "200000"));
const D = Number(arg("dim", "768"));
const texts = Array.from({ length: T }, (_, i) => `synthetic text number ${i}`);

/** Deterministic unit vectors from the text's number: no model needed to test the cache. */
const fakeEncoder: FrozenEncoder = {
  identity: { name: "bench-fake-768", source: "bench/memory-child.ts", sha256: "0".repeat(64) },
  dim: D,
  truncated: 0,
  async encode(batch: readonly string[]): Promise<Float32Array> {
    const out = new Float32Array(batch.length * D);
    batch.forEach((text, i) => {
      const rng = Rng.seeded(Number(text.slice(text.lastIndexOf(" ") + 1)));
      let n = 0;
      for (let j = 0; j < D; j++) n += (out[i * D + j] = rng.uniform() - 0.5) ** 2;
      for (let j = 0; j < D; j++) out[i * D + j] /= Math.sqrt(n);
    });
    return out;
  },
  async close() {},
} as FrozenEncoder;

const started = performance.now();
const { vectors, encoded } = await encodeWithCache(fakeEncoder, texts, { cacheRoot });
const loadSeconds = (performance.now() - started) / 1000;
let steps = 0;
if (mode === "train") {
  const P = Math.floor(T / 2);
  const data: IndexedPairs = { kind: "pairs", anchors: Int32Array.from({ length: P }, (_, i) => 2 * i), positives: Int32Array.from({ length: P }, (_, i) => 2 * i + 1), negatives: null };
  const lora = initOutputLora(D, 16, 32, Rng.seeded(1));
  const step = createTrainStep(lora, new AdamW([lora.A, lora.B]), data, vectors, "both", 20, 1.0, 64);
  const order = Array.from({ length: P }, (_, i) => i);
  Rng.seeded(2).shuffle(order);
  for (let s = 0; s + 64 <= P; s += 64, steps++) await step.run(order.slice(s, s + 64), 1e-3);
  await step.close();
}
console.log(JSON.stringify({
  mode, texts: T, dim: D, encoded, steps,
  vectors_mb: vectors.byteLength / 2 ** 20,
  load_seconds: loadSeconds,
  seconds: (performance.now() - started) / 1000,
}));
