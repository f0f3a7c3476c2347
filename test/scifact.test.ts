/**
 * Retrieval evaluation on BEIR folders with the real default encoder: a hand-made corpus
 * whose ranks are known by construction, SciFact against a plain reimplementation of
 * ndcg@10, and training on SciFact queries improving ndcg@10 on queries held out.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

import { beforeAll, describe, expect, it } from "vitest";

import { loadEvalData } from "../src/data/load.js";
import type { RetrievalDataset } from "../src/data/types.js";
import { encodeWithCache } from "../src/encoder/cached.js";
import { loadFrozenEncoder } from "../src/encoder/load.js";
import { lastJson, runCli, sharedData, tempDir } from "./helpers.js";

const work = tempDir();
const cacheDir = path.join(work, "cache");
const scifact = path.join(sharedData, "scifact");
const adapter = path.join(work, "scifact-adapter");

const jsonl = (rows: unknown[]): string => rows.map((r) => JSON.stringify(r)).join("\n") + "\n";

async function cli(...args: string[]): Promise<Record<string, any>> {
  const { code, stdout, stderr } = await runCli([...args, "--cache-dir", cacheDir, "--json"]);
  expect(stderr).toBe("");
  expect(code).toBe(0);
  return lastJson(stdout);
}

let baseEval: Record<string, any>;

beforeAll(async () => {
  baseEval = await cli("eval", "--data", scifact); // encodes the 5,183 abstracts once, into the cache
}, 600_000); // about 70 s on an idle 2-core machine; leave room for a busy one

/**
 * Every query's text is also the text of some documents, which then score exactly 1 (the
 * same text has the same vector) and tie, ranked by corpus order; everything else scores
 * less. So the ranks are known: query A's copies rank 1..12, B's copy 1, C's copies 1..3.
 */
function handMadeFolder(): string {
  const dir = path.join(work, "hand-made");
  mkdirSync(path.join(dir, "qrels"), { recursive: true });
  const A = "The quick brown fox jumps over the lazy dog near the river bank.";
  const B = "Aspirin reduces the risk of heart attacks in older adults.";
  const C = "Solar panels convert sunlight into electricity.";
  const corpus = [
    ...Array.from({ length: 12 }, (_, i) => ({ _id: `a${i + 1}`, title: "", text: A })),
    { _id: "b1", title: "", text: B },
    ...Array.from({ length: 3 }, (_, i) => ({ _id: `c${i + 1}`, title: "", text: C })),
    { _id: "x", title: "Unrelated", text: "A recipe for bread with flour, water, salt and yeast." },
  ];
  writeFileSync(path.join(dir, "corpus.jsonl"), jsonl(corpus));
  writeFileSync(path.join(dir, "queries.jsonl"), jsonl([{ _id: "qA", text: A }, { _id: "qB", text: B }, { _id: "qC", text: C }]));
  // qA: relevant at ranks 2 and 11; qB: rank 1; qC: rank 3
  writeFileSync(path.join(dir, "qrels", "test.tsv"), "query-id\tcorpus-id\tscore\nqA\ta2\t1\nqA\ta11\t1\nqB\tb1\t1\nqC\tc3\t1\n");
  return dir;
}

describe("embedtune eval on a BEIR folder", () => {
  it("matches metrics computed by hand on a corpus with known ranks, with and without an adapter", async () => {
    const dir = handMadeFolder();
    const l = (rank: number): number => 1 / Math.log2(rank + 1);
    const mean = (...v: number[]): number => v.reduce((a, b) => a + b, 0) / v.length;
    const expected: Record<string, number> = {
      "ndcg@10": mean(l(2) / (l(1) + l(2)), 1, l(3)),
      "mrr@10": mean(1 / 2, 1, 1 / 3),
      "recall@10": mean(1 / 2, 1, 1),
      "precision@3": mean(1 / 3, 1 / 3, 1 / 3),
      "accuracy@1": mean(0, 1, 0),
      "map@100": mean((1 / 2 + 2 / 11) / 2, 1, 1 / 3),
    };
    const base = await cli("eval", "--data", dir);
    expect(base.examples).toBe(3);
    expect(base.data).toBe('BEIR split "test": 3 queries, 4 relevant documents, searching 17 documents');
    for (const [name, value] of Object.entries(expected)) expect(base.metrics[name], name).toBeCloseTo(value, 12);
    // An adapter maps equal vectors to equal vectors: the ranks, so the metrics, stay.
    await cli("train", "--data", scifact, "--eval", scifact, "--holdout", "20", "--out", adapter);
    const adapted = await cli("eval", "--data", dir, "--adapter", adapter);
    for (const [name, value] of Object.entries(expected)) expect(adapted.metrics[name], name).toBeCloseTo(value, 12);
  });

  it("SciFact: ndcg@10 equals a plain reimplementation (full sort of every cosine)", async () => {
    const read = (file: string) => readFileSync(path.join(scifact, file), "utf8").split("\n").filter((s) => s.trim()).map((s) => JSON.parse(s));
    const docs: Array<{ _id: string; title: string; text: string }> = read("corpus.jsonl");
    const queries = new Map<string, string>(read("queries.jsonl").map((q: { _id: string; text: string }) => [q._id, q.text]));
    const qrels = new Map<string, Set<string>>();
    for (const line of readFileSync(path.join(scifact, "qrels/train.tsv"), "utf8").trim().split("\n").slice(1)) {
      const [q, d, s] = line.split("\t");
      if (Number(s) > 0) qrels.set(q, (qrels.get(q) ?? new Set()).add(d));
    }
    const qids = [...qrels.keys()];
    const docTexts = docs.map((d) => `${d.title} ${d.text}`.trim());
    const encoder = await loadFrozenEncoder("default");
    const { vectors, encoded } = await encodeWithCache(encoder, [...docTexts, ...qids.map((q) => queries.get(q)!)], { cacheRoot: cacheDir });
    await encoder.close();
    expect(encoded).toBe(0); // the same vectors the CLI used, from the cache
    const D = 512;
    let sum = 0;
    qids.forEach((q, i) => {
      const qo = (docs.length + i) * D;
      const scored = docs.map((d, j) => {
        let dot = 0;
        for (let k = 0; k < D; k++) dot += vectors[qo + k] * vectors[j * D + k];
        return { id: d._id, j, s: dot };
      });
      scored.sort((a, b) => b.s - a.s || a.j - b.j);
      const rel = qrels.get(q)!;
      let dcg = 0;
      let idcg = 0;
      for (let r = 0; r < 10; r++) {
        if (rel.has(scored[r].id)) dcg += 1 / Math.log2(r + 2);
        if (r < rel.size) idcg += 1 / Math.log2(r + 2);
      }
      sum += dcg / idcg;
    });
    const ndcg = sum / qids.length;
    console.log(`SciFact (809 train queries) ndcg@10, base encoder: ${ndcg.toFixed(4)}`);
    expect(baseEval.examples).toBe(809);
    expect(baseEval.metrics["ndcg@10"]).toBeCloseTo(ndcg, 9);
  });
});

describe("train on SciFact queries, evaluate on held-out ones", () => {
  it("improves ndcg@10 on the held-out queries; eval --holdout reproduces the saved adapter's score", async () => {
    const config = JSON.parse(readFileSync(path.join(adapter, "adapter_config.json"), "utf8"));
    const { before, best, after, best_step: bestStep } = config.metrics;
    console.log(`SciFact held-out ndcg@10: ${before["ndcg@10"].toFixed(4)} -> best ${best["ndcg@10"].toFixed(4)} (step ${bestStep}), final ${after["ndcg@10"].toFixed(4)}`);
    expect(after["ndcg@10"]).toBeGreaterThan(before["ndcg@10"] + 0.01); // the last step's adapter, no selection
    expect(best["ndcg@10"]).toBeGreaterThanOrEqual(after["ndcg@10"]);
    expect(config.training).toMatchObject({ holdout: 20, examples: 703 });
    const held = await cli("eval", "--data", scifact, "--holdout", "20", "--adapter", adapter);
    expect(held.examples).toBe(189);
    expect(held.metrics["ndcg@10"]).toBeCloseTo(best["ndcg@10"], 10);
    const heldBase = await cli("eval", "--data", scifact, "--holdout", "20");
    expect(heldBase.metrics["ndcg@10"]).toBeCloseTo(before["ndcg@10"], 10);
  });

  it("mines the training part only, and trains on the triplets against the held-out queries", async () => {
    const mined = path.join(work, "scifact-mined.jsonl");
    const summary = await cli("mine", "--data", scifact, "--holdout", "20", "--k", "200", "--out", mined);
    expect(summary.pairs).toBe(703);
    const heldOut = (await loadEvalData(scifact, { holdout: 20 })) as RetrievalDataset;
    const heldQueries = new Set(heldOut.queries.map((q) => q.text));
    const rows = readFileSync(mined, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { anchor: string });
    expect(rows.length).toBe(summary.triplets);
    expect(rows.filter((r) => heldQueries.has(r.anchor))).toEqual([]);
    const trained = await cli("train", "--data", mined, "--eval", scifact, "--holdout", "20");
    expect(trained.data.eval).toMatch(/189 queries, the held-out part of 809/);
    expect(trained.metrics.before["ndcg@10"]).toBeCloseTo(0.2629, 4);
  });

  it("refuses to evaluate on the training queries themselves", async () => {
    const { code, stderr } = await runCli(["train", "--data", scifact, "--eval", scifact, "--cache-dir", cacheDir]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/--data and --eval are the same BEIR folder and split "train": the eval would score the training queries \(pass --holdout/);
  });
});
