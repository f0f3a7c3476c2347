/**
 * `embedtune mine` on real Debian pairs with the default encoder: the triplets equal a
 * straightforward reimplementation (all cosines, full sort, the filters in plain code), the
 * margin holds, and train takes the output as its hard-negative column.
 */
import { existsSync, writeFileSync } from "node:fs";
import path from "node:path";

import { beforeAll, describe, expect, it } from "vitest";

import { encodeWithCache } from "../src/encoder/cached.js";
import { loadFrozenEncoder } from "../src/encoder/load.js";
import { lastJson, readJsonl, repoRoot, runCli, tempDir } from "./helpers.js";

const work = tempDir();
const cacheDir = path.join(work, "cache");
const pairs = readJsonl<{ query: string; positive: string }>(path.join(repoRoot, "data/debian-train.jsonl")).slice(0, 300);
// Two pairs sharing an anchor: each must skip both of the anchor's positives.
pairs.push({ query: pairs[0].query, positive: pairs[1].positive });
const data = path.join(work, "pairs.jsonl");

type Triplet = { anchor: string; positive: string; negative: string };
let cosine: (a: string, b: string) => number;

beforeAll(async () => {
  writeFileSync(data, pairs.map((p) => JSON.stringify(p)).join("\n") + "\n");
  const mined = await runCli(["mine", "--data", data, "--out", path.join(work, "warm.jsonl"), "--cache-dir", cacheDir, "--json"]);
  expect(mined.code).toBe(0);
  // Vectors of the same encoder through the same cache, to recompute everything independently.
  const texts = [...new Set(pairs.flatMap((p) => [p.query, p.positive]))];
  const encoder = await loadFrozenEncoder("default");
  const { vectors, encoded } = await encodeWithCache(encoder, texts, { cacheRoot: cacheDir });
  await encoder.close();
  expect(encoded).toBe(0);
  const D = vectors.length / texts.length;
  const row = new Map(texts.map((t, i) => [t, i]));
  cosine = (a, b) => {
    const i = row.get(a)! * D;
    const j = row.get(b)! * D;
    let dot = 0;
    for (let d = 0; d < D; d++) dot += vectors[i + d] * vectors[j + d];
    return dot; // rows are unit length
  };
});

/** The expected output, computed the plain way. */
function expected(k: number, margin: number, negatives: number): Triplet[] {
  const candidates = [...new Set(pairs.map((p) => p.positive))];
  const rows: Triplet[] = [];
  for (const p of pairs) {
    const own = new Set(pairs.filter((o) => o.query === p.query).map((o) => o.positive));
    const ranked = candidates.map((c, i) => ({ c, i, s: cosine(p.query, c) })).sort((x, y) => y.s - x.s || x.i - y.i).slice(0, k);
    const threshold = cosine(p.query, p.positive) - margin;
    const kept = ranked.filter((r) => !own.has(r.c) && r.c !== p.query && r.s <= threshold - 1e-6).slice(0, negatives);
    for (const r of kept) rows.push({ anchor: p.query, positive: p.positive, negative: r.c });
  }
  return rows;
}

async function mine(name: string, ...flags: string[]): Promise<{ summary: Record<string, any>; rows: Triplet[]; file: string }> {
  const file = path.join(work, name);
  const { code, stdout, stderr } = await runCli(["mine", "--data", data, "--out", file, "--cache-dir", cacheDir, "--json", ...flags]);
  expect(stderr).toBe("");
  expect(code).toBe(0);
  return { summary: lastJson(stdout), rows: readJsonl<Triplet>(file), file };
}

describe("embedtune mine", () => {
  it("writes, for every pair, the best candidate that is not its own positive nor above the positive's score", async () => {
    const { summary, rows } = await mine("default.jsonl");
    expect(summary).toMatchObject({ command: "mine", pairs: 301, k: 10, margin: 0, negatives: 1, candidates: 300 });
    expect(rows).toEqual(expected(10, 0, 1));
    expect(summary.triplets + summary.without_negative).toBe(301);
    expect(summary.triplets).toBeGreaterThan(200); // the rest: ten candidates outscore their positive
    for (const r of rows) {
      expect(Object.keys(r)).toEqual(["anchor", "positive", "negative"]);
      expect(r.negative).not.toBe(r.positive);
      expect(cosine(r.anchor, r.negative)).toBeLessThanOrEqual(cosine(r.anchor, r.positive) + 1e-6);
    }
    const shared = rows.filter((r) => r.anchor === pairs[0].query);
    for (const r of shared) expect([pairs[0].positive, pairs[1].positive]).not.toContain(r.negative);
  });

  it("hard negatives are harder than random ones", async () => {
    const { rows } = await mine("hard.jsonl", "--overwrite");
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const mined = mean(rows.map((r) => cosine(r.anchor, r.negative)));
    const shifted = mean(pairs.map((p, i) => cosine(p.query, pairs[(i + 150) % pairs.length].positive)));
    expect(mined).toBeGreaterThan(shifted + 0.1);
  });

  it("--margin skips candidates within the margin of the positive; --negatives writes several rows per pair", async () => {
    const { rows } = await mine("margin.jsonl", "--margin", "0.1", "--negatives", "3", "--k", "20");
    expect(rows).toEqual(expected(20, 0.1, 3));
    for (const r of rows) expect(cosine(r.anchor, r.negative)).toBeLessThanOrEqual(cosine(r.anchor, r.positive) - 0.1 + 1e-6);
    expect(rows.length).toBeGreaterThan(301);
    const none = await mine("none.jsonl", "--margin", "2");
    expect(none.summary.triplets).toBe(0);
    expect(none.summary.without_negative).toBe(301);
  });

  it("train takes the triplets as its hard-negative column", async () => {
    const { file } = await mine("for-train.jsonl");
    const { code, stdout } = await runCli(["train", "--data", file, "--epochs", "1", "--batch-size", "32", "--cache-dir", cacheDir, "--json"]);
    expect(code).toBe(0);
    const result = lastJson(stdout);
    expect(result.data.train).toMatch(/^\d+ triplets$/);
    expect(result.steps).toBeGreaterThan(5);
  });

  it("refuses scored pairs, a non-JSONL output and an existing file", async () => {
    const scored = path.join(work, "sts.csv");
    writeFileSync(scored, "sentence1,sentence2,score\na,b,1\nc,d,0\n");
    const cases: Array<[string[], RegExp]> = [
      [["--data", scored, "--out", path.join(work, "x.jsonl")], /sts\.csv: mining needs \(anchor, positive\) pairs/],
      [["--data", data, "--out", path.join(work, "x.csv")], /x\.csv: field "out": the output must be a \.jsonl file/],
      [["--data", data, "--out", path.join(work, "default.jsonl")], /default\.jsonl: output file already exists \(pass --overwrite/],
      [["--data", data, "--out", path.join(work, "y.jsonl"), "--negatives", "11"], /negatives must be an integer in \[1, k = 10\], got 11/],
    ];
    for (const [args, message] of cases) {
      const { code, stderr } = await runCli(["mine", ...args, "--cache-dir", cacheDir]);
      expect(code).toBe(1);
      expect(stderr).toMatch(message);
    }
    expect(existsSync(path.join(work, "x.jsonl"))).toBe(false);
  });
});
