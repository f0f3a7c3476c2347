/**
 * Training through the library on the real default encoder: reproducible with a seed,
 * better than the base encoder on held-out pairs, the same adapter from precomputed
 * vectors, and Encoder.load applying it as trained (both sides or queries only).
 */
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

import { beforeAll, describe, expect, it } from "vitest";

import { Encoder } from "../src/embed.js";
import { encodeNpyMatrix } from "../src/io/npy.js";
import { applyAdapter } from "../src/lora/output-adapter.js";
import { train, type TrainResult } from "../src/train/train.js";
import { readJsonl, repoRoot, sharedData, tempDir } from "./helpers.js";

const work = tempDir();
const cacheDir = path.join(work, "cache");
const pairs = readJsonl<{ query: string; positive: string }>(path.join(repoRoot, "data/debian-train.jsonl"));
const evalPairs = readJsonl<{ query: string; positive: string }>(path.join(repoRoot, "data/debian-eval.jsonl"));
const trainFile = path.join(work, "train.jsonl");
const evalFile = path.join(work, "eval.jsonl");
const common = { data: trainFile, eval: evalFile, cacheDir, epochs: 2, batchSize: 32 as const };

let first: TrainResult;

beforeAll(async () => {
  writeFileSync(trainFile, pairs.slice(0, 1500).map((p) => JSON.stringify(p)).join("\n") + "\n");
  writeFileSync(evalFile, evalPairs.slice(0, 300).map((p) => JSON.stringify(p)).join("\n") + "\n");
  first = await train({ ...common, out: path.join(work, "adapter") });
});

describe("train (MNRL on Debian pairs)", () => {
  it("beats the base encoder on held-out pairs", () => {
    const before = first.metrics.before!["ndcg@10"];
    const after = first.metrics.after!["ndcg@10"];
    console.log(`ndcg@10 on 300 held-out pairs: ${before.toFixed(4)} -> ${after.toFixed(4)}`);
    expect(after).toBeGreaterThan(before + 0.01);
    const losses = first.history.map((h) => h.loss);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(losses.slice(-10))).toBeLessThan(mean(losses.slice(0, 10)));
  });

  it("is reproducible: the same seed gives bitwise the same adapter, another seed does not", async () => {
    const again = await train(common);
    expect(Buffer.from(again.adapter.lora.A.buffer).equals(Buffer.from(first.adapter.lora.A.buffer))).toBe(true);
    expect(Buffer.from(again.adapter.lora.B.buffer).equals(Buffer.from(first.adapter.lora.B.buffer))).toBe(true);
    expect(again.texts.encoded).toBe(0); // every text came from the cache
    const other = await train({ ...common, seed: 7 });
    expect(Buffer.from(other.adapter.lora.B.buffer).equals(Buffer.from(first.adapter.lora.B.buffer))).toBe(false);
  });

  it("trains the same adapter from precomputed .npy vectors (--vectors)", async () => {
    const encoder = await Encoder.load();
    const write = async (file: string, texts: string[]) => writeFileSync(file, encodeNpyMatrix(await encoder.encode(texts), texts.length, 512));
    const rows = pairs.slice(0, 1500);
    const evalRows = evalPairs.slice(0, 300);
    const files = ["a.npy", "p.npy", "ea.npy", "ep.npy"].map((f) => path.join(work, f));
    await write(files[0], rows.map((p) => p.query));
    await write(files[1], rows.map((p) => p.positive));
    await write(files[2], evalRows.map((p) => p.query));
    await write(files[3], evalRows.map((p) => p.positive));
    await encoder.close();
    const fromVectors = await train({ ...common, vectors: { anchors: files[0], positives: files[1] }, evalVectors: { anchors: files[2], positives: files[3] } });
    let maxDiff = 0;
    fromVectors.adapter.lora.B.forEach((v, i) => (maxDiff = Math.max(maxDiff, Math.abs(v - first.adapter.lora.B[i]))));
    expect(maxDiff).toBeLessThan(1e-5); // vectors computed in other batches differ by float rounding only
    expect(fromVectors.adapter.config.base_model.name).toBe("vectors");
  });

  it("Encoder.load applies the saved adapter exactly as trained", async () => {
    const encoder = await Encoder.load({ adapter: path.join(work, "adapter") });
    const base = await Encoder.load();
    const texts = evalPairs.slice(0, 5).map((p) => p.query);
    const adapted = await encoder.encode(texts);
    const expected = applyAdapter(await base.encode(texts), texts.length, first.adapter.lora);
    adapted.forEach((v, i) => expect(Math.abs(v - expected[i])).toBeLessThan(1e-6));
    expect(encoder.rows(adapted)).toHaveLength(5);
    await encoder.close();
    await base.close();
  });
});

describe("train --query-only", () => {
  it("adapts queries only: documents keep their base vectors", async () => {
    const out = path.join(work, "query-only");
    // no eval set: the final adapter is kept (with one, the best evaluation could be step 0, the untouched adapter)
    const result = await train({ ...common, eval: undefined, applyTo: "query", out });
    expect(result.adapter.lora.B.some((v) => v !== 0)).toBe(true);
    expect(JSON.parse(readFileSync(path.join(out, "adapter_config.json"), "utf8")).apply_to).toBe("query");
    const encoder = await Encoder.load({ adapter: out });
    const base = await Encoder.load();
    const docs = evalPairs.slice(0, 3).map((p) => p.positive);
    expect(Array.from(await encoder.encodeDocuments(docs))).toEqual(Array.from(await base.encode(docs)));
    expect(Array.from(await encoder.encodeQueries(docs))).not.toEqual(Array.from(await base.encode(docs)));
    await encoder.close();
    await base.close();
  });
});

describe("train (CoSENT on STS-B)", () => {
  it("raises spearman_cosine on held-out STS-B dev pairs", async () => {
    const result = await train({ data: path.join(sharedData, "stsb/train.csv"), eval: path.join(sharedData, "stsb/dev.csv"), cacheDir, epochs: 1, batchSize: 16 });
    const before = result.metrics.before!.spearman_cosine;
    const after = result.metrics.after!.spearman_cosine;
    console.log(`STS-B dev spearman_cosine: ${before.toFixed(4)} -> ${after.toFixed(4)}`);
    expect(after).toBeGreaterThan(before + 0.005);
  });
});
