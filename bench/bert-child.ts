/**
 * Encoding throughput of our BERT-family encoder (HfEncoder: transformers.js' tokenizer,
 * onnxruntime-node, length buckets, pooling in JS) against @xenova/transformers' own
 * feature-extraction pipeline (mean pooling, normalize) on the same model folder and the same
 * texts, short (STS-B sentences) and long (Debian long descriptions) measured separately.
 *
 * No real Hub model can be fetched here (no network but the npm registry, and no npm package
 * ships a BERT-family ONNX with its tokenizer.json), so the models are generated with random
 * weights by scripts/make-tiny-bert.ts: `tiny` (its defaults: 2 layers, hidden 32, max 48
 * tokens) and `minilm` (all-MiniLM-L6-v2's shape: 6 layers, hidden 384, 12 heads,
 * intermediate 1536, max 256 tokens, 512 positions, a ~20k-word WordPiece vocabulary). The
 * arithmetic per token is a real model's; only the values differ.
 *
 * Rounds alternate which side goes first, so drift in the machine's load hits both alike; the
 * ratio is the median of per-round ratios. Every vector is checked against the pipeline's
 * (cosine). transformers.js 2.x drops the final [SEP] when it truncates while we keep it (as
 * sentence-transformers does), so texts beyond the maximum are reported apart.
 *
 *   tsx bench/bert-child.ts --model tiny|minilm [--short 1000] [--long 200] [--rounds 3]
 * Prints one JSON line.
 */
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";

import { env, pipeline } from "@xenova/transformers";
import { parse } from "csv-parse/sync";

import { writeTinyBert, type TinyBertOptions } from "../scripts/make-tiny-bert.js";
import { HfEncoder } from "../src/encoder/hf/index.js";
import { defaultThreads } from "../src/encoder/runtime.js";
import { median, sharedData, tempDir } from "./common.js";

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const SHAPES: Record<string, TinyBertOptions> = {
  tiny: {},
  minilm: { hidden: 384, layers: 6, heads: 12, intermediate: 1536, maxLength: 256, maxPositions: 512, words: 20_000 },
};
const modelName = arg("model", "tiny");
const shape = SHAPES[modelName];
if (!shape) throw new Error(`--model must be one of ${Object.keys(SHAPES).join(", ")}`);
const rounds = Number(arg("rounds", "3"));
const REF_BATCHES = [8, 32, 128]; // the pipeline's batch size is the fastest of these, per text set

const stsb = parse(readFileSync(path.join(sharedData, "stsb/dev.csv")), { columns: true }) as Array<{ sentence1: string; sentence2: string }>;
const debian = readFileSync(path.join(sharedData, "debian-pkgs/train.jsonl"), "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as { positive: string });
const sets = {
  short: [...new Set(stsb.flatMap((r) => [r.sentence1, r.sentence2]))].slice(0, Number(arg("short", "1000"))),
  long: [...new Set(debian.slice(-1000).map((r) => r.positive))].slice(0, Number(arg("long", "200"))), // the held-out slice's descriptions
};

const work = tempDir(`bert-${modelName}`);
const dir = path.join(work, modelName);
writeTinyBert(dir, { seed: 7, ...shape });

// Threads each runtime starts, counted from the process's task list around each load: the
// configured number is ours to set, the pipeline's is onnxruntime's default (not configurable
// through transformers.js 2.x), so this shows what each side actually got. An intra-op pool of
// n threads starts n - 1 (the calling thread is the n-th). Kept out of the count: libuv's
// file-system pool (started by one async read first) and the one thread onnxruntime-node 1.31
// starts with its first session in a process (a throwaway load first).
const osThreads = () => readdirSync("/proc/self/task").length;
await readFile(path.join(dir, "config.json"));
await (await HfEncoder.load(dir, { offline: true, cacheRoot: path.join(work, "cache") })).close();
let before = osThreads();
const ours = await HfEncoder.load(dir, { offline: true, cacheRoot: path.join(work, "cache") });
const oursThreadsStarted = osThreads() - before;

env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = work + "/";
before = osThreads();
const extractor = await pipeline("feature-extraction", modelName, { quantized: false });
const refThreadsStarted = osThreads() - before;

async function reference(texts: readonly string[], batch: number): Promise<Float32Array> {
  const out = new Float32Array(texts.length * ours.dim);
  for (let i = 0; i < texts.length; i += batch) {
    const t = await extractor(texts.slice(i, i + batch), { pooling: "mean", normalize: true });
    out.set(t.data as Float32Array, i * ours.dim);
  }
  return out;
}

const rate = async (f: () => Promise<unknown>, n: number): Promise<number> => {
  const t0 = performance.now();
  await f();
  return n / ((performance.now() - t0) / 1000);
};

const results: Record<string, unknown> = {};
for (const [name, texts] of Object.entries(sets)) {
  const fits: boolean[] = [];
  const tokens = texts.map((t) => {
    const cut = ours.truncated;
    const n = ours.tokenize(t).length;
    fits.push(ours.truncated === cut); // tokenize counts the texts it had to cut
    return n;
  });
  // Warm-up (session arenas, JIT), then the pipeline's fastest batch size on a slice.
  const probe = texts.slice(0, name === "short" ? 256 : 64);
  await ours.encode(probe);
  let refBatch = REF_BATCHES[0];
  let best = 0;
  for (const b of REF_BATCHES) {
    await reference(probe.slice(0, b), b);
    const r = await rate(() => reference(probe, b), probe.length);
    if (r > best) [best, refBatch] = [r, b];
  }
  const oursRate: number[] = [];
  const refRate: number[] = [];
  let got: Float32Array = new Float32Array(0);
  let want: Float32Array = new Float32Array(0);
  for (let round = 0; round < rounds; round++) {
    const runOurs = async () => oursRate.push(await rate(async () => (got = await ours.encode(texts)), texts.length));
    const runRef = async () => refRate.push(await rate(async () => (want = await reference(texts, refBatch)), texts.length));
    if (round % 2 === 0) {
      await runOurs();
      await runRef();
    } else {
      await runRef();
      await runOurs();
    }
  }
  const D = ours.dim;
  let minFit = 1;
  let minCut = 1;
  for (let i = 0; i < texts.length; i++) {
    let dot = 0;
    for (let j = 0; j < D; j++) dot += got[i * D + j] * want[i * D + j]; // both unit length
    if (fits[i]) minFit = Math.min(minFit, dot);
    else minCut = Math.min(minCut, dot);
  }
  const truncated = fits.filter((f) => !f).length;
  results[name] = {
    texts: texts.length,
    mean_tokens: tokens.reduce((a, b) => a + b, 0) / texts.length,
    truncated,
    reference_batch: refBatch,
    ours_texts_per_s: oursRate,
    reference_texts_per_s: refRate,
    round_ratios: oursRate.map((r, k) => r / refRate[k]),
    ratio_median: median(oursRate.map((r, k) => r / refRate[k])),
    ours_median: median(oursRate),
    reference_median: median(refRate),
    min_cosine: minFit, // texts within the maximum length: the two sides must agree
    min_cosine_truncated: truncated > 0 ? minCut : null, // [SEP] kept (ours) vs dropped (transformers.js)
  };
}
await ours.close();
rmSync(work, { recursive: true, force: true }); // the MiniLM-shaped folder is ~75 MB
console.log(JSON.stringify({
  model: modelName,
  shape: { ...SHAPES[modelName], max_length: ours.maxLength, dim: ours.dim },
  rounds,
  threads: {
    ours_intra_op: defaultThreads(),
    ours_intra_op_seen: oursThreadsStarted + 1,
    reference_intra_op: "onnxruntime-node 1.14 default (intraOpNumThreads unset: one per physical core)",
    reference_intra_op_seen: refThreadsStarted + 1,
  },
  ...results,
}));
